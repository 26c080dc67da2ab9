"""``ChatClient`` and ``AsyncChatClient``: Chat Completions over httpx, with retries.

Both clients share every decision with :mod:`agentkit._protocol` (the request body, the
response parser, error mapping, the retry policy, the stream state); this module holds
only the lines that block (sync) or await (async)::

    from agentkit import ChatClient

    with ChatClient() as client:  # DASHSCOPE_API_KEY, DashScope Singapore
        completion = client.create(model="qwen-plus", messages=[{"role": "user", "content": "Hi"}])
        print(completion.choices[0].message.content)

        with client.stream(model="qwen-plus", messages=[...]) as stream:
            for delta in stream:  # TextDelta, ReasoningDelta, ToolCallArgumentsDelta
                ...
            print(stream.completion.usage)

Each client owns one pooled set of connections (or uses the ``httpx`` client you pass).
Rate limits, 500/502/503/504, connection errors and timeouts are retried with
exponential backoff and full jitter, honouring ``Retry-After``; a stream is retried only
while nothing has been handed to the caller.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncGenerator, Generator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, cast

import httpx

from . import __version__
from ._errors import AgentKitError, APIError, ConfigurationError
from ._events import StreamDelta
from ._keepalive import body_end_async, body_end_sync
from ._protocol import ChatProtocol, StreamState
from ._providers import Provider, resolve_api_key, resolve_provider
from ._wire import ChatCompletion, ChatMessage

__all__ = ["AsyncChatClient", "AsyncChatStream", "ChatClient", "ChatStream"]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection."""
DEFAULT_READ_TIMEOUT = 600.0
"""Seconds to wait for the next bytes of an answer: long, as LLM answers can be slow."""
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
"""The connection pool of a client that builds its own httpx client."""

Messages = Sequence[Mapping[str, Any] | ChatMessage]
"""What ``messages`` may hold: wire-format dicts, or assistant messages as received."""


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs tens of ms."""
    return httpx.create_ssl_context()


@functools.cache
def _no_tls_context() -> ssl.SSLContext:
    """For a plain-http base URL: never used, and with no CA loaded it verifies nothing,
    so it cannot be mistaken for one that accepts any certificate."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _ssl_context(base_url: str) -> ssl.SSLContext:
    return _no_tls_context() if base_url.startswith("http://") else _tls_context()


class _ClientBase:
    """Configuration shared by both clients: provider, key, timeouts, the protocol."""

    _protocol: ChatProtocol
    _owns_http: bool

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        provider: str | Provider | None = None,
        max_retries: int = 2,
        timeout: float | httpx.Timeout | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        parse_text_tool_calls: bool = True,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        resolved = resolve_provider(provider, base_url)
        key = resolve_api_key(resolved, api_key)
        self._protocol = ChatProtocol(
            resolved,
            key,
            headers=headers,
            max_retries=max_retries,
            parse_text_tool_calls=parse_text_tool_calls,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            user_agent=f"agentkit/{__version__}",
        )
        self._has_key = key is not None
        if isinstance(timeout, httpx.Timeout):
            self._timeout = timeout
        elif timeout is not None:
            self._timeout = httpx.Timeout(timeout)
        else:
            self._timeout = httpx.Timeout(
                connect=connect_timeout,
                read=read_timeout,
                write=max(connect_timeout, 60.0),
                # Waiting for a free pooled connection is bounded by the requests that
                # hold them (each has its own timeouts); a fixed bound here only turns
                # a burst of concurrent runs into spurious timeouts.
                pool=None,
            )

    @property
    def provider(self) -> Provider:
        """The preset in use: base URL, rules and quirk flags (``tools_with_stream``...)."""
        return self._protocol.provider

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._protocol.provider.base_url

    @property
    def max_retries(self) -> int:
        """How many times a failed request is sent again (0: never)."""
        return self._protocol.max_retries

    def __repr__(self) -> str:
        key = "'***'" if self._has_key else "None"
        return (
            f"{type(self).__name__}(provider={self.provider.name!r}, "
            f"base_url={self.base_url!r}, api_key={key})"
        )


