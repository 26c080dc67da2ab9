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
exponential backoff and full jitter, honouring ``Retry-After`` (see
:class:`~agentkit._retry.RetryPolicy`); a stream is retried only while nothing has been
handed to the caller. A whole request (its retries and waits included) ends by its
``deadline``, and an answer is read only up to ``max_response_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import ssl
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

import httpx

from ._deprecation import warn_deprecated
from ._errors import AgentKitError, ConfigurationError
from ._events import StreamDelta
from ._keepalive import body_end_async, body_end_sync
from ._outcome import Outcome
from ._protocol import ChatProtocol, Exchange, StreamState
from ._providers import Provider, resolve_api_key, resolve_provider
from ._retry import RetryPolicy
from ._version import __version__
from ._wire import ChatCompletion, ChatMessage

__all__ = ["AsyncChatClient", "AsyncChatStream", "ChatClient", "ChatStream"]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection."""
DEFAULT_READ_TIMEOUT = 600.0
"""Seconds to wait for the next bytes of an answer: long, as LLM answers can be slow."""
DEFAULT_DEADLINE = 1800.0
"""Seconds a whole request may take, retries and waits included: longer than any answer
a model writes (a long reasoning answer takes minutes), short of forever."""
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""Bytes an answer may have (decoded), plain or streamed: many times the largest
completion, far below what would exhaust memory."""
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
"""The connection pool of a client that builds its own httpx client."""

Messages = Sequence[Mapping[str, Any] | ChatMessage]
"""What ``messages`` may hold: wire-format dicts, or assistant messages as received."""

_H = TypeVar("_H", httpx.Client, httpx.AsyncClient)


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


def _endpoint(url: str) -> httpx.URL | str:
    """The endpoint parsed once: httpx parses a URL given as text on every request
    (about 25 us, a tenth of a round's own cost). Text httpx cannot parse is kept as it is,
    so the request fails as it always did, with httpx's error."""
    try:
        return httpx.URL(url)
    except Exception:
        return url


