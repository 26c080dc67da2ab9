"""Tools that misbehave: one that raises, one that hangs past its timeout, one that returns
what JSON cannot hold. One test per row of ``docs/reliability.md``.

The failure goes back to the model as the call's message (no traceback) and the run
finishes; the caller's code is never interrupted by a tool's exception.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import assert_resendable
from pydantic import BaseModel, ConfigDict

from agentkit import RunLimits, Tool, tool
from agentkit.testing import Reply, ScriptedServer

from ._support import Driver, run_with, tool_messages

ANSWER = "The forecast service is down."


def run_tool_round(
    server: ScriptedServer, driver: Driver, forecast: Tool[..., Any], **options: Any
) -> str:
    """The model calls ``forecast`` (twice in parallel, with ``get_weather``-free tools)
    then answers; returns the message the model got for the first call."""
    server.queue(
        Reply.tool_calls(("forecast", {"city": "Paris"}), ("echo", {"text": "still here"})),
        Reply.text(ANSWER),
    )
    result = run_with(driver, server.base_url, tools=(forecast, echo), **options)
    assert result.output == ANSWER
    assert_resendable(result.messages)
    told = tool_messages(server.requests[1].messages)
    assert [m["name"] for m in told] == ["forecast", "echo"]
    assert told[1]["content"] == "still here", "a failing call does not spoil its neighbour"
    return str(told[0]["content"])


# Its own timeout wins over a run's tool_timeout: a loaded machine can take longer than the
# 0.3 s the hang tests give the forecast just to start this call's thread.
@tool(timeout=60.0)
def echo(text: str) -> str:
    """Repeat the text."""
    return text


# --- a tool that raises ---------------------------------------------------------------------


class ForecastDown(RuntimeError):
    pass


@tool(name="forecast")
def raising_forecast(city: str) -> str:
    """The forecast."""
    raise ForecastDown(f"no forecast for {city}: upstream returned 503")


@tool(name="forecast")
async def raising_forecast_async(city: str) -> str:
    """The forecast."""
    await asyncio.sleep(0)
    raise ForecastDown(f"no forecast for {city}: upstream returned 503")


@pytest.mark.parametrize(
    "forecast", [raising_forecast, raising_forecast_async], ids=["sync_tool", "async_tool"]
)
def test_tool_that_raises(server: ScriptedServer, driver: Driver, forecast: Tool[..., Any]) -> None:
    told = run_tool_round(server, driver, forecast)
    assert "ForecastDown" in told and "no forecast for Paris: upstream returned 503" in told
    assert "Traceback" not in told and 'File "' not in told, "a message, not a traceback"


# --- a tool that hangs ----------------------------------------------------------------------

# A hung tool outlasts the test's own timeout (pytest's), so only the tool timeout under test
# can end the round: said by order, not by a clock.
HUNG = 600.0
_release = threading.Event()
_async_tool_cancelled: list[bool] = []


@pytest.fixture(autouse=True)
def _release_hung_threads() -> Iterator[None]:
    """A sync tool in a thread cannot be stopped: let it go at the end of each test."""
    _release.clear()
    _async_tool_cancelled.clear()
    yield
    _release.set()


@tool(name="forecast", timeout=0.3)
def hanging_forecast(city: str) -> str:
    """The forecast."""
    _release.wait(HUNG)
    return "too late"


@tool(name="forecast", timeout=0.3)
async def hanging_forecast_async(city: str) -> str:
    """The forecast."""
    try:
        await asyncio.sleep(HUNG)
    except asyncio.CancelledError:
        _async_tool_cancelled.append(True)
        raise
    return "too late"


@tool(name="forecast")
def hanging_forecast_no_own_timeout(city: str) -> str:
    """The forecast."""
    _release.wait(HUNG)
    return "too late"


@pytest.mark.parametrize(
    ("forecast", "options"),
    [
        (hanging_forecast, {}),
        (hanging_forecast_async, {}),
        (hanging_forecast_no_own_timeout, {"limits": RunLimits(tool_timeout=0.3)}),
    ],
    ids=["sync_tool", "async_tool", "agent_tool_timeout"],
)
def test_tool_that_hangs_past_its_timeout(
    server: ScriptedServer, driver: Driver, forecast: Tool[..., Any], options: dict[str, Any]
) -> None:
    told = run_tool_round(server, driver, forecast, **options)
    assert "timed out after 0.3 s" in told
    if forecast is hanging_forecast_async:
        assert _async_tool_cancelled == [True], "the abandoned coroutine was cancelled"


# --- a tool whose result JSON cannot hold ---------------------------------------------------


class Opaque:
    """An object with no JSON form."""


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


UNSERIALISABLE: dict[str, Any] = {
    "plain_object": Opaque(),
    "object_in_a_dict": {"when": "now", "lock": threading.Lock()},
    "circular_list": _circular(),
    "bytes_not_utf8": b"\xff\xfe binary",
}


@pytest.mark.parametrize("value", UNSERIALISABLE.values(), ids=UNSERIALISABLE.keys())
def test_tool_returns_a_non_json_serialisable_object(
    server: ScriptedServer, driver: Driver, value: Any
) -> None:
    @tool(name="forecast")
    def forecast(city: str) -> Any:
        """The forecast."""
        return value

    told = run_tool_round(server, driver, forecast)
    assert "cannot be turned into JSON" in told
    assert type(value).__name__ in told


# --- a lazy value nested in a result --------------------------------------------------------


class _Counted:
    """A generator that counts the items anything drew from it."""

    def __init__(self, endless: bool = False) -> None:
        self.drawn = 0
        self.endless = endless

    def __iter__(self) -> Iterator[int]:
        while self.endless or self.drawn < 3:
            self.drawn += 1
            yield self.drawn


class _Orders(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    orders: Any


def _nested(kind: str, lazy: Any) -> Any:
    return {
        "dict": {"orders": lazy},
        "list": [1, {"items": [2, lazy]}],
        "tuple": ("a", (lazy,)),
        "model": _Orders(orders=lazy),
        "dataclass": _Box(lazy),
    }[kind]


@dataclasses.dataclass
class _Box:
    inner: Any


@pytest.mark.parametrize("kind", ["dict", "list", "tuple", "model", "dataclass"])
def test_a_nested_generator_is_refused_without_being_read(
    server: ScriptedServer, driver: Driver, kind: str
) -> None:
    # An endless generator inside the result: drained, it would fill the memory.
    counted = _Counted(endless=True)
    lazy = iter(counted)

    @tool(name="forecast")
    def forecast(city: str) -> Any:
        """The forecast."""
        return _nested(kind, lazy)

    told = run_tool_round(server, driver, forecast)
    assert "generator or iterator" in told and "not read" in told
    assert counted.drawn == 0


def test_a_finite_nested_generator_is_not_drained(server: ScriptedServer, driver: Driver) -> None:
    counted = _Counted()

    @tool(name="forecast")
    def forecast(city: str) -> Any:
        """The forecast."""
        return {"orders": iter(counted), "city": city}

    told = run_tool_round(server, driver, forecast)
    assert counted.drawn == 0
    assert "orders" in told and "generator or iterator" in told


def test_surrogates_in_a_results_keys_are_replaced_not_the_result(
    server: ScriptedServer, driver: Driver
) -> None:
    @tool(name="forecast")
    def forecast(city: str) -> Any:
        """The forecast."""
        return {"file_\udcff.txt": "sunny", "city": city, "note": "bad \ud800 byte"}

    told = run_tool_round(server, driver, forecast)
    assert json.loads(told) == {
        "file_\ufffd.txt": "sunny",
        "city": "Paris",
        "note": "bad \ufffd byte",
    }
