"""Security: the API key never leaks, tool output is capped, model output is never run as
code, approval-gated tools never run unapproved. Rows of ``docs/reliability.md``.

The key is a distinctive fake (``sk-test-SECRET-1234567890``); servers here echo it back in
every place a real server or proxy might (error bodies, HTML pages, stream errors, headers)
to prove that agentkit scrubs what it is sent as well as what it sends.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import assert_resendable

import agentkit
from agentkit import (
    Agent,
    AgentKitError,
    AsyncChatClient,
    ChatClient,
    RunLimits,
    ToolFailureLimitExceededError,
    tool,
)
from agentkit._calls import PlannedCall
from agentkit.testing import Reply, ScriptedServer

from ._support import (
    DRIVERS,
    INSTRUCTIONS,
    KEY,
    MODEL,
    Driver,
    client_options,
    refused_url,
    run_with,
    tool_messages,
)

REPO = Path(__file__).resolve().parents[2]
LEAKS = (KEY, KEY[len("sk-test-") :])  # the key, and its distinctive part alone


def assert_no_key(text: str, where: str) -> None:
    for secret in LEAKS:
        assert secret not in text, f"the API key leaked into {where}: {text[:300]!r}"


def exception_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """Every way an exception is shown: str, repr, args, attributes, the whole chain and
    the formatted traceback (what a crash report or a log's exc_info prints)."""
    yield "the traceback", "".join(traceback.format_exception(error))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        yield f"str({name})", str(current)
        yield f"repr({name})", repr(current)
        yield f"{name}.args", repr(current.args)
        for attribute in ("message", "code", "type", "param", "request_id", "partial"):
            yield f"{name}.{attribute}", repr(getattr(current, attribute, None))
        # what Python shows: the cause, else the context unless `raise ... from None`
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )


# --- the key in errors, reprs and logs ------------------------------------------------------

ECHOING_FAULTS: dict[str, Reply] = {
    "401_body": Reply.error(401, f"Incorrect API key provided: {KEY}", code="invalid_api_key"),
    "400_param": Reply.raw(
        json.dumps(
            {
                "error": {
                    "message": f"header was 'Bearer {KEY}'",
                    "type": "bad",
                    "param": f"Authorization: Bearer {KEY}",
                    "code": KEY,
                }
            }
        ),
        status=400,
    ),
    "403_dashscope_native": Reply.raw(
        json.dumps(
            {
                "code": "AccessDenied",
                "message": f"key {KEY} may not use this model",
                "request_id": KEY,
            }
        ),
        status=403,
    ),
    "html_proxy_page": Reply.raw(
        f"<html><body><h1>502 Bad Gateway</h1><pre>Authorization: Bearer {KEY}</pre></body></html>",
        status=502,
        content_type="text/html",
    ),
    "200_not_json": Reply.raw(f"debug: Authorization=Bearer {KEY}", status=200),
    "stream_error_event": Reply.sse(
        [f'data: {{"error": {{"message": "bad key {KEY}", "code": "invalid_api_key"}}}}\n\n']
    ),
    "stream_garbage": Reply.sse([f"data: Bearer {KEY}\n\n"]),
    "request_id_header": Reply.error(500, headers={"x-request-id": f"Bearer {KEY}"}),
}


def _echoing_failures(
    server: ScriptedServer, driver: Driver, faults: dict[str, Reply] = ECHOING_FAULTS
) -> list[AgentKitError]:
    """Run once per echoing fault, with no retries; return the errors."""
    errors: list[AgentKitError] = []
    options = client_options(max_retries=0)
    for fault in faults.values():
        server.queue(fault)
        with pytest.raises(AgentKitError) as caught:
            run_with(driver, server.base_url, client=options)
        errors.append(caught.value)
    # no server at all, and a server that never answers
    for url, extra in ((refused_url(), {}), (server.base_url, {"read_timeout": 0.2})):
        if extra:
            server.queue(Reply.hang())
        with pytest.raises(AgentKitError) as caught:
            run_with(driver, url, client=client_options(max_retries=0, **extra))
        errors.append(caught.value)
    return errors


@pytest.mark.parametrize("driver", ["run", "stream_async"])
def test_api_key_never_in_exceptions(server: ScriptedServer, driver: Driver) -> None:
    errors = _echoing_failures(server, driver)
    assert len(errors) == len(ECHOING_FAULTS) + 2
    for request in server.requests:  # the key was really sent, so there was one to leak
        assert request.headers["authorization"] == f"Bearer {KEY}"
    leaks = []
    for error, name in zip(errors, [*ECHOING_FAULTS, "refused", "timeout"], strict=True):
        shown = [*exception_texts(error), ("the transcript", json.dumps(error.messages))]
        leaks += [f"{name}: {where}" for where, text in shown if any(s in text for s in LEAKS)]
    assert leaks == [], f"the API key leaked: {leaks}"


