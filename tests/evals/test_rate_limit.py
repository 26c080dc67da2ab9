"""The shared rate limit: requests and tokens per minute over every conversation, and a pause
for all of them when the provider answers 429 with Retry-After (an injected clock and sleep)."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import pytest

from agentkit import Agent, AsyncChatClient
from agentkit.cli import main
from agentkit.evals import RateLimit, Scenario, Suite, SuiteError
from agentkit.evals._limit import Buckets
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import EXAMPLES


class _Time:
    """A frozen clock and a sleep that records each wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def _bot(base_url: str) -> Callable[..., Agent[str]]:
    def make(http_client: httpx.AsyncClient | None = None) -> Agent[str]:
        return Agent(
            "qwen-plus", client=AsyncChatClient(base_url=base_url, http_client=http_client)
        )

    return make


def test_the_buckets_spread_requests_and_tokens_and_settle_estimates() -> None:
    time = _Time()
    requests = Buckets(RateLimit(requests_per_minute=120, clock=time.clock))
    assert [requests.reserve(1) for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    time.now = 1.0  # two requests' worth refilled
    assert requests.reserve(1) == pytest.approx(0.5)

    tokens = Buckets(RateLimit(tokens_per_minute=600, clock=time.clock))
    assert tokens.reserve(5) == 0.0
    assert tokens.reserve(10) == pytest.approx(0.5)
    tokens.settle(10, 2)  # it used fewer than estimated
    assert tokens.reserve(3) == 0.0


def test_conversations_wait_their_turn(server: ScriptedServer) -> None:
    server.respond_with(lambda request: Reply.text("Hello."))
    time = _Time()
    limit = RateLimit(requests_per_minute=60, clock=time.clock, sleep=time.sleep)
    suite = Suite(agent=_bot(server.base_url), scenarios=[Scenario("hi", turns=["Hi"])])
    report = suite.run(k=4, concurrency=4, rate_limit=limit)
    assert report.pass_hat(4) == 1.0
    assert sorted(time.waits) == [1.0, 2.0, 3.0]
    assert server.request_count == 4


def test_a_429_with_retry_after_pauses_every_conversation(server: ScriptedServer) -> None:
    answered: list[int] = []

    def model(request: RecordedRequest) -> Reply:
        answered.append(request.number)
        return Reply.rate_limited(retry_after=1) if len(answered) == 1 else Reply.text("Hi.")

    server.respond_with(model)
    time = _Time()
    limit = RateLimit(requests_per_minute=6000, clock=time.clock, sleep=time.sleep)
    suite = Suite(agent=_bot(server.base_url), scenarios=[Scenario("hi", turns=["Hi"])])
    report = suite.run(k=3, concurrency=1, rate_limit=limit)
    assert report.pass_hat(3) == 1.0
    # the client's retry and the two later conversations all waited out the pause
    assert time.waits == [1.0, 1.0, 1.0]
    assert len(answered) == 4


def test_a_rate_limit_needs_factories_that_take_http_client(server: ScriptedServer) -> None:
    def bot() -> Agent[str]:
        return Agent("qwen-plus", base_url=server.base_url)

    suite = Suite(agent=bot, scenarios=[Scenario("hi", turns=["Hi"])])
    with pytest.raises(SuiteError, match="a rate limit needs every agent factory"):
        suite.run(rate_limit=RateLimit(requests_per_minute=60))
    with pytest.raises(ValueError, match="must be positive"):
        RateLimit(tokens_per_minute=0)
    assert server.request_count == 0


def test_the_cli_takes_rpm_and_tpm(desk_model: ScriptedServer) -> None:
    out, err = io.StringIO(), io.StringIO()
    suite = f"{EXAMPLES / 'desk_suite.py'}:suite"
    code = main(["eval", suite, "--rpm", "6000", "--tpm", "1e7"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert "4 scenarios x 1 tries on local" in out.getvalue()
    code = main(["eval", suite, "--rpm", "-1"], stdout=out, stderr=err)
    assert code == 2 and "--rpm/--tpm: RateLimit's requests_per_minute must be positive" in (
        err.getvalue()
    )
