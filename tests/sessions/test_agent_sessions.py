"""Agent runs on a session, against each store: continue, pause and resume (also in another
process), crash safety, one run at a time, the context budget."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import assert_resendable, wait_until

from agentkit import RunFinished, SessionBusyError
from agentkit._session import IN_DOUBT, ResumeError
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from ._bot import make_agent
from ._support import HERE, StoreSpec, run_child


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.jsonl"
    path.touch()
    monkeypatch.setenv("AGENTKIT_TEST_LEDGER", str(path))
    monkeypatch.delenv("AGENTKIT_TEST_CRASH", raising=False)
    return path


def effects(ledger: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.read_text().splitlines()]


@pytest.fixture
def desk(store: Any, server: ScriptedServer) -> Iterator[Any]:
    with make_agent(store, server.base_url) as agent:
        yield agent


def sent(request: RecordedRequest) -> list[dict[str, Any]]:
    return list(request.json()["messages"])


def child_agent(spec: StoreSpec, server: ScriptedServer, body: str, **env: str) -> Any:
    code = (
        f"import json, sys\nsys.path.insert(0, {str(HERE)!r})\nfrom _bot import make_agent\n"
        f"agent = make_agent(store, {server.base_url!r})\n{body}"
    )
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_child(spec, code)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- continuing a conversation -------------------------------------------------------------


def test_a_session_continues_with_the_current_instructions(
    store: Any, server: ScriptedServer, ledger: Path
) -> None:
    server.queue(
        Reply.tool_calls(("get_order", {"order_id": 1042})),
        Reply.text("It shipped."),
        Reply.text("You're welcome."),
    )
    with make_agent(store, server.base_url, instructions="Old rules.") as first:
        result = first.run("Where is order 1042?", session="cust-17")
    assert result.output == "It shipped." and result.session == "cust-17"
    with make_agent(store, server.base_url, instructions="New rules.") as later:
        result = later.run("Thanks!", session="cust-17")
    assert result.output == "You're welcome."
    third = sent(server.requests[2])
    assert third[0] == {"role": "system", "content": "New rules."}  # not frozen in
    assert [m["role"] for m in third] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert_resendable(third)
    stored = store.load("cust-17").messages
    assert [m["role"] for m in stored] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    assert stored[-1]["content"] == "You're welcome."


def test_instructions_may_be_a_function_of_the_run_context(
    store: Any, server: ScriptedServer
) -> None:
    server.queue(Reply.text("Hello Ana."))
    agent = make_agent(
        store, server.base_url, instructions=lambda ctx: f"You serve {ctx.deps['name']}."
    )
    with agent:
        agent.run("Hi", session="u1", deps={"name": "Ana"})
    assert sent(server.requests[0])[0]["content"] == "You serve Ana."


def test_every_driver_takes_a_session(desk: Any, server: ScriptedServer, store: Any) -> None:
    server.queue(*(Reply.text(f"answer {n}") for n in range(4)))
    desk.run("q0", session="s")
    events = list(desk.stream("q1", session="s"))
    assert isinstance(events[-1], RunFinished)

    async def main() -> None:
        await desk.run_async("q2", session="s")
        async for _ in desk.stream_async("q3", session="s"):
            pass

    asyncio.run(main())
    contents = [m["content"] for m in store.load("s").messages]
    assert contents == ["q0", "answer 0", "q1", "answer 1", "q2", "answer 2", "q3", "answer 3"]
    assert len(sent(server.requests[3])) == 1 + 7  # the system message and the history


def test_a_session_needs_a_store(server: ScriptedServer) -> None:
    from agentkit import ConfigurationError

    with make_agent(None, server.base_url) as agent, pytest.raises(ConfigurationError):
        agent.run("hi", session="s")
    with make_agent(None, server.base_url) as agent, pytest.raises(ValueError):
        agent.run("hi", session="x" * 257)


def test_a_session_id_with_a_lone_surrogate_is_refused_before_anything_runs(
    desk: Any, server: ScriptedServer, store: Any
) -> None:
    bad = "cust-\udcff"
    with pytest.raises(ValueError, match="valid UTF-8") as ran:
        desk.run("hi", session=bad)
    with pytest.raises(ValueError, match="valid UTF-8") as ran_async:
        asyncio.run(desk.run_async("hi", session=bad))
    with pytest.raises(ValueError, match="valid UTF-8") as resumed:
        desk.resume(bad, {})
    assert {type(c.value) for c in (ran, ran_async, resumed)} == {ValueError}
    assert server.requests == [] and store.list_sessions() == []


def test_a_failed_first_call_stores_nothing(desk: Any, server: ScriptedServer, store: Any) -> None:
    from agentkit import AgentKitError

    server.queue(Reply.error(400, "bad request"))
    with pytest.raises(AgentKitError):
        desk.run("hi", session="s")
    assert store.load("s").messages == []  # sending "hi" again will not repeat it


# -- pause and resume ----------------------------------------------------------------------


def _pause(desk: Any, server: ScriptedServer) -> Any:
    server.queue(
        Reply.tool_calls(("refund", {"order_id": 1042}), ("get_order", {"order_id": 1042}))
    )
    result = desk.run("Refund order 1042, please.", session="cust-17")
    assert result.status == "paused"
    return result


def test_pause_and_resume_in_another_process(
    desk: Any, server: ScriptedServer, store: Any, spec: StoreSpec, ledger: Path
) -> None:
    result = _pause(desk, server)
    (call,) = result.pending
    assert (call.name, call.kwargs) == ("refund", {"order_id": 1042})
    assert effects(ledger) == []  # nothing ran that needs approval
    record = store.load("cust-17")
    assert record.status == "paused" and record.pending["calls"][0]["id"] == call.call_id
    assert store.list_sessions()[0].status == "paused"

    server.queue(Reply.text("Refunded."))
    done = child_agent(
        spec,
        server,
        f"r = agent.resume('cust-17', {{{call.call_id!r}: True}})\nprint(json.dumps(r.to_dict()))",
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["status"] == "done" and out["output"] == "Refunded."
    assert [e["kind"] for e in effects(ledger)] == ["refund"]
    after = sent(server.requests[1])
    assert [m["content"] for m in after[-2:]] == ["refunded order 1042", "order 1042: shipped"]
    assert_resendable(after)
    record = store.load("cust-17")
    assert record.status == "idle" and record.messages[-1]["content"] == "Refunded."


@pytest.mark.parametrize(
    ("decision", "told"),
    [(False, "did not approve"), ("the customer changed their mind", "changed their mind")],
)
def test_a_refusal_is_told_to_the_model(
    desk: Any, server: ScriptedServer, ledger: Path, decision: Any, told: str
) -> None:
    result = _pause(desk, server)
    server.queue(Reply.text("I did not refund it."))
    done = desk.resume("cust-17", {result.pending[0].call_id: decision})
    assert done.output == "I did not refund it." and effects(ledger) == []
    assert told in sent(server.requests[1])[-2]["content"]


def test_decisions_that_do_not_match_change_nothing(
    desk: Any, server: ScriptedServer, store: Any, ledger: Path
) -> None:
    result = _pause(desk, server)
    (call,) = result.pending
    before = store.load("cust-17")
    with pytest.raises(ResumeError, match="no paused call 'nope'"):
        desk.resume("cust-17", {"nope": True})
    with pytest.raises(ResumeError, match="no decision for the paused call"):
        desk.resume("cust-17", {})
    from dataclasses import replace

    with pytest.raises(ResumeError, match="other arguments"):
        desk.resume("cust-17", {replace(call, digest="0" * 64): True})
    with pytest.raises(ResumeError, match="True, False or a reason"):
        desk.resume("cust-17", {call.call_id: 1})
    assert store.load("cust-17") == before and effects(ledger) == []
    server.queue(Reply.text("Done."))
    assert desk.resume("cust-17", {call: True}).output == "Done."  # bound to the digest
    with pytest.raises(ResumeError, match="not paused"):
        desk.resume("cust-17", {call.call_id: True})
    assert len(effects(ledger)) == 1


def test_a_new_message_instead_of_a_decision_refuses_the_paused_call(
    desk: Any, server: ScriptedServer, store: Any, ledger: Path
) -> None:
    _pause(desk, server)
    server.queue(Reply.text("OK, no refund then."))
    result = desk.run("Actually, never mind.", session="cust-17")
    assert result.status == "done" and effects(ledger) == []
    request = sent(server.requests[1])
    assert "new message instead" in request[-3]["content"]  # refund, then get_order's result
    assert request[-2]["content"] == "order 1042: shipped"
    assert_resendable(request)
    assert store.load("cust-17").status == "idle"


def test_resume_without_a_store_takes_the_paused_result(
    server: ScriptedServer, ledger: Path
) -> None:
    server.queue(Reply.tool_calls(("refund", {"order_id": 5})), Reply.text("Refunded."))
    with make_agent(None, server.base_url) as agent:
        paused = agent.run("Refund 5")
        assert paused.status == "paused"
        done = agent.resume(paused, {paused.pending[0].call_id: True})
    assert done.output == "Refunded." and len(effects(ledger)) == 1


# -- crash safety --------------------------------------------------------------------------


def test_a_crash_between_write_ahead_and_result_leaves_the_call_in_doubt(
    spec: StoreSpec, server: ScriptedServer, store: Any, desk: Any, ledger: Path
) -> None:
    server.queue(Reply.tool_calls(("pay", {"order_id": 7, "amount": 10})))
    crashed = child_agent(
        spec, server, "agent.run('Pay order 7', session='s')", AGENTKIT_TEST_CRASH="1"
    )
    assert crashed.returncode == 17, crashed.stderr
    assert len(effects(ledger)) == 1  # the side effect happened once
    (record,) = store.load("s").calls
    assert record.state == "started" and record.name == "pay"

    server.queue(Reply.text("I cannot tell whether the payment went through."))
    result = desk.resume("s", {})
    assert [c.name for c in result.in_doubt] == ["pay"]
    assert json.loads(result.in_doubt[0].arguments) == {"order_id": 7, "amount": 10}
    assert len(effects(ledger)) == 1  # not run again
    assert sent(server.requests[1])[-1]["content"] == IN_DOUBT
    assert store.load("s").calls == ()


def test_a_new_message_after_a_crash_reports_the_call_in_doubt(
    spec: StoreSpec, server: ScriptedServer, store: Any, desk: Any, ledger: Path
) -> None:
    server.queue(Reply.tool_calls(("pay", {"order_id": 7, "amount": 10})))
    child_agent(spec, server, "agent.run('Pay order 7', session='s')", AGENTKIT_TEST_CRASH="1")
    server.queue(Reply.text("I am not sure it was paid."))
    result = desk.run("Did it work?", session="s")
    assert [c.name for c in result.in_doubt] == ["pay"] and len(effects(ledger)) == 1
    request = sent(server.requests[1])
    assert request[-2]["content"] == IN_DOUBT and request[-1]["content"] == "Did it work?"
    assert_resendable(request)


def test_an_idempotent_tool_is_run_again_with_the_same_key(
    spec: StoreSpec, server: ScriptedServer, desk: Any, ledger: Path
) -> None:
    server.queue(Reply.tool_calls(("charge", {"order_id": 9})))
    crashed = child_agent(
        spec, server, "agent.run('Charge order 9', session='s')", AGENTKIT_TEST_CRASH="1"
    )
    assert crashed.returncode == 17
    server.queue(Reply.text("Charged."))
    result = desk.resume("s", {})
    assert result.in_doubt == () and result.output == "Charged."
    first, again = effects(ledger)
    assert first["key"] == again["key"] == f"s/1/{first['key'].rsplit('/', 1)[1]}"
    assert "charged order 9" in sent(server.requests[1])[-1]["content"]


def test_a_finished_call_is_not_run_again(
    desk: Any, server: ScriptedServer, store: Any, ledger: Path
) -> None:
    # The call ended and its result was recorded, then the run died before the round closed.
    claim = store.claim("s")
    store.append(
        claim,
        [
            {"role": "user", "content": "Pay order 3"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "pay", "arguments": '{"order_id": 3, "amount": 1}'},
                    }
                ],
            },
        ],
    )
    store.write_ahead(claim, "1:c1", "pay", '{"order_id": 3, "amount": 1}', "d")
    store.record_result(claim, "1:c1", "paid 1.0 for order 3")
    store.release(claim)
    server.queue(Reply.text("Paid."))
    result = desk.resume("s", {})
    assert result.in_doubt == () and effects(ledger) == []
    assert sent(server.requests[0])[-1]["content"] == "paid 1.0 for order 3"


def _crash_while_approved(spec: StoreSpec, server: ScriptedServer, desk: Any, ledger: Path) -> Any:
    """Pause on refund(1042), approve it in a process that dies right after the refund."""
    (call,) = _pause(desk, server).pending
    crashed = child_agent(
        spec,
        server,
        f"agent.resume('cust-17', {{{call.call_id!r}: True}})",
        AGENTKIT_TEST_CRASH="1",
    )
    assert crashed.returncode == 17, crashed.stderr
    assert [e["kind"] for e in effects(ledger)] == ["refund"]
    return call


def test_a_crash_during_an_approved_call_leaves_it_in_doubt_not_paused(
    spec: StoreSpec, server: ScriptedServer, store: Any, desk: Any, ledger: Path
) -> None:
    call = _crash_while_approved(spec, server, desk, ledger)
    assert store.load("cust-17").status == "idle"  # no longer asking for a decision
    assert store.list_sessions()[0].status == "idle"
    for decision in (True, False, "changed my mind"):  # a stale page's second click
        with pytest.raises(ResumeError, match="not waiting for a decision"):
            desk.resume("cust-17", {call.call_id: decision})
    server.queue(Reply.text("I cannot tell whether the refund went through."))
    result = desk.resume("cust-17", {})
    assert [c.name for c in result.in_doubt] == ["refund"] and len(effects(ledger)) == 1
    told = {m.get("tool_call_id"): m["content"] for m in sent(server.requests[-1])}
    assert told[call.call_id] == IN_DOUBT
    assert not any("Not run" in text for text in told.values() if text)
    assert_resendable(sent(server.requests[-1]))
    assert store.load("cust-17").status == "idle" and store.load("cust-17").calls == ()


def test_a_new_message_after_a_crash_during_an_approved_call_reports_it_in_doubt(
    spec: StoreSpec, server: ScriptedServer, store: Any, desk: Any, ledger: Path
) -> None:
    call = _crash_while_approved(spec, server, desk, ledger)
    server.queue(Reply.text("I am not sure the refund went through."))
    result = desk.run("Did it work?", session="cust-17")
    assert [c.name for c in result.in_doubt] == ["refund"] and len(effects(ledger)) == 1
    told = {m.get("tool_call_id"): m["content"] for m in sent(server.requests[-1])}
    assert told[call.call_id] == IN_DOUBT
    assert_resendable(sent(server.requests[-1]))


def test_a_paused_call_with_a_write_ahead_record_is_settled_from_the_log(
    desk: Any, server: ScriptedServer, store: Any, ledger: Path
) -> None:
    # A session an older agentkit left: still paused, and the approved call written ahead.
    (call,) = _pause(desk, server).pending
    stored = store.load("cust-17")
    claim = store.claim("cust-17")
    store.write_ahead(claim, f"{stored.pending['round']}:{call.call_id}", "refund", "{}", "d")
    store.release(claim)
    server.queue(Reply.text("I cannot tell."))
    result = desk.resume("cust-17", {call.call_id: False})  # a refusal must not say "Not run"
    assert [c.name for c in result.in_doubt] == ["refund"] and effects(ledger) == []
    told = {m.get("tool_call_id"): m["content"] for m in sent(server.requests[-1])}
    assert told[call.call_id] == IN_DOUBT


# -- one run at a time ---------------------------------------------------------------------


def _held_server(server: ScriptedServer) -> threading.Event:
    release = threading.Event()

    def handler(request: RecordedRequest) -> Reply:
        release.wait(30)
        return Reply.text(f"answer to {sent(request)[-1]['content']}")

    server.respond_with(handler)
    return release


def test_two_threads_on_one_session(desk: Any, server: ScriptedServer, store: Any) -> None:
    release = _held_server(server)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(desk.run("first", session="s")))
    first.start()
    wait_until(lambda: server.request_count == 1)
    with pytest.raises(SessionBusyError):
        desk.run("second", session="s")
    release.set()
    first.join(30)
    assert [m["content"] for m in store.load("s").messages] == ["first", "answer to first"]


def test_two_tasks_on_one_session(desk: Any, server: ScriptedServer, store: Any) -> None:
    release = _held_server(server)

    async def main() -> list[Any]:
        first = asyncio.ensure_future(desk.run_async("first", session="s"))
        while server.request_count < 1:
            await asyncio.sleep(0.005)
        try:
            await desk.run_async("second", session="s")
        except SessionBusyError as error:
            busy: Any = error
        release.set()
        return [await first, busy]

    done, busy = asyncio.run(main())
    assert isinstance(busy, SessionBusyError) and done.output == "answer to first"
    assert len(store.load("s").messages) == 2


def test_a_second_process_on_a_busy_session(
    spec: StoreSpec, desk: Any, server: ScriptedServer, store: Any
) -> None:
    release = _held_server(server)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(desk.run("first", session="s")))
    first.start()
    wait_until(lambda: server.request_count == 1)
    done = child_agent(
        spec,
        server,
        "from agentkit import SessionBusyError\n"
        "try:\n    agent.run('second', session='s')\n"
        "except SessionBusyError as e:\n    print('busy', e.session_id)\n",
    )
    release.set()
    first.join(30)
    assert done.stdout.strip() == "busy s", done.stderr
    assert len(store.load("s").messages) == 2


def test_a_run_may_wait_for_its_session(store: Any, server: ScriptedServer) -> None:
    release = _held_server(server)
    with make_agent(store, server.base_url, session_wait=30) as agent:
        first = threading.Thread(target=lambda: agent.run("first", session="s"))
        first.start()
        wait_until(lambda: server.request_count == 1)
        threading.Timer(0.05, release.set).start()
        result = agent.run("second", session="s")
        first.join(30)
    assert result.output == "answer to second"
    assert [m["content"] for m in store.load("s").messages] == [
        "first",
        "answer to first",
        "second",
        "answer to second",
    ]


def test_two_processes_continue_each_others_conversations(
    spec: StoreSpec, server: ScriptedServer, store: Any
) -> None:
    server.respond_with(lambda request: Reply.text(f"seen {len(sent(request)) - 1}"))
    turn = "r = agent.run({!r}, session={!r})\nprint(r.output)\n"
    # the first process starts both conversations; the second continues each of them
    for turns in [[("a1", "one"), ("b1", "two")], [("a2", "two"), ("b2", "one")]]:
        done = child_agent(spec, server, "".join(turn.format(*t) for t in turns))
        assert done.returncode == 0, done.stderr
    assert [m["content"] for m in store.load("one").messages] == ["a1", "seen 1", "b2", "seen 3"]
    assert [m["content"] for m in store.load("two").messages] == ["b1", "seen 1", "a2", "seen 3"]


# -- the context budget --------------------------------------------------------------------


def test_the_context_budget_trims_whole_turns_and_not_the_store(
    store: Any, server: ScriptedServer
) -> None:
    claim = store.claim("long")
    history: list[dict[str, Any]] = []
    for n in range(40):
        history.append({"role": "user", "content": f"question {n} " + "x" * 200})
        history.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": f"c{n}",
                        "type": "function",
                        "function": {"name": "get_order", "arguments": f'{{"order_id": {n}}}'},
                    }
                ],
            }
        )
        history.append(
            {"role": "tool", "tool_call_id": f"c{n}", "name": "get_order", "content": "y" * 300}
        )
        history.append({"role": "assistant", "content": f"answer {n}"})
    store.append(claim, history)
    store.release(claim)
    summarized: list[list[dict[str, Any]]] = []

    def summarize(dropped: list[dict[str, Any]]) -> str:
        summarized.append(dropped)
        return f"{len(dropped)} older messages about orders"

    server.queue(Reply.text("ok"))
    with make_agent(store, server.base_url, context_budget=2000, summarize=summarize) as agent:
        agent.run("And now?", session="long")
    request = sent(server.requests[0])
    assert_resendable(request)
    assert request[1]["role"] == "user" and request[-1]["content"] == "And now?"
    kept = len(request) - 2
    assert 0 < kept < len(history) and kept % 4 == 0  # whole turns only
    assert request[1]["content"].startswith(f"question {40 - kept // 4} ")
    (dropped,) = summarized
    assert len(dropped) == len(history) - kept
    assert request[0]["content"].endswith(f"{len(dropped)} older messages about orders")
    assert len(store.load("long").messages) == len(history) + 2  # trimming stores nothing less


def test_a_stream_stopped_early_keeps_a_whole_transcript_and_frees_the_session(
    desk: Any, server: ScriptedServer, store: Any
) -> None:
    from agentkit import ModelRoundFinished

    server.queue(Reply.tool_calls(("get_order", {"order_id": 1})), Reply.text("Next answer."))
    events = desk.stream("Where is order 1?", session="s")
    for event in events:
        if isinstance(event, ModelRoundFinished):
            break
    events.close()
    stored = store.load("s").messages
    assert [m["role"] for m in stored] == ["user", "assistant", "tool"]  # the round closed
    assert desk.run("Still there?", session="s").output == "Next answer."  # not busy
    assert_resendable(sent(server.requests[1]))


def test_resuming_a_session_runs_paused_result_resumes_the_session(
    desk: Any, server: ScriptedServer, store: Any, ledger: Path
) -> None:
    result = _pause(desk, server)
    server.queue(Reply.text("Refunded."))
    done = desk.resume(result, {result.pending[0].call_id: True})
    assert done.output == "Refunded." and done.session == "cust-17"
    assert store.load("cust-17").status == "idle" and len(effects(ledger)) == 1