def test_api_key_never_in_reprs(server: ScriptedServer) -> None:
    server.queue(Reply.text("Hi."), Reply.text("Hi."))
    chat = ChatClient(server.base_url, KEY)
    async_chat = AsyncChatClient(server.base_url, KEY)
    agent = Agent(MODEL, (), INSTRUCTIONS, base_url=server.base_url, api_key=KEY)
    try:
        result = agent.run("Hello")  # the agent has built its client by now
        shown = [chat, async_chat, agent, result, agent.tools]
        shown.append(asyncio.run(_run_async_and_return(agent)))
        for thing in shown:
            assert_no_key(repr(thing), f"repr({type(thing).__name__})")
            assert_no_key(str(thing), f"str({type(thing).__name__})")
            assert_no_key(format(thing, ""), f"format({type(thing).__name__})")
        assert "***" in repr(chat), "the client says a key is set, without showing it"
    finally:
        chat.close()
        asyncio.run(async_chat.aclose())
        agent.close()


async def _run_async_and_return(agent: Agent[Any]) -> Any:
    try:
        return await agent.run_async("Hello")
    finally:
        await agent.aclose()


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.loggers: set[str] = set()
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.loggers.add(record.name)
        self.lines.append(self.format(record) + repr(record.args) + repr(record.__dict__))


@pytest.fixture
def all_logs() -> Iterator[_Everything]:
    """Every log record of every logger, at DEBUG, while the test runs."""
    handler = _Everything()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize("driver", DRIVERS)
def test_api_key_never_in_logs(
    server: ScriptedServer, driver: Driver, all_logs: _Everything
) -> None:
    server.queue(
        Reply.error(503, f"overloaded, key {KEY}"),
        Reply.rate_limited(0),
        Reply.tool_calls(("get_weather", {"city": "Paris"})),
        Reply.text("Sunny."),
    )
    assert run_with(driver, server.base_url).output == "Sunny."
    # httpcore's own DEBUG log prints response headers as received: a server echoing the
    # key in a header is beyond what agentkit can scrub, so that one fault is left out here
    bodies = {name: reply for name, reply in ECHOING_FAULTS.items() if "header" not in name}
    _echoing_failures(server, driver, bodies)
    assert any(name.startswith("agentkit") for name in all_logs.loggers), "retries are logged"
    assert any("httpcore" in name or "httpx" in name for name in all_logs.loggers)
    for line in all_logs.lines:
        assert_no_key(line, "a log record")


def _cli(*args: str, key_variable: str = "AK_TEST_KEY") -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DASHSCOPE_", "OPENAI_", "AGENTKIT_"))
    }
    environment[key_variable] = KEY
    environment["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", "chat", "--api-key-env", key_variable, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        cwd=REPO,
    )


def test_api_key_never_in_cli_json_output(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(("get_current_time", {"timezone": "UTC"})),
        Reply.text("It is noon."),
        Reply.error(401, f"Incorrect API key provided: {KEY}", code="invalid_api_key"),
    )
    done = _cli("--json", "--base-url", server.base_url, "--max-retries", "0", "Time?")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == "It is noon."
    failed = _cli("--json", "--debug", "--base-url", server.base_url, "--max-retries", "0", "Hi")
    assert failed.returncode == 1
    assert "authentication failed" in failed.stderr
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {KEY}"] * 3
    for output, stream in (
        (done.stdout, "stdout"),
        (done.stderr, "stderr"),
        (failed.stdout, "stdout"),
        (failed.stderr, "stderr with --debug"),
    ):
        assert_no_key(output, f"the CLI's {stream}")


# --- tool output is capped ------------------------------------------------------------------


@tool
def read_log(name: str) -> str:
    """Read a log file."""
    return "".join(f"line {n}: all quiet\n" for n in range(20_000))  # ~400 kB


@pytest.mark.parametrize("cap", [100, 5_000])
def test_tool_output_is_capped(server: ScriptedServer, driver: Driver, cap: int) -> None:
    server.queue(Reply.tool_calls(("read_log", {"name": "app"})), Reply.text("All quiet."))
    result = run_with(
        driver, server.base_url, tools=(read_log,), limits=RunLimits(max_tool_output_chars=cap)
    )
    sent = server.requests[1].messages[-1]["content"]
    full = read_log("app")
    assert sent.startswith(full[:cap])
    assert full[: cap + 1] not in sent, "nothing past the cap is sent"
    note = sent[cap:]
    assert "cut" in note and f"{cap}" in note and f"{len(full)}" in note, note
    assert len(note) < 200
    assert tool_messages(result.messages)[0]["content"] == sent


# --- a runaway model is bounded -------------------------------------------------------------
# max_turns and the per-run tool-call cap: see test_model_output.py
# (test_model_loops_with_new_calls_until_max_turns,
# test_model_floods_tool_calls_past_the_per_run_cap).


