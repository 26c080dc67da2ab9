"""An outside review of ``agentkit eval``: a suite whose helpers fail, a damaged report to
compare with. Each test is a probe that broke, kept as its regression: a readable error
before any request, never a suite stopped after paying for conversations."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent
from agentkit.cli import main
from agentkit.evals import (
    Attempt,
    CheckResult,
    Report,
    Scenario,
    ScenarioReport,
    SimulatedUser,
    Suite,
    SuiteError,
    called,
    judge,
)
from agentkit.testing import Reply, ScriptedServer, echo

SUITES = """
from agentkit import Agent
from agentkit.evals import Scenario, SimulatedUser, Suite, judge


def bot():
    return Agent("scripted", [], "You are the desk.")


def customer():
    raise ValueError("the customer's model is not configured")


def judge_agent():
    raise ValueError("the judge's model is not configured")


fixed = Scenario("hello", turns=["hi"])
customer_fails = Suite(
    agent=bot, user=customer, scenarios=[fixed, Scenario("goal", user=SimulatedUser("Book."))]
)
judge_fails = Suite(
    agent=bot,
    judge=judge_agent,
    scenarios=[fixed, Scenario("judged", turns=["hi"], checks=[judge("polite")])],
)
no_agent = Suite(
    agent=bot, user=lambda: None, scenarios=[fixed, Scenario("goal", user=SimulatedUser("Book."))]
)
plain = Suite(agent=bot, scenarios=[fixed])
"""


@pytest.fixture
def suites(tmp_path: Path, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    server.respond_with(echo())
    monkeypatch.setenv("AGENTKIT_BASE_URL", server.base_url)
    path = tmp_path / "suites.py"
    path.write_text(SUITES)
    return path


def _eval(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["eval", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("customer_fails", "customer of scenario 'goal' failed: ValueError: the customer's"),
        ("judge_fails", "judge of scenario 'judged' failed: ValueError: the judge's"),
        ("no_agent", "customer of scenario 'goal' failed: TypeError: the agent factory returned"),
    ],
)
def test_a_customer_or_judge_factory_that_fails_is_refused_before_any_request(
    suites: Path, server: ScriptedServer, name: str, said: str
) -> None:
    """The bot's factory was tried before any request; the customer's and the judge's
    were first called in a conversation: the suite ran the scenarios before it (paying for
    them), then stopped with the factory's bare ValueError and no report."""
    code, _, err = _eval(f"{suites}:{name}", "-k", "2")
    assert code == 2, err
    assert said in err
    assert "nothing was sent" in err
    assert "agentkit chat --help" not in err  # an eval's error is the suite's to fix
    assert "Traceback" not in err
    assert server.requests == []


def _report_file(path: Path, tries: int) -> Path:
    """A report of k=2 whose one scenario keeps ``tries`` of its tries (edited by hand)."""
    report = Report(
        k=2,
        scenarios=[
            ScenarioReport(
                "hello", [Attempt(0, n, True, [CheckResult("c", True)], []) for n in (0, 1)]
            )
        ],
    )
    report.save_json(path)
    data = json.loads(path.read_text())
    data["scenarios"][0]["attempts"] = data["scenarios"][0]["attempts"][:tries]
    path.write_text(json.dumps(data))
    return path


def test_a_report_with_a_scenario_of_no_tries_is_refused_before_any_request(
    suites: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    """``--compare`` read the report before the suite ran but did not look inside it: a
    scenario with no tries made the comparison raise a bare ValueError after every
    conversation had been paid for, with no verdict."""
    earlier = _report_file(tmp_path / "empty.json", 0)
    code, _, err = _eval(f"{suites}:plain", "-k", "2", "--compare", str(earlier))
    assert code == 2, err
    assert "damaged agentkit eval report" in err and "'hello' has no tries" in err
    assert server.requests == []
    data = json.loads(earlier.read_text())
    data["k"] = 0
    earlier.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="k is 0"):
        Report.load_json(earlier)


def test_a_report_with_fewer_tries_than_its_k_is_compared_at_the_tries_it_has(
    suites: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    """A report cut by hand (k=2, one try kept) compared at pass^2 raised "pass^2 needs
    1 <= k <= 1 tries" after the suite ran; it is compared at the tries it has."""
    earlier = _report_file(tmp_path / "cut.json", 1)
    code, out, err = _eval(f"{suites}:plain", "-k", "2", "--compare", str(earlier))
    assert code == 0, err
    assert f"nothing got worse than in {earlier}" in out
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"checks": called("refund")}, "checks must be a list, e.g. checks=[called("),
        ({"checks": judge("polite")}, "checks must be a list"),
        ({"checks": lambda conversation: True}, "checks must be a list"),
        ({"history": {"role": "user", "content": "Hi"}}, "history must be a list"),
        ({"history": ["Hi"]}, "history[0] is not a message"),
        ({"history": [{"content": "Hi"}]}, "history[0] is not a message"),
        ({"turns": 5}, "turns must be a list"),
    ],
)
def test_a_scenario_with_one_check_or_a_malformed_history_is_a_readable_suite_error(
    options: dict[str, Any], said: str
) -> None:
    """One check where a list belongs was "TypeError: 'ToolCheck' object is not
    iterable"; a history of texts "ValueError: dictionary update sequence element #0 has
    length 1; 2 is required"; a history message without a role was accepted and failed
    every conversation."""
    with pytest.raises(SuiteError, match=re.escape(said)):
        Scenario("refund", **{"turns": ["Refund order 5."], **options})


