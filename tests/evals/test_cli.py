"""``agentkit eval``: the summary, the reports, the CI gates' exit codes, the progress."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agentkit.cli import main
from agentkit.cli._eval import Progress
from agentkit.evals import Attempt, CheckResult, Report, ScenarioReport
from agentkit.testing import ScriptedServer

from .conftest import EXAMPLES

SUITE = f"{EXAMPLES / 'desk_suite.py'}:suite"


def _eval(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["eval", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_fail_under_gates_ci_and_the_reports_are_written(
    desk_model: ScriptedServer, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    page = tmp_path / "report.html"
    code, out, err = _eval(
        SUITE, "-k", "4", "--fail-under", "pass^1=0.9", "--json", str(report), "--html", str(page)
    )
    assert code == 1
    assert "agentkit eval: FAIL pass^1 is 0.625, below 0.9" in err
    assert "pass^1 0.625  pass^2 0.417  pass^3 0.312  pass^4 0.250" in out
    # piped: one plain line per conversation, no bar
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 16 and lines[-1].startswith("[16/16] ")
    assert sum("FAIL refund a delivered order (try " in line for line in lines) == 2
    assert "\r" not in err
    assert json.loads(report.read_text())["pass_hat"]["pass^4"] == 0.25
    assert page.read_text().startswith("<!DOCTYPE html>")

    code, _, err = _eval(SUITE, "-k", "4", "--fail-under", "pass^1=0.6", "--fail-under", "mean=0.6")
    assert code == 0, err


def test_compare_lists_what_got_worse_and_exits_1(
    desk_model: ScriptedServer, tmp_path: Path
) -> None:
    names = [
        "cancel an order that has not shipped",
        "send an order to a new address",
        "refund a delivered order",
        "refuse another customer's order",
    ]
    perfect = Report(
        k=4,
        scenarios=[
            ScenarioReport(
                name,
                [Attempt(i, n, True, [CheckResult("c", True)], []) for n in range(4)],
            )
            for i, name in enumerate(names)
        ],
    )
    earlier = tmp_path / "last.json"
    perfect.save_json(earlier)
    code, out, _ = _eval(SUITE, "-k", "4", "--compare", str(earlier))
    assert code == 1
    worse = [line for line in out.splitlines() if line.startswith("worse: ")]
    assert worse == [
        "worse: send an order to a new address: pass^1 1.00 -> 0.75, pass^k 1.00 -> 0.00",
        "worse: refund a delivered order: pass^1 1.00 -> 0.50, pass^k 1.00 -> 0.00",
        "worse: refuse another customer's order: pass^1 1.00 -> 0.25, pass^k 1.00 -> 0.00",
    ]

    same = tmp_path / "same.json"
    assert _eval(SUITE, "-k", "4", "--json", str(same))[0] == 0
    code, out, _ = _eval(SUITE, "-k", "4", "--compare", str(same))
    assert code == 0
    assert "nothing got worse than in" in out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--fail-under", "pass^5=0.5"], "the metrics are mean and pass^1 ... pass^4"),
        (["--fail-under", "pass^1"], "METRIC=VALUE"),
        (["--fail-under", "pass^1=2"], "from 0 to 1"),
        (["--compare", "missing.json"], "--compare: cannot read the report"),
    ],
)
def test_bad_options_are_usage_errors_before_any_request(
    desk_model: ScriptedServer, argv: list[str], said: str
) -> None:
    code, _, err = _eval(SUITE, "-k", "4", *argv)
    assert code == 2
    assert said in err
    assert "Traceback" not in err
    assert desk_model.request_count == 0


def test_a_bad_suite_is_a_usage_error(desk_model: ScriptedServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        "from desk_suite import make_desk\n"
        "from agentkit.evals import Scenario, Suite, called\n"
        "suite = Suite(agent=make_desk, scenarios=[Scenario('refund', turns=['Refund 1042'],"
        " checks=[called('issue_refund', order_id=1042)])])\n"
        "not_a_suite = 3\n"
    )
    code, _, err = _eval(f"{bad}:suite")
    assert code == 2
    assert "called('issue_refund', order_id=1042) names a tool the bot does not have" in err
    code, _, err = _eval(f"{bad}:not_a_suite")
    assert code == 2 and "not an agentkit.evals.Suite" in err
    code, _, err = _eval(f"{bad}:missing")
    assert code == 2 and "has no 'missing'" in err
    assert desk_model.request_count == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_is_one_live_bar() -> None:
    stream = _Terminal()
    progress = Progress(stream, interactive=True, width=10)
    for n in range(1, 5):
        progress(n, 4, Attempt(0, n, n % 2 == 0, [], []))
    shown = stream.getvalue()
    assert shown.count("\r") == 4 and shown.count("\n") == 1
    assert shown.endswith("\r[##########] 4/4 conversations, 2 passed\n")
