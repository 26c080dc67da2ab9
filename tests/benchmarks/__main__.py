"""``python -m tests.benchmarks``: agentkit against the floor and its peers, in one run.

Prints Markdown tables (paste-ready for docs/performance.md) and the targets met or missed.
``--quick`` takes fewer samples; ``--only`` picks sections; ``--check`` exits 1 when a
target is missed. Peers that are not installed are skipped with a note
(``pip install -e ".[bench]"`` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import (
    contenders,
    imports,
    measure,
    parallel,
    scale,
    schemasize,
    scripted,
    streaming,
    tooldecor,
)
from .measure import Row, median, print_table
from .server import ServerProcess

SECTIONS = (
    "run",
    "imports",
    "parallel",
    "scale",
    "streaming",
    "tool",
    "schema-size",
    "sessions",
)

RUN_TARGET = 1.15
"""Issue 19: ``run`` and ``run_async`` at most 1.15x their floors (1.1x is the aim)."""
IMPORT_TARGET = 0.4
SCALE_CONVERSATIONS = 1000
POOL_BOUND = 100
"""The pool size assumed when agentkit's own default cannot be read."""


@dataclass
class Settings:
    """How many samples each section takes."""

    warmup: int = 20
    rounds: int = 60
    batch: int = 5
    import_repeats: int = 5
    parallel_repeats: int = 10
    stream_repeats: int = 20
    scale_repeats: int = 3
    decoration_repeats: int = 10
    validation_repeats: int = 20


QUICK = Settings(
    warmup=5,
    rounds=12,
    batch=3,
    import_repeats=2,
    parallel_repeats=4,
    stream_repeats=6,
    scale_repeats=1,
    decoration_repeats=4,
    validation_repeats=6,
)


@dataclass
class Verdicts:
    """The targets, met or missed, in the order they were checked."""

    lines: list[tuple[bool, str]] = field(default_factory=list)

    def add(self, met: bool, text: str) -> None:
        self.lines.append((met, text))

    @property
    def all_met(self) -> bool:
        return all(met for met, _ in self.lines)


def _run_cost(server: ServerProcess, loop: asyncio.Runner, s: Settings, v: Verdicts) -> None:
    ready: list[contenders.Contender] = []
    notes: dict[str, str] = {}
    for factory in contenders.ALL:
        name = contenders.label(factory)
        try:
            contender = factory(server.url)
            measure.check(contender, loop, server, s.warmup)
        except contenders.Skip as reason:
            notes[name] = f"skipped: {reason}"
            continue
        except Exception as error:  # a peer that breaks is reported, not fatal
            notes[name] = f"failed: {type(error).__name__}: {error}"
            continue
        ready.append(contender)
    samples = measure.interleaved_ms(ready, loop, rounds=s.rounds, batch=s.batch)
    for contender in ready:
        closed = contender.close()
        if inspect.isawaitable(closed):
            loop.run(_awaited(closed))
    rows = [
        Row(
            contenders.label(f),
            median(samples[n]) if n in samples else None,
            notes.get(n, ""),
            samples.get(n, []),
        )
        for f in contenders.ALL
        for n in [contenders.label(f)]
    ]
    floor = rows[0].value
    for row in rows:
        if row.samples and rows[0].samples:
            row.ratio = measure.paired_ratio(row.samples, rows[0].samples)
    by_name = {row.name: row for row in rows}
    for driver, own_floor in contenders.OWN_FLOOR.items():
        row, base = by_name[contenders.label(driver)], by_name[contenders.label(own_floor)]
        if row.samples and base.samples:
            own = measure.paired_ratio(row.samples, base.samples)
            row.note = f"{own:.2f}x {base.name}"
    for driver, other in contenders.ALSO_AGAINST.items():
        row, base = by_name[contenders.label(driver)], by_name[contenders.label(other)]
        if row.samples and base.samples:
            also = f"{measure.paired_ratio(row.samples, base.samples):.2f}x {base.name}"
            row.note = f"{row.note}; {also}" if row.note else also
    print_table(
        "1. Two-round run (question, tool call, tool result, answer)",
        rows,
        "ms/run",
        baseline=floor,
    )
    for driver, own_floor in contenders.OWN_FLOOR.items():
        if driver is contenders.agentkit_stream:
            continue  # the streaming section holds the stream's own target
        row, base = by_name[contenders.label(driver)], by_name[contenders.label(own_floor)]
        if not row.samples or not base.samples:
            v.add(False, f"run: {row.name} not measured ({row.note})")
            continue
        ratio = measure.paired_ratio(row.samples, base.samples)
        v.add(
            ratio <= RUN_TARGET,
            f"run: {row.name} at {ratio:.2f}x {base.name} (target <= {RUN_TARGET}x)",
        )