# --- model output is never run as code ------------------------------------------------------

_DYNAMIC_CODE = {"eval", "exec"}


def _dynamic_code_calls(source: str) -> list[int]:
    """Line numbers of calls to eval/exec (bare, or as builtins.eval and the like)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if (isinstance(function, ast.Name) and function.id in _DYNAMIC_CODE) or (
            isinstance(function, ast.Attribute)
            and function.attr in _DYNAMIC_CODE
            and isinstance(function.value, ast.Name)
            and function.value.id in {"builtins", "__builtins__"}
        ):
            lines.append(node.lineno)
    return lines


def test_no_eval_or_exec_in_agentkit() -> None:
    assert _dynamic_code_calls("x = eval(text)\nbuiltins.exec(code)\nloader.exec_module(m)") == [
        1,
        2,
    ], "the detector itself works"
    roots = [Path(agentkit.__file__).parent, REPO / "tools"]
    files = sorted(path for root in roots for path in root.rglob("*.py"))
    assert len(files) > 15, files
    found = {
        str(path.relative_to(REPO)): lines
        for path in files
        if (lines := _dynamic_code_calls(path.read_text(encoding="utf-8")))
    }
    assert found == {}, f"eval/exec calls in agentkit: {found}"


# --- approval -------------------------------------------------------------------------------

refunds_made: list[int] = []


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order in full."""
    refunds_made.append(order_id)
    return f"refunded order {order_id}"


def _insisting_model(server: ScriptedServer) -> None:
    """A model that asks for refunds five rounds running, then gives up."""
    server.queue(
        Reply.tool_calls(("refund", {"order_id": 1}), ("refund", {"order_id": 2})),
        Reply.tool_calls(("refund", {"order_id": 1})),
        Reply.tool_calls(("refund", {"order_id": 3}), content="I really must refund this."),
        Reply.tool_calls(("refund", {"order_id": 1})),
        Reply.tool_calls(("refund", {"order_id": 4}), ("refund", {"order_id": 5})),
        Reply.text("I could not refund anything."),
    )


asked: list[tuple[str, dict[str, Any]]] = []


def _refuse(call: PlannedCall) -> bool:
    asked.append((call.name, dict(call.kwargs or {})))
    return False


async def _refuse_async(call: PlannedCall) -> bool:
    await asyncio.sleep(0)
    return _refuse(call)


def _answers_other_than_true(call: PlannedCall) -> Any:
    asked.append((call.name, dict(call.kwargs or {})))
    return "yes"  # truthy, but only True approves


@pytest.mark.parametrize(
    "approve",
    # without an approver the run pauses instead (tests/sessions/test_agent_sessions.py)
    [_refuse, _refuse_async, _answers_other_than_true],
    ids=["refusing", "refusing_async", "truthy_not_true"],
)
def test_approval_required_tool_never_runs_unapproved(
    server: ScriptedServer, driver: Driver, approve: Any
) -> None:
    refunds_made.clear()
    asked.clear()
    _insisting_model(server)
    result = run_with(
        driver,
        server.base_url,
        tools=(refund,),
        approve=approve,
        limits=RunLimits(max_tool_failures=10),
    )
    assert refunds_made == [], "the gated tool never ran"
    assert result.output == "I could not refund anything."
    assert_resendable(result.messages)
    told = [m["content"] for m in tool_messages(result.messages)]
    assert len(told) == 7 and all("refused" in text or "Not run" in text for text in told)
    if approve is not None:
        # asked about every call except the repeats, which never get that far
        assert {order for _, kwargs in asked for order in kwargs.values()} == {1, 2, 3, 4, 5}


def test_approval_gate_stops_a_model_that_insists_forever(
    server: ScriptedServer, driver: Driver
) -> None:
    refunds_made.clear()
    counter = iter(range(1, 1000))
    server.respond_with(lambda request: Reply.tool_calls(("refund", {"order_id": next(counter)})))
    with pytest.raises(ToolFailureLimitExceededError) as caught:
        run_with(
            driver,
            server.base_url,
            tools=(refund,),
            approve=_refuse,
            limits=RunLimits(max_turns=50),
        )
    assert refunds_made == []
    assert caught.value.tool_name == "refund"
    assert server.request_count == 3, "three refused rounds (max_tool_failures) end the run"
    assert_resendable(caught.value.messages)


def test_approved_calls_run_and_only_those(server: ScriptedServer, driver: Driver) -> None:
    # the gate is a real gate, not a wall: what the approver allows runs, exactly once
    refunds_made.clear()
    _insisting_model(server)
    result = run_with(
        driver,
        server.base_url,
        tools=(refund,),
        limits=RunLimits(max_tool_failures=10),
        approve=lambda call: call.kwargs == {"order_id": 3},
    )
    assert refunds_made == [3]
    assert "refunded order 3" in [m["content"] for m in tool_messages(result.messages)]
