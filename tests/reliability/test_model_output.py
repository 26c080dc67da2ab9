"""Untrusted model output: tool calls with bad arguments or unknown names, enormous
arguments, and a model that never stops calling tools. One test per row of
``docs/reliability.md``.

Bad calls go back to the model as the call's tool message (the function never sees them)
and the run goes on; a runaway model is stopped by a limit with a typed error.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from _helpers import assert_resendable

from agentkit import (
    MaxTurnsExceededError,
    RepeatedToolCallError,
    RunLimits,
    ToolCallLimitExceededError,
)
from agentkit.testing import RecordedRequest, Reply, ScriptedServer, always

from ._support import (
    Driver,
    assert_carries_transcript,
    run_expecting,
    run_with,
    tool_messages,
    weather_calls,
)

ANSWER = "Sorry, I could not get the weather."


def fed_back(
    server: ScriptedServer,
    driver: Driver,
    arguments: str,
    name: str = "get_weather",
    **options: Any,
) -> str:
    """Script one bad call then an answer; run; return the tool message the model got."""
    server.queue(Reply.tool_calls((name, arguments)), Reply.text(ANSWER))
    result = run_with(driver, server.base_url, **options)
    assert result.output == ANSWER
    assert_resendable(result.messages)
    assert server.request_count == 2
    told = server.requests[1].messages[-1]
    assert told["role"] == "tool" and told["tool_call_id"] == "call_1_0"
    assert tool_messages(result.messages) == [told]
    return str(told["content"])


NOT_JSON = {
    "cut_off": '{"city": "Par',
    "single_quotes": "{'city': 'Paris'}",
    "trailing_comma": '{"city": "Paris",}',
    "prose": "I will call the weather tool for Paris.",
    "python_call": "get_weather(city='Paris')",
}


@pytest.mark.parametrize("arguments", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_tool_arguments_not_json(server: ScriptedServer, driver: Driver, arguments: str) -> None:
    told = fed_back(server, driver, arguments)
    assert "not valid JSON" in told
    assert weather_calls == [], "the function never sees arguments that are not JSON"


WRONG_SHAPE = {
    "array": ("[1, 2]", ["JSON object"]),
    "string": ('"Paris"', ["JSON object"]),
    "null": ("null", ["JSON object"]),
    "wrong_type": ('{"city": 5}', ["city", "string"]),
    "missing_and_unknown": ('{"town": "Paris"}', ["town", "city", "missing"]),
    "bad_integer": ('{"city": "Paris", "days": "two"}', ["days", "integer"]),
    "boolean_for_integer": ('{"city": "Paris", "days": true}', ["days"]),
}


@pytest.mark.parametrize(("arguments", "named"), WRONG_SHAPE.values(), ids=WRONG_SHAPE.keys())
def test_tool_arguments_of_the_wrong_shape(
    server: ScriptedServer, driver: Driver, arguments: str, named: list[str]
) -> None:
    told = fed_back(server, driver, arguments)
    for word in named:
        assert word in told, f"the message names {word!r}: {told}"
    assert weather_calls == [], "the function never sees invalid arguments"


@pytest.mark.parametrize(
    "name", ["get_wether", "os.system", "x" * 100_000], ids=["typo", "dotted", "100k_chars"]
)
def test_tool_call_naming_an_unknown_tool(
    server: ScriptedServer, driver: Driver, name: str
) -> None:
    told = fed_back(server, driver, '{"city": "Paris"}', name=name)
    assert "Unknown tool" in told and "get_weather" in told  # the tools it may call
    assert len(told) < 1_000, "an enormous name is not echoed back whole"
    assert weather_calls == []


ENORMOUS = {
    "unknown_field_2mb": json.dumps({"city": "Paris", "junk": "y" * 2_000_000}),
    "huge_integer": json.dumps({"city": "Paris", "days": "9" * 200_000}),
    "deep_nesting": "[" * 200_000 + "]" * 200_000,
    "deep_object": '{"a":' * 50_000 + "1" + "}" * 50_000,
}


@pytest.mark.parametrize("arguments", ENORMOUS.values(), ids=ENORMOUS.keys())
def test_enormous_invalid_tool_arguments(
    server: ScriptedServer, driver: Driver, arguments: str
) -> None:
    told = fed_back(server, driver, arguments)
    assert len(told) < 2_000, "the message quotes a snippet, not megabytes"
    assert weather_calls == []


def test_enormous_valid_tool_arguments(server: ScriptedServer, driver: Driver) -> None:
    # 2 MB of a valid city: the tool runs, and what goes back is capped (32,000 by default)
    city = "P" * 2_000_000
    told = fed_back(server, driver, json.dumps({"city": city}))
    assert len(weather_calls) == 1 and weather_calls[0]["city"] == city
    assert told.startswith("sunny in PPP")
    assert len(told) <= 32_000 + 200 and "cut" in told


# --- a model that loops forever -------------------------------------------------------------


def test_model_loops_with_the_same_call(server: ScriptedServer, driver: Driver) -> None:
    # Qwen's known loop: the same call, round after round. It runs once; the repeats are
    # told the result stands; then the run stops.
    server.respond_with(always(Reply.tool_calls(("get_weather", {"city": "Paris"}))))
    error = run_expecting(
        RepeatedToolCallError,
        driver,
        server.base_url,
        limits=RunLimits(max_repeated_calls=2, max_turns=50),
    )
    messages = assert_carries_transcript(error)
    assert weather_calls == [{"city": "Paris", "days": 1}]
    assert server.request_count == 4  # ran once, told twice, stopped on the fourth
    told = [m["content"] for m in tool_messages(messages)]
    assert told[0].startswith("sunny in Paris")
    assert all("Not run" in text for text in told[1:])


def _new_city_each_round() -> Any:
    counter = itertools.count(1)

    def handler(request: RecordedRequest) -> Reply:
        return Reply.tool_calls(("get_weather", {"city": f"Town {next(counter)}"}))

    return handler


def test_model_loops_with_new_calls_until_max_turns(server: ScriptedServer, driver: Driver) -> None:
    server.respond_with(_new_city_each_round())
    error = run_expecting(
        MaxTurnsExceededError, driver, server.base_url, limits=RunLimits(max_turns=4)
    )
    messages = assert_carries_transcript(error)
    assert server.request_count == 4, "max_turns bounds the model calls exactly"
    assert len(weather_calls) == 4
    assert len(tool_messages(messages)) == 4, "each round's tool result is kept"


def test_model_floods_tool_calls_past_the_per_run_cap(
    server: ScriptedServer, driver: Driver
) -> None:
    # five new calls a round; the cap of 8 lets 8 run, tells the model to answer (and
    # sends tool_choice "none"), and ends the run when it asks for more anyway
    counter = itertools.count(1)

    def flood(request: RecordedRequest) -> Reply:
        calls = [("get_weather", {"city": f"Town {next(counter)}"}) for _ in range(5)]
        return Reply.tool_calls(*calls)

    server.respond_with(flood)
    error = run_expecting(
        ToolCallLimitExceededError,
        driver,
        server.base_url,
        limits=RunLimits(max_tool_calls=8, max_turns=50),
    )
    messages = assert_carries_transcript(error)
    assert len(weather_calls) == 8, "no call past the cap ran"
    assert server.request_count == 3
    assert server.requests[2].json().get("tool_choice") == "none"
    told = [m["content"] for m in tool_messages(messages)]
    assert sum("limit of 8 tool calls" in text for text in told) >= 2