class ChatClient(_ClientBase):
    """A synchronous Chat Completions client over one pooled ``httpx.Client``.

    Args:
        base_url: the API root (``.../v1``); default: ``AGENTKIT_BASE_URL``, else
            DashScope Singapore. Any OpenAI-compatible server works (vLLM, Ollama,
            llama.cpp); a DashScope host gets DashScope's parameter rules.
        api_key: default: the provider's variable (``DASHSCOPE_API_KEY``,
            ``OPENAI_API_KEY``); DashScope and OpenAI raise ``ConfigurationError`` without
            one, naming the variable; a custom server may go without.
        provider: a preset name (``"dashscope"``, ``"dashscope-intl"``, ``"dashscope-cn"``,
            ``"openai"``, ``"custom"``) or a :class:`~agentkit._providers.Provider`.
        max_retries: retries of a failed request (rate limits, 5xx, connection errors,
            timeouts); 0 disables them.
        timeout: one timeout for everything (seconds or an ``httpx.Timeout``); overrides
            ``connect_timeout`` and ``read_timeout``.
        connect_timeout: seconds to connect (10).
        read_timeout: seconds to wait for the next bytes of an answer (600).
        headers: extra request headers.
        http_client: an ``httpx.Client`` to use instead of building one; its own timeouts
            and limits apply, and ``close()`` leaves it open (it is yours).
        parse_text_tool_calls: turn ``<tool_call>{...}</tool_call>`` written in the content
            into tool calls (Qwen served without a tool parser).
        limits: the connection pool of the client built here (100 connections).
        retry_base_delay, retry_max_delay: the backoff (seconds): retry ``n`` waits a
            random time up to ``min(retry_max_delay, retry_base_delay * 2**n)``, or what
            ``Retry-After`` says.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        provider: str | Provider | None = None,
        max_retries: int = 2,
        timeout: float | httpx.Timeout | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        parse_text_tool_calls: bool = True,
        limits: httpx.Limits | None = None,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            provider=provider,
            max_retries=max_retries,
            timeout=timeout,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            headers=headers,
            parse_text_tool_calls=parse_text_tool_calls,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
        )
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise ConfigurationError(
                "http_client must be an httpx.Client (AsyncChatClient takes an httpx.AsyncClient)"
            )
        self._owns_http = http_client is None
        if http_client is None:
            # Headers live on the pool, so a request merges nothing per call.
            self._http = httpx.Client(
                headers=self._protocol.headers,
                verify=_ssl_context(self.base_url),
                timeout=self._timeout,
                limits=limits or DEFAULT_LIMITS,
            )
            self._headers: dict[str, str] | None = None
        else:
            self._http = http_client
            self._headers = self._protocol.headers

    def create(self, *, model: str, messages: Messages, **params: Any) -> ChatCompletion:
        """Send one non-streamed request and return the whole ``ChatCompletion``.

        ``params`` are the wire fields (``temperature``, ``tools``, ``tool_choice``,
        ``response_format``, ``stop``...) plus ``extra_body`` for vendor extras; ``None``
        values are left out.

        Raises:
            RequestValidationError: before sending, for a parameter the provider refuses.
            APIError: a subclass for each failure (see :mod:`agentkit._errors`), after the
                retries the failure allows.
        """
        protocol = self._protocol
        body = protocol.build_body(model, messages, params, stream=False)
        attempt = 0
        while True:
            headers = None
            error: APIError
            try:
                response = self._http.post(protocol.url, content=body, headers=self._headers)
            except httpx.HTTPError as exc:
                error = protocol.transport_error(exc)
            else:
                headers = response.headers
                try:
                    return protocol.parse_completion(
                        response.status_code, headers, response.content
                    )
                except APIError as exc:
                    error = exc
            delay = protocol.retry_delay(error, attempt, headers)
            if delay is None:
                raise protocol.scrubbed(error)
            time.sleep(delay)
            attempt += 1

    def stream(self, *, model: str, messages: Messages, **params: Any) -> ChatStream:
        """Start a streamed request; iterate the returned :class:`ChatStream` for deltas.

        The body is built (and checked) now; the request is sent on the first
        iteration. Use it as a context manager so the connection is released even when
        you stop early.
        """
        body = self._protocol.build_body(model, messages, params, stream=True)
        return ChatStream(self, body)

    def close(self) -> None:
        """Close the connection pool (not an ``http_client`` you passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ChatStream:
    """One streamed answer: an iterator of ``StreamDelta`` and a context manager.

    Deltas are :class:`~agentkit._events.TextDelta`,
    :class:`~agentkit._events.ReasoningDelta` and
    :class:`~agentkit._events.ToolCallArgumentsDelta`. After the last one,
    :attr:`completion` is the whole ``ChatCompletion`` (as ``create`` would have returned
    it). A stream that ends before it is whole raises
    :class:`~agentkit._errors.IncompleteStreamError`; it never passes for a whole answer.
    """

    def __init__(self, client: ChatClient, body: bytes) -> None:
        self._client = client
        self._body = body
        self._state: StreamState = client._protocol.new_stream()
        self._response: httpx.Response | None = None
        self._pieces: Iterator[bytes] | None = None
        self._closed = False

    @property
    def completion(self) -> ChatCompletion:
        """The whole completion, once the stream has been read to the end."""
        completion = self._state.completion
        if completion is None:
            raise AgentKitError("the stream has not been read to the end yet")
        return completion

    def until_done(self) -> ChatCompletion:
        """Read the rest of the stream (its deltas unseen) and return the completion."""
        for _ in self:
            pass
        return self.completion

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> StreamDelta:
        state = self._state
        while True:
            delta = state.next_delta()
            if delta is not None:
                return delta
            if state.completion is not None:
                self._finish()
                raise StopIteration
            if self._closed:
                raise StopIteration
            try:
                if self._pieces is None:
                    self._open()
                else:
                    piece = next(self._pieces, None)
                    if piece is None:
                        state.end()
                    else:
                        state.feed(piece)
            except Exception as exc:
                self._release()
                try:
                    delay = state.recover(exc)
                except BaseException:
                    self._closed = True
                    raise
                if delay:
                    time.sleep(delay)
            except BaseException:
                self.close()
                raise

    def _open(self) -> None:
        client = self._client
        protocol = client._protocol
        request = client._http.build_request(
            "POST", protocol.url, content=self._body, headers=client._headers
        )
        response = self._response = client._http.send(request, stream=True)
        if self._state.wants_body(response.status_code, response.headers):
            response.read()
            self._state.accept_body(response.status_code, response.headers, response.content)
            self._pieces = iter(())
        else:
            self._pieces = response.iter_bytes()

    def _finish(self) -> None:
        # Whole at [DONE]: keep the connection only if its end is already here.
        response = self._response
        if response is not None and not response.is_closed:
            body_end_sync(response)
        self.close()

    def close(self) -> None:
        """Release the connection; the stream ends here (further iteration stops)."""
        self._closed = True
        self._release()

    def _release(self) -> None:
        pieces, self._pieces = self._pieces, None
        if isinstance(pieces, Generator):
            pieces.close()
        response, self._response = self._response, None
        if response is not None:
            response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncChatClient(_ClientBase):
    """The asynchronous twin of :class:`ChatClient`, over one pooled ``httpx.AsyncClient``.

    Takes the same arguments (``http_client`` must be an ``httpx.AsyncClient``);
    ``await client.create(...)``; ``async with client.stream(...) as stream: async for
    delta in stream``; ``await client.aclose()`` or ``async with AsyncChatClient()``.

    A client that builds its own pool keeps at most ``limits.max_connections`` requests in
    flight (a stream counts until it is released); more wait their turn in the client,
    first come, first served, which costs far less than waiting in httpx's pool.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        provider: str | Provider | None = None,
        max_retries: int = 2,
        timeout: float | httpx.Timeout | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        parse_text_tool_calls: bool = True,
        limits: httpx.Limits | None = None,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            provider=provider,
            max_retries=max_retries,
            timeout=timeout,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            headers=headers,
            parse_text_tool_calls=parse_text_tool_calls,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
        )
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError(
                "http_client must be an httpx.AsyncClient (ChatClient takes an httpx.Client)"
            )
        self._owns_http = http_client is None
        if http_client is None:
            pool = limits or DEFAULT_LIMITS
            self._http = httpx.AsyncClient(
                headers=self._protocol.headers,
                verify=_ssl_context(self.base_url),
                timeout=self._timeout,
                limits=pool,
            )
            self._headers: dict[str, str] | None = None
            self._slots = _Slots(pool.max_connections)
        else:
            self._http = http_client
            self._headers = self._protocol.headers
            self._slots = _Slots(None)  # its pool is the caller's: no bound of ours

    async def create(self, *, model: str, messages: Messages, **params: Any) -> ChatCompletion:
        """Send one non-streamed request and return the whole ``ChatCompletion``.

        See :meth:`ChatClient.create`.
        """
        protocol = self._protocol
        body = protocol.build_body(model, messages, params, stream=False)
        attempt = 0
        while True:
            headers = None
            error: APIError
            try:
                async with self._slots:
                    response = await self._http.post(
                        protocol.url, content=body, headers=self._headers
                    )
            except httpx.HTTPError as exc:
                error = protocol.transport_error(exc)
            else:
                headers = response.headers
                try:
                    return protocol.parse_completion(
                        response.status_code, headers, response.content
                    )
                except APIError as exc:
                    error = exc
            delay = protocol.retry_delay(error, attempt, headers)
            if delay is None:
                raise protocol.scrubbed(error)
            await asyncio.sleep(delay)
            attempt += 1

    def stream(self, *, model: str, messages: Messages, **params: Any) -> AsyncChatStream:
        """Start a streamed request; ``async for`` over the returned :class:`AsyncChatStream`.

        See :meth:`ChatClient.stream`.
        """
        body = self._protocol.build_body(model, messages, params, stream=True)
        return AsyncChatStream(self, body)

    async def aclose(self) -> None:
        """Close the connection pool (not an ``http_client`` you passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncChatStream:
    """The asynchronous twin of :class:`ChatStream`: ``async for`` and ``async with``."""

    def __init__(self, client: AsyncChatClient, body: bytes) -> None:
        self._client = client
        self._body = body
        self._state: StreamState = client._protocol.new_stream()
        self._response: httpx.Response | None = None
        self._pieces: AsyncGenerator[bytes, None] | None = None
        self._closed = False
        self._slot = False  # holds one of the client's slots (from send to release)

    @property
    def completion(self) -> ChatCompletion:
        """The whole completion, once the stream has been read to the end."""
        completion = self._state.completion
        if completion is None:
            raise AgentKitError("the stream has not been read to the end yet")
        return completion

    async def until_done(self) -> ChatCompletion:
        """Read the rest of the stream (its deltas unseen) and return the completion."""
        async for _ in self:
            pass
        return self.completion

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamDelta:
        state = self._state
        while True:
            delta = state.next_delta()
            if delta is not None:
                return delta
            if state.completion is not None:
                await self._finish()
                raise StopAsyncIteration
            if self._closed:
                raise StopAsyncIteration
            try:
                if self._pieces is None:
                    await self._open()
                else:
                    piece = await anext(self._pieces, None)
                    if piece is None:
                        state.end()
                    else:
                        state.feed(piece)
            except Exception as exc:
                await self._release()
                try:
                    delay = state.recover(exc)
                except BaseException:
                    self._closed = True
                    raise
                if delay:
                    await asyncio.sleep(delay)
            except BaseException:
                await self.aclose()
                raise

    async def _open(self) -> None:
        client = self._client
        protocol = client._protocol
        request = client._http.build_request(
            "POST", protocol.url, content=self._body, headers=client._headers
        )
        await client._slots.acquire()
        self._slot = True
        response = self._response = await client._http.send(request, stream=True)
        if self._state.wants_body(response.status_code, response.headers):
            await response.aread()
            self._state.accept_body(response.status_code, response.headers, response.content)
            self._pieces = _no_pieces()
        else:
            self._pieces = cast(AsyncGenerator[bytes, None], response.aiter_bytes())

    async def _finish(self) -> None:
        response = self._response
        if response is not None and not response.is_closed:
            await body_end_async(response)
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection; the stream ends here (further iteration stops)."""
        self._closed = True
        await self._release()

    async def _release(self) -> None:
        try:
            pieces, self._pieces = self._pieces, None
            if pieces is not None:
                await pieces.aclose()
            response, self._response = self._response, None
            if response is not None:
                await response.aclose()
        finally:
            if self._slot:
                self._slot = False
                self._client._slots.release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Slots:
    """The bound on an async client's requests in flight: its pool's connection count.

    httpcore looks through every request waiting for a connection each time one frees up,
    so 1,000 concurrent runs on a 100-connection pool spent more than half their CPU time
    there. Waiting here instead (first come, first served) keeps its queue empty. A
    streamed answer holds its slot until the stream is released. ``None``: no bound.
    """

    __slots__ = ("_loop", "_semaphore", "_size")

    def __init__(self, size: int | None) -> None:
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None

    async def acquire(self) -> None:
        """Wait for a slot (the bound belongs to the running event loop)."""
        if self._size is None:
            return
        running = asyncio.get_running_loop()
        if self._loop is not running:
            self._loop, self._semaphore = running, asyncio.Semaphore(self._size)
        assert self._semaphore is not None
        await self._semaphore.acquire()

    def release(self) -> None:
        """Give a slot back."""
        if self._semaphore is not None:
            self._semaphore.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


async def _no_pieces() -> AsyncGenerator[bytes, None]:
    return
    yield b""  # makes this an async generator  # pragma: no cover
