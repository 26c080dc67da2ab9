"""The loop core without sockets: requests, planned calls, tool messages, limits, output."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from _helpers import assert_resendable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agentkit import (
    BadRequestError,
    ConfigurationError,
    IncompleteStreamError,
    MaxTurnsExceededError,
    OutputTruncatedError,
    OutputValidationError,
    RepeatedToolCallError,
    RunContext,
    ToolCallLimitExceededError,
    ToolFailureLimitExceededError,
    ToolRetry,
    tool,
)
from agentkit._calls import Finished, PlannedCall, RunTools, ToolOutcome
from agentkit._events import ReasoningDelta, TextDelta, ToolCallArgumentsDelta
from agentkit._loop import RunLoop, completion_deltas
from agentkit._loop_settings import FINAL_RESULT_TOOL, LoopSettings
from agentkit._tool import render_tool_output
from agentkit._wire import ChatCompletion

# --- helpers ------------------------------------------------------------------------------


def completion(
    content: str | None = None,
    calls: list[tuple[str, str, str]] | None = None,
    *,
    finish_reason: str | None = None,
    usage: tuple[int, int] = (10, 5),
    reasoning: str | None = None,
) -> ChatCompletion:
    """A completion as a server would send it; ``calls`` are (id, name, arguments)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in calls
        ]
    if finish_reason is None:
        finish_reason = "tool_calls" if calls else "stop"
    prompt, completion_tokens = usage
    return ChatCompletion.model_validate(
        {
            "id": "c",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens,
            },
        }
    )


seen: list[dict[str, Any]] = []


@tool
def get_weather(city: str, days: int = 1) -> str:
    """Get the weather.

    Args:
        city: The city.
        days: Days ahead.
    """
    seen.append({"city": city, "days": days})
    return f"sunny in {city}"


@tool
def lookup(ctx: RunContext[dict[str, str]], key: str) -> str:
    """Look a key up in the run's dependencies."""
    return ctx.deps[key]


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


def new_loop(*tools: Any, **options: Any) -> RunLoop:
    deps = options.pop("deps", None)
    settings_ = LoopSettings("qwen-plus", tools or (get_weather,), **options)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    return RunLoop(settings_, messages, deps=deps)


def run_round(loop: RunLoop, reply: ChatCompletion) -> RunTools:
    loop.next_request()
    step = loop.on_response(reply)
    assert isinstance(step, RunTools)
    return step


def run_planned(call: PlannedCall) -> ToolOutcome:
    """What a driver does with one planned call, minus threads and clocks."""
    if not call.runs:
        return ToolOutcome.not_run(call)
    try:
        return ToolOutcome.ok(call, call.invoke())
    except Exception as exc:
        return ToolOutcome.failed(call, exc)


# --- the basic run ------------------------------------------------------------------------


def test_two_round_run_sends_tools_every_round_and_appends_tool_messages() -> None:
    loop = new_loop(params={"temperature": 0.2})
    first = loop.next_request()
    assert first["model"] == "qwen-plus"
    assert first["temperature"] == 0.2
    assert first["tools"] == [get_weather.to_openai()]
    assert first["messages"] is loop.messages

    step = loop.on_response(completion(calls=[("call_1", "get_weather", '{"city": "Paris"}')]))
    assert isinstance(step, RunTools)
    (call,) = step.calls
    assert call.runs and call.kwargs == {"city": "Paris"} and call.tool is get_weather
    assert step.round.turn == 1 and step.round.finish_reason == "tool_calls"
    loop.on_tool_outcomes([run_planned(call)])
    assert loop.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "get_weather",
        "content": "sunny in Paris",
    }

    second = loop.next_request()
    # The tool list is derived once per agent: the very same object every round.
    assert second["tools"] is first["tools"]
    done = loop.on_response(completion("It is sunny.", usage=(30, 7)))
    assert isinstance(done, Finished)
    result = done.result
    assert result.output == "It is sunny."
    assert result.turns == 2
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (40, 12)
    assert result.usage.total_tokens == 52
    assert result.messages[0]["role"] == "system"
    assert result.messages[-1] == {"role": "assistant", "content": "It is sunny."}
    assert_resendable(result.messages)
    assert loop.done