async def _awaited(awaitable: object) -> None:
    await awaitable  # type: ignore[misc]


def _imports(s: Settings, v: Verdicts) -> None:
    samples, failed = imports.measure(s.import_repeats)
    rows: list[Row] = []
    for case in imports.CASES:
        if case.label in failed:
            rows.append(Row(case.label, None, failed[case.label]))
            continue
        for kind, statement in (("bare", f"import {case.module}"), ("usable", case.usable)):
            data = samples[case.label][kind]
            rows.append(Row(f"{case.label}: `{statement}`", median(data), "", data))
    print_table("2. Import time (fresh interpreter, -X importtime)", rows, "ms")
    ours = samples.get("agentkit")
    peers = [
        c.label
        for c in imports.CASES
        if c.framework and c.label != "agentkit" and c.label in samples
    ]
    if ours is None or not peers:
        v.add(False, f"imports: agentkit or every peer framework missing {failed}")
        return
    for kind in ("bare", "usable"):
        fastest = min(peers, key=lambda label: median(samples[label][kind]))
        share = median(ours[kind]) / median(samples[fastest][kind])
        v.add(
            share <= IMPORT_TARGET,
            f"imports ({kind}): agentkit at {share:.0%} of the fastest "
            f"peer framework, {fastest} (target <= {IMPORT_TARGET:.0%})",
        )


def _parallel(server: ServerProcess, loop: asyncio.Runner, s: Settings, v: Verdicts) -> None:
    try:
        samples = parallel.measure(server.url, loop, s.parallel_repeats)
    except contenders.Skip as reason:
        print_table("3. Parallel tools", [Row("agentkit", None, f"skipped: {reason}")], "ms")
        v.add(False, f"parallel: not measured ({reason})")
        return
    rows = [Row(label, median(data), "", data) for label, data in samples.items()]
    print_table(
        f"3. Parallel tools: {scripted.PARALLEL_CALLS} calls of a "
        f"{scripted.TOOL_SECONDS * 1000:.0f} ms tool in one round, whole run",
        rows,
        "ms",
    )
    worst = max(rows, key=lambda row: row.value or 0.0)
    v.add(
        (worst.value or 0.0) <= parallel.TARGET_MS,
        f"parallel: slowest case {worst.name} at "
        f"{worst.value:.0f} ms (target <= {parallel.TARGET_MS:.0f} ms)",
    )


