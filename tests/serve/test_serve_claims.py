"""Every way a served run on a stored conversation ends gives the conversation back: the next
request on it is answered, never 409 ``session_busy`` for the 600 s lease.

The serve soak found conversations held after a client left a streamed answer. The cause:
the run gives its session back in a thread of the server's pool; when the pool was busy
(other requests' store calls) the release waited in the pool's queue, the client leaving at
that moment cancelled the waiter, and ``asyncio`` dropped the queued release with it. The
first test replays that moment exactly, with a raw socket; the others end a run each other
way a served run ends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit import Agent, tool
from agentkit.serve import RequestLimits, create_app
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import MODEL_KEY, sessions_or_skip, uvicorn_serving

sessions = sessions_or_skip()

ASGI = Callable[..., Any]
WAIT = 60.0  # the next request waits this long for the conversation: far below the lease


# --- the exact moment: the release waits for a thread as the client leaves ---------------


class OneThread(ThreadPoolExecutor):
    """The server's pool, one thread; it tells when a release is queued into it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.release_queued = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        if "release_claim" in repr(fn):
            self.release_queued.set()
        return future


class BusyPoolStore(sessions.SQLiteStore):  # type: ignore[misc, name-defined]
    """Once the run has stored its answer, the pool's only thread is taken (until ``gate``
    opens), as other requests' store calls take it under load: the release that follows
    waits in the queue."""

    def __init__(self, path: Path, pool: OneThread) -> None:
        super().__init__(path)
        self.pool = pool
        self.gate = threading.Event()

    def append(self, claim: Any, messages: Any, **options: Any) -> None:
        super().append(claim, messages, **options)
        if any(m.get("role") == "assistant" and m.get("content") for m in messages):
            self.pool.submit(self.gate.wait)


def opening_after_the_disconnect(app: ASGI, gate: threading.Event) -> ASGI:
    """``app``, with ``gate`` opened once a disconnect has reached the run as a cancel."""
    pending: set[asyncio.Task[None]] = set()

    async def open_later() -> None:
        # The disconnect becomes the run's cancel a few passes of the event loop later (the
        # watcher ends, the request's task wakes and cancels the run, the cancel reaches the
        # awaited release): let the loop make those passes first (counted, not timed).
        for _ in range(20):
            await asyncio.sleep(0)
        gate.set()

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def watched() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect" and not gate.is_set():
                task = asyncio.ensure_future(open_later())
                pending.add(task)
                task.add_done_callback(pending.discard)
            return message

        await app(scope, watched, send)

    return wrapped


def _raw_request(path: str, body: dict[str, Any], conversation: str | None = None) -> bytes:
    data = json.dumps(body).encode()
    named = f"X-Agentkit-Conversation: {conversation}\r\n" if conversation else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{named}Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _ask(url: str, text: str, conversation: str, **extra: Any) -> httpx.Response:
    body = {"model": "desk", "messages": [{"role": "user", "content": text}], **extra}
    headers = {"X-Agentkit-Conversation": conversation}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=120)


