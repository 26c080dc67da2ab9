"""Usage: cached, cache-creation and reasoning tokens read on both paths, summed over a
run's rounds (RunResult and events), and the cost estimate from a user's price table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentkit import Agent, ChatClient, ConfigurationError, ModelPrice, Usage, tool
from agentkit._events import ModelRoundFinished, RunFinished
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-usage-test-0123456789"


def dashscope_usage(
    prompt: int, completion: int, cached: int = 0, created: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    """A usage object shaped like DashScope's (OpenAI-compatible mode) explicit-cache answer."""
    details: dict[str, Any] = {"cached_tokens": cached}
    if created:
        details["cache_creation_input_tokens"] = created
        details["cache_creation"] = {"ephemeral_5m_input_tokens": created}
        details["cache_type"] = "ephemeral"
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"Sunny in {city}."


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY) as made:
        yield made


def test_details_are_read_from_a_completion(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.text("hi", usage=dashscope_usage(2000, 30, 1500, 400, 12)))
    usage = client.create(model="qwen-plus", messages=[{"role": "user", "content": "x"}]).usage
    assert usage is not None
    assert (usage.cached_tokens, usage.cache_creation_tokens, usage.reasoning_tokens) == (
        1500,
        400,
        12,
    )
    assert usage.prompt_tokens == 2000 and usage.total_tokens == 2030


def test_details_are_read_from_a_stream(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.text("hi", usage=dashscope_usage(2000, 30, 1024, 0, 7)))
    with client.stream(model="qwen-plus", messages=[{"role": "user", "content": "x"}]) as stream:
        for _ in stream:
            pass
    assert stream.completion is not None
    usage = stream.completion.usage
    assert usage is not None and (usage.cached_tokens, usage.reasoning_tokens) == (1024, 7)


def test_a_run_sums_every_count_over_its_rounds(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(
        Reply.tool_calls(
            ("get_weather", {"city": "Hangzhou"}), usage=dashscope_usage(1100, 20, 0, 1024, 5)
        ),
        Reply.text("Sunny.", usage=dashscope_usage(1200, 10, 1024, 0, 3)),
    )
    with Agent("qwen-plus", [get_weather], client=client) as agent:
        result = agent.run("Weather?")
    assert result.usage.to_dict() == {
        "prompt_tokens": 2300,
        "completion_tokens": 30,
        "total_tokens": 2330,
        "cached_tokens": 1024,
        "cache_creation_tokens": 1024,
        "reasoning_tokens": 8,
    }
    assert result.to_dict()["usage"]["cached_tokens"] == 1024


def test_streamed_run_events_carry_each_rounds_usage(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "A"}), usage=dashscope_usage(1100, 20, 0, 0, 5)),
        Reply.text("Sunny.", usage=dashscope_usage(1200, 10, 1024, 0, 3)),
    )
    with Agent("qwen-plus", [get_weather], client=client) as agent:
        events = list(agent.stream("Weather?"))
    rounds = [e for e in events if isinstance(e, ModelRoundFinished)]
    assert [r.usage.cached_tokens for r in rounds] == [0, 1024]
    assert [r.usage.reasoning_tokens for r in rounds] == [5, 3]
    final = events[-1]
    assert isinstance(final, RunFinished)
    assert final.result.usage == sum(r.usage for r in rounds)
    assert final.result.usage.cached_tokens == 1024


@pytest.mark.parametrize(
    "raw",
    [
        {"prompt_tokens": None, "completion_tokens": 3, "total_tokens": 3},
        {"prompt_tokens": -5, "completion_tokens": 3, "total_tokens": 3},
        {"prompt_tokens": "7", "completion_tokens": 3, "total_tokens": 3},
        {"prompt_tokens": True, "completion_tokens": 3, "total_tokens": 3},
        {
            "completion_tokens": 3,
            "total_tokens": 3,
            "prompt_tokens_details": None,
            "completion_tokens_details": {"reasoning_tokens": None},
        },
        {
            "completion_tokens": 3,
            "total_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": [1]},
            "completion_tokens_details": "nonsense",
        },
    ],
)
def test_hostile_counts_read_as_zero(raw: dict[str, Any]) -> None:
    usage = Usage.model_validate(raw)
    assert usage.prompt_tokens == 0 and usage.completion_tokens == 3
    assert usage.cached_tokens == usage.reasoning_tokens == 0


def test_deepseek_cache_hits_count_as_cached() -> None:
    usage = Usage.model_validate({"prompt_tokens": 10, "prompt_cache_hit_tokens": 8})
    assert usage.cached_tokens == 8


def test_adding_and_summing() -> None:
    one = Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3, cached_tokens=1)
    two = Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30, reasoning_tokens=4)
    both = one + two
    assert both.to_dict() == {
        "prompt_tokens": 11,
        "completion_tokens": 22,
        "total_tokens": 33,
        "cached_tokens": 1,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 4,
    }
    assert sum([one, two]) == both
    assert sum([], Usage()) == Usage()
    with pytest.raises(TypeError):
        one + 1  # type: ignore[operator]


def test_cost_prices_cached_and_created_tokens_apart() -> None:
    usage = Usage(
        prompt_tokens=1_000_000,
        completion_tokens=100_000,
        cached_tokens=600_000,
        cache_creation_tokens=100_000,
    )
    price = ModelPrice(input=1.0, output=4.0, cached_input=0.1, cache_creation=1.25)
    # 300k plain at 1.0, 600k cached at 0.1, 100k created at 1.25, 100k out at 4.0
    assert usage.cost(price) == pytest.approx(0.3 + 0.06 + 0.125 + 0.4)
    assert Usage(prompt_tokens=1_000_000, cached_tokens=1_000_000).cost(
        ModelPrice(input=2.0, output=0.0)
    ) == pytest.approx(2.0)  # no cached price given: the input price


def test_price_lookup_matches_the_name_or_a_dated_snapshot() -> None:
    plus = ModelPrice(input=1, output=2)
    plus_latest = ModelPrice(input=3, output=4)
    prices = {"qwen-plus": plus, "qwen-plus-latest": plus_latest}
    assert ModelPrice.lookup(prices, "qwen-plus") is plus
    assert ModelPrice.lookup(prices, "qwen-plus-2025-07-28") is plus
    assert ModelPrice.lookup(prices, "qwen-plus-latest") is plus_latest
    assert ModelPrice.lookup(prices, "qwen-plusplus") is None
    assert ModelPrice.lookup(prices, "qwen-max") is None


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
def test_a_bad_price_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"ModelPrice\.input"):
        ModelPrice(input=bad, output=1.0)
