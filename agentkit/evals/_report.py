"""What a suite run found: pass^k per scenario and per suite, the failed checks with their
transcripts, tokens, cost and latency; saved as JSON and as one HTML file."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._visible import visible
from ._conversation import Attempt

if TYPE_CHECKING:
    from .._pricing import ModelPrice

__all__ = ["Change", "Report", "ScenarioReport", "pass_hat"]

FORMAT = "agentkit.evals/1"


def pass_hat(successes: int, tries: int, k: int) -> float:
    """tau-bench's pass^k for one task: the chance that ``k`` tries drawn from ``tries``,
    of which ``successes`` passed, all pass: ``C(successes, k) / C(tries, k)``."""
    if not 1 <= k <= tries:
        raise ValueError(f"pass^{k} needs 1 <= k <= {tries} tries")
    return math.comb(successes, k) / math.comb(tries, k)


@dataclass(slots=True)
class ScenarioReport:
    """One scenario's tries: ``name`` and its :class:`Attempt` list, in try order."""

    name: str
    attempts: list[Attempt]

    @property
    def passes(self) -> int:
        """How many tries passed."""
        return sum(attempt.passed for attempt in self.attempts)

    @property
    def mean(self) -> float:
        """The share of tries that passed."""
        return self.passes / len(self.attempts) if self.attempts else 0.0

    def pass_hat(self, k: int) -> float:
        """pass^k of this scenario (tau-bench's definition; see :func:`pass_hat`)."""
        return pass_hat(self.passes, len(self.attempts), k)

    @property
    def failures(self) -> list[Attempt]:
        """The tries that failed, each with its failed checks, error and transcript."""
        return [attempt for attempt in self.attempts if not attempt.passed]


@dataclass(frozen=True, slots=True)
class Change:
    """A scenario that got worse since an earlier report: its pass^1 and pass^k then and now
    (``None`` for a scenario the earlier report did not have)."""

    name: str
    before: float | None
    after: float
    before_k: float | None
    after_k: float

    def __str__(self) -> str:
        if self.before is None:
            return f"{self.name}: new, pass^1 {self.after:.2f}"
        return (
            f"{self.name}: pass^1 {self.before:.2f} -> {self.after:.2f}, "
            f"pass^k {self.before_k:.2f} -> {self.after_k:.2f}"
        )