def test_assistant_message_with_null_content_goes_back_as_empty_string() -> None:
    loop = new_loop()
    step = run_round(loop, completion(None, [("a", "get_weather", '{"city": "X"}')]))
    assert loop.messages[-1]["content"] == ""
    assert loop.messages[-1]["tool_calls"][0]["id"] == "a"
    loop.on_tool_outcomes([run_planned(c) for c in step.calls])


def test_calls_without_ids_get_the_same_id_in_the_turn_and_the_tool_message() -> None:
    loop = new_loop()
    step = run_round(
        loop,
        completion(
            calls=[("", "get_weather", '{"city": "A"}'), ("", "get_weather", '{"city": "B"}')]
        ),
    )
    loop.on_tool_outcomes([run_planned(c) for c in step.calls])
    ids = [call["id"] for call in loop.messages[-3]["tool_calls"]]
    assert len(set(ids)) == 2 and all(ids)
    assert [c.call_id for c in step.calls] == ids
    assert_resendable(loop.messages)


def test_agent_without_tools_sends_no_tools_key() -> None:
    loop = RunLoop(LoopSettings("m"), [{"role": "user", "content": "hi"}])
    assert "tools" not in loop.next_request()


def test_steps_out_of_order_are_a_driver_bug() -> None:
    loop = new_loop()
    with pytest.raises(RuntimeError):
        loop.on_response(completion("x"))
    loop.next_request()
    with pytest.raises(RuntimeError):
        loop.next_request()


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        LoopSettings("m", (get_weather, get_weather))
    with pytest.raises(ConfigurationError):
        LoopSettings("m", max_turns=0)
    with pytest.raises(ConfigurationError):
        LoopSettings("m", tool_timeout=0)


# --- calls that fail ------------------------------------------------------------------------


def test_outcomes_are_appended_in_call_order_whatever_order_they_come_in() -> None:
    loop = new_loop()
    step = run_round(
        loop,
        completion(
            calls=[
                ("a", "get_weather", '{"city": "A"}'),
                ("b", "get_weather", '{"city": "B"}'),
                ("c", "get_weather", '{"city": "C"}'),
            ]
        ),
    )
    outcomes = [run_planned(c) for c in step.calls]
    loop.on_tool_outcomes(reversed(outcomes))
    assert [m["tool_call_id"] for m in loop.messages[-3:]] == ["a", "b", "c"]
    assert [m["content"] for m in loop.messages[-3:]] == [
        "sunny in A",
        "sunny in B",
        "sunny in C",
    ]


def test_unknown_tool_bad_json_and_invalid_arguments_are_told_and_never_run() -> None:
    seen.clear()
    loop = new_loop()
    step = run_round(
        loop,
        completion(
            calls=[
                ("a", "get_wether", '{"city": "A"}'),
                ("b", "get_weather", '{"city": "B"'),
                ("c", "get_weather", '{"city": "C", "days": "many"}'),
                ("d", "get_weather", '{"town": "D"}'),
            ]
        ),
    )
    assert [c.kind for c in step.calls] == [
        "unknown_tool",
        "invalid_arguments",
        "invalid_arguments",
        "invalid_arguments",
    ]
    assert not any(c.runs for c in step.calls)
    loop.on_tool_outcomes([run_planned(c) for c in step.calls])
    assert seen == []  # the function never saw invalid arguments
    unknown, bad_json, bad_days, missing_city = (m["content"] for m in loop.messages[-4:])
    assert "get_wether" in unknown and "get_weather" in unknown  # names the available tools
    assert "json" in bad_json.lower()
    assert "days" in bad_days
    assert "city" in missing_city and "town" in missing_city
    assert_resendable(loop.messages)


