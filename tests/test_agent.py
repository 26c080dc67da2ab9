"""Agent.run / run_async / stream over a real loopback server: rounds, parallel tools,
transcripts, context, connection reuse, API errors and the seed's recorded bodies."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import WAIT, assert_resendable, wait_until, wait_until_async

from agentkit import (
    PROVIDERS,
    Agent,
    AuthenticationError,
    ChatClient,
    ConfigurationError,
    ModelSettings,
    QuotaExceededError,
    RunContext,
    RunFinished,
    RunLimits,
    RunResult,
    TextDelta,
    ToolResult,
    tool,
)
from agentkit.testing import Reply, ScriptedServer

DATA = Path(__file__).parent / "data"
KEY = "sk-agent-test-secret-0123456789"


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with fast_client(server) as made:
        yield made


def fast_client(server: ScriptedServer, **options: Any) -> ChatClient:
    """A client whose retries do not wait long (the scripted faults come back at once)."""
    return ChatClient(server.base_url, KEY, retry_base_delay=0.01, retry_max_delay=0.05, **options)


class Rendezvous:
    """Tool calls that finish only once ``expected`` of them are under way at the same time.

    Proves calls overlap by the order of events, with no clock: run one after another, the
    first call waits for the others in vain and fails the test after ``WAIT`` seconds.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.inside: list[float] = []  # how long each call took, measured by the call itself
        self._ready = threading.Condition()

    def _arrive(self) -> None:
        with self._ready:
            self.arrived += 1
            self._ready.notify_all()

    def meet(self) -> None:
        """Wait in a thread until every expected call has arrived."""
        started = time.perf_counter()
        self._arrive()
        with self._ready:
            assert self._ready.wait_for(lambda: self.arrived >= self.expected, WAIT)
            self.inside.append(time.perf_counter() - started)

    async def meet_async(self) -> None:
        """Wait on an event loop until every expected call has arrived."""
        started = time.perf_counter()
        self._arrive()
        await wait_until_async(lambda: self.arrived >= self.expected)
        with self._ready:
            self.inside.append(time.perf_counter() - started)


def meeting_tools(rendezvous: Rendezvous) -> tuple[Any, Any]:
    @tool
    def slow_sync(n: int) -> str:
        """A slow blocking lookup."""
        rendezvous.meet()
        return f"sync {n}"

    @tool
    async def slow_async(n: int) -> str:
        """A slow async lookup."""
        await rendezvous.meet_async()
        return f"async {n}"

    return slow_sync, slow_async


# --- rounds and transcripts ---------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"Sunny in {city}, 24 C."


@tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    return f"It is 10:00 in {city}."


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def test_multi_round_run(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Hangzhou"}, "w1"), usage=usage(50, 10)),
        Reply.tool_calls(("get_time", {"city": "Hangzhou"}, "t1"), usage=usage(80, 12)),
        Reply.text("Sunny, and it is ten o'clock.", usage=usage(110, 9)),
    )
    with Agent("qwen-plus", [get_weather, get_time], "Be brief.", client=client) as agent:
        result = agent.run("Weather and time in Hangzhou?")

    assert result.output == "Sunny, and it is ten o'clock."
    assert result.turns == 3
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (240, 31)
    assert result.usage.total_tokens == 271
    assert [m["role"] for m in result.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    requests = server.requests
    assert len(requests) == 3
    for request in requests:  # every round sends the tools
        assert [t["function"]["name"] for t in request.tools] == ["get_weather", "get_time"]
        assert request.json()["model"] == "qwen-plus"
    assert requests[1].messages[-1] == {
        "role": "tool",
        "tool_call_id": "w1",
        "name": "get_weather",
        "content": "Sunny in Hangzhou, 24 C.",
    }
    assert requests[2].messages[-1]["tool_call_id"] == "t1"
    assert requests[2].messages == result.messages[:-1]
    assert_resendable(result.messages)


def test_run_async_multi_round(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Paris"})),
        Reply.text("Sunny in Paris."),
    )

    async def main() -> RunResult[str]:
        async with Agent(
            "qwen-plus", [get_weather], base_url=server.base_url, api_key=KEY
        ) as agent:
            return await agent.run_async("Weather in Paris?")

    result = asyncio.run(main())
    assert result.output == "Sunny in Paris."
    assert result.turns == 2
    assert server.requests[1].messages[-1]["content"] == "Sunny in Paris, 24 C."


def test_passing_the_transcript_back_continues_the_conversation(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Rome"})),
        Reply.text("Sunny in Rome."),
        Reply.text("You asked about Rome."),
    )
    with Agent("qwen-plus", [get_weather], "Be brief.", client=client) as agent:
        first = agent.run("Weather in Rome?")
        follow_up = [*first.messages, {"role": "user", "content": "Which city did I ask about?"}]
        second = agent.run(follow_up)

    sent = server.requests[2].messages
    assert sent == follow_up  # the whole transcript, once, system message not repeated
    assert sum(1 for m in sent if m["role"] == "system") == 1
    assert second.output == "You asked about Rome."
    assert second.messages[: len(follow_up)] == follow_up
    assert first.messages[-1] == {"role": "assistant", "content": "Sunny in Rome."}  # untouched


def test_instructions_are_added_to_a_transcript_without_a_system_message(
    server: ScriptedServer,
    client: ChatClient,
) -> None:
    server.queue(Reply.text("ok"))
    with Agent("qwen-plus", instructions="Be brief.", client=client) as agent:
        agent.run([{"role": "user", "content": "hi"}])
    assert server.requests[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert "tools" not in server.requests[0].json()  # no tools, no empty list


def test_model_parameters_are_sent_every_round(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.tool_calls(("get_weather", {"city": "x"})), Reply.text("done"))
    agent = Agent(
        "qwen-plus",
        [get_weather],
        client=client,
        settings=ModelSettings(
            temperature=0.3,
            top_p=0.9,
            max_tokens=200,
            seed=7,
            stop=["END"],
            parallel_tool_calls=True,
            extra_body={"enable_thinking": False},
        ),
        params={"presence_penalty": 0.5},
    )
    agent.run("hi")
    for request in server.requests:
        body = request.json()
        assert body["temperature"] == 0.3 and body["top_p"] == 0.9
        assert body["max_tokens"] == 200 and body["seed"] == 7 and body["stop"] == ["END"]
        assert body["parallel_tool_calls"] is True and body["presence_penalty"] == 0.5
        assert body["enable_thinking"] is False  # extra_body merged into the body


def test_plain_functions_become_tools(server: ScriptedServer, client: ChatClient) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    server.queue(Reply.tool_calls(("add", {"a": 2, "b": 3})), Reply.text("5"))
    with Agent("m", [add], client=client) as agent:
        agent.run("2+3?")
    assert server.requests[1].messages[-1]["content"] == "5"


def test_run_context_reaches_tools(server: ScriptedServer, client: ChatClient) -> None:
    seen: list[RunContext[dict[str, str]]] = []
    last_message_seen: list[dict[str, Any]] = []

    @tool
    def whoami(ctx: RunContext[dict[str, str]]) -> str:
        """Who is the user?"""
        seen.append(ctx)
        last_message_seen.append(ctx.messages[-1])
        return ctx.deps["user"]

    server.queue(Reply.tool_calls(("whoami", {}), usage=usage(20, 5)), Reply.text("You are Ada."))
    with Agent("m", [whoami], client=client) as agent:
        assert "ctx" not in json.dumps(whoami.to_openai())  # the model never sees it
        agent.run("Who am I?", deps={"user": "Ada"})
    (ctx,) = seen
    assert ctx.deps == {"user": "Ada"}
    assert ctx.turn == 1
    assert ctx.usage.total_tokens == 25
    assert last_message_seen[0]["tool_calls"][0]["function"]["name"] == "whoami"
    assert server.requests[1].messages[-1]["content"] == "Ada"


def test_the_sync_driver_reuses_one_connection_across_runs(server: ScriptedServer) -> None:
    server.respond_with(lambda request: Reply.text("hello"))
    with Agent("m", base_url=server.base_url, api_key=KEY) as agent:
        for _ in range(5):
            assert agent.run("hi").output == "hello"
    assert server.connections_opened == 1


# --- parallel tool calls ------------------------------------------------------------------


def three_calls(name: str) -> Reply:
    return Reply.tool_calls(*[(name, {"n": n}) for n in range(3)])


@pytest.mark.parametrize("tool_name", ["slow_sync", "slow_async"])
def test_run_overlaps_three_slow_calls(
    server: ScriptedServer, client: ChatClient, tool_name: str
) -> None:
    rendezvous = Rendezvous(3)
    server.queue(three_calls(tool_name), Reply.text("done"))
    with Agent("m", meeting_tools(rendezvous), client=client) as agent:
        result = agent.run("go")
    assert len(rendezvous.inside) == 3
    kind = tool_name.removeprefix("slow_")
    assert [m["content"] for m in result.messages if m["role"] == "tool"] == [
        f"{kind} 0",
        f"{kind} 1",
        f"{kind} 2",
    ]


@pytest.mark.parametrize("tool_name", ["slow_sync", "slow_async"])
def test_run_async_overlaps_three_slow_calls(server: ScriptedServer, tool_name: str) -> None:
    rendezvous = Rendezvous(3)
    server.queue(three_calls(tool_name), Reply.text("done"))

    async def main() -> RunResult[str]:
        tools = meeting_tools(rendezvous)
        async with Agent("m", tools, base_url=server.base_url, api_key=KEY) as agent:
            return await agent.run_async("go")

    result = asyncio.run(main())
    assert len(rendezvous.inside) == 3
    assert sum(m["role"] == "tool" for m in result.messages) == 3


def test_stream_overlaps_sync_and_async_calls(server: ScriptedServer, client: ChatClient) -> None:
    rendezvous = Rendezvous(3)
    server.queue(
        Reply.tool_calls(
            ("slow_sync", {"n": 1}), ("slow_async", {"n": 2}), ("slow_sync", {"n": 3})
        ),
        Reply.text("done"),
    )
    with Agent("m", meeting_tools(rendezvous), client=client) as agent:
        started = time.perf_counter()
        events = list(agent.stream("go"))
        whole = time.perf_counter() - started
    results = [e for e in events if isinstance(e, ToolResult)]
    assert sorted(r.output for r in results) == ["async 2", "sync 1", "sync 3"]
    # Each reported duration covers the call's own time and fits inside the run.
    assert min(r.duration for r in results) >= min(rendezvous.inside)
    assert max(r.duration for r in results) >= max(rendezvous.inside)
    assert all(r.duration <= whole for r in results)
    assert isinstance(events[-1], RunFinished)


def test_concurrency_is_bounded(server: ScriptedServer, client: ChatClient) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    # Two calls meet here before either ends: two at once for certain, however loaded the
    # machine (a sleep only made the overlap likely); with one at a time it breaks.
    pair = threading.Barrier(2, timeout=WAIT)

    @tool
    def busy(n: int) -> str:
        """Busy work."""
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        pair.wait()
        with lock:
            running -= 1
        return "ok"

    server.queue(Reply.tool_calls(*[("busy", {"n": n}) for n in range(6)]), Reply.text("done"))
    with Agent("m", [busy], client=client, limits=RunLimits(parallel_tool_calls_limit=2)) as agent:
        agent.run("go")
    assert peak == 2


# --- API errors -----------------------------------------------------------------------------


def test_a_503_burst_is_retried_and_the_run_recovers(server: ScriptedServer) -> None:
    server.queue(
        Reply.error(503, "busy"),
        Reply.error(503, "busy"),
        Reply.tool_calls(("get_weather", {"city": "Oslo"})),
        Reply.error(503, "busy"),
        Reply.text("Sunny in Oslo."),
    )
    with (
        fast_client(server, max_retries=2) as client,
        Agent("m", [get_weather], client=client) as agent,
    ):
        result = agent.run("Weather in Oslo?")
    assert result.output == "Sunny in Oslo."
    assert len(server.requests) == 5
    assert result.turns == 2


def test_a_429_with_retry_after_is_honoured(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.rate_limited(retry_after=0.2), Reply.text("ok"))
    with Agent("m", client=client) as agent:
        assert agent.run("hi").output == "ok"
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.15


def test_a_quota_error_is_typed_sent_once_and_carries_the_transcript(
    server: ScriptedServer,
) -> None:
    server.queue(Reply.tool_calls(("get_weather", {"city": "Oslo"})), Reply.quota_exceeded())
    with (
        fast_client(server, max_retries=3) as client,
        Agent("m", [get_weather], client=client) as agent,
        pytest.raises(QuotaExceededError) as caught,
    ):
        agent.run("Weather in Oslo?")
    error = caught.value
    assert len(server.requests) == 2  # never retried
    assert error.status == 429
    assert error.messages is not None and error.messages[-1]["role"] == "tool"
    assert_resendable(error.messages)
    assert KEY not in str(error) and KEY not in repr(error)


def test_a_bad_key_is_typed_and_not_retried(server: ScriptedServer) -> None:
    server.queue(Reply.invalid_api_key())
    with (
        fast_client(server, max_retries=3) as client,
        Agent("m", client=client) as agent,
        pytest.raises(AuthenticationError) as caught,
    ):
        agent.run("hi")
    assert len(server.requests) == 1
    assert caught.value.messages == [{"role": "user", "content": "hi"}]
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in repr(agent)


def test_a_missing_key_is_reported_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    agent = Agent("qwen-plus")  # a bot's module imports with no key set
    with pytest.raises(ConfigurationError, match="set the DASHSCOPE_API_KEY environment"):
        agent.run("hi")
    with pytest.raises(ConfigurationError, match="set the DASHSCOPE_API_KEY environment"):
        asyncio.run(agent.run_async("hi"))
    with pytest.raises(ConfigurationError, match="DASHSCOPE_API_KEY"):
        list(agent.stream("hi"))


def test_a_key_set_after_the_agent_was_built_is_used(
    monkeypatch: pytest.MonkeyPatch, server: ScriptedServer
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    agent = Agent("qwen-plus", provider=PROVIDERS["dashscope"].with_base_url(server.base_url))
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-set-later")
    server.queue(Reply.text("hello"))
    with agent:
        assert agent.run("hi").output == "hello"
    assert server.requests[0].headers["authorization"] == "Bearer sk-set-later"


def test_a_given_key_that_cannot_be_sent_is_refused_where_it_is_given() -> None:
    with pytest.raises(ConfigurationError):
        Agent("qwen-plus", api_key="sk-bad\nkey")


def test_a_bot_file_imports_and_lists_its_tools_with_no_key(tmp_path: Path) -> None:
    bot = tmp_path / "bot.py"
    bot.write_text(
        "from agentkit import Agent, tool\n\n"
        '@tool\ndef get_time(city: str) -> str:\n    """The time in a city."""\n'
        "    return '12:00'\n\n"
        "desk = Agent('qwen-plus', [get_time], 'Be brief.')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    env.pop("AGENTKIT_BASE_URL", None)
    imported = subprocess.run(
        [sys.executable, "-c", "import bot; print(bot.desk.model)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert imported.returncode == 0 and imported.stdout.strip() == "qwen-plus", imported.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "agentkit.cli", "tools", str(bot)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "get_time" in listed.stdout


def test_a_transcript_that_is_not_messages_is_refused(
    server: ScriptedServer, client: ChatClient
) -> None:
    with Agent("m", client=client) as agent:
        with pytest.raises(ConfigurationError):
            agent.run(["hello"])  # type: ignore[list-item]
        with pytest.raises(ConfigurationError):
            agent.run([])
    assert server.requests == []


# --- real servers' bodies -------------------------------------------------------------------


def test_the_seed_json_body(server: ScriptedServer, client: ChatClient) -> None:
    body = (DATA / "dashscope" / "http_completion.json").read_bytes()
    server.queue(Reply.replay(body))
    with Agent("qwen-plus", client=client) as agent:
        result = agent.run("Who are you?")
    assert result.output == "I am a large language model from Alibaba Cloud. My name is Qwen."
    assert result.usage.total_tokens == 27


def test_the_seed_stream(server: ScriptedServer, client: ChatClient) -> None:
    body = (DATA / "dashscope" / "http_stream.txt").read_bytes()
    expected = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in body.decode().splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    )
    server.queue(Reply.replay(body))
    with Agent("qwen-plus", client=client) as agent:
        events = list(agent.stream("Who are you?"))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == expected and text
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # it really streamed
    final = events[-1]
    assert isinstance(final, RunFinished) and final.result.output == expected


def test_llama_cpp_style_calls_and_its_null_content_rule() -> None:
    # llama.cpp answers 500 to an assistant message with null content; the loop sends "".
    with ScriptedServer(reject_null_assistant_content=True) as server:
        server.queue(
            Reply.tool_calls(("get_weather", {"city": "Lima"}), style="llama.cpp", content=None),
            Reply.text("Sunny in Lima."),
        )
        with (
            fast_client(server, max_retries=0) as client,
            Agent("m", [get_weather], client=client) as agent,
        ):
            result = agent.run("Weather in Lima?")
    assert result.output == "Sunny in Lima."
    assert server.requests[1].messages[1]["content"] == ""


def test_tool_calls_written_in_the_text_are_run(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(
        Reply.text_tool_calls(("get_weather", {"city": "Kyiv"})),
        Reply.text("Sunny in Kyiv."),
    )
    with Agent("m", [get_weather], client=client) as agent:
        result = agent.run("Weather in Kyiv?")
    assert server.requests[1].messages[-1]["content"] == "Sunny in Kyiv, 24 C."
    assert result.output == "Sunny in Kyiv."


def test_each_event_loop_gets_one_pool_closed_with_the_loop(server: ScriptedServer) -> None:
    server.respond_with(lambda request: Reply.text("hello"))
    agent = Agent("m", base_url=server.base_url, api_key=KEY)

    async def three_runs() -> None:
        for _ in range(3):
            assert (await agent.run_async("hi")).output == "hello"

    # No aclose(): asyncio.run's shutdown closes the agent's client for that loop.
    for _ in range(2):
        asyncio.run(three_runs())
    agent.close()
    assert server.connections_opened == 2  # one per event loop, reused by its runs
    wait_until(lambda: server.open_connections == 0)
