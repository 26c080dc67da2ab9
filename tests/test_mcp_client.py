"""MCP servers' tools in an agent: real stdio servers (the reference mcp-server-time and a
scripted fake) and the scripted model, end to end through the four drivers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from typing import Any

import pytest
from _helpers import wait_until
from _mcp_support import agent_for, children, fake, tool_messages, uvicorn_serving
from mcp.server.mcpserver import Context, MCPServer

from agentkit import Agent, ConfigurationError, Hooks, PlannedCall, RunLimits, tool
from agentkit._events import ToolCallStarted, ToolResult
from agentkit.mcp import (
    MCPConnectionError,
    MCPHttp,
    MCPProtocolError,
    MCPStdio,
    MCPTimeoutError,
    MCPTool,
)
from agentkit.testing import Reply, ScriptedServer

DRIVERS = ["run", "stream", "run_async", "stream_async"]


@tool
def get_order(order_id: int) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return f"order {order_id}: shipped"


def drive(agent: Agent[Any], driver: str, prompt: str = "go") -> list[Any]:
    """Run ``prompt`` through ``driver`` inside ``with agent`` / ``async with agent``;
    returns the events (the last one carries the result)."""
    if driver in ("run", "stream"):
        with agent:
            if driver == "run":
                return [_Finished(agent.run(prompt))]
            return list(agent.stream(prompt))

    async def main() -> list[Any]:
        async with agent:
            if driver == "run_async":
                return [_Finished(await agent.run_async(prompt))]
            async with contextlib.aclosing(agent.stream_async(prompt)) as events:
                return [event async for event in events]

    return asyncio.run(main())


class _Finished:
    def __init__(self, result: Any) -> None:
        self.result = result


@pytest.mark.parametrize("driver", DRIVERS)
def test_one_mcp_tool_and_one_tool_in_the_same_round(server: ScriptedServer, driver: str) -> None:
    server.queue(
        Reply.tool_calls(("fake_echo", {"text": "hello"}), ("get_order", {"order_id": 7})),
        Reply.text("Both done."),
    )
    agent = agent_for(server, [get_order, fake()])
    events = drive(agent, driver)
    result = events[-1].result
    assert result.output == "Both done."
    assert tool_messages(result.messages) == ["hello", "order 7: shipped"]
    sent = [t["function"] for t in server.requests[0].json()["tools"]]
    echo = next(t for t in sent if t["name"] == "fake_echo")
    assert echo["parameters"]["properties"] == {"text": {"type": "string"}}  # passed through
    if driver in ("stream", "stream_async"):
        started = [e.name for e in events if isinstance(e, ToolCallStarted)]
        finished = [e.name for e in events if isinstance(e, ToolResult)]
        assert sorted(started) == sorted(finished) == ["fake_echo", "get_order"]


def test_the_reference_time_server_over_stdio(server: ScriptedServer) -> None:
    if shutil.which("mcp-server-time") is None:
        pytest.fail("mcp-server-time is not installed (it is in the dev extra)")
    clock = MCPStdio("mcp-server-time", ["--local-timezone", "Asia/Shanghai"], prefix="clock")
    server.queue(
        Reply.tool_calls(
            ("clock_get_current_time", {"timezone": "Europe/London"}),
            ("get_order", {"order_id": 1}),
        ),
        Reply.tool_calls(("clock_get_current_time", {"timezone": "Not/AZone"})),
        Reply.text("It is open."),
    )
    with agent_for(server, [get_order, clock]) as agent:
        result = agent.run("Is the London office open right now?")
    london, order, bad = tool_messages(result.messages)
    assert '"timezone": "Europe/London"' in london and '"datetime"' in london
    assert order == "order 1: shipped"
    assert bad.startswith("tool clock_get_current_time failed: MCPToolError:")
    assert "Not/AZone" in bad
    names = {t["function"]["name"] for t in server.requests[0].json()["tools"]}
    assert names == {"get_order", "clock_get_current_time", "clock_convert_time"}


def test_arguments_are_checked_against_the_server_schema_before_the_call(
    server: ScriptedServer,
) -> None:
    server.queue(
        Reply.tool_calls(("fake_echo", {"text": 5}), ("fake_echo", "{not json")),
        Reply.text("ok"),
    )
    with agent_for(server, [fake()]) as agent:
        result = agent.run("go")
    wrong_type, not_json = tool_messages(result.messages)
    assert wrong_type.startswith("Invalid arguments for tool `fake_echo` (1 problem):")
    assert "- text: 5 is not of type 'string'" in wrong_type
    assert "are not valid JSON" in not_json


def test_results_errors_and_other_content_reach_the_model(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(("fake_fail", {}), ("fake_image", {}), ("fake_garbage", {})),
        Reply.text("ok"),
    )
    with agent_for(server, [fake()]) as agent:
        result = agent.run("go")
    failed, image, garbage = tool_messages(result.messages)
    assert failed == "tool fake_fail failed: MCPToolError: the record is locked"
    assert image.splitlines() == [
        "a chart",
        "[image: image/png, about 9 bytes, not shown]",
        "[resource: file:///r.bin, x/y, about 3 bytes, not shown]",
    ]
    assert garbage.startswith("tool fake_garbage failed: MCPProtocolError:")
    assert "not valid MCP" in garbage


def test_the_output_cap_applies(server: ScriptedServer) -> None:
    server.queue(Reply.tool_calls(("fake_big", {})), Reply.text("ok"))
    with agent_for(server, [fake()], limits=RunLimits(max_tool_output_chars=1000)) as agent:
        result = agent.run("go")
    (big,) = tool_messages(result.messages)
    assert big.startswith("y" * 1000)
    assert "[output cut: showing the first 1000 of 200000 characters]" in big


def test_long_and_odd_names_are_mapped_and_called_by_their_server_name(
    server: ScriptedServer,
) -> None:
    source = fake("names", prefix=None)
    with agent_for(server, [source]) as agent:
        tools = {t.remote_name: t for t in source.tools()}
        long_name = tools["x" * 100].name
        assert len(long_name) == 64 and long_name.startswith("x" * 55)
        assert tools["files_read_v2"].name == "files_read_v2"  # valid names are kept
        mapped = tools["files.read/v2"].name
        assert mapped.startswith("files_read_v2_") and len(mapped) == 22
        assert len(tools["wordy"].description) == 4000  # sent with every request: bounded
        server.queue(Reply.tool_calls((long_name, {}), (mapped, {})), Reply.text("ok"))
        result = agent.run("go")
    assert tool_messages(result.messages) == ["called " + "x" * 100, "called files.read/v2"]


def test_a_name_clash_across_servers_and_tools_is_a_clear_error(server: ScriptedServer) -> None:
    @tool
    def fake_echo(text: str) -> str:
        """Echo."""
        return text

    clashing = agent_for(server, [fake_echo, fake()])
    with pytest.raises(ConfigurationError, match=r"'fake_echo'.*prefix="), clashing:
        clashing.run("go")
    twins = agent_for(server, [fake(), fake()])
    with pytest.raises(ConfigurationError, match="two tools are named 'fake_echo'"), twins:
        twins.run("go")
    with agent_for(server, [fake(), fake(prefix="other")]) as agent:
        server.queue(Reply.text("ok"))
        agent.run("go")  # a prefix each: no clash


def test_a_server_listing_a_name_twice_is_a_protocol_error(server: ScriptedServer) -> None:
    agent = agent_for(server, [fake("duplicate")])
    with pytest.raises(MCPProtocolError, match="more than one tool named 'echo'"):
        agent.run("go")
    with pytest.raises(MCPProtocolError), agent:  # `with agent` connects and lists
        pass
    assert server.requests == []


def test_a_tool_list_that_is_garbage_is_a_protocol_error(server: ScriptedServer) -> None:
    agent = agent_for(server, [fake("garbage-list")])
    with pytest.raises(MCPProtocolError, match="not valid MCP while listing"):
        agent.run("go")
    agent.close()


def test_a_server_that_never_answers_initialize_times_out(server: ScriptedServer) -> None:
    before = children()
    source = fake("hang", connect_timeout=0.5)
    agent = agent_for(server, [source])
    with pytest.raises(MCPTimeoutError, match=r"handshake within 0\.5 s"):
        agent.run("go")
    with pytest.raises(MCPTimeoutError):
        asyncio.run(agent.run_async("go"))
    agent.close()
    assert server.requests == []
    assert children() <= before  # the server process was ended


def test_a_server_that_never_lists_its_tools_times_out(server: ScriptedServer) -> None:
    agent = agent_for(server, [fake("slow-list", list_timeout=0.5)])
    with pytest.raises(MCPTimeoutError, match=r"did not list its tools within 0\.5 s"):
        agent.run("go")
    agent.close()
    assert server.requests == []


def test_a_server_listing_8000_tools_is_refused_by_count(server: ScriptedServer) -> None:
    source = fake("many", max_schema_chars=10_000_000)
    agent = agent_for(server, [source])
    with pytest.raises(MCPProtocolError, match=r"more than 1000 tools \(max_tools\)"):
        agent.run("go")
    agent.close()
    assert server.requests == []


def test_a_huge_tool_schema_is_refused_by_size(server: ScriptedServer) -> None:
    agent = agent_for(server, [fake("huge-schema")])
    with pytest.raises(MCPProtocolError, match=r"more than 500,000 characters .*max_schema_chars"):
        agent.run("go")
    agent.close()
    assert server.requests == []
    # raised on purpose, the bound lets it through
    server.queue(Reply.text("ok"))
    roomy = fake("huge-schema", max_schema_chars=6_000_000, list_timeout=120)
    with agent_for(server, [roomy]) as agent:
        assert agent.run("go").output == "ok"
    assert len(server.requests[0].body) > 5_000_000  # what every request would carry


def test_the_list_timeout_bounds_the_whole_listing_with_its_schema_checks(
    server: ScriptedServer,
) -> None:
    # listed at once, but their 50 schemas take jsonschema about 40 s to check: the listing
    # gives up at its bound (the run used to start after the whole check)
    source = fake("slow-schemas", list_timeout=3)
    agent = agent_for(server, [source])
    with pytest.raises(MCPTimeoutError, match=r"did not list its tools within 3 s \(50 tools"):
        agent.run("go")
    agent.close()
    assert server.requests == []


def test_listing_bounds_are_checked_when_the_source_is_made() -> None:
    for option in ({"max_tools": 0}, {"max_schema_chars": -1}, {"max_tools": True}):
        with pytest.raises(ConfigurationError, match="positive whole number"):
            fake(**option)


def test_a_server_that_exits_mid_call_is_restarted_once_per_run(server: ScriptedServer) -> None:
    source = fake()
    server.queue(
        Reply.tool_calls(("fake_whoami", {})),
        Reply.tool_calls(("fake_crash", {})),
        Reply.tool_calls(("fake_whoami", {})),  # a new server process
        Reply.tool_calls(("fake_crash", {})),
        Reply.tool_calls(("fake_whoami", {})),  # no second restart in this run
        Reply.text("ok"),
    )
    with agent_for(server, [source], limits=RunLimits(max_tool_failures=5)) as agent:
        result = agent.run("go")
        first, crash, second, _, refused = tool_messages(result.messages)
        assert first != second and first.isdigit() and second.isdigit()
        assert crash.startswith("tool fake_crash failed: MCPServerExitedError:")
        assert "closed the connection while calling crash" in crash
        assert "boom: the fake server crashes on purpose" in crash  # its stderr, quoted
        assert refused.startswith("tool fake_whoami failed: MCPServerExitedError:")
        assert "already restarted once in this run" in refused
        # the next run may restart it again
        server.queue(Reply.tool_calls(("fake_whoami", {})), Reply.text("ok"))
        third = tool_messages(agent.run("go").messages)[-1]
    assert third.isdigit() and third not in (first, second)


def _deleted_files() -> list[str]:
    """What this process's descriptors point at that was deleted (an unnamed temp file)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.endswith("(deleted)"):
                found.append(target)
    return found


