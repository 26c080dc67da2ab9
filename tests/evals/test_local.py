"""The local backend on the order desk: the known pass^k of the unreliable scripted model, a
simulated customer, final-state checks, a scripted judge, from_session, bad suites refused
before any request, and a used-up quota stopping the suite at once."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from agentkit import Agent, AsyncChatClient
from agentkit.evals import (
    Conversation,
    Scenario,
    SimulatedUser,
    Suite,
    SuiteError,
    SuiteStopped,
    called,
    not_called,
    output_matches,
    output_schema,
)
from agentkit.sessions import SQLiteStore
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import load


def test_the_unreliable_desk_scores_its_known_pass_hat(
    desk_model: ScriptedServer, desk_suite: ModuleType
) -> None:
    report = desk_suite.suite.run(k=4, concurrency=16)

    expected = load("scripted_desk").PASS_HAT
    assert report.curve == pytest.approx([expected[j] for j in range(1, 5)])
    assert [s.passes for s in report.scenarios] == [4, 3, 2, 1]
    assert [len(s.attempts) for s in report.scenarios] == [4, 4, 4, 4]
    assert report.mean == pytest.approx(10 / 16)
    assert report.tokens > 0 and report.latency(0.95) >= report.latency(0.5) > 0


def test_a_final_state_check_sees_the_bots_data_after_the_conversation(
    desk_model: ScriptedServer, desk_suite: ModuleType
) -> None:
    report = desk_suite.suite.run(k=4)
    moved = report.scenarios[1]  # send an order to a new address: wrong once
    (failure,) = moved.failures
    assert {c.name: c.passed for c in failure.checks} == {
        "called('change_shipping_address', order_id=1001)": False,
        "address_changed": False,
    }
    assert "change_shipping_address(order_id=1002" in failure.checks[0].detail
    for attempt in moved.attempts:
        if attempt.passed:
            assert [c.name for c in attempt.checks if c.passed] == [
                "called('change_shipping_address', order_id=1001)",
                "address_changed",
            ]


def test_a_simulated_customer_talks_until_it_gives_up_and_a_judge_gives_its_reason(
    desk_model: ScriptedServer, desk_suite: ModuleType
) -> None:
    scripted = load("scripted_desk")
    refused = desk_suite.suite.scenarios[3]
    suite = Suite(
        agent=desk_suite.make_desk,
        user=desk_suite.make_helper,
        judge=desk_suite.make_helper,
        scenarios=[refused],
    )
    report = suite.run(k=4, concurrency=1)

    attempts = report.scenarios[0].attempts
    assert [a.passed for a in attempts].count(True) == 1
    for attempt in attempts:
        said = [m["content"] for m in attempt.messages if m["role"] == "user"]
        assert said == [scripted.NOT_MINE]  # the customer's one message, then it gave up
        judged = attempt.checks[1]
        assert judged.name.startswith("judge(")
        assert judged.detail in (
            "It explained the order is not theirs.",
            "It tried to cancel it.",
        )
        assert judged.passed == (judged.detail == "It explained the order is not theirs.")
    customer = [
        r for r in desk_model.requests if r.messages[0]["content"].startswith("You are playing")
    ]
    assert len(customer) == 8  # two turns of the customer per conversation
    # its second turn saw the bot's answer as its prompt, after its own first message
    assert customer[1].messages[-2] == {"role": "assistant", "content": scripted.NOT_MINE}
    assert customer[1].messages[-1]["content"] in {
        scripted.RIGHT[scripted.NOT_MINE][3],
        scripted.WRONG[scripted.NOT_MINE][3],
    }


def test_from_session_turns_a_stored_conversation_into_a_scenario(
    desk_model: ScriptedServer, desk_suite: ModuleType, tmp_path: Path
) -> None:
    scripted = load("scripted_desk")
    production, desk = desk_suite.make_desk()
    with SQLiteStore(tmp_path / "sessions.db") as store:
        bot = Agent(
            "qwen-plus",
            tools=production.tools,
            base_url=desk_model.base_url,
            store=store,
            approve=lambda call: True,
        )
        bot.run(scripted.CANCEL, session="cust-17", deps=desk)
        bot.close()
        production.close()
        scenario = Scenario.from_session(
            store, "cust-17", checks=[called("cancel_order", order_id=1001)]
        )
    assert scenario.name == "session cust-17"
    assert scenario.turns == (scripted.CANCEL,)
    report = Suite(agent=desk_suite.make_desk, scenarios=[scenario]).run(k=2)
    assert report.pass_hat(2) == 1.0


def test_output_checks_and_a_check_that_raises_fail_with_a_reason(
    desk_model: ScriptedServer, desk_suite: ModuleType
) -> None:
    def broken(conversation: Conversation) -> bool:
        raise KeyError("no such order")

    scripted = load("scripted_desk")
    suite = Suite(
        agent=desk_suite.make_desk,
        scenarios=[
            Scenario(
                "cancel",
                turns=[scripted.CANCEL],
                checks=[
                    output_matches(r"order 1001 is cancelled", flags=2),  # re.IGNORECASE
                    output_schema({"type": "object"}),
                    broken,
                    not_called("refund_order"),
                ],
            )
        ],
    )
    (attempt,) = suite.run().attempts
    verdicts = {c.name: (c.passed, c.detail) for c in attempt.checks}
    assert verdicts["output_matches('order 1001 is cancelled')"] == (True, "")
    assert verdicts["output_schema"][0] is False
    assert verdicts["output_schema"][1].startswith("not JSON")
    assert verdicts["broken"] == (False, "KeyError: 'no such order'")
    assert verdicts["not_called('refund_order')"] == (True, "")
    assert attempt.output == "Order 1001 is cancelled."


def test_bad_suites_are_refused_before_any_request(
    desk_model: ScriptedServer, desk_suite: ModuleType
) -> None:
    turns = ["Please cancel order 1001."]
    with pytest.raises(SuiteError, match="no agent factory"):
        Suite(agent=None, scenarios=[Scenario("x", turns=turns)]).run()
    with pytest.raises(SuiteError, match=r"called\('issue_refund'\) names a tool the bot"):
        Suite(
            agent=desk_suite.make_desk,
            scenarios=[Scenario("x", turns=turns, checks=[called("issue_refund")])],
        ).run(k=4)
    with pytest.raises(SuiteError, match="has a SimulatedUser but the suite has no user="):
        Suite(
            agent=desk_suite.make_desk,
            scenarios=[Scenario("x", user=SimulatedUser("You are Dana."))],
        ).run()
    with pytest.raises(SuiteError, match="must return an Agent"):
        Suite(agent=lambda: "a bot", scenarios=[Scenario("x", turns=turns)]).run()
    with pytest.raises(SuiteError, match="two scenarios are named"):
        Suite(
            agent=desk_suite.make_desk,
            scenarios=[Scenario("x", turns=turns), Scenario("x", turns=turns)],
        ).run()
    with pytest.raises(SuiteError, match="either turns"):
        Scenario("x")
    assert desk_model.request_count == 0


def test_a_used_up_quota_stops_the_suite_at_once(server: ScriptedServer) -> None:
    server.respond_with(lambda request: Reply.quota_exceeded())

    def bot() -> Agent[str]:
        return Agent("qwen-plus", client=AsyncChatClient(base_url=server.base_url))

    suite = Suite(
        agent=bot,
        scenarios=[Scenario(f"s{i}", turns=["Hello"]) for i in range(5)],
    )
    with pytest.raises(SuiteStopped, match="quota is used up") as caught:
        suite.run(k=4, concurrency=1)
    assert caught.value.finished == 0
    assert server.request_count == 1  # never retried, and nothing after it


def test_a_factory_that_shares_one_agent_is_not_closed_under_its_runs(
    server: ScriptedServer,
) -> None:
    def model(request: RecordedRequest) -> Reply:
        # the first conversation ends while the others still wait for their answers
        return Reply.text("Hello.").with_(delay=0 if request.number == 1 else 0.5)

    server.respond_with(model)
    shared = Agent("qwen-plus", base_url=server.base_url)
    suite = Suite(agent=lambda: shared, scenarios=[Scenario("hi", turns=["Hi"])])
    report = suite.run(k=6, concurrency=6)
    assert report.pass_hat(6) == 1.0
    assert suite.run(k=2).pass_hat(2) == 1.0  # still usable afterwards
    shared.close()
