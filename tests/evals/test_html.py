"""The HTML report in a real browser (Debian's chromium, driven by Playwright): one file that
fetches nothing, shows the summary, the pass^k curve and each failed conversation with its
tool calls, and shows hostile conversation text as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve.test_serve_page import ARGS, CHROMIUM, HOSTILE, WAIT_MS, _browser_or_skip, unhurried

from agentkit.evals import Attempt, CheckResult, Report, ScenarioReport


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=WAIT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


def _report() -> Report:
    failed = Attempt(
        scenario=1,
        attempt=2,
        passed=False,
        checks=[CheckResult(f"called('refund') {HOSTILE}", False, f"tool calls made: {HOSTILE}")],
        messages=[
            {"role": "system", "content": "secret instructions"},
            {"role": "user", "content": f"Refund order 1042 {HOSTILE}"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "cancel_order", "arguments": '{"order_id": 1042}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "Order 1042 is cancelled."},
        ],
    )
    ok = [Attempt(0, n, True, [CheckResult("c", True)], []) for n in range(4)]
    mixed = [Attempt(1, n, n != 2, [CheckResult("c", True)], []) for n in range(4)]
    mixed[2] = failed
    return Report(
        k=4,
        scenarios=[ScenarioReport("always right", ok), ScenarioReport(f"mixed {HOSTILE}", mixed)],
    )


@pytest.mark.timeout(240)  # chromium starts slowly on a loaded machine
def test_the_html_report_renders_in_chromium_and_escapes_everything(
    browser: Any, tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    _report().save_html(path)
    page = unhurried(browser.new_page())
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.as_uri())

    assert page.title() == "agentkit eval report"
    rows = page.locator("#summary tr")
    assert rows.count() == 4  # the header, the suite, two scenarios
    assert rows.nth(1).inner_text().split("\t") == [
        "suite",
        "0.875",
        "0.750",
        "0.625",
        "0.500",
        "0.875",
    ]
    assert page.locator("#curve polyline").count() == 1
    assert page.locator("#curve circle").count() == 4
    failures = page.locator("#failures details.failure")
    assert failures.count() == 1
    failures.first.locator("summary").click()
    shown = failures.first.inner_text()
    assert f"Refund order 1042 {HOSTILE}" in shown  # the markup shown as text
    assert 'cancel_order({"order_id": 1042})' in shown
    assert "secret instructions" not in shown
    assert page.locator("img").count() == 0 and page.locator("body script").count() == 0
    assert page.title() != "pwned"
    assert requested == [path.as_uri()]  # one self-contained file
