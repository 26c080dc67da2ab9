"""MCP sources and ``@tool``s mixed in every agent of a multi-agent bot: the entry agent, a
handoff target and an agent used as a tool each have both, over real stdio servers (the
reference ``mcp-server-time`` and the fake server), in the four drivers; a run that starts
with the handed-off agent and a pause on its MCP tool resumed find its server's tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import Scripts
from _mcp_support import fake, tool_messages

from agentkit import Agent, HandedOff, RunFinished, RunResult, SubAgentEvent, ToolResult, tool
from agentkit.mcp import MCPConnectionError, MCPStdio
from agentkit.sessions import SQLiteStore
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-mcp-agents-test-0123456789"
DRIVERS = ["run", "run_async", "stream", "stream_async"]


@pytest.fixture
def scripts(server: ScriptedServer) -> Scripts:
    return Scripts(server)


@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


@tool
def check_invoice(month: str) -> str:
    """Look up the invoice of a month."""
    return f"{month}: 40 EUR"


@tool
def check_line(number: str) -> str:
    """Check a customer's line."""
    return f"line {number} is up"


class Sources:
    """The MCP servers of the desk, started once for this module's tests: the time
    server (its convert_time needs approval) and the fake server under two prefixes."""

    def __init__(self) -> None:
        if shutil.which("mcp-server-time") is None:
            pytest.fail("mcp-server-time is not installed (it is in the dev extra)")
        self.clock = MCPStdio("mcp-server-time", prefix="clock", requires_approval={"convert_time"})
        self.front = fake()
        self.line = fake(prefix="line")

    def close(self) -> None:
        for source in (self.clock, self.front, self.line):
            source.close()


@pytest.fixture(scope="module")
def sources() -> Iterator[Sources]:
    made = Sources()
    yield made
    made.close()


class Desk:
    """triage (the fake server and a @tool) hands off to billing (the time server, a
    @tool, and tech as a tool); tech has the fake server (another prefix) and a @tool."""

    def __init__(self, server: ScriptedServer, sources: Sources, store: Any = None) -> None:
        common: dict[str, Any] = {"base_url": server.base_url, "api_key": KEY}
        self.tech = Agent(
            "tech", [check_line, sources.line], "You check lines.", name="tech", **common
        )
        ask_tech = self.tech.as_tool(name="ask_tech", description="Ask tech.")
        self.billing = Agent(
            "billing",
            [check_invoice, sources.clock, ask_tech],
            "You handle billing.",
            name="billing",
            **common,
        )
        self.triage = Agent(
            "triage",
            [get_order, sources.front],
            "Route the customer.",
            name="triage",
            handoffs=[self.billing],
            store=store,
            **common,
        )


@pytest.fixture
def desk(server: ScriptedServer, sources: Sources) -> Desk:
    return Desk(server, sources)


