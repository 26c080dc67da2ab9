"""The Ray backend on a real local Ray cluster: the same known pass^k as locally, and a
worker killed mid-conversation is retried without counting the conversation twice.

One test, so that one pytest worker starts one local cluster of two CPUs (two workers
starting clusters at once on two loaded cores time out), and three checks on it. With
``CI=true`` a missing Ray fails.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from agentkit import Agent, tool
from agentkit.evals import RateLimit, RayBackend, Scenario, Suite, output_matches
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import load

pytestmark = pytest.mark.timeout(600)  # starting Ray takes a while on a loaded machine


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the Ray backend's tests: pip install 'agentkit[ray]'")
        pytest.skip("Ray is not installed (pip install 'agentkit[ray]')")
    return ray


@pytest.fixture(scope="module")
def desk_server() -> Iterator[ScriptedServer]:
    """The scripted desk model for the module; the Ray workers inherit its URL."""
    server = load("scripted_desk").serve()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTKIT_BASE_URL", server.base_url)
        ray = _ray()
        load("desk_suite")  # puts examples/ on the path the workers are given
        try:
            yield server
        finally:
            server.stop()
            if ray.is_initialized():
                ray.shutdown()


@pytest.fixture
def on_desk(desk_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> ScriptedServer:
    monkeypatch.setenv("AGENTKIT_BASE_URL", desk_server.base_url)
    return desk_server


def _the_unreliable_desk_scores_the_same_on_ray(on_desk: ScriptedServer) -> None:
    desk_suite: ModuleType = load("desk_suite")
    seen = on_desk.request_count
    report = desk_suite.suite.run(k=4, backend=RayBackend(num_cpus=2, concurrency=8))
    expected = load("scripted_desk").PASS_HAT
    assert report.curve == pytest.approx([expected[j] for j in range(1, 5)])
    assert report.backend == "ray"
    assert on_desk.request_count > seen
    assert not on_desk.errors


@tool
def where_am_i() -> int:
    """The id of the process this conversation runs in."""
    return os.getpid()


def _bot(base_url: str) -> Agent[str]:
    return Agent("qwen-plus", tools=[where_am_i], base_url=base_url)


def _a_worker_killed_mid_conversation_is_retried_and_counted_once(
    on_desk: ScriptedServer,
) -> None:
    killed: list[int] = []

    def model(request: RecordedRequest) -> Reply:
        last = request.messages[-1]
        if last["role"] == "user":
            return Reply.tool_calls(("where_am_i", {}))
        pid = int(last["content"])
        if not killed and pid != os.getpid():
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)  # the worker dies mid-conversation
            return Reply.hang()
        return Reply.text(f"You are in {pid}.")

    with ScriptedServer(handler=model) as server:
        suite = Suite(
            agent=functools.partial(_bot, server.base_url),
            scenarios=[Scenario("where", turns=["Where am I?"], checks=[output_matches("in")])],
        )
        report = suite.run(k=3, backend=RayBackend(num_cpus=2, concurrency=3))

    assert len(killed) == 1
    (scenario,) = report.scenarios
    assert [a.attempt for a in scenario.attempts] == [0, 1, 2]  # each try counted once
    assert scenario.passes == 3
    opened = [r for r in server.requests if r.messages[-1]["role"] == "user"]
    assert len(opened) == 4  # the killed conversation started again
    assert all(str(killed[0]) not in a.output for a in scenario.attempts)


def _plain_bot(base_url: str, http_client: Any = None) -> Agent[str]:
    from agentkit import AsyncChatClient

    return Agent("qwen-plus", client=AsyncChatClient(base_url=base_url, http_client=http_client))


def _the_rate_limit_holds_across_all_workers(on_desk: ScriptedServer) -> None:
    with ScriptedServer(handler=lambda request: Reply.text("Hello.")) as server:
        suite = Suite(
            agent=functools.partial(_plain_bot, server.base_url),
            scenarios=[Scenario("hi", turns=["Hi"])],
        )
        limit = RateLimit(requests_per_minute=120)  # two a second, a burst of two
        report = suite.run(k=6, backend=RayBackend(num_cpus=2, concurrency=6, rate_limit=limit))
        arrived = sorted(r.received_at for r in server.requests)
    assert report.pass_hat(6) == 1.0
    # Six requests at two a second with a burst of two are reserved at least 2 s apart, first
    # to last. Arrival times add each request's own delay (a worker's first connection is the
    # slowest), so allow half a second of it: without the limit all six arrive within a blink.
    assert arrived[-1] - arrived[0] >= 1.5


def test_the_ray_backend(on_desk: ScriptedServer) -> None:
    """The same pass^k as locally; a killed worker retried and counted once; the rate limit
    held across workers."""
    _the_unreliable_desk_scores_the_same_on_ray(on_desk)
    _a_worker_killed_mid_conversation_is_retried_and_counted_once(on_desk)
    _the_rate_limit_holds_across_all_workers(on_desk)