def test_a_chatty_servers_stderr_is_kept_as_a_bounded_tail(server: ScriptedServer) -> None:
    source = fake()
    server.queue(
        *[Reply.tool_calls(("fake_chatty", {"n": n})) for n in range(20)],
        Reply.tool_calls(("fake_crash", {})),
        Reply.text("ok"),
    )
    before = _deleted_files()
    with agent_for(server, [source], limits=RunLimits(max_tool_failures=5, max_turns=30)) as agent:
        result = agent.run("go")
        # 20 MB went to stderr: nothing of it is held in a file, and what is kept is small
        assert _deleted_files() == before
        connection = source._connection
        assert connection is not None and connection._stderr is not None
        assert len(connection._stderr._tail) <= 4 * 600
    *chatted, crash = tool_messages(result.messages)
    assert chatted == ["chatted"] * 20
    assert "boom: the fake server crashes on purpose" in crash  # the tail is what is quoted
    assert "zzz" in crash.split("its last output:")[1]  # and it ends where the server did


def test_a_stderr_tail_on_a_loop_without_add_reader_is_read_by_a_thread() -> None:
    from agentkit.mcp._client import _StderrTail

    class NoReaders(asyncio.SelectorEventLoop):  # as a proactor loop (Windows) refuses
        def add_reader(self, *args: Any) -> None:  # type: ignore[override]
            raise NotImplementedError

    loop = NoReaders()
    try:
        tail = _StderrTail(loop)
        tail.writer.write("noise " * 100_000 + "the last words\n")
        tail.writer.close()  # the server's end: the thread reads to the end of the pipe
        wait_until(lambda: tail.text().endswith("the last words"))
        assert len(tail._tail) <= 4 * 600
        tail.close()
    finally:
        loop.close()


