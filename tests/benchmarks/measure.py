"""Timing helpers: interleaved repetitions, medians, and the printed tables."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import scripted
from .contenders import Contender
from .server import ServerProcess


@dataclass
class Row:
    """One line of a printed table."""

    name: str
    value: float | None
    """The median, in the table's unit; ``None`` when the row was skipped or failed."""
    note: str = ""
    samples: list[float] = field(default_factory=list)
    ratio: float | None = None
    """The ratio to the table's baseline when measured pairwise (see :func:`paired_ratio`);
    else the table divides the medians."""

    @property
    def spread(self) -> str:
        """The middle half of the samples (25th to 75th percentile), as text."""
        if len(self.samples) < 4:
            return ""
        quartiles = statistics.quantiles(self.samples, n=4)
        return f"{_fmt(quartiles[0])}-{_fmt(quartiles[2])}"


def median(samples: Sequence[float]) -> float:
    """The median of ``samples``."""
    return statistics.median(samples)


def paired_ratio(samples: Sequence[float], baseline: Sequence[float]) -> float:
    """The median over rounds of ``samples[i] / baseline[i]``.

    Both were taken in the same interleaved round, so a slow spell on the machine (other
    processes, CPU frequency) scales both and cancels out of the ratio.
    """
    return statistics.median(a / b for a, b in zip(samples, baseline, strict=True))


def call(contender: Contender, loop: asyncio.Runner, times: int) -> list[Any]:
    """Run ``contender`` ``times`` times back to back; return the answers."""
    if contender.is_async:

        async def batch() -> list[Any]:
            return [await contender.run() for _ in range(times)]

        return loop.run(batch())
    return [contender.run() for _ in range(times)]


def check(contender: Contender, loop: asyncio.Runner, server: ServerProcess, runs: int) -> None:
    """Warm ``contender`` up and prove it holds the scripted conversation: the right answer,
    and exactly two requests per run. Raises ``AssertionError`` otherwise."""
    server.reset()
    answers = call(contender, loop, runs)
    requests = server.stats()["requests"]
    wrong = [answer for answer in answers if answer != scripted.ANSWER]
    assert not wrong, f"answered {wrong[0]!r}, expected {scripted.ANSWER!r}"
    assert requests == 2 * runs, f"sent {requests} requests for {runs} two-round runs"


def interleaved_ms(
    contenders: Sequence[Contender],
    loop: asyncio.Runner,
    *,
    rounds: int,
    batch: int,
) -> dict[str, list[float]]:
    """Per contender, ``rounds`` samples of milliseconds per run.

    Each round runs every contender for ``batch`` runs, in a random order, so drift on the
    machine (other processes, CPU frequency) spreads evenly, and no contender always
    follows the same one: in a fixed rotation, whichever follows a heavy peer pays for
    its cold caches every round (``Agent.run`` followed the LangChain loop).
    """
    samples: dict[str, list[float]] = {contender.name: [] for contender in contenders}
    order = list(contenders)
    for _ in range(rounds):
        random.shuffle(order)
        for contender in order:
            start = time.perf_counter_ns()
            call(contender, loop, batch)
            elapsed = time.perf_counter_ns() - start
            samples[contender.name].append(elapsed / batch / 1e6)
    return samples


def print_table(
    title: str,
    rows: Sequence[Row],
    unit: str,
    *,
    baseline: float | None = None,
    baseline_label: str = "x floor",
    out: Callable[[str], None] = print,
) -> None:
    """Print ``rows`` as a Markdown table: name, median, spread, ratio to ``baseline``."""
    out("")
    out(f"### {title}")
    out("")
    headers = ["", f"{unit} (median)", "middle half"]
    if baseline is not None:
        headers.append(baseline_label)
    headers.append("note")
    out("| " + " | ".join(headers) + " |")
    out("|" + "|".join(["---"] + ["---:"] * (len(headers) - 2) + ["---"]) + "|")
    for row in rows:
        cells = [row.name]
        if row.value is None:
            cells += ["-", "-"] + (["-"] if baseline is not None else [])
        else:
            cells += [_fmt(row.value), row.spread]
            if baseline is not None:
                ratio = row.ratio if row.ratio is not None else row.value / baseline
                cells.append(f"{ratio:.2f}")
        cells.append(row.note)
        out("| " + " | ".join(cells) + " |")


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
