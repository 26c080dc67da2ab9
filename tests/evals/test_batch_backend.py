"""The batch backend: every round of every open conversation in one batch, tools run locally
between rounds, backoff polling on an injected sleep, failed lines in the next batch, the
batch price, and an eval killed mid-batch that resumes without paying anything twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from agentkit import Agent, AsyncChatClient
from agentkit.evals import (
    BatchBackend,
    BatchError,
    Polling,
    Report,
    Scenario,
    Suite,
    SuiteError,
    SuiteStopped,
    output_matches,
)
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import EXAMPLES, load


class _Sleeps:
    """An injected sleep: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _backend(server: ScriptedServer, tmp_path: Path, sleeps: _Sleeps) -> BatchBackend:
    return BatchBackend(
        server.base_url, state=tmp_path / "state.json", polling=Polling(1, 2, 5, sleep=sleeps)
    )


def _chat_over_http(server: ScriptedServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


def _bot(base_url: str, model: str = "qwen-plus") -> Callable[..., Agent[str]]:
    def make(http_client: httpx.AsyncClient | None = None) -> Agent[str]:
        return Agent(model, client=AsyncChatClient(base_url=base_url, http_client=http_client))

    return make


def test_the_unreliable_desk_scores_the_same_on_the_batch_api(
    desk_model: ScriptedServer, desk_suite: ModuleType, tmp_path: Path
) -> None:
    sleeps = _Sleeps()
    report = desk_suite.suite.run(k=4, backend=_backend(desk_model, tmp_path, sleeps))

    expected = load("scripted_desk").PASS_HAT
    assert report.curve == pytest.approx([expected[j] for j in range(1, 5)])
    assert report.backend == "batch" and report.price_factor == 0.5
    assert _chat_over_http(desk_model) == []  # every model call went through a batch
    batches = list(desk_model.batches.batches.values())
    # round by round: 16 first requests, 16 second, ... the judges last
    assert [b.counts["total"] for b in batches] == [16, 16, 16, 4, 4, 3]
    lines = desk_model.batches.lines
    assert len(lines) == sum(b.counts["total"] for b in batches)
    assert max(Counter(line.custom_id for line in lines).values()) == 1
    assert not (tmp_path / "state.json").exists()  # removed once the suite is done
    # each batch was polled with backoff: 1, 2 s, then done (validating -> completed)
    assert sleeps.waits[:2] == [1, 2]


def test_polling_backs_off_to_its_ceiling(server: ScriptedServer, tmp_path: Path) -> None:
    server.respond_with(lambda request: Reply.text("Hello."))
    server.batches.polls_per_status = 4
    sleeps = _Sleeps()
    suite = Suite(agent=_bot(server.base_url), scenarios=[Scenario("hi", turns=["Hi"])])
    suite.run(backend=_backend(server, tmp_path, sleeps))
    assert sleeps.waits == [1, 2, 4, 5, 5, 5, 5, 5, 5, 5, 5]


def test_failed_and_expired_lines_go_into_the_next_batch(
    server: ScriptedServer, tmp_path: Path
) -> None:
    failed_once: set[str] = set()

    def flaky(request: RecordedRequest) -> Reply:
        said = request.messages[-1]["content"]
        if said not in failed_once:
            failed_once.add(said)
            return Reply.error(503, "overloaded")
        return Reply.text(f"You said {said}.")

    server.respond_with(flaky)
    server.batches.expire_next = True
    suite = Suite(
        agent=_bot(server.base_url),
        scenarios=[
            Scenario(name, turns=[name], checks=[output_matches(f"You said {name}")])
            for name in ("one", "two")
        ],
    )
    report = suite.run(k=2, backend=_backend(server, tmp_path, _Sleeps()))
    assert report.pass_hat(2) == 1.0
    # expired (nothing run), then the first of each answered 503, then all answered
    assert [b.status for b in server.batches.batches.values()] == [
        "expired",
        "completed",
        "completed",
    ]
    assert [b.counts["failed"] for b in server.batches.batches.values()] == [4, 2, 0]


def test_a_line_that_fails_every_time_fails_its_conversation_only(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.respond_with(
        lambda r: (
            Reply.error(500, "down") if r.messages[-1]["content"] == "bad" else Reply.text("ok")
        )
    )
    suite = Suite(
        agent=_bot(server.base_url),
        scenarios=[Scenario("bad", turns=["bad"]), Scenario("good", turns=["good"])],
    )
    report = suite.run(backend=_backend(server, tmp_path, _Sleeps()))
    bad, good = report.scenarios
    assert good.passes == 1 and bad.passes == 0
    assert bad.attempts[0].error is not None and "down" in bad.attempts[0].error
    assert len(server.batches.batches) == 3  # the first try and two retries


def test_a_used_up_quota_in_a_batch_stops_the_suite(server: ScriptedServer, tmp_path: Path) -> None:
    server.respond_with(lambda request: Reply.quota_exceeded())
    suite = Suite(agent=_bot(server.base_url), scenarios=[Scenario("hi", turns=["Hi"])])
    with pytest.raises(SuiteStopped, match="quota is used up"):
        suite.run(k=3, backend=_backend(server, tmp_path, _Sleeps()))
    assert len(server.batches.batches) == 1  # not retried


def test_batch_test_model_runs_a_free_end_to_end_check(
    server: ScriptedServer, tmp_path: Path
) -> None:
    suite = Suite(
        agent=_bot(server.base_url, "batch-test-model"),
        scenarios=[
            Scenario("hi", turns=["Hi"], checks=[output_matches("^This is a test result.$")])
        ],
    )
    report = suite.run(backend=_backend(server, tmp_path, _Sleeps()))
    assert report.pass_hat(1) == 1.0
    (batch,) = server.batches.batches.values()
    assert batch.endpoint == "/v1/chat/ds-test"
    assert server.batches.lines[0].request.path == "/v1/chat/ds-test"


def test_a_factory_without_http_client_is_refused_before_any_request(
    server: ScriptedServer, tmp_path: Path
) -> None:
    def bot() -> Agent[str]:
        return Agent("qwen-plus", base_url=server.base_url)

    suite = Suite(agent=bot, scenarios=[Scenario("hi", turns=["Hi"])])
    with pytest.raises(SuiteError, match="take http_client="):
        suite.run(backend=_backend(server, tmp_path, _Sleeps()))
    state = tmp_path / "other.json"
    state.write_text(
        json.dumps({"format": "agentkit.evals.batch/1", "suite": "x", "pending": {}, "results": {}})
    )
    with pytest.raises(SuiteError, match="belongs to another suite"):
        Suite(agent=_bot(server.base_url), scenarios=[Scenario("hi", turns=["Hi"])]).run(
            backend=BatchBackend(server.base_url, state=state)
        )
    assert server.request_count == 0


def test_an_eval_killed_mid_batch_resumes_and_pays_for_nothing_twice(
    desk_model: ScriptedServer, tmp_path: Path
) -> None:
    desk_model.batches.hold_from = 2  # the second batch stays under way while we kill
    state = tmp_path / "state.json"
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "agentkit.cli",
        "eval",
        f"{EXAMPLES / 'desk_suite.py'}:suite",
        "-k",
        "4",
        "--backend",
        "batch",
        "--state",
        str(state),
        "--poll",
        "0.01",
        "--json",
        str(report),
    ]
    env = {**os.environ, "AGENTKIT_BASE_URL": desk_model.base_url}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until(desk_model, lambda: _polled_second_batch(desk_model))
    finally:
        first.kill()
        first.wait()
    assert first.returncode != 0
    kept = json.loads(state.read_text())
    assert list(kept["pending"]) == [list(desk_model.batches.batches)[1]]  # under way
    assert len(kept["results"]) == 16  # the first round's answers

    desk_model.batches.hold_from = None
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    expected = load("scripted_desk").PASS_HAT
    assert Report.load_json(report).curve == pytest.approx([expected[j] for j in range(1, 5)])
    # nothing paid twice: each line answered once, each batch created once
    lines = desk_model.batches.lines
    assert max(Counter(line.custom_id for line in lines).values()) == 1
    created = [r for r in desk_model.requests if r.method == "POST" and r.path == "/v1/batches"]
    assert len(created) == len(desk_model.batches.batches) == 6
    assert not state.exists()


def _polled_second_batch(server: ScriptedServer) -> bool:
    made = list(server.batches.batches)
    return len(made) > 1 and any(
        r.method == "GET" and r.path == f"/v1/batches/{made[1]}" for r in server.requests
    )


def _wait_until(server: ScriptedServer, done: Callable[[], bool]) -> None:
    """Wait for the server's requests (never a sleep) until ``done()``."""
    seen = server.request_count
    while not done():
        server.wait_for_requests(seen + 1, timeout=120)
        seen = server.request_count


class _Hostile(BaseHTTPRequestHandler):
    """A Batch API that echoes the caller's key in a 401, or answers HTML."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.endswith("/files") and "echo" in self.server.mode:  # type: ignore[attr-defined]
            body = f"bad key {self.headers.get('authorization')}".encode()
            self.send_response(401)
        else:
            body = b"<html>a proxy's login page</html>"
            self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.mark.parametrize("mode", ["echo", "html"])
def test_a_hostile_batch_api_is_a_batch_error_without_the_key(
    server: ScriptedServer, tmp_path: Path, mode: str
) -> None:
    hostile = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    hostile.mode = mode  # type: ignore[attr-defined]
    thread = threading.Thread(target=hostile.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{hostile.server_address[1]}/v1"
        suite = Suite(agent=_bot(server.base_url), scenarios=[Scenario("hi", turns=["Hi"])])
        backend = BatchBackend(url, "sk-secret-key-123", state=tmp_path / "s.json")
        with pytest.raises(BatchError) as caught:
            suite.run(backend=backend)
    finally:
        hostile.shutdown()
        hostile.server_close()
    said = str(caught.value)
    assert "sk-secret-key-123" not in said
    assert ("***" in said) if mode == "echo" else ("not a JSON object" in said)
    assert server.request_count == 0  # the bot's own server was never asked