def test_a_call_past_its_timeout_is_cancelled_and_the_server_stays_usable(
    server: ScriptedServer,
) -> None:
    server.queue(
        Reply.tool_calls(("fake_slow", {})),
        Reply.tool_calls(("fake_echo", {"text": "still here"})),
        Reply.text("ok"),
    )
    # The source's timeout is the echo's too: 2 s, not 0.3, which a loaded machine can
    # pass on a stdio round trip (the run's 0.3 s tool_timeout ended such an echo once).
    with agent_for(server, [fake(timeout=2.0)]) as agent:
        result = agent.run("go")
    slow, echo = tool_messages(result.messages)
    assert "timed out" in slow
    assert echo == "still here"


def test_requires_approval_per_tool(server: ScriptedServer) -> None:
    asked: list[str] = []

    def approve(call: PlannedCall) -> bool:
        asked.append(call.name)
        return True

    source = fake(requires_approval={"echo"})
    server.queue(
        Reply.tool_calls(("fake_echo", {"text": "a"}), ("fake_whoami", {})), Reply.text("ok")
    )
    with agent_for(server, [source]) as agent:  # no approver: the run pauses
        paused = agent.run("go")
        assert paused.status == "paused" and [c.name for c in paused.pending] == ["fake_echo"]
        refused = tool_messages(agent.resume(paused, {paused.pending[0].call_id: False}).messages)[
            0
        ]
    assert "did not approve" in refused
    server.queue(Reply.tool_calls(("fake_echo", {"text": "a"})), Reply.text("ok"))
    with agent_for(server, [fake(requires_approval={"echo"})], approve=approve) as agent:
        assert tool_messages(agent.run("go").messages) == ["a"]
    assert asked == ["fake_echo"]


