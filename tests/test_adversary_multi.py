"""An outside review of agents as tools and handoffs (issue 21): hostile model output,
pauses resumed by a changed agent, limits and deadlines across agents. Each test is a probe
that broke, kept as its regression test; over the real scripted server, one script per
model name, so every assertion says which agent was asked what."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from _helpers import Scripts

from agentkit import Agent, RunLimits, RunObserver, RunResult, RunTimeoutError, tool
from agentkit._session import ResumeError
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-adversary-multi-0123456789"


@pytest.fixture
def scripts(server: ScriptedServer) -> Scripts:
    return Scripts(server)


def make(
    server: ScriptedServer, name: str, tools: Sequence[Any] = (), **options: Any
) -> Agent[Any]:
    return Agent(
        name,
        list(tools),
        f"You are {name}.",
        name=name,
        base_url=server.base_url,
        api_key=KEY,
        **options,
    )


class Line:
    """What the line tools did, in order."""

    def __init__(self) -> None:
        self.done: list[str] = []


line = Line()


@tool
def check_line(number: str) -> str:
    """Check a customer's line."""
    line.done.append(f"check {number}")
    return f"line {number} is down"


@tool(requires_approval=True)
def reset_line(number: str) -> str:
    """Reset a customer's line."""
    line.done.append(f"reset {number}")
    return f"line {number} reset"


@pytest.mark.parametrize("driver", ["resume", "resume_async"])
def test_a_pause_in_a_sub_agent_of_a_handed_off_agent_resumes_from_the_result(
    server: ScriptedServer, scripts: Scripts, driver: str
) -> None:
    """triage hands off to billing, billing asks tech (an agent tool), tech's reset waits
    for a person. Resuming the paused RunResult goes on inside tech's sub-run: the approved
    reset runs and the check is not run again. The handoff branch of the resume dropped the
    sub-run's state, so tech started over from its request and the approved call never ran
    (the model's next answer was taken as the agent tool's result)."""
    line.done.clear()
    tech = make(server, "tech", [check_line, reset_line])
    billing = make(server, "billing", [tech.as_tool(name="ask_tech")])
    triage = make(server, "triage", [], handoffs=[billing])
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add("billing", Reply.tool_calls(("ask_tech", {"request": "Is line 5 fine?"})))
    scripts.add(
        "tech",
        Reply.tool_calls(("check_line", {"number": "5"}), ("reset_line", {"number": "5"})),
    )
    paused = triage.run("My line is down.")
    assert paused.status == "paused" and paused.agent == "billing"
    [call] = paused.pending
    assert call.name == "reset_line" and call.path == ("billing", "tech")

    scripts.add("tech", Reply.text("Line 5 was down; I reset it."))
    scripts.add("billing", Reply.text("Tech reset your line."))
    decisions = {call: True}
    done: RunResult[Any] = (
        triage.resume(paused, decisions)
        if driver == "resume"
        else asyncio.run(triage.resume_async(paused, decisions))
    )
    assert done.status == "done" and done.agent == "billing"
    assert done.output == "Tech reset your line."
    assert line.done == ["check 5", "reset 5"]
    resumed = scripts.seen["tech"][-1]["messages"]  # tech goes on from its pause
    assert [m["role"] for m in resumed] == ["system", "user", "assistant", "tool", "tool"]
    assert resumed[-1]["content"] == "line 5 reset"


def test_approving_a_paused_call_whose_tool_is_gone_runs_nothing_and_says_so(
    server: ScriptedServer, scripts: Scripts
) -> None:
    """A call paused, then resumed by an agent that no longer has its tool (renamed or
    removed in a new release): an approval is a ResumeError naming the tool, before any
    request. It was answered "Unknown tool 'reset_line'" and the run finished done, the
    person's approval spent on nothing."""
    line.done.clear()
    tech = make(server, "tech", [check_line, reset_line])
    scripts.add("tech", Reply.tool_calls(("reset_line", {"number": "5"})))
    paused = tech.run("Reset line 5.")
    [call] = paused.pending
    changed = make(server, "tech", [check_line])
    asked = len(scripts.seen["tech"])
    with pytest.raises(ResumeError, match=r"'reset_line'.*nothing was run"):
        changed.resume(paused, {call: True})
    assert len(scripts.seen["tech"]) == asked and line.done == []
    # a refusal needs no tool: the model is told, and the run goes on
    scripts.add("tech", Reply.text("I did not reset it."))
    refused = changed.resume(paused, {call: False})
    assert refused.status == "done" and line.done == []


def test_a_sub_agent_whose_model_hangs_ends_by_the_calls_deadline_in_a_tool_thread(
    server: ScriptedServer, scripts: Scripts
) -> None:
    """Under ``run`` a sub-agent runs in the call's tool thread. Its model never answers:
    the caller is told the call timed out, and the sub-run's own request ends by the call's
    deadline (its timeout and the half-second grace), closing its connection. The request
    held the thread on the socket for the client's 600 s read timeout, so a few such calls
    used up the agent's tool threads."""
    ends = threading.Event()
    errors: list[BaseException] = []

    class Watch(RunObserver):
        def run_failed(self, error: BaseException) -> None:
            errors.append(error)
            ends.set()

    slow = make(server, "slow", observers=[lambda info: Watch()])
    caller = make(server, "caller", [slow.as_tool()], limits=RunLimits(tool_timeout=0.3))
    scripts.add("caller", Reply.tool_calls(("slow", {"request": "think"})), Reply.text("gave up"))
    scripts.add("slow", Reply.hang())
    result = caller.run("go")
    assert result.output == "gave up"
    assert ends.wait(30)  # the request left; only the deadline could end it
    assert isinstance(errors[0], RunTimeoutError)
    server.wait_for_requests(2)
    deadline = time.monotonic() + 30
    while server.open_connections > 1 and time.monotonic() < deadline:  # the caller's is idle
        time.sleep(0.01)
    assert server.open_connections <= 1


@pytest.mark.parametrize("stream", [False, True])
def test_run_timeout_ends_a_hung_model_call_in_the_sync_driver(
    server: ScriptedServer, scripts: Scripts, stream: bool
) -> None:
    """The same shape at the top: ``run``/``stream`` with ``run_timeout`` and a model that
    never answers raise RunTimeoutError at the deadline, not after the client's read
    timeout."""
    agent = make(server, "hung", limits=RunLimits(run_timeout=0.5))
    scripts.add("hung", Reply.hang())
    with pytest.raises(RunTimeoutError) as raised:
        if stream:
            list(agent.stream("hello"))
        else:
            agent.run("hello")
    assert raised.value.timeout == 0.5


def test_a_paused_result_asked_by_an_agent_the_graph_lost_is_refused(
    server: ScriptedServer, scripts: Scripts
) -> None:
    """A paused RunResult whose waiting call billing asked, resumed by a triage that no
    longer hands off to billing but has a tool of the same name: a ResumeError naming
    billing, and triage's tool does not run in its place (it did)."""
    line.done.clear()
    billing = make(server, "billing", [reset_line])
    triage = make(server, "triage", [], handoffs=[billing])
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add("billing", Reply.tool_calls(("reset_line", {"number": "5"})))
    paused = triage.run("Reset my line.")
    [call] = paused.pending
    alone = make(server, "triage", [reset_line])
    with pytest.raises(ResumeError, match=r"asked by agent 'billing'"):
        alone.resume(paused, {call: True})
    assert line.done == []