def drive(agent: Agent[Any], driver: str, prompt: Any) -> tuple[RunResult[Any], list[Any]]:
    if driver == "run":
        return agent.run(prompt), []
    if driver == "run_async":
        return asyncio.run(agent.run_async(prompt)), []
    if driver == "stream":
        events = list(agent.stream(prompt))
    else:

        async def collect() -> list[Any]:
            async with contextlib.aclosing(agent.stream_async(prompt)) as stream:
                return [event async for event in stream]

        events = asyncio.run(collect())
    assert isinstance(events[-1], RunFinished)
    return events[-1].result, events


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_agent_uses_its_mcp_server_and_its_tools(
    desk: Desk, scripts: Scripts, driver: str
) -> None:
    scripts.add(
        "triage",
        Reply.tool_calls(("fake_echo", {"text": "hello"}), ("get_order", {"order_id": 7})),
        Reply.tool_calls(("transfer_to_billing", {})),
    )
    scripts.add(
        "billing",
        Reply.tool_calls(
            ("clock_get_current_time", {"timezone": "Europe/London"}),
            ("check_invoice", {"month": "March"}),
            ("ask_tech", {"request": "Is line 7 up?"}),
        ),
        Reply.text("All checked."),
    )
    scripts.add(
        "tech",
        Reply.tool_calls(("line_echo", {"text": "probe"}), ("check_line", {"number": "7"})),
        Reply.text("Line 7 is up."),
    )
    result, events = drive(desk.triage, driver, "Why was I charged twice?")
    assert result.output == "All checked." and result.agent == "billing"
    # each agent was sent its own tools: its @tools, its server's and its transfers
    sent = {
        model: {t["function"]["name"] for t in bodies[0]["tools"]}
        for model, bodies in scripts.seen.items()
    }
    assert {"get_order", "fake_echo", "transfer_to_billing"} <= sent["triage"]
    assert "clock_get_current_time" not in sent["triage"]
    assert {"check_invoice", "clock_get_current_time", "ask_tech"} <= sent["billing"]
    assert not any(name.startswith("fake_") for name in sent["billing"])
    assert {"check_line", "line_echo"} <= sent["tech"] and "fake_echo" not in sent["tech"]
    answers = tool_messages(result.messages)
    assert answers[:3] == ["hello", "order 7: shipped", "Transferred to billing."]
    london, invoice, tech = answers[3:]
    assert '"timezone": "Europe/London"' in london and '"datetime"' in london
    assert (invoice, tech) == ("March: 40 EUR", "Line 7 is up.")
    assert tool_messages(scripts.seen["tech"][1]["messages"]) == ["probe", "line 7 is up"]
    if driver.startswith("stream"):
        assert [(e.source, e.target) for e in events if isinstance(e, HandedOff)] == [
            ("triage", "billing")
        ]
        top = [e.name for e in events if isinstance(e, ToolResult)]
        triage_calls = ["fake_echo", "get_order", "transfer_to_billing"]
        billing_calls = ["clock_get_current_time", "check_invoice", "ask_tech"]
        assert sorted(top) == sorted([*triage_calls, *billing_calls])
        below = [
            (e.agent, e.event.name)
            for e in events
            if isinstance(e, SubAgentEvent) and isinstance(e.event, ToolResult)
        ]
        assert sorted(below) == [("tech", "check_line"), ("tech", "line_echo")]


@pytest.mark.parametrize("driver", ["run", "stream_async"])
def test_a_run_that_starts_with_the_handed_off_agent_has_its_mcp_tools(
    desk: Desk, scripts: Scripts, driver: str
) -> None:
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.text("Billing here."),
        Reply.tool_calls(("clock_get_current_time", {"timezone": "Asia/Tokyo"})),
        Reply.text("It is late in Tokyo."),
    )
    first = desk.triage.run("Billing, please.")
    assert first.agent == "billing"
    follow_up = [*first.messages, {"role": "user", "content": "What time is it in Tokyo?"}]
    result, _ = drive(desk.triage, driver, follow_up)
    assert result.agent == "billing" and result.output == "It is late in Tokyo."
    assert '"timezone": "Asia/Tokyo"' in tool_messages(result.messages)[-1]
    assert len(scripts.seen["triage"]) == 1


def test_a_pause_on_the_handed_off_agents_mcp_tool_resumes_with_its_server(
    desk: Desk, scripts: Scripts
) -> None:
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    arguments = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
    scripts.add(
        "billing",
        Reply.tool_calls(("clock_convert_time", arguments, "c1")),
        Reply.text("Noon UTC is 21:00 in Tokyo."),
    )
    paused = desk.triage.run("When is noon UTC in Tokyo?")
    assert paused.status == "paused" and paused.agent == "billing"
    assert [(c.name, c.path) for c in paused.pending] == [("clock_convert_time", ("billing",))]
    done = desk.triage.resume(paused, {"c1": True})
    assert done.output == "Noon UTC is 21:00 in Tokyo." and done.agent == "billing"
    assert '"Asia/Tokyo"' in tool_messages(done.messages)[-1]