def test_a_simulated_customers_turns_are_a_number_not_a_bool() -> None:
    with pytest.raises(SuiteError, match="max_turns"):
        SimulatedUser("You are Dana.", max_turns=True)


@pytest.mark.parametrize(
    "damage",
    [
        {"pending": None},
        {"pending": {"batch_1": {"input_file_id": "file_1"}}},
        {"pending": {"batch_1": {"custom_ids": [1, 2]}}},
        {"results": {"c0-r0": "not an answer"}},
        {"results": []},
        None,
    ],
    ids=[
        "no-pending",
        "batch-without-lines",
        "line-ids-not-text",
        "answer-not-object",
        "list",
        "nested-too-deep",
    ],
)
def test_a_damaged_batch_state_file_is_refused_before_any_request(
    server: ScriptedServer, tmp_path: Path, damage: dict[str, Any] | None
) -> None:
    """A state file of the right format and suite whose batches or answers were damaged
    (edited by hand, another tool's) ran into a bare KeyError ('pending', 'custom_ids')
    mid-run, or replayed a text as a model's answer."""
    from agentkit import AsyncChatClient
    from agentkit.evals import BatchBackend
    from agentkit.evals._batch import _fingerprint
    from agentkit.evals._suite import Job

    def bot(http_client: Any = None) -> Agent[str]:
        client = AsyncChatClient(base_url=server.base_url, api_key="sk-x", http_client=http_client)
        return Agent("scripted", [], "You are the desk.", client=client)

    suite = Suite(agent=bot, scenarios=[Scenario("hello", turns=["hi"])])
    state = tmp_path / "state.json"
    written = {
        "format": "agentkit.evals.batch/1",
        "suite": _fingerprint(suite, [Job(0, 0)]),
        "pending": {},
        "results": {},
    }
    state.write_text("[" * 100_000 if damage is None else json.dumps({**written, **damage}))
    with pytest.raises(SuiteError, match=r"is damaged|cannot read the batch state file"):
        suite.run(backend=BatchBackend(server.base_url, state=state))
    assert server.requests == []


JUDGE_ANSWERS = {
    "yes": False,
    '{"passed": "true"}': False,
    "[true]": False,
    "": False,
    '{"passed": true} and {"passed": false}': False,
    "x" * 100_000: False,
    'Sure. {"passed": true, "reason": "polite"} Done.': True,
    '```json\n{"passed": false, "reason": "rude"}\n```': False,
}


def test_a_judge_answering_garbage_fails_its_check_with_what_it_said(tmp_path: Path) -> None:
    """A judge's answer that is no verdict (text, a string "true", a list, nothing, two
    verdicts, 100,000 characters) fails the check with a bounded quote of it; it never
    passes and never stops the suite. A customer who never says it is done ends at
    max_turns."""
    answers = iter(JUDGE_ANSWERS)
    with ScriptedServer() as bot, ScriptedServer() as referee, ScriptedServer() as customer:
        bot.respond_with(echo())
        referee.respond_with(lambda request: Reply.text(next(answers)))
        customer.respond_with(lambda request: Reply.text("I still want more."))

        def on(server: ScriptedServer) -> Any:
            return lambda: Agent("scripted", [], "x", base_url=server.base_url, api_key="sk-x")

        scenarios = [
            Scenario(f"judged {n}", turns=["hi"], checks=[judge("polite")])
            for n in range(len(JUDGE_ANSWERS))
        ]
        endless = Scenario("endless", user=SimulatedUser("You want more.", max_turns=3))
        suite = Suite(
            agent=on(bot), judge=on(referee), user=on(customer), scenarios=[*scenarios, endless]
        )
        report = suite.run(1, concurrency=1)
    verdicts = [scenario.attempts[0] for scenario in report.scenarios[:-1]]
    assert [attempt.passed for attempt in verdicts] == list(JUDGE_ANSWERS.values())
    for attempt in verdicts:
        (check,) = attempt.checks
        assert attempt.error is None
        assert len(check.detail) < 300
    assert verdicts[0].checks[0].detail == "the judge gave no verdict: 'yes'"
    assert verdicts[-1].checks[0].detail == "rude"
    (talk,) = report.scenarios[-1].attempts
    assert talk.passed and len(customer.requests) == 3