def test_the_tool_list_is_refreshed_when_the_server_says_it_changed(
    server: ScriptedServer,
) -> None:
    source = fake()
    server.queue(Reply.tool_calls(("fake_add_tool", {})), Reply.text("ok"), Reply.text("ok"))
    with agent_for(server, [source]) as agent:
        agent.run("go")
        first = source.tools()
        agent.run("again")
    before = {t["function"]["name"] for t in server.requests[0].json()["tools"]}
    after = {t["function"]["name"] for t in server.requests[2].json()["tools"]}
    assert after - before == {"fake_extra"}
    assert "fake_extra" in {t.name for t in first}


def test_mcp_calls_go_through_hooks_like_any_tool(server: ScriptedServer) -> None:
    seen: list[str] = []
    hooks = Hooks(
        before_tool_call=lambda call: seen.append(f"before {call.name}"),
        after_tool_call=lambda call, result: seen.append(f"after {call.name} {result.output}"),
    )
    server.queue(Reply.tool_calls(("fake_echo", {"text": "x"})), Reply.text("ok"))
    with agent_for(server, [fake()], hooks=hooks) as agent:
        agent.run("go")
    assert seen == ["before fake_echo", "after fake_echo x"]


def test_tools_are_mcp_tools_with_the_server_schema() -> None:
    source = fake()
    try:
        echo = next(t for t in source.tools() if t.remote_name == "echo")
    finally:
        source.close()
    assert isinstance(echo, MCPTool)
    assert echo.to_openai()["function"] == {
        "name": "fake_echo",
        "description": "The echo tool.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    }
    assert echo.is_async and not echo.requires_approval


def test_no_process_is_left_after_close_an_error_or_ctrl_c(server: ScriptedServer) -> None:
    before = children()
    source = fake()
    with agent_for(server, [source]) as agent:
        server.queue(Reply.tool_calls(("fake_whoami", {})), Reply.text("ok"))
        agent.run("go")
        assert len(children() - before) == 1
    assert children() <= before

    def interrupt(call: PlannedCall) -> None:
        raise KeyboardInterrupt

    server.queue(Reply.tool_calls(("fake_echo", {"text": "x"})))
    agent = agent_for(server, [fake()], hooks=Hooks(before_tool_call=interrupt))
    with pytest.raises(KeyboardInterrupt), agent:
        agent.run("go")
    assert children() <= before

    async def failing() -> None:
        server.queue(Reply.error(400, "bad request"))
        async with agent_for(server, [fake()]) as agent:
            await agent.run_async("go")

    with pytest.raises(Exception, match="bad request"):
        asyncio.run(failing())
    assert children() <= before


def test_without_the_extra_the_error_names_it() -> None:
    code = (
        "import sys; sys.modules['mcp'] = None\n"
        "from agentkit.mcp import MCPStdio\n"
        "try:\n    MCPStdio('x')\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'agentkit[mcp]'" in out.stdout


def test_import_agentkit_loads_no_mcp() -> None:
    code = (
        "import sys, agentkit\nfrom agentkit import Agent, tool\n"
        "bad = [m for m in ('mcp', 'starlette', 'uvicorn', 'anyio') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_server_written_with_the_sdk_over_http_and_its_list_changes(
    server: ScriptedServer,
) -> None:
    sdk = MCPServer("sdk-test")

    @sdk.tool()
    def greet(name: str) -> str:
        """Greet someone."""
        return f"hello {name}"

    @sdk.tool()
    async def unlock(ctx: Context) -> str:
        """Add the secret tool."""
        sdk.add_tool(lambda: "42", name="secret", description="The secret.")
        await ctx.notify_tools_changed()
        return "unlocked"

    with uvicorn_serving(sdk.streamable_http_app()) as base:
        source = MCPHttp(f"{base}/mcp", prefix="sdk")
        server.queue(
            Reply.tool_calls(("sdk_greet", {"name": "Ann"}), ("sdk_unlock", {})),
            Reply.text("ok"),
        )
        with agent_for(server, [source]) as agent:
            first = agent.run("go")
            wait_until(lambda: source._stale)  # the listen stream's event arrives
            server.queue(Reply.tool_calls(("sdk_secret", {})), Reply.text("ok"))
            second = agent.run("go")
    assert tool_messages(first.messages) == ["hello Ann", "unlocked"]
    assert tool_messages(second.messages) == ["42"]
    names = [{t["function"]["name"] for t in r.json()["tools"]} for r in server.requests]
    assert names[0] == {"sdk_greet", "sdk_unlock"}
    assert names[2] == {"sdk_greet", "sdk_unlock", "sdk_secret"}


def test_a_server_killed_between_runs_starts_afresh_with_its_restart_unused(
    server: ScriptedServer,
) -> None:
    source = fake()
    server.queue(Reply.tool_calls(("fake_whoami", {})), Reply.text("ok"))
    with agent_for(server, [source]) as agent:
        first = tool_messages(agent.run("go").messages)[0]
        os.kill(int(first), signal.SIGKILL)
        wait_until(lambda: not source._connection or not source._connection.alive)
        server.queue(
            Reply.tool_calls(("fake_whoami", {})),
            Reply.tool_calls(("fake_crash", {})),
            Reply.tool_calls(("fake_whoami", {})),  # the run's one restart
            Reply.text("ok"),
        )
        second, crash, third = tool_messages(agent.run("go").messages)
    assert len({first, second, third}) == 3 and second.isdigit() and third.isdigit()
    assert "MCPServerExitedError" in crash


def test_lines_that_are_not_json_rpc_cost_a_log_line_not_the_call(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.queue(Reply.tool_calls(("fake_noise", {})), Reply.text("ok"))
    with agent_for(server, [fake()]) as agent:
        result = agent.run("go")
    assert tool_messages(result.messages) == ["after the noise"]
    junk = [r for r in caplog.records if r.name == "mcp.client.stdio"]
    assert junk and all(r.exc_info is None for r in junk)  # one line each, no traceback
    assert "Failed to parse JSONRPC message from server: ValidationError" in caplog.text


def test_mcp_tools_on_a_session_follow_the_servers_hints(
    server: ScriptedServer, tmp_path: Any
) -> None:
    from agentkit.sessions import SQLiteStore

    source = fake()
    tools = {t.remote_name: t for t in source.tools()}
    assert tools["echo"].side_effects and not tools["echo"].idempotent  # MCP's defaults
    server.queue(
        Reply.tool_calls(("fake_echo", {"text": "kept"})),
        Reply.text("ok"),
        Reply.text("still ok"),
    )
    store = SQLiteStore(str(tmp_path / "s.db"))
    with agent_for(server, [source], store=store) as agent:
        first = agent.run("go", session="mcp-1")
        second = agent.run("again", session="mcp-1")
    assert tool_messages(first.messages) == ["kept"]
    assert tool_messages(second.messages) == ["kept"]  # the conversation was stored
    clock = MCPStdio("mcp-server-time", prefix="clock")
    try:
        now = next(t for t in clock.tools() if t.remote_name == "get_current_time")
    finally:
        clock.close()
    assert now.annotations["readOnlyHint"] is True and not now.side_effects
    assert now.idempotent


def test_an_mcp_tool_has_every_attribute_a_tool_declares() -> None:
    from agentkit import Tool

    source = fake()
    try:
        echo = source.tools()[0]
    finally:
        source.close()
    declared = [name for name in Tool.__annotations__ if not name.startswith("_")]
    assert "requires_approval" in declared  # the annotations are the attribute list
    assert [name for name in declared if not hasattr(echo, name)] == []


def test_an_http_source_never_shows_the_secrets_of_its_url() -> None:
    from _helpers import refused_port

    source = MCPHttp(
        f"http://user:pa55word@127.0.0.1:{refused_port()}/mcp?key=SECRET-KEY-123",
        headers={"Authorization": "Bearer SECRET-TOKEN-456"},
        connect_timeout=5,
    )
    with pytest.raises(MCPConnectionError) as caught:
        source.tools()
    source.close()
    shown = f"{caught.value} {caught.value.server} {source!r}"
    for secret in ("pa55word", "SECRET-KEY-123", "SECRET-TOKEN-456"):
        assert secret not in shown