def test_exceptions_retries_and_timeouts_become_model_messages() -> None:
    loop = new_loop()
    step = run_round(
        loop,
        completion(
            calls=[
                ("a", "get_weather", '{"city": "A"}'),
                ("b", "get_weather", '{"city": "B"}'),
                ("c", "get_weather", '{"city": "C"}'),
            ]
        ),
    )
    a, b, c = step.calls
    results = [
        loop.settle(ToolOutcome.failed(a, ValueError("no such city"), 0.01)),
        loop.settle(ToolOutcome.failed(b, ToolRetry("use the full city name"))),
        loop.settle(ToolOutcome.timed_out(c, 2.5)),
    ]
    assert results[0].output == "tool get_weather failed: ValueError: no such city"
    assert "Traceback" not in results[0].output
    assert results[0].duration == 0.01
    assert results[1].output == "use the full city name"
    assert results[2].output == "tool get_weather timed out after 2.5 s"
    assert all(r.error for r in results)


def test_tool_output_rendering() -> None:
    class Point(BaseModel):
        x: int
        y: int

    assert render_tool_output("t", "plain text") == ("plain text", None)
    assert render_tool_output("t", {"a": [1, 2]}) == ('{"a":[1,2]}', None)
    assert render_tool_output("t", Point(x=1, y=2)) == ('{"x":1,"y":2}', None)
    assert render_tool_output("t", None) == ("null", None)
    text, error = render_tool_output("t", object())
    assert error is not None and "object" in text and "JSON" in text


def test_unserialisable_return_value_counts_as_a_failure() -> None:
    loop = new_loop(max_tool_failures=1)
    step = run_round(loop, completion(calls=[("a", "get_weather", '{"city": "A"}')]))
    with pytest.raises(ToolFailureLimitExceededError) as caught:
        loop.on_tool_outcomes([ToolOutcome.ok(step.calls[0], {1, object()})])
    assert "cannot be turned into JSON" in loop.messages[-1]["content"]
    assert caught.value.messages is loop.messages
    assert_resendable(loop.messages)


def test_tool_output_is_capped_with_a_note() -> None:
    loop = new_loop(max_tool_output_chars=100)
    step = run_round(loop, completion(calls=[("a", "get_weather", '{"city": "A"}')]))
    loop.on_tool_outcomes([ToolOutcome.ok(step.calls[0], "x" * 5000)])
    content = loop.messages[-1]["content"]
    assert content.startswith("x" * 100)
    assert len(content) < 200
    assert "output cut" in content and "5000" in content


def test_consecutive_failures_end_the_run_with_a_whole_transcript() -> None:
    loop = new_loop(max_tool_failures=3)
    for round_number in range(3):
        step = run_round(
            loop,
            completion(calls=[(f"c{round_number}", "get_weather", f'{{"city": {round_number}}}')]),
        )
        outcomes = [ToolOutcome.failed(step.calls[0], RuntimeError("down"))]
        if round_number < 2:
            loop.on_tool_outcomes(outcomes)
        else:
            with pytest.raises(ToolFailureLimitExceededError) as caught:
                loop.on_tool_outcomes(outcomes)
    error = caught.value
    assert error.tool_name == "get_weather"
    assert "3" in str(error) and "down" in str(error)
    assert error.messages is not None
    assert_resendable(error.messages)
    assert sum(1 for m in error.messages if m["role"] == "tool") == 3


def test_a_success_resets_the_failure_count() -> None:
    loop = new_loop(max_tool_failures=2)
    for index, ok in enumerate([False, True, False, True, False]):
        step = run_round(
            loop, completion(calls=[(f"c{index}", "get_weather", f'{{"city": "{index}"}}')])
        )
        call = step.calls[0]
        loop.on_tool_outcomes(
            [ToolOutcome.ok(call, "fine") if ok else ToolOutcome.failed(call, OSError("x"))]
        )
    assert not loop.done


