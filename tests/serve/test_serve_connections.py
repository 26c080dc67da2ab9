"""Slowloris: half-sent requests are timed out and idle connections cannot lock keyed
clients out (raw sockets against the app on uvicorn with agentkit's protocol)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

from agentkit.serve import RequestLimits, create_app
from agentkit.serve._connections import ConnectionLimits, GuardedH11
from agentkit.testing import ScriptedServer, echo

from .conftest import make_desk, uvicorn_serving

KEY = "served-key-0123456789"
BODY = json.dumps({"model": "desk", "messages": [{"role": "user", "content": "hi"}]}).encode()
JSON = {"Content-Type": "application/json"}
GUARD = 30.0  # a socket timeout that only a hang reaches; it bounds nothing that passes


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a hang fails)."""
    sock.settimeout(GUARD)
    received = b""
    while True:
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open; it sent {received[:200]!r}")
        except ConnectionResetError:
            return received
        if not piece:
            return received
        received += piece


@pytest.fixture
def guarded(model: ScriptedServer) -> Iterator[str]:
    model.respond_with(echo())
    app = create_app({"desk": make_desk(model)}, request_limits=RequestLimits(body_timeout=0.5))
    with uvicorn_serving(app, ConnectionLimits(head_timeout=0.5, max_connections=20)) as url:
        yield url


def test_half_a_request_head_is_closed_at_the_head_timeout(guarded: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(guarded))) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        assert closed_by_server(sock) == b""


def test_a_connection_that_sends_nothing_is_closed(guarded: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(guarded))) as sock:
        assert closed_by_server(sock) == b""


def test_a_kept_alive_connection_gets_a_new_deadline_for_its_next_head(guarded: str) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    )
    with socket.create_connection(("127.0.0.1", port_of(guarded))) as sock:
        sock.sendall(head + BODY + b"GET /v1/mod")  # a whole request, then half of another
        received = closed_by_server(sock)
    assert received.startswith(b"HTTP/1.1 200")
    assert received.count(b"HTTP/1.1") == 1