def _checked_deadline(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise ConfigurationError(f"deadline must be a number of seconds or None, got {deadline!r}")
    if not (deadline > 0 and math.isfinite(deadline)):
        raise ConfigurationError(f"deadline must be a finite number > 0, got {deadline!r}")
    return float(deadline)


def _checked_size(size: int | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigurationError(f"max_response_bytes must be an integer > 0, got {size!r}")
    return size


class _ClientBase(Generic[_H]):
    """Everything both clients share: provider, key, timeouts, pool, protocol, retries."""

    _protocol: ChatProtocol
    _http: _H

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        provider: str | Provider | None = None,
        max_retries: int | None = None,
        timeout: float | httpx.Timeout | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        deadline: float | None = DEFAULT_DEADLINE,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
        http_client: _H | None = None,
        parse_text_tool_calls: bool = True,
        pool_limits: httpx.Limits | None = None,
        retry: RetryPolicy | None = None,
        retry_base_delay: float | None = None,
        retry_max_delay: float | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        if limits is not None:
            if pool_limits is not None:
                raise ConfigurationError("pass pool_limits= (limits= is its old name), not both")
            warn_deprecated(
                f"{type(self).__name__}(limits=) is renamed pool_limits= (limits= is an "
                "Agent's RunLimits); the old name will be removed"
            )
            pool_limits = limits
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be a RetryPolicy")
        policy = (retry or RetryPolicy()).replace(
            max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay
        )
        resolved = resolve_provider(provider, base_url)
        key = resolve_api_key(resolved, api_key)
        self._protocol = ChatProtocol(
            resolved,
            key,
            headers=headers,
            retry=policy,
            parse_text_tool_calls=parse_text_tool_calls,
            deadline=_checked_deadline(deadline),
            max_response_bytes=_checked_size(max_response_bytes),
            user_agent=f"agentkit/{__version__}",
        )
        self._has_key = key is not None
        self._url = _endpoint(self._protocol.url)
        own: httpx.Timeout
        if isinstance(timeout, httpx.Timeout):
            own = timeout
        elif timeout is not None:
            own = httpx.Timeout(timeout)
        else:
            own = httpx.Timeout(
                connect=connect_timeout,
                read=read_timeout,
                write=max(connect_timeout, 60.0),
                # Waiting for a free pooled connection is bounded by the requests that
                # hold them (each has its own timeouts) and by the deadline; a fixed bound
                # here only turns a burst of concurrent runs into spurious timeouts.
                pool=None,
            )
        self._owns_http = http_client is None
        if http_client is None:
            pool = pool_limits or DEFAULT_LIMITS
            # Headers live on the pool, so a request merges nothing per call.
            self._http = self._new_http(
                headers=self._protocol.headers,
                verify=_ssl_context(self.base_url),
                timeout=own,
                limits=pool,
            )
            self._headers: dict[str, str] | None = None
            self._timeout = own
            self._slots = _Slots(pool.max_connections)  # the async client's bound
        else:
            self._check_http(http_client)
            self._http = http_client
            self._headers = self._protocol.headers
            self._timeout = http_client.timeout  # its own timeouts apply (and the deadline)
            self._slots = _Slots(None)  # its pool is the caller's: no bound of ours

    def _new_http(self, **options: Any) -> _H:
        raise NotImplementedError

    def _check_http(self, http_client: object) -> None:
        raise NotImplementedError

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
        return self._protocol.retry.max_retries

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in use (``max_retries`` and the delays folded in)."""
        return self._protocol.retry

    @property
    def deadline(self) -> float | None:
        """Seconds a whole request may take, retries and waits included (``None``: no bound)."""
        return self._protocol.deadline

    def _exchange(
        self, model: str, messages: Messages, params: dict[str, Any], *, stream: bool
    ) -> Exchange:
        return self._protocol.exchange(model, messages, params, stream=stream)

    def __repr__(self) -> str:
        key = "'***'" if self._has_key else "None"
        return (
            f"{type(self).__name__}(provider={self.provider.name!r}, "
            f"base_url={self.base_url!r}, api_key={key})"
        )


class ChatClient(_ClientBase[httpx.Client]):
    """A synchronous Chat Completions client over one pooled ``httpx.Client``.

    Args:
        base_url: the API root (``.../v1``); default: ``AGENTKIT_BASE_URL``, else
            DashScope Singapore. Any OpenAI-compatible server works (vLLM, Ollama,
            llama.cpp); a DashScope host gets DashScope's parameter rules.
        api_key: default: the provider's variable (``DASHSCOPE_API_KEY``,
            ``OPENAI_API_KEY``); DashScope and OpenAI raise ``ConfigurationError`` without
            one, naming the variable; a custom server may go without. Surrounding
            whitespace is stripped; a key with a control or non-ASCII character is
            refused with a ``ConfigurationError`` that does not show it.
        provider: a preset name (``"dashscope"``, ``"dashscope-intl"``, ``"dashscope-cn"``,
            ``"openai"``, ``"custom"``) or a :class:`~agentkit._providers.Provider`.
        max_retries: retries of a failed request (rate limits, 5xx, connection errors,
            timeouts); 0 disables them. Default: the ``retry`` policy's (2).
        timeout: one timeout for everything (seconds or an ``httpx.Timeout``); overrides
            ``connect_timeout`` and ``read_timeout``.
        connect_timeout: seconds to connect (10).
        read_timeout: seconds to wait for the next bytes of an answer (600).
        deadline: seconds a whole request may take, retries and waits included (1800);
            past it, :class:`~agentkit._errors.DeadlineExceededError`, whatever the
            server does (a body trickled byte by byte, keep-alive comments forever).
            ``None``: no bound beyond the timeouts.
        max_response_bytes: the most an answer may hold, decoded, plain or streamed
            (64 MiB); a larger one raises
            :class:`~agentkit._errors.ResponseTooLargeError`. ``None``: no bound.
        headers: extra request headers.
        http_client: an ``httpx.Client`` to use instead of building one; its own timeouts
            and limits apply (capped by the deadline), and ``close()`` leaves it open (it
            is yours).
        parse_text_tool_calls: turn ``<tool_call>{...}</tool_call>`` written in the content
            into tool calls (Qwen served without a tool parser).
        pool_limits: an ``httpx.Limits``, the connection pool of the client built here
            (100 connections).
        limits: the old name of ``pool_limits`` (warns).
        retry: a :class:`~agentkit._retry.RetryPolicy`: backoff, jitter, the clock, sleep
            and random source (injectable for tests), and an ``on_retry`` callback.
        retry_base_delay, retry_max_delay: shortcuts for the policy's ``base_delay`` and
            ``max_delay``: retry ``n`` waits a random time up to
            ``min(retry_max_delay, retry_base_delay * 2**n)``, or what ``Retry-After``
            says (up to 60 s; a server asking for longer is not waited for).
    """

    def _new_http(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def _check_http(self, http_client: object) -> None:
        if not isinstance(http_client, httpx.Client):
            raise ConfigurationError(
                "http_client must be an httpx.Client (AsyncChatClient takes an httpx.AsyncClient)"
            )

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
        exchange = self._exchange(model, messages, params, stream=False)
        while not isinstance(outcome := self._attempt(exchange), ChatCompletion):
            self._protocol.retry.sleep(outcome)
        return outcome

    def _attempt(self, exchange: Exchange) -> ChatCompletion | float:
        """One try: the completion, or the seconds to wait before the next (the exchange
        decides; a final failure raises)."""
        try:
            timeout = exchange.timeout(self._timeout)
            url, headers = self._url, self._headers
            with self._http.stream(
                "POST", url, content=exchange.body, headers=headers, timeout=timeout
            ) as response:
                exchange.begin(response.status_code, response.headers)
                for piece in response.iter_bytes():
                    exchange.take(piece)
            return exchange.completion()
        except Exception as exc:
            return exchange.failed(exc)

    def stream(self, *, model: str, messages: Messages, **params: Any) -> ChatStream:
        """Start a streamed request; iterate the returned :class:`ChatStream` for deltas.

        The body is built (and checked) now; the request is sent on the first
        iteration. Use it as a context manager so the connection is released even when
        you stop early.
        """
        return ChatStream(self, self._exchange(model, messages, params, stream=True))

    def close(self) -> None:
        """Close the connection pool (not an ``http_client`` you passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _StreamBase:
    """What both streams share: every decision of a stream, written once (sans I/O).

    :func:`_plan` decides what comes next: a delta for the caller, or the I/O the stream
    needs first, named as a method of the stream's class (``_open``, ``_read``,
    ``_release``, ``_pause``, ``_finish``), which blocks in :class:`ChatStream` and awaits
    in :class:`AsyncChatStream`. Each stream's ``__next__``/``__anext__`` only performs that
    I/O (``step(self)`` or ``await step(self)``) within :attr:`_outcome`, which hands the
    I/O's failure back to the plan: a failure to send or read releases the connection, then
    is retried or raised (:meth:`StreamState.recover`); an interrupt (Ctrl-C, a cancelled
    task) closes the stream and is raised.

    The plan holds the stream's state and class, never the stream: a stream its caller
    drops unclosed is freed (its connection with it) when its last reference goes, not
    whenever the garbage collector gets to a cycle.
    """

    _stop: type[Exception]
    """What ends the iteration: ``StopIteration``, or ``StopAsyncIteration``."""
    # The I/O each stream writes in its world (each returns None, or an awaitable of it),
    # called through the class: a function of the stream.
    _open: ClassVar[Callable[[Any], Any]]
    _read: ClassVar[Callable[[Any], Any]]
    _pause: ClassVar[Callable[..., Any]]  # (stream, delay=seconds)
    _release: ClassVar[Callable[[Any], Any]]
    _finish: ClassVar[Callable[[Any], Any]]
    _pieces: Iterator[bytes] | AsyncGenerator[bytes, None] | None  # the body, once sent

    def __init__(self, client: _ClientBase[Any], exchange: Exchange) -> None:
        self._state: StreamState = client._protocol.new_stream(exchange)
        self._response: httpx.Response | None = None
        self._outcome = Outcome()
        self._steps = _plan(type(self), self._state)

    @property
    def completion(self) -> ChatCompletion:
        """The whole completion, once the stream has been read to the end."""
        completion = self._state.completion
        if completion is None:
            raise AgentKitError("the stream has not been read to the end yet")
        return completion

    def _step(self) -> StreamDelta | Callable[[Any], Any]:
        """The next delta, or the I/O to perform first; the last I/O's failure, if any,
        goes to the plan, which decides. Raises :attr:`_stop` once the stream is over."""
        try:
            return self._outcome.resume(self._steps)
        except StopIteration:
            raise self._stop from None

    def _take(self, piece: bytes | None) -> None:
        # The next piece of the body; None: the body ended.
        self._state.end() if piece is None else self._state.feed(piece)

    def _request(self, http: httpx.Client | httpx.AsyncClient, client: _ClientBase[Any]) -> Any:
        exchange = self._state.exchange
        assert exchange is not None
        return http.build_request(
            "POST",
            client._url,
            content=exchange.body,
            headers=client._headers,
            timeout=exchange.timeout(client._timeout),
        )


def _plan(
    kind: type[_StreamBase], state: StreamState
) -> Generator[StreamDelta | Callable[[Any], Any], None, None]:
    # The stream from its request to its end: each delta, and each I/O it needs as a
    # function of the stream's class, called with the stream. It holds no reference to the
    # stream itself: the stream holds it, and a cycle would keep a dropped stream (and its
    # connection) until the garbage collector runs.
    opened = False  # a response is open, its body being read
    while True:
        delta = state.next_delta()
        if delta is not None:
            yield delta
        elif state.completion is not None or state.closed:  # whole, or closed
            # Whole at [DONE]: the connection is kept only if its end is already here.
            yield kind._finish
            return
        else:
            try:
                yield kind._read if opened else kind._open
                opened = True
            except Exception as exc:
                opened = False
                yield kind._release
                if delay := state.recover(exc):  # or the final error, raised
                    yield functools.partial(kind._pause, delay=delay)
            except GeneratorExit:  # dropped while its I/O was under way
                raise
            except BaseException:  # an interrupt: Ctrl-C, a cancelled task
                yield kind._release
                raise


class ChatStream(_StreamBase):
    """One streamed answer: an iterator of ``StreamDelta`` and a context manager.

    Deltas are :class:`~agentkit._events.TextDelta`,
    :class:`~agentkit._events.ReasoningDelta` and
    :class:`~agentkit._events.ToolCallArgumentsDelta`. After the last one,
    :attr:`completion` is the whole ``ChatCompletion`` (as ``create`` would have returned
    it); the stream ends at ``[DONE]`` without waiting for the server to close its body.
    A stream that ends before it is whole raises
    :class:`~agentkit._errors.IncompleteStreamError`; it never passes for a whole answer.
    """

    _stop = StopIteration

    def __init__(self, client: ChatClient, exchange: Exchange) -> None:
        super().__init__(client, exchange)
        self._client = client
        self._pieces: Iterator[bytes] | None = None

    def until_done(self) -> ChatCompletion:
        """Read the rest of the stream (its deltas unseen) and return the completion."""
        for _ in self:
            pass
        return self.completion

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> StreamDelta:
        while callable(step := self._step()):  # an I/O the stream needs first
            with self._outcome:
                step(self)
        return step

    def _open(self) -> None:
        http = self._client._http
        response = self._response = http.send(self._request(http, self._client), stream=True)
        if self._state.wants_body(response.status_code, response.headers):
            response.read()
            self._state.accept_body(response.status_code, response.headers, response.content)
            self._pieces = iter(())
        else:
            self._pieces = response.iter_bytes()

    def _read(self) -> None:
        assert self._pieces is not None
        self._take(next(self._pieces, None))

    def _pause(self, delay: float) -> None:
        self._client._protocol.retry.sleep(delay)

    def _finish(self) -> None:
        response = self._response
        if response is not None and not response.is_closed:
            body_end_sync(response)
        self.close()

    def close(self) -> None:
        """Release the connection; the stream ends here (further iteration stops)."""
        self._state.closed = True
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

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncChatClient(_ClientBase[httpx.AsyncClient]):
    """The asynchronous twin of :class:`ChatClient`, over one pooled ``httpx.AsyncClient``.

    Takes the same arguments (``http_client`` must be an ``httpx.AsyncClient``);
    ``await client.create(...)``; ``async with client.stream(...) as stream: async for
    delta in stream``; ``await client.aclose()`` or ``async with AsyncChatClient()``.
    Retries wait with the policy's ``async_sleep``.

    A client that builds its own pool keeps at most ``pool_limits.max_connections`` requests in
    flight (a stream counts until it is released); more wait their turn in the client,
    first come, first served, which costs far less than waiting in httpx's pool.
    """

    def _new_http(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    def _check_http(self, http_client: object) -> None:
        if not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError(
                "http_client must be an httpx.AsyncClient (ChatClient takes an httpx.Client)"
            )

    async def create(self, *, model: str, messages: Messages, **params: Any) -> ChatCompletion:
        """Send one non-streamed request and return the whole ``ChatCompletion``.

        See :meth:`ChatClient.create`.
        """
        exchange = self._exchange(model, messages, params, stream=False)
        while not isinstance(outcome := await self._attempt(exchange), ChatCompletion):
            await self._protocol.retry.async_sleep(outcome)
        return outcome

    async def _attempt(self, exchange: Exchange) -> ChatCompletion | float:
        """One try, as :meth:`ChatClient._attempt`; waits for a slot of the client's bound."""
        try:
            timeout = exchange.timeout(self._timeout)
            url, headers = self._url, self._headers
            async with (
                self._slots,
                self._http.stream(
                    "POST", url, content=exchange.body, headers=headers, timeout=timeout
                ) as response,
            ):
                exchange.begin(response.status_code, response.headers)
                async for piece in response.aiter_bytes():
                    exchange.take(piece)
            return exchange.completion()
        except Exception as exc:
            return exchange.failed(exc)

    def stream(self, *, model: str, messages: Messages, **params: Any) -> AsyncChatStream:
        """Start a streamed request; ``async for`` over the returned :class:`AsyncChatStream`.

        See :meth:`ChatClient.stream`.
        """
        return AsyncChatStream(self, self._exchange(model, messages, params, stream=True))

    async def aclose(self) -> None:
        """Close the connection pool (not an ``http_client`` you passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncChatStream(_StreamBase):
    """The asynchronous twin of :class:`ChatStream`: ``async for`` and ``async with``."""

    _stop = StopAsyncIteration
    _slot: asyncio.Semaphore | None = None  # the bound it holds a slot of (send to release)

    def __init__(self, client: AsyncChatClient, exchange: Exchange) -> None:
        super().__init__(client, exchange)
        self._client = client
        self._pieces: AsyncGenerator[bytes, None] | None = None

    async def until_done(self) -> ChatCompletion:
        """Read the rest of the stream (its deltas unseen) and return the completion."""
        async for _ in self:
            pass
        return self.completion

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamDelta:
        while callable(step := self._step()):  # an I/O the stream needs first
            with self._outcome:
                await step(self)
        return step

    async def _open(self) -> None:
        client = self._client
        request = self._request(client._http, client)
        self._slot = await client._slots.acquire()
        response = self._response = await client._http.send(request, stream=True)
        if self._state.wants_body(response.status_code, response.headers):
            await response.aread()
            self._state.accept_body(response.status_code, response.headers, response.content)
            self._pieces = _no_pieces()
        else:
            self._pieces = cast(AsyncGenerator[bytes, None], response.aiter_bytes())

    async def _read(self) -> None:
        assert self._pieces is not None
        self._take(await anext(self._pieces, None))

    async def _pause(self, delay: float) -> None:
        await self._client._protocol.retry.async_sleep(delay)

    async def _finish(self) -> None:
        response = self._response
        if response is not None and not response.is_closed:
            await body_end_async(response)
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection; the stream ends here (further iteration stops)."""
        self._state.closed = True
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
            slot, self._slot = self._slot, None
            if slot is not None:
                slot.release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped unclosed: the event loop closes the body being read (asyncio finalises a
        # dropped async generator), but nothing else would give the client's slot back.
        if self._slot is not None:
            self._client._slots.release_soon(self._slot)


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

    async def acquire(self) -> asyncio.Semaphore | None:
        """Wait for a slot of the running event loop's bound; returns that bound, to give
        the slot back to (``None``: no bound)."""
        if self._size is None:
            return None
        running = asyncio.get_running_loop()
        if self._loop is not running:
            self._loop, self._semaphore = running, asyncio.Semaphore(self._size)
        semaphore = self._semaphore
        assert semaphore is not None
        await semaphore.acquire()
        return semaphore

    def release(self) -> None:
        """Give a slot back."""
        if self._semaphore is not None:
            self._semaphore.release()

    def release_soon(self, bound: asyncio.Semaphore) -> None:
        """Give a slot of ``bound`` back from a finaliser, which may run on any thread: on
        the bound's loop, if it is still this client's (a loop that ended took its bound
        with it, and another loop's must not grow)."""
        loop = self._loop
        if loop is not None and bound is self._semaphore:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(bound.release)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


async def _no_pieces() -> AsyncGenerator[bytes, None]:
    return
    yield b""  # makes this an async generator  # pragma: no cover