def test_parallel_failures_of_one_tool_count_once_per_round() -> None:
    loop = new_loop(max_tool_failures=2)
    step = run_round(
        loop,
        completion(calls=[(str(i), "get_weather", f'{{"city": "{i}"}}') for i in range(5)]),
    )
    # Five failing calls in one round: one failure round, not five.
    loop.on_tool_outcomes([ToolOutcome.failed(c, OSError("x")) for c in step.calls])
    assert not loop.done
    loop.next_request()
    assert isinstance(loop.on_response(completion("giving up")), Finished)


# --- repeated calls -----------------------------------------------------------------------


def test_repeated_identical_calls_are_told_then_stopped() -> None:
    seen.clear()
    loop = new_loop(max_repeated_calls=2)
    # Same call, arguments written differently: still the same call.
    spellings = [
        '{"city": "Paris", "days": 2}',
        '{"days": 2, "city": "Paris"}',
        '{ "city":"Paris","days":2 }',
    ]
    for index, arguments in enumerate(spellings):
        step = run_round(loop, completion(calls=[(f"c{index}", "get_weather", arguments)]))
        (call,) = step.calls
        assert call.kind == ("run" if index == 0 else "repeated")
        loop.on_tool_outcomes([run_planned(call)])
        if index:
            assert "already called get_weather" in loop.messages[-1]["content"]
    assert len(seen) == 1  # it ran once
    loop.next_request()
    with pytest.raises(RepeatedToolCallError) as caught:
        loop.on_response(completion(calls=[("c9", "get_weather", spellings[0])]))
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)
    assert caught.value.messages[-1]["tool_call_id"] == "c9"


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.fixed_dictionaries({"city": st.text(max_size=8), "days": st.integers(-5, 5)}),
    second=st.fixed_dictionaries({"city": st.text(max_size=8), "days": st.integers(-5, 5)}),
    reorder=st.booleans(),
    spacing=st.sampled_from([None, 1, 2]),
)
def test_a_repeat_is_the_same_json_however_it_is_written(
    first: dict[str, Any], second: dict[str, Any], reorder: bool, spacing: int | None
) -> None:
    loop = new_loop(max_repeated_calls=2)
    step = run_round(loop, completion(calls=[("c0", "get_weather", json.dumps(first))]))
    loop.on_tool_outcomes([run_planned(step.calls[0])])
    # The next round calls the same tool twice: once with the first call's arguments
    # written another way, once with arguments that may or may not be the same.
    respelled = dict(reversed(first.items())) if reorder else first
    step = run_round(
        loop,
        completion(
            calls=[
                ("c1", "get_weather", json.dumps(respelled, indent=spacing)),
                ("c2", "get_weather", json.dumps(second, indent=spacing)),
            ]
        ),
    )
    assert [call.kind for call in step.calls] == [
        "repeated",
        "repeated" if second == first else "run",
    ]


def test_a_failed_call_may_be_retried_with_the_same_arguments() -> None:
    loop = new_loop()
    for index in range(2):
        step = run_round(loop, completion(calls=[(f"c{index}", "get_weather", '{"city": "P"}')]))
        assert step.calls[0].runs
        loop.on_tool_outcomes([ToolOutcome.failed(step.calls[0], OSError("flaky"))])


def test_different_arguments_are_not_a_repeat() -> None:
    loop = new_loop(max_repeated_calls=0)
    for index in range(4):
        step = run_round(
            loop, completion(calls=[(f"c{index}", "get_weather", f'{{"city": "{index}"}}')])
        )
        assert step.calls[0].runs
        loop.on_tool_outcomes([run_planned(step.calls[0])])


# --- limits -------------------------------------------------------------------------------


