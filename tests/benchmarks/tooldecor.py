"""``@tool`` on a 10-parameter function: the one-time cost and the per-call cost.

- Decoration: deriving the name, description, JSON Schema and validator from the signature
  and a Google docstring, once per function. Peers doing the same job are timed beside it.
- Validation: ``Tool.validate_json`` on a model's argument JSON, per call. The floor is a
  hand-written pydantic model with the same fields, ``model_validate_json`` on the same
  text: the least a pydantic-based validator can cost.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .contenders import Skip, _require


class Unit(enum.Enum):
    """Temperature units."""

    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def search_flights(
    origin: str,
    destination: str,
    departure: dt.date,
    passengers: Annotated[int, Field(ge=1, le=9)] = 1,
    cabin: Literal["economy", "premium", "business", "first"] = "economy",
    max_price: float | None = None,
    airlines: list[str] | None = None,
    direct_only: bool = False,
    unit: Unit = Unit.CELSIUS,
    flexible_days: int = 0,
) -> str:
    """Search flights between two airports.

    Args:
        origin: IATA code of the departure airport, e.g. "HGH".
        destination: IATA code of the arrival airport, e.g. "SIN".
        departure: The departure date.
        passengers: How many travellers, 1 to 9.
        cabin: The cabin class.
        max_price: The highest fare in US dollars, or no limit.
        airlines: Only these airlines, by IATA code.
        direct_only: Only flights without a stop.
        unit: The unit for the weather at the destination.
        flexible_days: Also search this many days either side.
    """
    return "no flights"


ARGUMENTS = json.dumps(
    {
        "origin": "HGH",
        "destination": "SIN",
        "departure": "2025-03-01",
        "passengers": 2,
        "cabin": "business",
        "max_price": 1200.5,
        "airlines": ["SQ", "CA", "MU"],
        "direct_only": True,
        "unit": "celsius",
        "flexible_days": 2,
    }
)
"""The argument JSON a model would send, every parameter given."""


class _FloorArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    origin: str
    destination: str
    departure: dt.date
    passengers: Annotated[int, Field(ge=1, le=9)] = 1
    cabin: Literal["economy", "premium", "business", "first"] = "economy"
    max_price: float | None = None
    airlines: list[str] | None = None
    direct_only: bool = False
    unit: Unit = Unit.CELSIUS
    flexible_days: int = 0


def _agentkit_tool(function: Callable[..., Any]) -> Any:
    from agentkit import tool

    return tool(function)


def _openai_agents_tool(function: Callable[..., Any]) -> Any:
    _require("agents", "openai-agents")
    from agents import function_tool

    return function_tool(function)


def _pydantic_ai_tool(function: Callable[..., Any]) -> Any:
    _require("pydantic_ai", "pydantic-ai-slim[openai]")
    from pydantic_ai import Tool

    return Tool(function)


def _langchain_tool(function: Callable[..., Any]) -> Any:
    _require("langchain_core", "langchain-openai")
    from langchain_core.tools import tool

    built = tool(function, parse_docstring=True)
    _ = built.tool_call_schema  # LangChain builds the schema model lazily; make it do it
    return built


DECORATORS: tuple[tuple[str, Callable[[Callable[..., Any]], Any]], ...] = (
    ("agentkit @tool", _agentkit_tool),
    ("openai-agents @function_tool", _openai_agents_tool),
    ("pydantic-ai Tool(...)", _pydantic_ai_tool),
    ("LangChain @tool", _langchain_tool),
)


def _median_us(action: Callable[[], Any], repeats: int, inner: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(inner):
            action()
        samples.append((time.perf_counter_ns() - start) / inner / 1e3)
    return samples


def measure_decoration(repeats: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Per decorator, samples (us) of decorating the 10-parameter function; and skips."""
    ready: dict[str, Callable[[], Any]] = {}
    skipped: dict[str, str] = {}
    for label, decorate in DECORATORS:
        try:
            decorate(search_flights)  # warm up: imports, pydantic's first schema
        except Skip as reason:
            skipped[label] = str(reason)
            continue
        ready[label] = functools.partial(decorate, search_flights)
    samples: dict[str, list[float]] = {label: [] for label in ready}
    for _ in range(repeats):
        for label, action in ready.items():
            samples[label] += _median_us(action, 1, 5)
    return samples, skipped


def measure_validation(repeats: int) -> dict[str, list[float]]:
    """Samples (us per call) of validating ``ARGUMENTS``: agentkit and the pydantic floor."""
    decorated = _agentkit_tool(search_flights)
    expected = _FloorArguments.model_validate_json(ARGUMENTS).model_dump()
    assert decorated.validate_json(ARGUMENTS) == expected, "agentkit read the arguments wrongly"
    cases: dict[str, Callable[[], Any]] = {
        "floor: pydantic model_validate_json": lambda: _FloorArguments.model_validate_json(
            ARGUMENTS
        ),
        "agentkit Tool.validate_json": lambda: decorated.validate_json(ARGUMENTS),
    }
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(repeats):
        for label, action in cases.items():
            samples[label] += _median_us(action, 1, 200)
    return samples
