"""The report as one self-contained HTML page: inline styles and SVG, no scripts, nothing
fetched; every piece of conversation text escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._conversation import Attempt
    from ._report import Report

__all__ = ["render_html"]

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f4f4f4;text-align:left}.pass{color:#176f2c}.fail{color:#b3261e}
.msg{white-space:pre-wrap;margin:.2em 0;padding:.3em .5em;border-left:3px solid #ccc}
.user{border-color:#3b6fb6}.assistant{border-color:#6a4fb3}.tool{border-color:#999;color:#555}
.call{font-family:monospace;color:#6a4fb3}details{margin:.6em 0}
"""


def render_html(report: Report) -> str:
    """The whole page."""
    cost = report.cost()
    facts = [
        ("scenarios", str(len(report.scenarios))),
        ("tries per scenario", str(report.k)),
        ("backend", report.backend),
        ("mean", f"{report.mean:.3f}"),
        ("tokens", str(report.tokens)),
        ("latency p50 / p95", f"{report.latency(0.5):.2f} s / {report.latency(0.95):.2f} s"),
    ]
    if cost is not None:
        label = "cost (batch price)" if report.price_factor != 1 else "cost"
        facts.append((label, f"{cost:.4f}"))
    head = "".join(f"<th>pass^{j}</th>" for j in range(1, report.k + 1))
    rows = [
        "<tr><td><b>suite</b></td>"
        + "".join(f"<td>{value:.3f}</td>" for value in report.curve)
        + f"<td>{report.mean:.3f}</td></tr>"
    ]
    for scenario in report.scenarios:
        mark = "pass" if not scenario.failures else "fail"
        rows.append(
            f'<tr><td class="{mark}">{escape(scenario.name)}</td>'
            + "".join(f"<td>{scenario.pass_hat(j):.3f}</td>" for j in range(1, report.k + 1))
            + f"<td>{scenario.passes}/{len(scenario.attempts)}</td></tr>"
        )
    failures = [
        _failure(scenario.name, attempt)
        for scenario in report.scenarios
        for attempt in scenario.failures
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>agentkit eval report</title>"
        f"<style>{_STYLE}</style></head><body><h1>agentkit eval report</h1>"
        '<table id="facts">'
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
        + '</table><h2>pass^k</h2><table id="summary"><tr><th>scenario</th>'
        + head
        + "<th>passed</th></tr>"
        + "".join(rows)
        + "</table>"
        + _curve(report.curve)
        + f'<h2>Failed conversations ({len(failures)})</h2><div id="failures">'
        + ("".join(failures) or "<p>None.</p>")
        + "</div></body></html>\n"
    )


def _curve(values: list[float]) -> str:
    """pass^1 ... pass^k as an SVG line on a 0..1 scale."""
    width, height, pad = 360, 180, 30
    step = (width - 2 * pad) / max(1, len(values) - 1)
    points = [
        (pad + i * step, height - pad - value * (height - 2 * pad))
        for i, value in enumerate(values)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#6a4fb3"/>'
        f'<text x="{x:.1f}" y="{height - 8}" font-size="11" text-anchor="middle">'
        f"pass^{i + 1}</text>"
        for i, (x, y) in enumerate(points)
    )
    return (
        f'<svg id="curve" width="{width}" height="{height}" role="img" '
        'aria-label="pass^k curve" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#999"/><text x="4" y="34" font-size="11">1.0</text>'
        f'<text x="4" y="{height - pad}" font-size="11">0</text>'
        f'<polyline fill="none" stroke="#6a4fb3" stroke-width="2" points="{line}"/>'
        f"{dots}</svg>"
    )


def _failure(name: str, attempt: Attempt) -> str:
    why = [
        f'<li class="fail">{escape(check.name)}'
        f"{': ' + escape(check.detail) if check.detail else ''}</li>"
        for check in attempt.failed_checks
    ]
    if attempt.error:
        why.insert(0, f'<li class="fail">{escape(attempt.error)}</li>')
    return (
        f'<details class="failure"><summary>{escape(name)}, try {attempt.attempt + 1}'
        f"</summary><ul>{''.join(why)}</ul>"
        + "".join(_message(message) for message in attempt.messages)
        + "</details>"
    )


def _message(message: dict[str, Any]) -> str:
    role = str(message.get("role", ""))
    if role == "system":
        return ""
    parts = []
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(escape(content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(
            f'<span class="call">{escape(str(function.get("name")))}'
            f"({escape(str(function.get('arguments')))})</span>"
        )
    return f'<div class="msg {escape(role)}"><b>{escape(role)}</b>: {"<br>".join(parts)}</div>'