def test_a_report_path_that_cannot_be_written_is_refused_before_any_request(
    suites: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    """``--html`` into a folder that does not exist, or ``--json`` naming a folder: the
    suite ran, was paid for, then failed writing with a bare FileNotFoundError (or
    IsADirectoryError), and the other report, whose path was fine, was not written."""
    fine = tmp_path / "report.json"
    missing = tmp_path / "no-such-folder" / "report.html"
    code, _, err = _eval(f"{suites}:plain", "--html", str(missing), "--json", str(fine))
    assert code == 2, err
    assert f"--html {missing}: the folder" in err and "does not exist" in err
    code, _, err = _eval(f"{suites}:plain", "--json", str(tmp_path))
    assert code == 2, err
    assert "is a folder; give a file name, e.g." in err and "report.json" in err
    assert server.requests == []
    assert not fine.exists()
    code, _, err = _eval(f"{suites}:plain", "--html", str(tmp_path / "r.html"), "--json", str(fine))
    assert code == 0, err
    assert fine.exists() and (tmp_path / "r.html").exists()


def test_compare_with_a_file_that_is_not_json_names_the_file(
    suites: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    """It said only "--compare: Expecting value: line 1 column 1 (char 0)"; JSON nested
    100,000 levels deep was a bare RecursionError."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    for path in (suites, deep):
        code, _, err = _eval(f"{suites}:plain", "--compare", str(path))
        assert code == 2, err
        assert f"--compare: {str(path)!r} is not an agentkit eval report (JSON)" in err
    assert server.requests == []


@pytest.mark.parametrize("where", ["no-such-folder/state.json", "."], ids=["missing", "folder"])
def test_a_batch_state_path_that_cannot_be_written_is_refused_before_any_request(
    server: ScriptedServer, tmp_path: Path, where: str
) -> None:
    """The state file was first written after the first batch was created (paid for): a
    missing folder failed there with a bare FileNotFoundError and no state was kept, so
    the next try created the same batch again."""
    from agentkit import AsyncChatClient
    from agentkit.evals import BatchBackend

    def bot(http_client: Any = None) -> Agent[str]:
        client = AsyncChatClient(base_url=server.base_url, api_key="sk-x", http_client=http_client)
        return Agent("scripted", [], "You are the desk.", client=client)

    suite = Suite(agent=bot, scenarios=[Scenario("hello", turns=["hi"])])
    state = tmp_path / where
    with pytest.raises(SuiteError, match="batch state file"):
        suite.run(backend=BatchBackend(server.base_url, state=state))
    assert server.requests == []


@pytest.mark.parametrize("code", ["0", "1", "'done'"])
def test_a_suite_file_that_exits_while_imported_fails_the_gate(tmp_path: Path, code: str) -> None:
    """A suite file ending with a script's ``sys.exit(...)`` outside ``if __name__ ==
    "__main__":`` ended ``agentkit eval`` with the file's own code: ``sys.exit(0)`` made it
    exit 0 with no output, a CI gate passed, and no scenario had run."""
    path = tmp_path / "script_suite.py"
    path.write_text(f"import sys\nsuite = None\nsys.exit({code})\n")
    for argv in (["eval", f"{path}:suite", "--fail-under", "pass^1=1"], ["tools", str(path)]):
        out, err = io.StringIO(), io.StringIO()
        exit_code = main(argv, stdout=out, stderr=err)
        assert exit_code == 2, err.getvalue()
        assert "the file exited while it was imported" in err.getvalue()
        assert 'under `if __name__ == "__main__":`' in err.getvalue()


def test_a_check_or_a_factory_that_exits_fails_instead_of_ending_the_eval_with_0(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check calling ``sys.exit(0)`` (a final-state check borrowed from a script) left
    ``agentkit eval`` by SystemExit: exit 0, no summary, the gate passed. So did an agent
    factory exiting while the suite was checked."""
    server.respond_with(echo())
    monkeypatch.setenv("AGENTKIT_BASE_URL", server.base_url)
    path = tmp_path / "exiting.py"
    path.write_text(
        "import sys\n"
        "from agentkit import Agent\n"
        "from agentkit.evals import Scenario, Suite\n"
        "def bot():\n"
        "    return Agent('scripted', [], 'x')\n"
        "def leaving():\n"
        "    sys.exit(0)\n"
        "check = Suite(agent=bot, scenarios=[Scenario('a', turns=['hi'],"
        " checks=[lambda run: sys.exit(0)])])\n"
        "factory = Suite(agent=leaving, scenarios=[Scenario('a', turns=['hi'])])\n"
    )
    code, out, err = _eval(f"{path}:check", "--fail-under", "pass^1=1")
    assert code == 1, err
    assert "FAIL a (0/1): check 1: SystemExit: 0" in out
    code, _, err = _eval(f"{path}:factory")
    assert code == 2, err
    assert "the agent factory failed: SystemExit: 0" in err
