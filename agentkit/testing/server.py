"""The scripted OpenAI-compatible HTTP/1.1 server, on asyncio streams in a background thread.

asyncio gives the server full control over every byte it writes (for the faults) and
serves thousands of keep-alive connections from one thread. The listening socket is made
in the caller's thread, so the port is known as soon as :meth:`ScriptedServer.start`
returns and no resolver thread is ever started.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TypeAlias

from .batches import BatchAPI
from .recorded import RecordedRequest, _Headers
from .render import Rendered, reason_phrase, render, split_pieces
from .replies import Reply, _Hang, _Reset

__all__ = ["Handler", "ScriptedServer"]

Handler: TypeAlias = Callable[[RecordedRequest], "Reply | Awaitable[Reply]"]
"""Computes a reply from a request; may be a coroutine function. Runs on the server's
event-loop thread, so it should not block."""

_BACKLOG = 2048
_HEAD_LIMIT = 64 * 1024
_SPLIT_GAP = 0.002  # between split pieces, so the client reads them separately
# A bound on a handler that blocks the server's thread, not on a stop's usual time (a few
# milliseconds): a loaded machine can stall the thread for seconds.
_STOP_TIMEOUT = 30.0
_READ_SIZE = 64 * 1024
# llama.cpp's answer to an assistant message whose content is null or missing, as captured.
_LLAMA_NULL_CONTENT_BODY = (
    b'{"error":{"message":"\'dict object\' has no attribute \'content\'",'
    b'"type":"internal_server_error","param":null,"code":null}}'
)


class ScriptedServer:
    """An OpenAI-compatible Chat Completions server on loopback that answers from a script.

    Each request to ``POST .../chat/completions`` takes the next queued :class:`Reply`; when
    the queue is empty the handler set by :meth:`respond_with` computes one; with neither,
    the server answers 500 with a body saying the script ran out (and notes it in
    :attr:`errors`), so a test fails readably instead of hanging. Every request is recorded.

    Use it as a context manager or call :meth:`start` and :meth:`stop`::

        with ScriptedServer() as server:
            server.queue(Reply.tool_calls(("get_time", {})), Reply.text("It is noon."))
            client = ChatClient(base_url=server.base_url, api_key="test")
            ...
            assert server.requests[1].messages[-1]["role"] == "tool"

    ``reject_null_assistant_content=True`` reproduces llama.cpp's server: a request with an
    assistant message whose ``content`` is null or missing gets llama.cpp's 500 (the queued
    reply is left for the next request).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        replies: Iterable[Reply] = (),
        handler: Handler | None = None,
        reject_null_assistant_content: bool = False,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._port = 0
        self._replies: collections.deque[Reply] = collections.deque(replies)
        self._handler = handler
        self.reject_null_assistant_content = reject_null_assistant_content
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._request_count = 0
        self._numbered = 0  # request numbers, shared with the batch lines (unique call ids)
        self._connections_opened = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self.batches = BatchAPI(self._chat_reply, self._next_number)
        """The Batch API's files and batches (``/v1/files``, ``/v1/batches``); its ``lines``
        are every batch line answered, ``polls_per_status`` how many polls move a batch on,
        ``expire_next`` makes the next batch expire with none of its lines run."""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        """Bind the port and serve from a background thread; returns the server."""
        if self._thread is not None:
            raise RuntimeError("ScriptedServer is already started")
        sock = socket.create_server((self._host, self._requested_port), backlog=_BACKLOG)
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready), name=f"ScriptedServer:{self._port}", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("ScriptedServer failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving: close every client connection (hung ones too) and join the thread.

        Idempotent; returns promptly whatever replies are in progress.
        """
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(stopping.set)
        if thread is threading.current_thread():
            return  # stop() called from a handler: the loop winds down by itself
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(
                f"ScriptedServer did not stop within {_STOP_TIMEOUT:g} s; is a handler "
                "blocking its thread?"
            )
        self._thread = None

    def __repr__(self) -> str:
        state = "serving" if self._thread is not None else "stopped"
        return (
            f"<ScriptedServer {self.base_url} {state}: {self._request_count} requests, "
            f"{len(self._replies)} replies queued>"
        )

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the script -----------------------------------------------------------------------

    def queue(self, *replies: Reply) -> None:
        """Append replies to the script; each answers one request, in order."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"queue() takes Reply objects, not {type(reply).__name__}")
        with self._lock:
            self._replies.extend(replies)

    def respond_with(self, handler: Handler | None) -> None:
        """Compute replies with ``handler(request)`` whenever the queue is empty (None: off)."""
        self._handler = handler

    # -- what happened --------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The host the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """The server's root URL, ``http://HOST:PORT``."""
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://HOST:PORT/v1``."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many requests have arrived since the server was made (cheaper than
        ``len(server.requests)``, and not reset by :meth:`clear_requests`)."""
        return self._request_count

    def clear_requests(self) -> None:
        """Forget the recorded requests and script errors (between benchmark rounds, or
        in a long-running server). Request numbers keep counting, so ids stay unique."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()

    @property
    def remaining(self) -> int:
        """How many queued replies have not been used yet."""
        with self._lock:
            return len(self._replies)

    @property
    def errors(self) -> list[str]:
        """Problems with the script itself: ran out of replies, a handler raised or returned
        something that is not a Reply, a reply that could not be rendered (the connection is
        then closed). A test can end with ``assert not server.errors``."""
        with self._lock:
            return list(self._errors)

    @property
    def connections_opened(self) -> int:
        """How many TCP connections clients have opened to the server."""
        return self._connections_opened

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        return len(self._writers)

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests have arrived; returns them.

        Raises ``TimeoutError`` after ``timeout`` seconds (a bound on a hang: a client in a
        process of its own starts slowly on a loaded machine). Lets a test wait for the
        server instead of sleeping (for example before stopping a server with a hung reply).
        """
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(
                    f"ScriptedServer got {len(self._requests)} requests, expected {count}"
                )
            return list(self._requests)

    # -- the event loop -------------------------------------------------------------------

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(sock, ready))
        except BaseException as exc:  # reported to start(), never lost
            self._startup_error = exc
            ready.set()
        finally:
            sock.close()

    async def _main(self, sock: socket.socket, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # asyncio listens again with its own backlog (default 100), so pass ours here too.
        server = await asyncio.start_server(
            self._serve_connection, sock=sock, limit=_HEAD_LIMIT, backlog=_BACKLOG
        )
        ready.set()
        await self._stopping.wait()
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connections_opened += 1
        self._writers.add(writer)
        try:
            while True:
                keep_going = await self._serve_request(reader, writer)
                if not keep_going:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except Exception as exc:  # a malformed request or a reply that cannot be rendered
            with self._lock:
                self._errors.append(f"the server failed: {type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            # stop() cancelled us. Not re-raised: Python 3.11's streams callback calls
            # task.exception() on the finished task, which raises for a cancelled one.
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read one request and answer it; False when the connection should close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # closed between requests: the normal end of keep-alive
        except asyncio.LimitOverrunError:
            await self._send_plain(writer, 431, "request head too large", 0, keep_alive=False)
            return False
        lines = head.lstrip(b"\r\n").decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._send_plain(writer, 400, "malformed request line", 0, keep_alive=False)
            return False
        method, target, version = parts
        headers = _Headers(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        )
        body = await _read_body(reader, headers)
        connection = headers.get("connection", "").lower()
        keep_alive = (
            "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        )
        with self._lock:
            self._request_count += 1
            self._numbered += 1
            number = self._numbered
            request = RecordedRequest(
                method, target, headers, body, number=number, received_at=time.monotonic()
            )
            self._requests.append(request)
            self._arrived.notify_all()
        reply = await self._choose_reply(request)
        return await self._send(reader, writer, reply, request, keep_alive)

    def _next_number(self) -> int:
        with self._lock:
            self._numbered += 1
            return self._numbered

    async def _choose_reply(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?", 1)[0].rstrip("/")
        if "/files" in path or "/batches" in path:
            return await self.batches.reply(request, path)
        if not path.endswith("/chat/completions"):
            return Reply.error(
                404,
                f"no route for {request.method} {request.path}; the scripted server serves "
                "POST .../chat/completions, /files and /batches",
                code="not_found",
            )
        if request.method != "POST":
            return Reply.error(
                405, f"{request.method} is not allowed; use POST", headers={"Allow": "POST"}
            )
        return await self._chat_reply(request)

    async def _chat_reply(self, request: RecordedRequest) -> Reply:
        """The script's answer to a chat request (an HTTP one or a batch line)."""
        if self.reject_null_assistant_content and _has_null_assistant_content(request):
            return Reply.raw(_LLAMA_NULL_CONTENT_BODY, status=500)
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
        if reply is not None:
            return reply
        handler = self._handler
        if handler is None:
            return self._script_error(
                f"the script ran out: request #{request.number} ({request.method} "
                f"{request.path}) arrived but no reply was queued and no handler is set; "
                "queue more replies or call respond_with()"
            )
        try:
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return self._script_error(
                f"the handler raised {type(exc).__name__}: {exc} (request #{request.number})"
            )
        if not isinstance(result, Reply):
            return self._script_error(
                f"the handler returned {type(result).__name__}, not a Reply "
                f"(request #{request.number})"
            )
        return result

    def _script_error(self, message: str) -> Reply:
        with self._lock:
            self._errors.append(message)
        return Reply.error(
            500, f"agentkit.testing: {message}", code="script_error", type="script_error"
        )

    # -- writing --------------------------------------------------------------------------

    async def _send(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
        request: RecordedRequest,
        keep_alive: bool,
    ) -> bool:
        """Write ``reply`` with its faults; False when the connection is (to be) closed."""
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if isinstance(reply.body, _Reset):
            _close(writer, rst=reply.rst)
            return False
        if isinstance(reply.body, _Hang):
            await self._hang(reader)
            return False
        rendered = render(reply, request)
        plain = (
            reply.cut_after is None
            and reply.hang_after is None
            and reply.split_bytes is None
            and not reply.chunk_delay
        )
        head = _head(rendered, reply, request.number, keep_alive)
        if plain:  # the fast path: one write
            if rendered.streamed:
                writer.write(head + b"".join(map(_frame, rendered.pieces)) + b"0\r\n\r\n")
            else:
                writer.write(head + rendered.pieces[0])
            await writer.drain()
            return keep_alive
        return await self._send_with_faults(reader, writer, reply, rendered, head, keep_alive)

    async def _send_with_faults(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
        rendered: Rendered,
        head: bytes,
        keep_alive: bool,
    ) -> bool:
        pieces = rendered.pieces
        # cut_after and hang_after count events of a stream, bytes of a plain body.
        stop_at = next((n for n in (reply.cut_after, reply.hang_after) if n is not None), None)
        if stop_at is not None:
            pieces = pieces[:stop_at] if rendered.streamed else [pieces[0][:stop_at]]
        gap = reply.chunk_delay or 0.0
        if reply.split_bytes is not None:
            pieces = split_pieces(b"".join(pieces), reply.split_bytes)
            gap = _SPLIT_GAP if reply.chunk_delay is None else gap
        writer.write(head)
        for index, piece in enumerate(pieces):
            if index and gap:
                await writer.drain()
                await asyncio.sleep(gap)
            writer.write(_frame(piece) if rendered.streamed else piece)
        await writer.drain()
        if reply.cut_after is not None:
            _close(writer, rst=reply.rst)
            return False
        if reply.hang_after is not None:
            await self._hang(reader)
            return False
        if rendered.streamed:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return keep_alive

    async def _send_plain(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        message: str,
        number: int,
        *,
        keep_alive: bool,
    ) -> None:
        reply = Reply.error(status, message)
        rendered = render(reply, _NO_REQUEST)
        writer.write(_head(rendered, reply, number, keep_alive) + rendered.pieces[0])
        await writer.drain()

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Hold the connection until the server stops or the client leaves.

        A client that gives up (a timeout, a cancelled run, a closed stream) closes its
        socket: the server sees the end of the stream and lets the connection go, so
        ``open_connections`` tells a test that the client really closed it.
        """
        assert self._stopping is not None
        stopping = asyncio.ensure_future(self._stopping.wait())
        leaving: asyncio.Future[bytes] | None = None
        try:
            while True:
                leaving = asyncio.ensure_future(reader.read(_READ_SIZE))
                await asyncio.wait({stopping, leaving}, return_when=asyncio.FIRST_COMPLETED)
                if not leaving.done() or not leaving.result():
                    return  # the server stops, or the client closed its end
                # bytes sent behind a hung reply are never answered: keep hanging
        finally:
            stopping.cancel()
            if leaving is not None:
                leaving.cancel()


_NO_REQUEST = RecordedRequest("", "", _Headers(()), b"")


def _head(rendered: Rendered, reply: Reply, number: int, keep_alive: bool) -> bytes:
    headers = list(rendered.headers)
    if rendered.streamed:
        headers.append(("transfer-encoding", "chunked"))
    else:
        headers.append(("content-length", str(len(rendered.pieces[0]))))
    headers.append(("x-request-id", f"req-{number}"))
    if not keep_alive:
        headers.append(("connection", "close"))
    if reply.headers:
        replaced = {name.lower() for name, _ in reply.headers}
        headers = [(n, v) for n, v in headers if n.lower() not in replaced]
        headers.extend(reply.headers)
    lines = [f"HTTP/1.1 {rendered.status} {reason_phrase(rendered.status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _frame(piece: bytes) -> bytes:
    # An empty chunk would end the body, so an empty piece is sent as nothing.
    return b"%x\r\n%b\r\n" % (len(piece), piece) if piece else b""


def _close(writer: asyncio.StreamWriter, *, rst: bool) -> None:
    if rst:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # linger on, timeout 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


async def _read_body(reader: asyncio.StreamReader, headers: _Headers) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or "0")
    return await reader.readexactly(length) if length else b""


def _has_null_assistant_content(request: RecordedRequest) -> bool:
    return any(
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and message.get("content") is None
        for message in request.messages
    )
