"""Options as records: ``RunLimits`` and ``ModelSettings``, given to the agent or to one run,
behave exactly as the flat keywords of the same names, which still work and warn."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from agentkit import (
    Agent,
    ConfigurationError,
    MaxTurnsExceededError,
    ModelSettings,
    RunLimits,
    ToolCallLimitExceededError,
    tool,
)
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

KEY = "sk-records-test"


@tool
def book_flight(city: str) -> str:
    """Book a flight."""
    return f"booked {city}"


def endless_model(request: RecordedRequest) -> Reply:
    """A model that never stops calling tools (new arguments every time)."""
    return Reply.tool_calls(("book_flight", {"city": f"city-{request.number}"}))


def agent(server: ScriptedServer, **options: Any) -> Agent[str]:
    return Agent("m", [book_flight], base_url=server.base_url, api_key=KEY, **options)


def test_a_limit_given_as_a_record_is_enforced(server: ScriptedServer) -> None:
    server.respond_with(endless_model)
    with agent(server, limits=RunLimits(max_turns=3)) as made, pytest.raises(MaxTurnsExceededError):
        made.run("go")
    assert len(server.requests) == 3


def test_a_run_level_record_applies_to_that_run_only(server: ScriptedServer) -> None:
    server.respond_with(endless_model)
    with agent(server, limits=RunLimits(max_turns=3)) as made:
        with pytest.raises(ToolCallLimitExceededError):
            made.run("go", limits=RunLimits(max_turns=10, max_tool_calls=1))
        first = len(server.requests)
        assert first < 10
        with pytest.raises(MaxTurnsExceededError):
            made.run("go")
        assert len(server.requests) - first == 3
        with pytest.raises(MaxTurnsExceededError):
            for _ in made.stream("go", limits=RunLimits(max_turns=2)):
                pass
        assert len(server.requests) - first == 5

        async def main() -> None:
            with pytest.raises(MaxTurnsExceededError):
                await made.run_async("go", limits=RunLimits(max_turns=1))

        asyncio.run(main())
        assert len(server.requests) - first == 6


@pytest.mark.parametrize(
    "limits",
    [
        {"max_turns": 0},
        {"max_tool_calls": -1},
        {"tool_timeout": float("nan")},
        {"run_timeout": 0},
        {"parallel_tool_calls_limit": True},
        {"max_repeated_calls": 1.5},
    ],
)
def test_invalid_values_are_refused_at_construction(limits: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(limits))):
        RunLimits(**limits)
    with pytest.raises(ConfigurationError, match=next(iter(limits))):
        Agent("m", api_key=KEY, base_url="http://127.0.0.1:9", limits=RunLimits(**limits))
    # the old flat spelling is refused the same way, before it warns
    with pytest.raises(ConfigurationError, match=next(iter(limits))):
        Agent("m", api_key=KEY, base_url="http://127.0.0.1:9", **limits)


def test_flat_keywords_and_records_behave_the_same(server: ScriptedServer) -> None:
    server.respond_with(endless_model)
    new = r"pass limits=RunLimits\(max_turns=2\), settings=ModelSettings\(temperature=0.3, seed=7\)"
    with pytest.warns(DeprecationWarning, match=new) as caught:
        flat = agent(server, max_turns=2, temperature=0.3, seed=7)
    assert caught[0].filename == __file__  # points at the code that used the old spelling
    with flat, pytest.raises(MaxTurnsExceededError):
        flat.run("go")
    settings = ModelSettings(temperature=0.3, seed=7)
    records = agent(server, limits=RunLimits(max_turns=2), settings=settings)
    with records, pytest.raises(MaxTurnsExceededError):
        records.run("go")
    bodies = [request.json() for request in server.requests]
    assert len(bodies) == 4
    for body in bodies:
        assert body["temperature"] == 0.3 and body["seed"] == 7
    assert [b["messages"][0] for b in bodies[:2]] == [b["messages"][0] for b in bodies[2:]]


def test_one_option_given_both_ways_is_refused(server: ScriptedServer) -> None:
    with pytest.raises(ConfigurationError, match="max_turns"):
        agent(server, max_turns=3, limits=RunLimits(max_turns=3))
    with pytest.raises(ConfigurationError, match="temperature"):
        agent(server, temperature=0.1, settings=ModelSettings(temperature=0.2))
    with agent(server) as made, pytest.raises(ConfigurationError, match="max_turns"):
        made.run("go", max_turns=2, limits=RunLimits(max_turns=2))
    with agent(server) as made, pytest.raises(ConfigurationError, match="parallel"):
        made.run("go", limits=RunLimits(parallel_tool_calls_limit=2))
    with pytest.raises(TypeError, match="max_turn"):
        agent(server, max_turn=3)
    assert server.requests == []


def test_max_turns_on_a_run_still_works_and_warns_with_the_record_spelling(
    server: ScriptedServer,
) -> None:
    server.respond_with(endless_model)
    old = r"max_turns= on a run is deprecated: pass limits=RunLimits\(max_turns=2\)"
    with agent(server, limits=RunLimits(max_turns=5, max_tool_calls=1)) as made:
        # the old keyword changes max_turns only: the agent's other limits still hold
        with (
            pytest.warns(DeprecationWarning, match=old.replace("2", "3")) as caught,
            pytest.raises(ToolCallLimitExceededError),
        ):
            made.run("go", max_turns=3)
        assert caught[0].filename == __file__
        assert made.limits == RunLimits(max_turns=5, max_tool_calls=1)
    with agent(server) as made:
        with pytest.warns(DeprecationWarning, match=old) as caught:
            events = made.stream("go", max_turns=2)
        assert caught[0].filename == __file__
        with pytest.raises(MaxTurnsExceededError):
            for _ in events:
                pass

        async def main() -> None:
            with (
                pytest.warns(DeprecationWarning, match=old) as caught,
                pytest.raises(MaxTurnsExceededError),
            ):
                await made.run_async("go", max_turns=2)
            assert caught[0].filename == __file__

        asyncio.run(main())


def test_the_agents_limits_are_readable_for_a_run_that_changes_one(
    server: ScriptedServer,
) -> None:
    server.respond_with(endless_model)
    with agent(server, limits=RunLimits(max_turns=5, max_tool_calls=1)) as made:
        one_turn = dataclasses.replace(made.limits, max_turns=1)
        with pytest.raises(MaxTurnsExceededError):
            made.run("go", limits=one_turn)
    assert len(server.requests) == 1
