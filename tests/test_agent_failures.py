"""Failures inside a run go back to the model; limits end runaway runs with the transcript."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import assert_resendable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit import (
    Agent,
    BadRequestError,
    ChatClient,
    MaxTurnsExceededError,
    ModelSettings,
    OutputTruncatedError,
    RepeatedToolCallError,
    RunLimits,
    ToolCallLimitExceededError,
    ToolFailureLimitExceededError,
    ToolRetry,
    tool,
)
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

KEY = "sk-failures-test"


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY, retry_base_delay=0.01) as made:
        yield made


def tool_messages(request: RecordedRequest) -> list[str]:
    """The contents of the tool messages answering the last assistant turn of a request."""
    out = []
    for message in reversed(request.messages):
        if message["role"] != "tool":
            break
        out.append(message["content"])
    return out[::-1]


calls_seen: list[dict[str, Any]] = []


@tool
def book_flight(city: str, seats: int) -> str:
    """Book seats on a flight.

    Args:
        city: Destination city.
        seats: Number of seats, at least 1.
    """
    calls_seen.append({"city": city, "seats": seats})
    return f"booked {seats} to {city}"


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls_seen.clear()


# --- each failure kind is fed back ----------------------------------------------------------


def test_invalid_arguments_never_reach_the_function_and_name_the_field(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(
        Reply.tool_calls(("book_flight", {"city": "Oslo", "seats": "two"})),
        Reply.tool_calls(("book_flight", {"city": "Oslo", "seats": 2})),
        Reply.text("Booked."),
    )
    with Agent("m", [book_flight], client=client) as agent:
        result = agent.run("Book two seats to Oslo")
    assert calls_seen == [{"city": "Oslo", "seats": 2}]  # only the valid call ran
    (feedback,) = tool_messages(server.requests[1])
    assert "seats" in feedback and "two" in feedback
    assert tool_messages(server.requests[2]) == ["booked 2 to Oslo"]
    assert result.output == "Booked."


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("book_flite", '{"city": "Oslo", "seats": 1}', ["Unknown tool", "book_flight"]),
        ("book_flight", '{"city": "Oslo", "seats": 1', ["not valid JSON"]),
        ("book_flight", "[1, 2]", ["book_flight"]),
        ("book_flight", '{"city": "Oslo"}', ["seats", "missing"]),
        ("book_flight", '{"city": "Oslo", "seats": 1, "class": "first"}', ["class"]),
    ],
)
def test_bad_calls_are_told_to_the_model(
    server: ScriptedServer, client: ChatClient, name: str, arguments: str, expected: list[str]
) -> None:
    server.queue(Reply.tool_calls((name, arguments)), Reply.text("Sorry."))
    with Agent("m", [book_flight], client=client) as agent:
        result = agent.run("Book")
    assert calls_seen == []
    (feedback,) = tool_messages(server.requests[1])
    for fragment in expected:
        assert fragment in feedback
    assert result.output == "Sorry."


def test_a_raising_tool_gives_its_message_not_a_traceback(
    server: ScriptedServer, client: ChatClient
) -> None:
    @tool
    def lookup(order_id: int) -> str:
        """Look an order up."""
        raise LookupError(f"no order {order_id}")

    @tool
    def retry_me(text: str) -> str:
        """Parse a date."""
        raise ToolRetry("Give the date as YYYY-MM-DD, e.g. 2025-01-31.")

    server.queue(
        Reply.tool_calls(("lookup", {"order_id": 42}), ("retry_me", {"text": "tomorrow"})),
        Reply.text("No such order."),
    )
    with Agent("m", [lookup, retry_me], client=client) as agent:
        agent.run("Where is order 42?")
    raised, retry = tool_messages(server.requests[1])
    assert raised == "tool lookup failed: LookupError: no order 42"
    assert retry == "Give the date as YYYY-MM-DD, e.g. 2025-01-31."
    assert "Traceback" not in raised


def test_a_sync_tool_past_its_timeout(server: ScriptedServer, client: ChatClient) -> None:
    release = threading.Event()
    returned = threading.Event()

    @tool(timeout=0.2)
    def stuck() -> str:
        """Never answers in time."""
        release.wait(60)
        returned.set()
        return "late"

    server.queue(Reply.tool_calls(("stuck", {})), Reply.text("The service is slow."))
    try:
        with Agent("m", [stuck], client=client) as agent:
            result = agent.run("go")
            assert not returned.is_set()  # the run answered without waiting for the tool
    finally:
        release.set()
    assert tool_messages(server.requests[1]) == ["tool stuck timed out after 0.2 s"]
    assert result.output == "The service is slow."


def test_an_async_tool_past_the_agent_timeout_is_cancelled(
    server: ScriptedServer,
) -> None:
    cancelled = threading.Event()

    @tool
    async def stuck() -> str:
        """Never answers in time."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    server.queue(Reply.tool_calls(("stuck", {})), Reply.text("Timed out."))

    async def main() -> None:
        async with Agent(
            "m", [stuck], base_url=server.base_url, api_key=KEY, limits=RunLimits(tool_timeout=0.2)
        ) as agent:
            await agent.run_async("go")

    asyncio.run(main())
    assert cancelled.is_set()  # cancelled at its timeout, not awaited for its 30 s
    assert tool_messages(server.requests[1]) == ["tool stuck timed out after 0.2 s"]


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_the_timeout_counts_from_the_queue(server: ScriptedServer, driver: str) -> None:
    @tool(timeout=1.8)
    def steady(n: int) -> str:
        """Takes 1 s."""
        time.sleep(1.0)
        return f"done {n}"

    server.queue(Reply.tool_calls(("steady", {"n": 1}), ("steady", {"n": 2})), Reply.text("ok"))
    # One worker: the second call waits 1 s in the queue, then would run 1 s: past its
    # 1.8 s, which counts from when it was queued (no round outlives its timeouts). Counted
    # from its start it would end in time. 0.8 s of slack either way for a loaded machine
    # (0.4 s was less than a loaded machine can stall a thread).
    agent = Agent(
        "m",
        [steady],
        base_url=server.base_url,
        api_key=KEY,
        limits=RunLimits(parallel_tool_calls_limit=1),
    )
    if driver == "run":
        with agent:
            agent.run("go")
    else:

        async def main() -> None:
            async with agent:
                await agent.run_async("go")

        asyncio.run(main())
    assert tool_messages(server.requests[1]) == ["done 1", "tool steady timed out after 1.8 s"]