def test_a_trickled_body_is_a_408(model: ScriptedServer, guarded: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(guarded))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY[:10]
        )
        received = closed_by_server(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert not model.requests


def test_idle_connections_make_room_for_a_keyed_client(model: ScriptedServer) -> None:
    model.respond_with(echo())
    app = create_app({"desk": make_desk(model)}, api_keys=[KEY])
    # a long head timeout: only the cap can free the room here
    limits = ConnectionLimits(head_timeout=600, max_connections=20)
    with uvicorn_serving(app, limits) as url:
        idle = [socket.create_connection(("127.0.0.1", port_of(url))) for _ in range(60)]
        try:
            for index, sock in enumerate(idle):
                if index % 2:  # half of them send half a request, the others nothing
                    sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = httpx.post(
                url + "/v1/chat/completions",
                content=BODY,
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                timeout=GUARD,
            )
            assert answer.status_code == 200
            assert answer.json()["choices"][0]["message"]["content"] == "hi"
            # the oldest idle connections were closed to make room: at most 19 still open
            closed = 0
            for sock in idle[:41]:
                sock.settimeout(GUARD)
                try:
                    closed += sock.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
            assert closed == 41
        finally:
            for sock in idle:
                sock.close()


def test_answers_are_sent_without_waiting_for_the_clients_ack(model: ScriptedServer) -> None:
    # The listening socket here, like agentkit serve's own, is made without IPPROTO_TCP,
    # so asyncio leaves Nagle's algorithm on: each answer's body then waited for the
    # client's delayed ACK of its head, 40 ms a response.
    no_delay: list[int] = []

    class Recording(GuardedH11):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            no_delay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    model.respond_with(echo())
    with uvicorn_serving(create_app({"desk": make_desk(model)}), protocol=Recording) as url:
        assert httpx.get(url + "/healthz").status_code == 200
    assert no_delay and all(no_delay), no_delay


class _CountingWrites(GuardedH11):
    """agentkit's protocol, counting the writes that reach the socket's own transport."""

    writes: ClassVar[list[bytes]]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        real = transport.write

        def write(data: bytes | bytearray | memoryview) -> None:
            if data:
                type(self).writes.append(bytes(data))
            real(data)

        transport.write = write  # type: ignore[method-assign]
        super().connection_made(transport)


def test_a_whole_answer_leaves_in_one_write(model: ScriptedServer) -> None:
    # uvicorn writes the head and the body apart: two sends, two packets, two wake-ups
    # of the client for one answer.
    class Counting(_CountingWrites):
        writes: ClassVar[list[bytes]] = []

    model.respond_with(echo())
    with uvicorn_serving(create_app({"desk": make_desk(model)}), protocol=Counting) as url:
        response = httpx.post(url + "/v1/chat/completions", content=BODY, headers=JSON)
    assert response.status_code == 200
    assert len(Counting.writes) == 1, Counting.writes
    assert Counting.writes[0].startswith(b"HTTP/1.1 200 ")
    assert Counting.writes[0].endswith(response.content)


def test_a_streams_last_pieces_leave_together(model: ScriptedServer) -> None:
    class Counting(_CountingWrites):
        writes: ClassVar[list[bytes]] = []

    model.respond_with(echo())
    streamed = json.dumps({**json.loads(BODY), "stream": True}).encode()
    with uvicorn_serving(create_app({"desk": make_desk(model)}), protocol=Counting) as url:
        response = httpx.post(url + "/v1/chat/completions", content=streamed, headers=JSON)
    assert response.text.endswith("data: [DONE]\n\n")
    # the head goes with the first event; the finish chunk, [DONE] and the chunked
    # encoding's end go in the last write
    assert Counting.writes[0].startswith(b"HTTP/1.1 200 ")
    assert b'"delta":{"role":"assistant"' in Counting.writes[0]
    last = Counting.writes[-1]
    assert b'"finish_reason":"stop"' in last
    assert b"data: [DONE]" in last
    assert last.endswith(b"0\r\n\r\n")


def test_uvicorn_builds_no_access_line_of_its_own_under_agentkit_serves_logging(
    model: ScriptedServer,
) -> None:
    # agentkit serve logs each request itself and filters uvicorn's lines out; uvicorn
    # built one record per request anyway, only for the filter to drop it.
    import logging

    from agentkit.serve._accesslog import only_ours

    made: list[logging.LogRecord] = []

    def count(record: logging.LogRecord) -> bool:
        made.append(record)
        return True

    access = logging.getLogger("uvicorn.access")
    model.respond_with(echo())
    app = create_app({"desk": make_desk(model)}, access_log=True)
    with uvicorn_serving(app) as url:
        saved = (access.handlers[:], access.propagate, access.level)
        ours = logging.NullHandler()
        ours.addFilter(only_ours)
        access.handlers[:] = [ours]  # as agentkit serve sets it up (serve/_server.py)
        access.propagate = False
        access.setLevel(logging.INFO)
        access.addFilter(count)
        try:
            with httpx.Client() as client:
                for _ in range(50):  # a request's line is written as its handler ends
                    assert client.get(url + "/healthz").status_code == 200
                    if len(made) >= 2:
                        break
        finally:
            access.removeFilter(count)
            access.handlers[:], access.propagate = saved[0], saved[1]
            access.setLevel(saved[2])
    assert len(made) >= 2
    assert all(getattr(record, "agentkit_access", False) for record in made), [
        record.getMessage() for record in made
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_access_line_is_written_after_the_answer_has_left(
    model: ScriptedServer, stream: bool
) -> None:
    # The line's write is a system call; written first, it held the answer (or a stream's
    # last chunk) back.
    import logging

    class Counting(_CountingWrites):
        writes: ClassVar[list[bytes]] = []

    sent_before_line: list[int] = []

    class Noting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "agentkit_access", False):
                sent_before_line.append(len(Counting.writes))

    access = logging.getLogger("uvicorn.access")
    model.respond_with(echo())
    app = create_app({"desk": make_desk(model)}, access_log=True)
    body = json.dumps({**json.loads(BODY), "stream": stream}).encode()
    with uvicorn_serving(app, protocol=Counting) as url:
        level = access.level
        noting = Noting()
        access.setLevel(logging.INFO)
        access.addHandler(noting)
        try:
            with httpx.Client() as client:
                response = client.post(url + "/v1/chat/completions", content=body, headers=JSON)
                assert response.status_code == 200
                # the client has the whole answer: every write of it has been made
                answer_writes = len(Counting.writes)
                for _ in range(50):  # a request's line is written as its handler ends
                    if sent_before_line:
                        break
                    assert client.get(url + "/healthz").status_code == 200
        finally:
            access.removeHandler(noting)
            access.setLevel(level)
    assert answer_writes >= 1
    assert sent_before_line and sent_before_line[0] >= answer_writes, (
        sent_before_line,
        answer_writes,
    )