def test_max_turns_raises_with_the_transcript() -> None:
    loop = new_loop(max_turns=3)
    for index in range(3):
        step = run_round(
            loop, completion(calls=[(f"c{index}", "get_weather", f'{{"city": "{index}"}}')])
        )
        loop.on_tool_outcomes([run_planned(step.calls[0])])
    with pytest.raises(MaxTurnsExceededError) as caught:
        loop.next_request()
    assert loop.turns == 3
    assert caught.value.messages is loop.messages
    assert_resendable(loop.messages)
    assert sum(1 for m in loop.messages if m["role"] == "tool") == 3


def test_tool_call_cap_refuses_then_stops_a_runaway_model() -> None:
    seen.clear()
    loop = new_loop(max_tool_calls=2)
    step = run_round(
        loop,
        completion(calls=[(str(i), "get_weather", f'{{"city": "{i}"}}') for i in range(3)]),
    )
    assert [c.kind for c in step.calls] == ["run", "run", "limit"]
    loop.on_tool_outcomes([run_planned(c) for c in step.calls])
    assert len(seen) == 2
    assert "limit of 2 tool calls" in loop.messages[-1]["content"]
    # The model is asked to answer without tools...
    assert loop.next_request()["tool_choice"] == "none"
    # ...and a model that keeps asking ends the run.
    with pytest.raises(ToolCallLimitExceededError) as caught:
        loop.on_response(completion(calls=[("x", "get_weather", '{"city": "x"}')]))
    assert len(seen) == 2
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)


def test_length_finish_is_an_error_not_an_answer() -> None:
    loop = new_loop()
    loop.next_request()
    before = list(loop.messages)
    with pytest.raises(OutputTruncatedError) as caught:
        loop.on_response(completion("The answer is", finish_reason="length"))
    assert "max_tokens" in str(caught.value)
    assert caught.value.messages == before  # resendable: the cut answer is not in it


def test_length_finish_can_be_accepted_as_a_partial_answer() -> None:
    loop = new_loop(on_truncated="return")
    loop.next_request()
    step = loop.on_response(completion("The answer is", finish_reason="length"))
    assert isinstance(step, Finished)
    assert step.result.output == "The answer is"
    assert step.result.truncated is True


def test_length_finish_with_tool_calls_always_raises() -> None:
    loop = new_loop(on_truncated="return")
    loop.next_request()
    with pytest.raises(OutputTruncatedError) as caught:
        loop.on_response(
            completion(calls=[("a", "get_weather", '{"city": "Pa')], finish_reason="length")
        )
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)


# --- approval, context, interruption --------------------------------------------------------


def test_refused_approval_is_told_and_counts_as_a_failure() -> None:
    loop = new_loop(refund, max_tool_failures=2)
    for index in range(2):
        step = run_round(loop, completion(calls=[(f"r{index}", "refund", '{"order_id": 7}')]))
        (call,) = step.calls
        assert call.needs_approval and call.runs
        outcome = ToolOutcome.refused(call, None if index == 0 else "over the limit")
        if index == 0:
            loop.on_tool_outcomes([outcome])
            assert "did not approve it. It was not run" in loop.messages[-1]["content"]
        else:
            with pytest.raises(ToolFailureLimitExceededError):
                loop.on_tool_outcomes([outcome])
            assert "did not approve it: over the limit" in loop.messages[-1]["content"]


def test_context_is_built_for_tools_that_declare_it() -> None:
    loop = new_loop(lookup, get_weather, deps={"colour": "green"})
    step = run_round(
        loop,
        completion(
            calls=[("a", "lookup", '{"key": "colour"}'), ("b", "get_weather", '{"city": "x"}')]
        ),
    )
    context = step.calls[0].context
    assert context is not None
    assert context.deps == {"colour": "green"}
    assert context.turn == 1
    assert context.usage.total_tokens == 15
    assert context.messages is loop.messages
    assert step.calls[1].context is None
    assert step.calls[0].invoke() == "green"