def test_a_session_follow_up_reaches_the_specialist_with_its_mcp_tools(
    server: ScriptedServer, sources: Sources, scripts: Scripts, tmp_path: Path
) -> None:
    desk = Desk(server, sources, store=SQLiteStore(tmp_path / "desk.db"))
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.text("Billing here."),
        Reply.tool_calls(("clock_get_current_time", {"timezone": "Europe/Oslo"})),
        Reply.text("It is evening in Oslo."),
    )
    assert desk.triage.run("Billing, please.", session="cust-9").agent == "billing"
    done = desk.triage.run("What time is it in Oslo?", session="cust-9")
    assert done.agent == "billing" and done.output == "It is evening in Oslo."
    assert '"timezone": "Europe/Oslo"' in tool_messages(done.messages)[-1]
    assert len(scripts.seen["triage"]) == 1


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_an_agent_tool_whose_graph_hands_off_to_an_agent_with_an_mcp_server(
    server: ScriptedServer, desk: Desk, scripts: Scripts, driver: str
) -> None:
    # The sub-run lists the sources of its whole graph too (in a tool thread and as a task).
    planner = Agent(
        "planner",
        [desk.triage.as_tool(name="ask_desk", description="Ask the desk.")],
        "You plan.",
        name="planner",
        base_url=server.base_url,
        api_key=KEY,
    )
    scripts.add(
        "planner",
        Reply.tool_calls(("ask_desk", {"request": "Time in Lima?"})),
        Reply.text("The desk told me."),
    )
    scripts.add("triage", Reply.tool_calls(("transfer_to_billing", {})))
    scripts.add(
        "billing",
        Reply.tool_calls(("clock_get_current_time", {"timezone": "America/Lima"})),
        Reply.text("Lima time found."),
    )
    result, _ = drive(planner, driver, "Ask the desk.")
    assert result.output == "The desk told me."
    assert tool_messages(result.messages) == ["Lima time found."]
    asked = tool_messages(scripts.seen["billing"][-1]["messages"])
    assert '"timezone": "America/Lima"' in asked[-1]


def test_a_targets_server_that_cannot_start_fails_the_run_before_any_request(
    server: ScriptedServer, tmp_path: Path
) -> None:
    missing = MCPStdio(str(tmp_path / "no-such-server"), prefix="gone")
    billing = Agent(
        "billing",
        [check_invoice, missing],
        "You bill.",
        name="billing",
        base_url=server.base_url,
        api_key=KEY,
    )
    triage = Agent(
        "triage",
        [],
        "Route.",
        name="triage",
        handoffs=[billing],
        base_url=server.base_url,
        api_key=KEY,
    )
    with pytest.raises(MCPConnectionError):
        triage.run("hi")
    assert server.request_count == 0


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_a_pause_on_a_sub_agents_mcp_tool_resumes_in_a_fresh_graph(
    server: ScriptedServer, sources: Sources, scripts: Scripts, driver: str
) -> None:
    def planner_of(desk: Desk) -> Agent[Any]:
        return Agent(
            "planner",
            [desk.billing.as_tool(name="ask_billing", description="Ask billing.")],
            "You plan.",
            name="planner",
            base_url=server.base_url,
            api_key=KEY,
        )

    arguments = {"source_timezone": "UTC", "time": "09:00", "target_timezone": "Asia/Tokyo"}
    scripts.add(
        "planner",
        Reply.tool_calls(("ask_billing", {"request": "9 UTC in Tokyo?"}, "p1")),
        Reply.text("Billing says 18:00."),
    )
    scripts.add(
        "billing",
        Reply.tool_calls(("clock_convert_time", arguments, "b1")),
        Reply.text("18:00 in Tokyo."),
    )
    paused = planner_of(Desk(server, sources)).run("When is 9 UTC in Tokyo?")
    (call,) = paused.pending
    assert (call.key, call.path) == ("p1/b1", ("planner", "billing"))
    data = json.loads(json.dumps({"messages": paused.messages, "state": paused.resume_state}))
    again = RunResult(
        None, data["messages"], paused.usage, 0, status="paused", resume_state=data["state"]
    )
    fresh = planner_of(Desk(server, sources))  # another process would build the graph anew
    if driver == "run":
        done = fresh.resume(again, {"p1/b1": True})
    else:
        done = asyncio.run(fresh.resume_async(again, {"p1/b1": True}))
    assert done.output == "Billing says 18:00."
    converted = tool_messages(scripts.seen["billing"][-1]["messages"])[-1]
    assert '"Asia/Tokyo"' in converted and "18:00" in converted