def test_a_client_leaving_while_the_release_waits_for_a_thread_leaves_the_conversation_free(
    model: ScriptedServer, tmp_path: Path
) -> None:
    pool = OneThread()
    store = BusyPoolStore(tmp_path / "desk.db", pool)
    desk = Agent(
        "scripted", [], "You run the desk.", base_url=model.base_url, api_key=MODEL_KEY, store=store
    )
    model.queue(Reply.text("Hello there."), Reply.text("Here again."))
    app = opening_after_the_disconnect(create_app({"desk": desk}), store.gate)
    body = {"model": "desk", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    try:
        with uvicorn_serving(app, executor=pool) as url:
            with socket.create_connection(("127.0.0.1", _port(url))) as sock:
                sock.sendall(_raw_request("/v1/chat/completions", body, "c1"))
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # the answer began
                assert pool.release_queued.wait(60)
            # The client has left. The next request's claim is queued behind the release in
            # the one thread, so it runs after it (or after the release was dropped).
            again = _ask(url, "Still there?", "c1")
            assert again.status_code == 200, again.text
            assert again.json()["choices"][0]["message"]["content"] == "Here again."
    finally:
        store.gate.set()
        pool.shutdown()


# --- every other way a served run ends ------------------------------------------------------


class Hang:
    """The model's and the tool's stall: ``started`` is set when one begins; it lasts
    until the server stops (the run must be ended by the path under test)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.once = True

    async def __call__(self) -> None:
        self.started.set()
        await asyncio.Event().wait()


@pytest.fixture
def hang() -> Hang:
    return Hang()


def _desk(model: ScriptedServer, tmp_path: Path, hang: Hang) -> Agent[str]:
    @tool
    async def hold(order: str) -> str:
        """Look an order up, slowly.

        Args:
            order: the order.
        """
        await hang()
        return order

    @tool(requires_approval=True)
    async def refund(order: str) -> str:
        """Refund an order, slowly.

        Args:
            order: the order.
        """
        await hang()
        return f"refunded {order}"

    return Agent(
        "scripted",
        [hold, refund],
        "You run the desk.",
        base_url=model.base_url,
        api_key=MODEL_KEY,
        store=sessions.SQLiteStore(str(tmp_path / "desk.db")),
        session_wait=WAIT,
    )


def _model_hangs_first(model: ScriptedServer, hang: Hang) -> None:
    async def reply(request: RecordedRequest) -> Reply:
        if hang.once:
            hang.once = False
            await hang()
        return Reply.text("Here again.")

    model.respond_with(reply)


def _answered_again(url: str, conversation: str = "c1") -> None:
    """The conversation's next request is answered: the run before it let go."""
    again = _ask(url, "Still there?", conversation)
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["message"]["content"] == "Here again."


def _leave(url: str, request: bytes, started: threading.Event, first_byte: bool) -> None:
    """Send ``request`` on a raw socket and close it once ``started`` is set (and, with
    ``first_byte``, once the answer has begun)."""
    with socket.create_connection(("127.0.0.1", _port(url))) as sock:
        sock.sendall(request)
        if first_byte:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert started.wait(60)


@pytest.mark.parametrize(
    ("streamed", "during"),
    [(False, "model"), (True, "model"), (False, "tool"), (True, "tool")],
    ids=["whole-before-any-byte", "streamed-after-a-byte", "whole-in-a-tool", "streamed-in-a-tool"],
)
def test_a_client_leaving_mid_run_leaves_the_conversation_free(
    model: ScriptedServer, tmp_path: Path, hang: Hang, streamed: bool, during: str
) -> None:
    if during == "model":
        _model_hangs_first(model, hang)
    else:
        model.queue(Reply.tool_calls(("hold", {"order": "A1"})), Reply.text("Here again."))
    body = {"model": "desk", "stream": streamed, "messages": [{"role": "user", "content": "A1?"}]}
    with uvicorn_serving(create_app({"desk": _desk(model, tmp_path, hang)})) as url:
        _leave(url, _raw_request("/v1/chat/completions", body, "c1"), hang.started, streamed)
        _answered_again(url)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_client_leaving_an_approved_call_leaves_the_conversation_free(
    model: ScriptedServer, tmp_path: Path, hang: Hang, streamed: bool
) -> None:
    model.queue(Reply.tool_calls(("refund", {"order": "A1"})), Reply.text("Here again."))
    with uvicorn_serving(create_app({"desk": _desk(model, tmp_path, hang)})) as url:
        paused = _ask(url, "Refund A1", "c1").json()["agentkit"]
        assert paused["status"] == "paused"
        call = paused["pending"][0]
        decision = {
            "model": "desk",
            "stream": streamed,
            "decisions": {call["id"]: True},
            "digests": {call["id"]: call["arguments_digest"]},
        }
        request = _raw_request("/v1/sessions/c1/approvals", decision)
        _leave(url, request, hang.started, streamed)
        _answered_again(url)


@pytest.mark.parametrize("streamed", [False, True])
def test_an_answer_cut_at_the_bound_leaves_the_conversation_free(
    model: ScriptedServer, tmp_path: Path, hang: Hang, streamed: bool
) -> None:
    model.queue(Reply.text("word " * 100, chunk_size=7), Reply.text("Here again."))
    app = create_app(
        {"desk": _desk(model, tmp_path, hang)}, request_limits=RequestLimits(max_stream_chars=20)
    )
    with uvicorn_serving(app) as url:
        cut = _ask(url, "Tell me everything.", "c1", stream=streamed)
        assert cut.status_code == 200
        _answered_again(url)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_run_past_its_timeout_leaves_the_conversation_free(
    model: ScriptedServer, tmp_path: Path, hang: Hang, streamed: bool
) -> None:
    _model_hangs_first(model, hang)
    desk = _desk(model, tmp_path, hang)
    # The next request goes to the same desk served without the short run_timeout: a
    # whole run within 0.5 s is not a given on a loaded machine.
    short = create_app({"desk": desk}, request_limits=RequestLimits(run_timeout=0.5))
    with uvicorn_serving(short) as url, uvicorn_serving(create_app({"desk": desk})) as calm:
        late = _ask(url, "A1?", "c1", stream=streamed)
        if streamed:
            assert '"run_timeout"' in late.text or "timed out" in late.text, late.text
        else:
            assert late.status_code == 504, late.text
        _answered_again(calm)


def test_a_server_stopping_mid_run_leaves_the_conversation_free(
    model: ScriptedServer, tmp_path: Path, hang: Hang
) -> None:
    _model_hangs_first(model, hang)
    desk = _desk(model, tmp_path, hang)
    body = {"model": "desk", "stream": True, "messages": [{"role": "user", "content": "A1?"}]}
    with uvicorn_serving(create_app({"desk": desk})) as url:
        sock = socket.create_connection(("127.0.0.1", _port(url)))
        sock.sendall(_raw_request("/v1/chat/completions", body, "c1"))
        assert hang.started.wait(60)
    # uvicorn cancelled the request's task as it stopped: the run let go of its claim.
    sock.close()
    with uvicorn_serving(create_app({"desk": desk})) as url:
        _answered_again(url)


class AwayAfterTheCut(sessions.SQLiteStore):  # type: ignore[misc, name-defined]
    """Once the answer cut at the bound is stored, the next release fails (the store goes
    away for that moment, as a PostgreSQL restart does)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.away = False
        self.failed_releases = 0

    def append(self, claim: Any, messages: Any, **options: Any) -> None:
        super().append(claim, messages, **options)
        if any(str(m.get("content") or "").startswith("word word") for m in messages):
            self.away = True

    def release(self, claim: Any) -> None:
        if self.away:
            self.away = False
            self.failed_releases += 1
            raise sessions.SessionError("the store is away", session_id=claim.session_id)
        super().release(claim)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_cut_answer_stored_while_the_store_goes_away_leaves_the_conversation_free(
    model: ScriptedServer, tmp_path: Path, streamed: bool
) -> None:
    """The answer cut at ``max_stream_chars`` is stored in a claim of its own; that claim's
    release failing (the store away for a moment) is retried in the background and not
    reported to the client, whose answer is whole and stored: the conversation is free for
    the next request (it was held for the 600 s lease, and the cut answer was an error)."""
    store = AwayAfterTheCut(tmp_path / "desk.db")
    desk = Agent(
        "scripted",
        [],
        "You run the desk.",
        base_url=model.base_url,
        api_key=MODEL_KEY,
        store=store,
        session_wait=WAIT,
    )
    model.queue(Reply.text("word " * 100, chunk_size=7), Reply.text("Here again."))
    app = create_app({"desk": desk}, request_limits=RequestLimits(max_stream_chars=20))
    with uvicorn_serving(app) as url:
        cut = _ask(url, "Tell me everything.", "c1", stream=streamed)
        assert cut.status_code == 200, cut.text
        if streamed:
            assert cut.text.rstrip().endswith("data: [DONE]"), cut.text
        else:
            assert cut.json()["choices"][0]["message"]["content"] == ("word " * 4)
        assert store.failed_releases == 1
        _answered_again(url)


class KeepSeenQueued(OneThread):
    """The server's one-thread pool; it tells when the cut answer's write is queued."""

    def __init__(self) -> None:
        super().__init__()
        self.keep_seen_queued = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        if "keep_seen" in repr(fn) or any("keep_seen" in repr(arg) for arg in args):
            self.keep_seen_queued.set()
        return future


class BusyAfterTheRelease(sessions.SQLiteStore):  # type: ignore[misc, name-defined]
    """Once the stopped run has let go, the pool's only thread is taken (until ``gate``
    opens): the write of the cut answer that follows waits in the queue."""

    def __init__(self, path: Path, pool: OneThread) -> None:
        super().__init__(path)
        self.pool = pool
        self.gate = threading.Event()
        self.releases = 0

    def release(self, claim: Any) -> None:
        super().release(claim)
        self.releases += 1
        if self.releases == 1:
            self.pool.submit(self.gate.wait)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_client_leaving_while_its_cut_answer_waits_for_a_thread_still_has_it_stored(
    model: ScriptedServer, tmp_path: Path, streamed: bool
) -> None:
    """The client saw an answer cut at ``max_stream_chars`` and left while the write that
    stores it waited for a free thread: the write runs all the same (a cancel dropped it from
    the pool's queue, and the conversation lost the question and the answer the client saw)."""
    pool = KeepSeenQueued()
    store = BusyAfterTheRelease(tmp_path / "desk.db", pool)
    desk = Agent(
        "scripted", [], "You run the desk.", base_url=model.base_url, api_key=MODEL_KEY, store=store
    )
    model.queue(Reply.text("word " * 100, chunk_size=7))
    app = opening_after_the_disconnect(
        create_app({"desk": desk}, request_limits=RequestLimits(max_stream_chars=20)), store.gate
    )
    body = {"model": "desk", "stream": streamed, "messages": [{"role": "user", "content": "Tell"}]}
    try:
        with uvicorn_serving(app, executor=pool) as url:
            with socket.create_connection(("127.0.0.1", _port(url))) as sock:
                sock.sendall(_raw_request("/v1/chat/completions", body, "c1"))
                if streamed:
                    assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # the answer began
                assert pool.keep_seen_queued.wait(60)
            # The client has left; its disconnect opens the gate. The pool runs its jobs
            # in order: once a job queued now has run, the write before it has run too
            # (or was dropped from the queue).
            assert store.gate.wait(60)
            pool.submit(lambda: None).result(timeout=60)
        record = store.load("c1")
        assert [m["content"] for m in record.messages] == ["Tell", "word " * 4]
    finally:
        store.gate.set()
        pool.shutdown()