def test_interrupt_fills_missing_tool_messages_with_cancelled() -> None:
    loop = new_loop()
    step = run_round(
        loop,
        completion(
            calls=[("a", "get_weather", '{"city": "A"}'), ("b", "get_weather", '{"city": "B"}')]
        ),
    )
    messages = loop.interrupt([run_planned(step.calls[0])])
    assert messages[-2]["content"] == "sunny in A"
    assert "cancelled" in messages[-1]["content"]
    assert_resendable(messages)
    assert loop.interrupt() is messages  # idempotent
    assert loop.done


def test_fail_attaches_the_transcript_to_any_exception() -> None:
    loop = new_loop()
    run_round(loop, completion(calls=[("a", "get_weather", '{"city": "A"}')]))
    error = loop.fail(KeyboardInterrupt())
    assert_resendable(error.messages)  # type: ignore[attr-defined]
    assert error.messages[-1]["tool_call_id"] == "a"  # type: ignore[attr-defined]


# --- streaming decisions ------------------------------------------------------------------


def test_stream_refusal_decision() -> None:
    loop = new_loop()
    request = loop.next_request()
    assert loop.wants_stream(request)
    refusal = BadRequestError("tools are not supported with stream", status=400)
    assert not loop.stream_refused(request, refusal, yielded_any=True)
    assert not loop.stream_refused({"model": "m"}, refusal, yielded_any=False)
    assert not loop.stream_refused(request, RuntimeError("x"), yielded_any=False)
    too_long = BadRequestError("Range of input length should be [1, 129024]", status=400)
    assert not loop.stream_refused(request, too_long, yielded_any=False)
    named = BadRequestError("not supported", status=400, param="stream")
    assert loop.stream_refused(request, named, yielded_any=False)
    loop.tools_with_stream = True
    assert loop.wants_stream(request)
    assert loop.stream_refused(request, IncompleteStreamError("empty"), yielded_any=False)
    assert not loop.wants_stream(request)  # for the rest of the run
    assert loop.wants_stream({"model": "m"})


def test_completion_deltas_for_a_round_that_was_not_streamed() -> None:
    reply = completion("Hello", [("a", "get_weather", '{"city": "A"}')], reasoning="thinking")
    assert completion_deltas(reply) == [
        ReasoningDelta("thinking"),
        TextDelta("Hello"),
        ToolCallArgumentsDelta(0, "a", "get_weather", '{"city": "A"}'),
    ]


# --- structured output ----------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int


def test_structured_output_through_response_format() -> None:
    loop = new_loop(output_type=City, output_mode="json_schema", max_output_retries=1)
    request = loop.next_request()
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == City.model_json_schema()
    step = loop.on_response(completion('{"name": "Paris"}'))
    assert isinstance(step, RunTools) and step.calls == []
    assert loop.messages[-1]["role"] == "user" and "population" in loop.messages[-1]["content"]
    loop.on_tool_outcomes([])
    loop.next_request()
    done = loop.on_response(completion('```json\n{"name": "Paris", "population": 2100000}\n```'))
    assert isinstance(done, Finished)
    assert done.result.output == City(name="Paris", population=2100000)


def test_structured_output_retries_are_bounded() -> None:
    loop = new_loop(output_type=City, output_mode="json_schema", max_output_retries=1)
    loop.next_request()
    loop.on_response(completion("not json"))
    loop.on_tool_outcomes([])
    loop.next_request()
    with pytest.raises(OutputValidationError) as caught:
        loop.on_response(completion('{"name": 1}'))
    assert caught.value.messages is not None
    assert_resendable(caught.value.messages)