def _scale(server: ServerProcess, s: Settings, v: Verdicts) -> None:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scale.CONTENDERS}
    failures: dict[str, str] = {}
    for _ in range(s.scale_repeats):
        for name in scale.CONTENDERS:
            if name in failures:
                continue
            try:
                runs[name].append(scale.measure(server, name, SCALE_CONVERSATIONS))
            except RuntimeError as error:
                failures[name] = str(error)
    bound = _pool_bound()
    print("")
    print(
        f"### 4. Scale: {SCALE_CONVERSATIONS} two-round conversations at once on one event "
        f"loop (median of {s.scale_repeats})"
    )
    print("")
    print(
        "| | wall s | requests/s | peak RSS MB | RSS before MB | connections opened "
        "| most open at once | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in scale.CONTENDERS:
        label = scale.LABELS[name]
        if name in failures:
            print(f"| {label} | - | - | - | - | - | - | {failures[name]} |")
            if name == "agentkit":
                v.add(False, f"scale: not measured ({failures[name]})")
            continue
        reports = runs[name]
        wall = median([r["wall_s"] for r in reports])
        rate = median([r["requests_per_s"] for r in reports])
        peak = max(r["peak_rss_mb"] for r in reports)
        before = median([r["rss_before_mb"] for r in reports])
        opened = max(r["connections_opened"] for r in reports)
        most_open = max(r["peak_open_connections"] for r in reports)
        errors = sum(r["errors"] + r["wrong_answers"] for r in reports)
        first = next((r["first_error"] for r in reports if r["first_error"]), "")
        print(
            f"| {label} | {wall:.2f} | {rate:.0f} | {peak:.0f} | {before:.0f} | {opened} | "
            f"{most_open} | {errors}{' ' + first if first else ''} |"
        )
        if name == "agentkit":
            met = errors == 0 and peak < scale.TARGET_MB and most_open <= bound
            v.add(
                met,
                f"scale: {errors} errors, peak {peak:.0f} MB, at most {most_open} connections "
                f"open at once (target: 0 errors, < {scale.TARGET_MB:.0f} MB, a pool bounded "
                f"at {bound})",
            )


def _pool_bound() -> int:
    """The connection limit of agentkit's default pool (100 if it cannot be read)."""
    try:
        from agentkit._client import DEFAULT_LIMITS
    except ImportError:
        return POOL_BOUND
    return DEFAULT_LIMITS.max_connections or POOL_BOUND


def _streaming(server: ServerProcess, s: Settings) -> None:
    samples, skipped = streaming.measure(server, s.stream_repeats)
    rows = [Row(label, median(data), "", data) for label, data in samples.items()]
    rows += [Row(label, None, f"skipped: {reason}") for label, reason in skipped.items()]
    print_table(
        "5. Streaming: server's first byte to the caller's first text event",
        rows,
        "ms",
        baseline=rows[0].value,
        baseline_label="x raw httpx",
    )


def _tool(s: Settings) -> None:
    samples, skipped = tooldecor.measure_decoration(s.decoration_repeats)
    rows = [Row(label, median(data), "", data) for label, data in samples.items()]
    rows += [Row(label, None, f"skipped: {reason}") for label, reason in skipped.items()]
    print_table("6a. Decorating a 10-parameter function (once per tool)", rows, "us")
    samples = tooldecor.measure_validation(s.validation_repeats)
    rows = [Row(label, median(data), "", data) for label, data in samples.items()]
    print_table("6b. Validating its arguments (per call)", rows, "us", baseline=rows[0].value)


def _schema_size(v: Verdicts) -> None:
    for strict in (False, True):
        mode = "strict" if strict else "default"
        sizes, skipped = schemasize.measure(strict)
        common = schemasize.common(sizes)
        total = len(schemasize.corpus())
        ours = sum(sizes["agentkit"][entry] for entry in common) if "agentkit" in sizes else 0
        print("")
        print(
            f"### 7{'b' if strict else 'a'}. Tool definitions sent per request, {mode} mode: "
            f"bytes over the {len(common)} corpus functions every framework accepts"
        )
        print("")
        print("| | bytes | vs agentkit | functions accepted |")
        print("|---|---:|---:|---:|")
        for label, own in sizes.items():
            bytes_ = sum(own[entry] for entry in common)
            share = f"{bytes_ / ours:.2f}x" if ours else "-"
            print(f"| {label} | {bytes_} | {share} | {len(own)} of {total} |")
        for label, reason in skipped.items():
            print(f"| {label} | - | - | skipped: {reason} |")
        example = schemasize.schedule_sizes(strict)
        if example:
            shown = ", ".join(f"{label} {size}" for label, size in example.items())
            print("")
            print(f"`schedule(when: datetime, day: date | None = None)`: {shown} bytes")
        peers = {label: own for label, own in sizes.items() if label != "agentkit"}
        if "agentkit" not in sizes or not peers:
            v.add(False, f"schema-size ({mode}): agentkit or every peer missing {skipped}")
            continue
        smallest = min(peers, key=lambda label: sum(peers[label][e] for e in common))
        theirs = sum(peers[smallest][entry] for entry in common)
        v.add(
            ours <= theirs,
            f"schema-size ({mode}): agentkit {ours} bytes, the smallest peer {smallest} "
            f"{theirs} (target: at or below the smallest)",
        )


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print the tables and the targets; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (about 1 minute)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    chosen = args.only or SECTIONS
    verdicts = Verdicts()
    started = time.perf_counter()
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{_cpu_count()} CPUs; {'quick' if args.quick else 'full'} run; "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )
    sections: dict[str, Callable[[ServerProcess, asyncio.Runner], None]] = {
        "run": lambda srv, loop: _run_cost(srv, loop, settings, verdicts),
        "imports": lambda srv, loop: _imports(settings, verdicts),
        "parallel": lambda srv, loop: _parallel(srv, loop, settings, verdicts),
        "scale": lambda srv, loop: _scale(srv, settings, verdicts),
        "streaming": lambda srv, loop: _streaming(srv, settings),
        "tool": lambda srv, loop: _tool(settings),
        "schema-size": lambda srv, loop: _schema_size(verdicts),
        "sessions": lambda srv, loop: _sessions(settings),
    }
    with ServerProcess() as server, asyncio.Runner() as loop:
        for name in SECTIONS:
            if name in chosen:
                sections[name](server, loop)
                sys.stdout.flush()
    print("")
    print("### Targets")
    print("")
    for met, text in verdicts.lines:
        print(f"- {'met' if met else 'MISSED'}: {text}")
    print("")
    print(
        f"Total time: {time.perf_counter() - started:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    return 1 if args.check and not verdicts.all_met else 0


def _sessions(s: Settings) -> None:
    """The session stores (tests/benchmarks/sessions.py): a two-round run with and without
    a session, load and append, append cost by length, 1,000 conversations at once."""
    from . import sessions

    print("\n## Sessions\n")
    sessions.main(["--agent", *(["--quick"] if s is QUICK else [])])


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
