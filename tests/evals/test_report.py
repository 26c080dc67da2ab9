"""pass^k as tau-bench defines it, and the report's gates, JSON and comparison."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit.evals import Attempt, CheckResult, Report, ScenarioReport, pass_hat


def _attempts(index: int, outcomes: list[bool]) -> list[Attempt]:
    return [
        Attempt(
            scenario=index,
            attempt=n,
            passed=ok,
            checks=[CheckResult("check", ok, "" if ok else "why")],
            messages=[{"role": "user", "content": "<b>hi</b>"}],
            usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            seconds=0.1 * (n + 1),
        )
        for n, ok in enumerate(outcomes)
    ]


def _report(*outcomes: list[bool]) -> Report:
    scenarios = [
        ScenarioReport(f"scenario {i}", _attempts(i, list(o))) for i, o in enumerate(outcomes)
    ]
    return Report(k=len(outcomes[0]), scenarios=scenarios)


@given(st.lists(st.booleans(), min_size=1, max_size=8), st.data())
def test_pass_hat_is_the_chance_that_k_tries_drawn_all_pass(
    outcomes: list[bool], data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, len(outcomes)))
    draws = list(itertools.combinations(outcomes, k))
    expected = sum(all(draw) for draw in draws) / len(draws)
    assert pass_hat(sum(outcomes), len(outcomes), k) == pytest.approx(expected)


def test_a_suites_pass_hat_is_the_mean_over_scenarios() -> None:
    report = _report([True] * 4, [True, True, True, False], [False, True, True, False])
    assert report.pass_hat(1) == pytest.approx((1 + 0.75 + 0.5) / 3)
    assert report.pass_hat(2) == pytest.approx((1 + 0.5 + 1 / 6) / 3)
    assert report.pass_hat(4) == pytest.approx(1 / 3)
    assert report.curve == pytest.approx([report.pass_hat(j) for j in range(1, 5)])
    with pytest.raises(ValueError):
        report.pass_hat(5)


def test_thresholds_and_metrics() -> None:
    report = _report([True, False], [True, True])
    assert report.below({"pass^1": 0.7}) == []
    assert report.below({"pass^2": 0.6}) == ["pass^2 is 0.500, below 0.6"]
    assert report.below({"mean": 0.8}) == ["mean is 0.750, below 0.8"]
    with pytest.raises(ValueError, match=r"pass\^1 ... pass\^2"):
        report.metric("pass^3")


def test_json_round_trip_and_compare_lists_what_got_worse(tmp_path: Path) -> None:
    before = _report([True, True], [True, True], [False, False])
    path = tmp_path / "last.json"
    before.save_json(path)
    loaded = Report.load_json(path)
    assert loaded.curve == before.curve
    assert [s.name for s in loaded.scenarios] == [s.name for s in before.scenarios]
    assert loaded.scenarios[0].attempts[0].checks[0] == CheckResult("check", True, "")

    after = _report([True, True], [True, False], [True, False])
    worse = after.compare(loaded)
    assert [change.name for change in worse] == ["scenario 1"]
    assert "pass^1 1.00 -> 0.50" in str(worse[0])
    assert after.compare(after) == []


def test_a_file_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"k": 1}')
    with pytest.raises(ValueError, match="not an agentkit eval report"):
        Report.load_json(path)
    with pytest.raises(ValueError, match="cannot read"):
        Report.load_json(tmp_path / "missing.json")


def test_latency_quantiles_and_tokens() -> None:
    report = _report([True] * 10)
    assert report.latency(0.5) == pytest.approx(0.5)
    assert report.latency(0.95) == pytest.approx(1.0)
    assert report.tokens == 150


def test_a_damaged_report_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "damaged.json"
    path.write_text('{"format": "agentkit.evals/1", "k": 2, "scenarios": [{"name": "x"}]}')
    with pytest.raises(ValueError, match="damaged agentkit eval report: KeyError"):
        Report.load_json(path)