def test_structured_output_through_a_final_result_tool() -> None:
    loop = new_loop(output_type=City, output_mode="tool")
    request = loop.next_request()
    assert "response_format" not in request
    names = [t["function"]["name"] for t in request["tools"]]
    assert names == ["get_weather", FINAL_RESULT_TOOL]
    step = loop.on_response(
        completion(
            calls=[
                ("a", "get_weather", '{"city": "Paris"}'),
                ("b", FINAL_RESULT_TOOL, '{"name": "Paris"}'),
            ]
        )
    )
    assert isinstance(step, RunTools)
    assert step.calls[0].runs
    assert step.calls[1].kind == "output" and "population" in (step.calls[1].ready or "")
    loop.on_tool_outcomes([run_planned(c) for c in step.calls])
    loop.next_request()
    done = loop.on_response(
        completion(
            calls=[
                ("c", FINAL_RESULT_TOOL, '{"name": "Paris", "population": 3}'),
                ("d", "get_weather", '{"city": "Rome"}'),
            ]
        )
    )
    assert isinstance(done, Finished)
    assert done.result.output == City(name="Paris", population=3)
    assert_resendable(done.result.messages)
    assert done.result.messages[-1]["content"].startswith("Not run")


def test_final_result_among_calls_without_ids_keeps_the_transcript_whole() -> None:
    loop = new_loop(output_type=City, output_mode="tool")
    loop.next_request()
    done = loop.on_response(
        completion(
            calls=[
                ("", "get_weather", '{"city": "Rome"}'),
                ("", FINAL_RESULT_TOOL, '{"name": "Rome", "population": 3}'),
            ]
        )
    )
    assert isinstance(done, Finished)
    assert_resendable(done.result.messages)
    assert done.result.messages[-1]["content"] == "Final result accepted."


def test_final_result_tool_asks_again_when_the_model_answers_in_text() -> None:
    loop = new_loop(output_type=City, output_mode="tool", max_output_retries=1)
    loop.next_request()
    step = loop.on_response(completion("Paris, about two million"))
    assert isinstance(step, RunTools) and step.calls == []
    assert FINAL_RESULT_TOOL in loop.messages[-1]["content"]
    loop.on_tool_outcomes([])
    loop.next_request()
    with pytest.raises(OutputValidationError):
        loop.on_response(completion("still text"))


# --- any model input: a call or a message, never a crash -------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    arguments=json_values.map(json.dumps) | st.text(max_size=30),
    name=st.sampled_from(["get_weather", "lookup", "nope", ""]),
)
def test_any_arguments_give_a_valid_call_or_a_message(arguments: str, name: str) -> None:
    seen.clear()
    loop = new_loop(get_weather, lookup, deps={})
    step = run_round(loop, completion(calls=[("a", name, arguments)]))
    (call,) = step.calls
    if call.runs:
        assert call.tool is not None and call.kwargs is not None
        assert set(call.kwargs) <= {"city", "days", "key"}
    else:
        assert call.ready
    loop.on_tool_outcomes([run_planned(call)])
    if name == "get_weather" and call.runs:
        assert isinstance(seen[0]["city"], str) and isinstance(seen[0]["days"], int)
    assert_resendable(loop.messages)
    loop.next_request()  # and the run can go on


def test_a_lazy_value_is_found_anywhere_without_being_read() -> None:
    from agentkit._tool import lazy_part

    endless = itertools.count()
    assert lazy_part({"a": [1, {"b": (2, endless)}]}) == "a[1].b[1]"
    assert lazy_part(endless) == ""
    assert lazy_part({"orders": {1, 2}, "n": None}) is None
    loop_: list[Any] = []
    loop_.extend([loop_, loop_])
    assert lazy_part(loop_) is None  # a cycle ends the walk; the serialiser names it
    deep: Any = endless
    for _ in range(5000):
        deep = [deep]
    assert lazy_part(deep) is None  # deeper than the serialiser reads
    assert next(endless) == 0  # nothing was drawn
    text, error = render_tool_output("t", {"rows": (x for x in range(3))})
    assert error == text and "at rows" in text