def test_a_tool_raising_its_own_timeout_error_is_not_our_timeout(
    server: ScriptedServer,
) -> None:
    @tool
    async def remote() -> str:
        """Calls a remote service."""
        raise TimeoutError("upstream took too long")

    server.queue(Reply.tool_calls(("remote", {})), Reply.text("ok"))

    async def main() -> None:
        async with Agent(
            "m", [remote], base_url=server.base_url, api_key=KEY, limits=RunLimits(tool_timeout=5)
        ) as agent:
            await agent.run_async("go")

    asyncio.run(main())
    assert tool_messages(server.requests[1]) == [
        "tool remote failed: TimeoutError: upstream took too long"
    ]


def test_unserialisable_and_enormous_outputs(server: ScriptedServer, client: ChatClient) -> None:
    @tool
    def opaque() -> object:
        """Returns something odd."""
        return threading.Lock()

    @tool
    def huge() -> str:
        """Returns a lot."""
        return "y" * 100_000

    server.queue(Reply.tool_calls(("opaque", {}), ("huge", {})), Reply.text("ok"))
    with Agent(
        "m", [opaque, huge], client=client, limits=RunLimits(max_tool_output_chars=1000)
    ) as agent:
        agent.run("go")
    odd, big = tool_messages(server.requests[1])
    assert "cannot be turned into JSON" in odd and "lock" in odd
    assert big.startswith("y" * 1000) and len(big) < 1200
    assert "output cut" in big and "100000" in big


# --- limits ---------------------------------------------------------------------------------


def endless_model(request: RecordedRequest) -> Reply:
    """A model that never stops calling tools (new arguments every time)."""
    return Reply.tool_calls(("book_flight", {"city": f"city-{request.number}", "seats": 1}))


def test_max_turns_stops_an_endless_model(server: ScriptedServer, client: ChatClient) -> None:
    server.respond_with(endless_model)
    with (
        Agent("m", [book_flight], client=client, limits=RunLimits(max_turns=3)) as agent,
        pytest.raises(MaxTurnsExceededError) as caught,
    ):
        agent.run("go")
    assert len(server.requests) == 3
    assert len(calls_seen) == 3
    messages = caught.value.messages
    assert messages is not None and messages[-1]["role"] == "tool"
    assert_resendable(messages)