@dataclass(slots=True)
class Report:
    """The outcome of :meth:`Suite.run`: ``k`` tries of every scenario.

    Attributes:
        k: tries per scenario.
        scenarios: one :class:`ScenarioReport` per scenario, in the suite's order.
        backend: where the conversations ran (``"local"``, ``"ray"``, ``"batch"``).
        seconds: the wall time of the whole run.
        prices: what a token costs, per model (``ModelPrice``), for the cost figures.
        price_factor: what the backend pays of that price (0.5 on the Batch API).
        model: the bot's model, for the price.
    """

    k: int
    scenarios: list[ScenarioReport]
    backend: str = "local"
    seconds: float = 0.0
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    price_factor: float = 1.0
    model: str = ""

    def pass_hat(self, k: int) -> float:
        """The suite's pass^k: the mean over scenarios of each one's pass^k."""
        if not self.scenarios:
            return 0.0
        return statistics.fmean(scenario.pass_hat(k) for scenario in self.scenarios)

    @property
    def mean(self) -> float:
        """The share of all tries that passed."""
        attempts = self.attempts
        return sum(a.passed for a in attempts) / len(attempts) if attempts else 0.0

    @property
    def attempts(self) -> list[Attempt]:
        """Every try of every scenario."""
        return [attempt for scenario in self.scenarios for attempt in scenario.attempts]

    @property
    def curve(self) -> list[float]:
        """pass^1 ... pass^k."""
        return [self.pass_hat(j) for j in range(1, self.k + 1)]

    @property
    def tokens(self) -> int:
        """Every token of every conversation (the customer's and the judge's included)."""
        return sum(int(attempt.usage.get("total_tokens", 0)) for attempt in self.attempts)

    def cost(self) -> float | None:
        """What the conversations cost at ``prices`` (times ``price_factor``), or ``None``
        without a price for the model."""
        from .._pricing import ModelPrice
        from .._wire import Usage

        price = ModelPrice.lookup(self.prices, self.model) if self.prices else None
        if price is None:
            return None
        total = sum(price.cost(Usage.model_validate(a.usage)) for a in self.attempts)
        return total * self.price_factor

    def latency(self, quantile: float) -> float:
        """The ``quantile`` (0.5 for p50, 0.95 for p95) of the conversations' wall time."""
        times = sorted(attempt.seconds for attempt in self.attempts)
        if not times:
            return 0.0
        return times[min(len(times) - 1, max(0, math.ceil(quantile * len(times)) - 1))]

    def summary(self) -> str:
        """A few lines for a terminal: pass^1 ... pass^k, tokens, cost, latency, and each
        failing scenario's first failure, on one line with its control and invisible
        characters written out (``\\x1b``)."""
        curve = "  ".join(f"pass^{j} {value:.3f}" for j, value in enumerate(self.curve, 1))
        cost = self.cost()
        price = (
            ""
            if cost is None
            else f", cost {cost:.4f}" + (" (batch price)" if self.price_factor != 1 else "")
        )
        lines = [
            f"{len(self.scenarios)} scenarios x {self.k} tries on {self.backend}: {curve}",
            f"tokens {self.tokens}{price}, latency p50 {self.latency(0.5):.2f}s "
            f"p95 {self.latency(0.95):.2f}s, {self.seconds:.1f}s in all",
        ]
        for scenario in self.scenarios:
            for attempt in scenario.failures[:1]:
                why = attempt.error or "; ".join(
                    f"{c.name}: {c.detail}" if c.detail else c.name for c in attempt.failed_checks
                )
                # a judge's reason or a model's error, read on a terminal or a CI log: one
                # line, its control characters written out (ESC would move the cursor)
                lines.append(
                    f"FAIL {visible(scenario.name)} "
                    f"({scenario.passes}/{len(scenario.attempts)}): {visible(why)}"
                )
        return "\n".join(lines)

    # -- gates ---------------------------------------------------------------------------

    def below(self, thresholds: Mapping[str, float]) -> list[str]:
        """The thresholds not met, as readable lines; keys ``"pass^K"`` or ``"mean"``."""
        failed = []
        for key, minimum in thresholds.items():
            value = self.metric(key)
            if value < minimum:
                failed.append(f"{key} is {value:.3f}, below {minimum:g}")
        return failed

    def metric(self, key: str) -> float:
        """``"pass^K"`` or ``"mean"``; a ``ValueError`` names what is accepted."""
        if key == "mean":
            return self.mean
        if key.startswith("pass^") and key[5:].isdigit() and 1 <= int(key[5:]) <= self.k:
            return self.pass_hat(int(key[5:]))
        raise ValueError(f"unknown metric {key!r}: use mean or pass^1 ... pass^{self.k}")

    def compare(self, earlier: Report) -> list[Change]:
        """The scenarios (by name) whose pass^1 or pass^k is lower than in ``earlier``;
        pass^k at the smaller k of the two reports (and of the scenario's tries in each)."""
        before = {scenario.name: scenario for scenario in earlier.scenarios}
        worse = []
        for scenario in self.scenarios:
            old = before.get(scenario.name)
            if old is None or not old.attempts or not scenario.attempts:
                continue
            k = min(self.k, earlier.k, len(scenario.attempts), len(old.attempts))
            after, after_k = scenario.pass_hat(1), scenario.pass_hat(k)
            then, then_k = old.pass_hat(1), old.pass_hat(k)
            if after < then - 1e-12 or after_k < then_k - 1e-12:
                worse.append(Change(scenario.name, then, after, then_k, after_k))
        return worse

    # -- files ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what :meth:`save_json` writes)."""
        cost = self.cost()
        return {
            "format": FORMAT,
            "k": self.k,
            "backend": self.backend,
            "model": self.model,
            "seconds": self.seconds,
            "price_factor": self.price_factor,
            "pass_hat": {f"pass^{j}": value for j, value in enumerate(self.curve, 1)},
            "mean": self.mean,
            "tokens": self.tokens,
            "cost": cost,
            "latency": {"p50": self.latency(0.5), "p95": self.latency(0.95)},
            "scenarios": [
                {
                    "name": scenario.name,
                    "pass_hat": {
                        f"pass^{j}": scenario.pass_hat(j)
                        for j in range(1, len(scenario.attempts) + 1)
                    },
                    "mean": scenario.mean,
                    "attempts": [attempt.to_dict() for attempt in scenario.attempts],
                }
                for scenario in self.scenarios
            ],
        }

    def save_json(self, path: str | Path) -> None:
        """Write the report as JSON (read it back with :meth:`load_json`)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=str), "utf-8")

    @classmethod
    def load_json(cls, path: str | Path) -> Report:
        """Read a report :meth:`save_json` wrote; ``ValueError`` for any other file."""
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the report {str(path)!r}: {exc}") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # "Expecting value: line 1 column 1"
            raise ValueError(
                f"{str(path)!r} is not an agentkit eval report (JSON): {exc}"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not an agentkit eval report (JSON)")
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"{str(path)!r} is a damaged agentkit eval report: {type(exc).__name__}: {exc}"
            ) from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Report:
        report = cls._read(data)
        # checked here, not when compared: --compare reads the report before the suite runs
        if report.k < 1:
            raise ValueError(f"k is {report.k}, not a positive number of tries")
        for scenario in report.scenarios:
            if not scenario.attempts:
                raise ValueError(f"scenario {scenario.name[:100]!r} has no tries")
        return report

    @classmethod
    def _read(cls, data: dict[str, Any]) -> Report:
        return cls(
            k=int(data["k"]),
            scenarios=[
                ScenarioReport(
                    str(item["name"]),
                    [Attempt.from_dict(index, a) for a in item["attempts"]],
                )
                for index, item in enumerate(data["scenarios"])
            ],
            backend=str(data.get("backend", "")),
            seconds=float(data.get("seconds", 0.0)),
            price_factor=float(data.get("price_factor", 1.0)),
            model=str(data.get("model", "")),
        )

    def save_html(self, path: str | Path) -> None:
        """Write the report as one self-contained HTML file (no scripts, styles inline):
        the summary, the pass^k curve, each failed conversation with its tool calls."""
        from ._html import render_html

        Path(path).write_text(render_html(self), "utf-8")


def group(names: Sequence[str], attempts: Sequence[Attempt]) -> list[ScenarioReport]:
    """Attempts (in any order) into one report per scenario, each in try order."""
    reports = [ScenarioReport(name, []) for name in names]
    for attempt in sorted(attempts, key=lambda a: (a.scenario, a.attempt)):
        reports[attempt.scenario].attempts.append(attempt)
    return reports