def test_max_turns_in_run_async_and_stream(server: ScriptedServer) -> None:
    server.respond_with(endless_model)

    async def main() -> None:
        async with Agent("m", [book_flight], base_url=server.base_url, api_key=KEY) as agent:
            with pytest.raises(MaxTurnsExceededError):
                await agent.run_async("go", limits=RunLimits(max_turns=2))

    asyncio.run(main())
    with (
        Agent("m", [book_flight], base_url=server.base_url, api_key=KEY) as agent,
        pytest.raises(MaxTurnsExceededError) as caught,
    ):
        for _ in agent.stream("go", limits=RunLimits(max_turns=2)):
            pass
    assert len(server.requests) == 4
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)


def test_a_model_repeating_one_call_is_told_then_stopped(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.respond_with(
        lambda request: Reply.tool_calls(("book_flight", {"city": "Oslo", "seats": 1}))
    )
    with (
        Agent("m", [book_flight], client=client, limits=RunLimits(max_repeated_calls=2)) as agent,
        pytest.raises(RepeatedToolCallError) as caught,
    ):
        agent.run("go")
    assert len(calls_seen) == 1  # it ran once; the repeats were not run again
    assert len(server.requests) == 4
    assert "already called book_flight" in tool_messages(server.requests[2])[0]
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)


def test_a_tool_failing_round_after_round_ends_the_run(
    server: ScriptedServer, client: ChatClient
) -> None:
    @tool
    def flaky(n: int) -> str:
        """Always fails."""
        raise ConnectionError("service down")

    server.respond_with(lambda r: Reply.tool_calls(("flaky", {"n": r.number})))
    with (
        Agent("m", [flaky], client=client, limits=RunLimits(max_tool_failures=3)) as agent,
        pytest.raises(ToolFailureLimitExceededError) as caught,
    ):
        agent.run("go")
    assert caught.value.tool_name == "flaky"
    assert "service down" in str(caught.value)
    assert len(server.requests) == 3
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)


def test_the_per_run_tool_call_cap(server: ScriptedServer, client: ChatClient) -> None:
    server.respond_with(
        lambda r: Reply.tool_calls(
            *[("book_flight", {"city": f"c{r.number}-{i}", "seats": 1}) for i in range(3)]
        )
    )
    with (
        Agent("m", [book_flight], client=client, limits=RunLimits(max_tool_calls=4)) as agent,
        pytest.raises(ToolCallLimitExceededError) as caught,
    ):
        agent.run("go")
    assert len(calls_seen) == 4
    told = server.requests[2]
    assert tool_messages(told)[0] == "booked 1 to c2-0"
    assert "limit of 4 tool calls" in tool_messages(told)[1]
    assert "tool_choice" not in server.requests[1].json()
    assert told.json()["tool_choice"] == "none"
    assert len(server.requests) == 3
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)


def test_a_length_finish_is_not_an_answer(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.text("The answer is", finish_reason="length"))
    with (
        Agent("m", client=client, settings=ModelSettings(max_tokens=3)) as agent,
        pytest.raises(OutputTruncatedError) as caught,
    ):
        agent.run("What is the answer?")
    assert caught.value.messages == [{"role": "user", "content": "What is the answer?"}]

    server.queue(Reply.text("The answer is", finish_reason="length"))
    with Agent(
        "m", client=client, settings=ModelSettings(max_tokens=3), on_truncated="return"
    ) as agent:
        result = agent.run("What is the answer?")
    assert result.truncated and result.output == "The answer is"


def test_a_client_error_mid_run_carries_a_resendable_transcript(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(
        Reply.tool_calls(("book_flight", {"city": "Oslo", "seats": 1})),
        Reply.error(400, "bad request"),
        Reply.text("Booked."),
    )
    with Agent("m", [book_flight], client=client) as agent:
        with pytest.raises(BadRequestError) as caught:
            agent.run("Book Oslo")
        messages = caught.value.messages
        assert messages is not None and messages[-1]["content"] == "booked 1 to Oslo"
        result = agent.run(messages)  # resend it as it is
    assert result.output == "Booked."
    assert server.requests[2].messages == messages
    assert len(calls_seen) == 1


# --- any arguments from the model: a valid call or a message, never a crash ------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["city", "seats", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(arguments=json_values.map(json.dumps) | st.text(max_size=20))
def test_any_arguments_over_the_wire(
    server: ScriptedServer, client: ChatClient, arguments: str
) -> None:
    calls_seen.clear()
    server.queue(Reply.tool_calls(("book_flight", arguments)), Reply.text("done"))
    with Agent("m", [book_flight], client=client) as agent:
        result = agent.run("go")
    assert result.output == "done"
    for call in calls_seen:
        assert isinstance(call["city"], str) and isinstance(call["seats"], int)
    assert_resendable(result.messages)
