"""The Chat Completions protocol, shared by the sync and async clients; it does no I/O.

Everything a client decides lives here, so :mod:`agentkit._client` holds only the lines
that block or await:

- :meth:`ChatProtocol.build_body`: model, messages and parameters to one JSON body
  (unknown parameters refused, ``None`` omitted, ``extra_body`` merged, outgoing assistant
  messages made acceptable to every server, the provider's rules checked);
- :meth:`ChatProtocol.parse_completion`: a response to a ``ChatCompletion`` or a typed
  error (:func:`~agentkit._errors.error_from_response`);
- :meth:`ChatProtocol.transport_error`: an httpx exception to an agentkit one;
- :meth:`ChatProtocol.retry_delay`: whether to retry, and after how long
  (:func:`should_retry`, :func:`retry_delay`);
- :class:`StreamState`: one streamed request's bytes to deltas and a completion, and the
  decision whether a failed stream may be retried.

The API key is known here only to be scrubbed from anything a server echoes back.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ._assemble import StreamAssembler
from ._cache import mark_cache_prefix
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    DeadlineExceededError,
    IncompleteStreamError,
    InvalidResponseError,
    RequestValidationError,
    ResponseTooLargeError,
    error_from_response,
)
from ._events import ReasoningDelta, StreamDelta, TextDelta, ToolCallArgumentsDelta
from ._observe import notify_retry
from ._providers import Provider
from ._retry import (
    MAX_SERVER_DELAY,
    RETRY_STATUSES,
    RetryEvent,
    RetryPolicy,
    retry_delay,
    server_delay,
    should_retry,
)
from ._secrets import Secret, checked_headers
from ._sse import ServerSentEvent, SSEDecoder
from ._textcalls import extract_text_tool_calls
from ._wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    FunctionCall,
    ToolCall,
    distinct_calls,
    message_to_dict,
    new_call_id,
)

__all__ = [
    "MAX_SERVER_DELAY",
    "RETRY_STATUSES",
    "WIRE_PARAMS",
    "ChatProtocol",
    "Exchange",
    "StreamState",
    "check_finish",
    "request_id_of",
    "retry_delay",
    "should_retry",
]

_logger = logging.getLogger("agentkit._client")
_E = TypeVar("_E", bound=BaseException)

WIRE_PARAMS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
"""The request fields of the Chat Completions API a client accepts as keyword arguments.

Anything else (a typo, or a vendor extra such as Qwen's ``enable_thinking``) is refused
before sending; vendor extras go in ``extra_body``."""

_REQUEST_ID_HEADERS = ("x-request-id", "x-dashscope-request-id", "request-id")
_SNIPPET = 200


def request_id_of(headers: Mapping[str, str] | None) -> str | None:
    """The request id a server put in its response headers, if any."""
    if headers:
        for name in _REQUEST_ID_HEADERS:
            value = headers.get(name)
            if value:
                return value
    return None


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


def _is_success(status: int) -> bool:
    return 200 <= status < 300


class ChatProtocol:
    """The request builder, response parser and retry policy of one client.

    Built once per client; every method is cheap and does no I/O. ``url`` is the
    ``/chat/completions`` endpoint and ``headers`` the request headers (authorisation
    included, so this object's ``repr`` never shows them).
    """

    __slots__ = (
        "_secret",
        "deadline",
        "headers",
        "max_response_bytes",
        "parse_text_tool_calls",
        "provider",
        "retry",
        "url",
    )

    def __init__(
        self,
        provider: Provider,
        api_key: str | None,
        *,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        parse_text_tool_calls: bool = True,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
        user_agent: str = "agentkit",
    ) -> None:
        self.provider = provider
        base = provider.base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        all_headers = {"Content-Type": "application/json", "User-Agent": user_agent}
        if api_key:
            all_headers["Authorization"] = f"Bearer {api_key}"
        all_headers.update(checked_headers(headers))
        self.headers = all_headers
        self._secret = Secret(api_key) if api_key else None
        self.retry = retry or RetryPolicy()
        self.parse_text_tool_calls = parse_text_tool_calls
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes

    @property
    def max_retries(self) -> int:
        """How many times a failed request is sent again."""
        return self.retry.max_retries

    def exchange(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any] | ChatMessage],
        params: dict[str, Any],
        *,
        stream: bool,
    ) -> Exchange:
        """One request to send, across its attempts (the body is built and checked now)."""
        return Exchange(self, self.build_body(model, messages, params, stream=stream))

    def __repr__(self) -> str:
        return f"ChatProtocol(url={self.url!r}, provider={self.provider.name!r})"

    # --- requests -------------------------------------------------------------------

    def build_body(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any] | ChatMessage],
        params: dict[str, Any],
        *,
        stream: bool,
    ) -> bytes:
        """The JSON body of one request. ``params`` is consumed (it is the caller's kwargs).

        ``None`` parameters are left out; ``stream`` is set (a contradicting ``stream``
        parameter is refused); a streamed request asks for the usage chunk unless
        ``stream_options`` was given, a non-streamed one drops ``stream_options``;
        ``extra_body`` is merged last; with the provider's context cache on, the stable
        prefix gets ``cache_control`` markers (:mod:`agentkit._cache`); then the provider's
        rules are checked.

        Raises:
            RequestValidationError: naming the parameter that is unknown, malformed or
                against the provider's rules, or when the body is not JSON-serialisable.
        """
        if not isinstance(model, str) or not model:
            raise RequestValidationError("model must be a non-empty string", param="model")
        extra_body = params.pop("extra_body", None)
        if extra_body is not None and not isinstance(extra_body, Mapping):
            raise RequestValidationError("extra_body must be a dict", param="extra_body")
        unknown = params.keys() - WIRE_PARAMS
        if unknown:
            name = min(unknown)
            raise RequestValidationError(
                f"unknown request parameter {name!r}; vendor extras (such as Qwen's "
                "enable_thinking) go in extra_body={...}",
                param=name,
            )
        asked = params.pop("stream", None)
        if asked is not None and bool(asked) != stream:
            raise RequestValidationError(
                "stream=True needs client.stream(), not create()"
                if asked
                else "client.stream() always streams; use create() for stream=False",
                param="stream",
            )
        body: dict[str, Any] = {
            "model": model,
            "messages": self._outgoing_messages(messages),
        }
        for name, value in params.items():
            if value is not None:
                body[name] = value
        body["stream"] = stream
        if stream:
            # every preset asks for the usage chunk unless the caller set stream_options
            body.setdefault("stream_options", {"include_usage": True})
        else:
            body.pop("stream_options", None)  # servers refuse it without a stream
        if extra_body:
            body.update(extra_body)
        provider = self.provider
        if provider.context_cache and provider.context_cache_min_tokens is not None:
            body["messages"] = mark_cache_prefix(
                body["messages"], body.get("tools"), min_tokens=provider.context_cache_min_tokens
            )
        if self.provider.check_request is not None:
            self.provider.check_request(body)
        try:
            return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise RequestValidationError(f"the request is not JSON-serialisable: {exc}") from exc

    def _outgoing_messages(self, messages: Sequence[Mapping[str, Any] | ChatMessage]) -> list[Any]:
        """The messages as sent: the caller's list unless one needs fixing (never mutated)."""
        if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
            raise RequestValidationError(
                "messages must be a list of message dicts", param="messages"
            )
        out: list[Any] | None = None
        for position, message in enumerate(messages):
            fixed: Any = None
            if isinstance(message, Mapping):
                # llama.cpp answers 500 to a null content beside tool calls; every server
                # accepts "", so it is always sent
                if (
                    message.get("content") is None
                    and message.get("tool_calls")
                    and message.get("role") == "assistant"
                ):
                    fixed = {**message, "content": ""}
            elif isinstance(message, ChatMessage):
                fixed = message_to_dict(message)
            elif isinstance(message, BaseModel):
                fixed = message.model_dump(exclude_none=True)
            else:
                raise RequestValidationError(
                    f"messages[{position}] must be a dict, got {type(message).__name__}",
                    param="messages",
                )
            if fixed is not None:
                if out is None:
                    out = list(messages)
                out[position] = fixed
        if out is not None:
            return out
        return messages if isinstance(messages, list) else list(messages)

    # --- responses ------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """``text`` with the API key masked (in any escaped form), for anything a server
        may have echoed."""
        secret = self._secret
        return secret.scrub(text) if secret is not None else text

    def scrubbed(self, error: _E) -> _E:
        """``error`` with the API key masked wherever a server may have echoed it.

        Masks every text attribute and ``args``; masks the key in the request headers that
        chained httpx exceptions keep (``error.__cause__.request.headers``); a chained
        cause or context that still shows the key is cut from the chain, so a printed
        traceback cannot show it either. Every error a client raises passes through here.
        """
        secret = self._secret
        if secret is None:
            return error
        for attribute, value in list(vars(error).items()):
            if isinstance(value, str) and secret.shows_in(value):
                setattr(error, attribute, secret.scrub(value))
        error.args = tuple(secret.scrub(arg) if isinstance(arg, str) else arg for arg in error.args)
        seen: set[int] = set()
        linked = [error.__cause__, error.__context__]
        while linked:
            exc = linked.pop()
            if exc is None or id(exc) in seen:
                continue
            seen.add(id(exc))
            request = getattr(exc, "_request", None)  # where httpx errors keep theirs
            if isinstance(request, httpx.Request):
                secret.scrub_headers(request.headers)
            linked += [exc.__cause__, exc.__context__]
            if secret.shows_in(f"{exc!s}{exc!r}{exc.args!r}"):
                error.__cause__ = None
                error.__suppress_context__ = True
                break
        return error

    def error_for_status(
        self, status: int, headers: Mapping[str, str], content: bytes
    ) -> APIStatusError:
        """The exception for an HTTP error answer (its body read in full)."""
        text = self.scrub(content.decode("utf-8", "replace"))
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return error_from_response(status, body, request_id=request_id_of(headers), text=text)

    def parse_completion(
        self, status: int, headers: Mapping[str, str], content: bytes
    ) -> ChatCompletion:
        """A non-streamed answer to a ``ChatCompletion``, or the typed error it stands for.

        Raises:
            APIStatusError: a subclass for an error status, or for an error body sent
                with a 2xx status.
            InvalidResponseError: a 2xx body that is not a completion (not JSON, no
                ``choices``, an HTML page...), with a readable snippet of it.
        """
        if not _is_success(status):
            raise self.error_for_status(status, headers, content)
        if "event-stream" in headers.get("content-type", ""):
            return self._completion_of_stream(status, headers, content)
        try:
            completion = ChatCompletion.model_validate_json(content)
        except ValidationError as exc:
            raise self._not_a_completion(status, headers, content, exc) from None
        if not completion.choices:
            extra = completion.__pydantic_extra__
            if extra and extra.get("error") is not None:
                raise self.error_for_status(status, headers, content)
            raise InvalidResponseError(
                "the server answered with a completion that has no choices: "
                + _snippet(self.scrub(content.decode("utf-8", "replace"))),
                status=status,
                request_id=request_id_of(headers),
            )
        for choice in completion.choices:
            message = choice.message
            if not message.tool_calls:
                message = _legacy_function_call(message)
            if self.parse_text_tool_calls:
                message = extract_text_tool_calls(message)
            if message.tool_calls:
                message.tool_calls = distinct_calls(message.tool_calls)
            choice.message = message
        check_finish(completion, status, request_id_of(headers))
        return completion

    def _completion_of_stream(
        self, status: int, headers: Mapping[str, str], content: bytes
    ) -> ChatCompletion:
        # A server that streams although stream=False was asked: take the whole stream.
        state = StreamState(self)
        state.wants_body(status, headers)
        state.feed(content)
        state.end()
        assert state.completion is not None
        return state.completion

    def _not_a_completion(
        self, status: int, headers: Mapping[str, str], content: bytes, exc: ValidationError
    ) -> APIError:
        text = self.scrub(content.decode("utf-8", "replace"))
        request_id = request_id_of(headers)
        try:
            body = json.loads(text)
        except ValueError:
            kind = headers.get("content-type") or "no content type"
            what = "an empty body" if not text.strip() else f"a body that is not JSON ({kind})"
            return InvalidResponseError(
                f"the server answered {status} with {what}: {_snippet(text)}".rstrip(": "),
                status=status,
                request_id=request_id,
            )
        if isinstance(body, Mapping) and body.get("error") is not None:
            return error_from_response(status, body, request_id=request_id, text=text)
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        return InvalidResponseError(
            f"the server answered {status} with JSON that is not a chat completion "
            f"({where}: {first['msg']}): {_snippet(text)}",
            status=status,
            request_id=request_id,
        )

    def transport_error(self, exc: httpx.HTTPError) -> APIError:
        """The agentkit exception for an httpx exception (the URL named, no headers)."""
        name = type(exc).__name__
        detail = str(exc) or name
        error: APIError
        if isinstance(exc, httpx.TimeoutException):
            doing = {
                "ConnectTimeout": "connecting",
                "ReadTimeout": "waiting for the answer",
                "WriteTimeout": "sending the request",
                "PoolTimeout": "waiting for a free connection",
            }.get(name, "waiting for the server")
            error = APITimeoutError(f"timed out {doing} (POST {self.url}, {name})")
        elif isinstance(exc, httpx.ConnectError):
            error = APIConnectionError(f"could not connect to {self.url}: {detail}")
        elif isinstance(exc, httpx.TransportError):
            error = APIConnectionError(f"the connection to {self.url} failed ({name}): {detail}")
        else:  # decoding a compressed body failed, and the like
            error = InvalidResponseError(f"could not read the answer from {self.url}: {detail}")
        error.message = self.scrub(error.message)
        error.__cause__ = exc
        return error

    # --- retries --------------------------------------------------------------------

    def new_stream(self, exchange: Exchange) -> StreamState:
        """The state of one streamed request, across its retries."""
        return StreamState(self, exchange)


class Exchange:
    """One request across its attempts: its body, deadline, answer size and retry count.

    The client asks :meth:`timeout` before each attempt (the deadline caps every httpx
    timeout), passes each piece of the answer to :meth:`take` (plain) or :meth:`count`
    (streamed), which enforce the size cap and the deadline as the bytes arrive, and hands
    any failure to :meth:`failed`, which returns how long to wait before the next
    attempt or raises the final error.
    """

    __slots__ = (
        "_ends_at",
        "_pieces",
        "_protocol",
        "_received",
        "attempt",
        "body",
        "headers",
        "status",
    )

    def __init__(self, protocol: ChatProtocol, body: bytes) -> None:
        self._protocol = protocol
        self.body = body
        self.attempt = 0  # retries made so far
        self._ends_at: float | None = None  # the deadline on the monotonic clock
        self.status = 0
        self.headers: Mapping[str, str] | None = None
        self._pieces: list[bytes] = []
        self._received = 0

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """The httpx timeouts of the next attempt: ``base``, each capped by the time left.

        Raises:
            DeadlineExceededError: the deadline has passed (before the first attempt it
                starts now).
        """
        self.status, self.headers = 0, None
        self._pieces, self._received = [], 0
        deadline = self._protocol.deadline
        if deadline is None:
            return base
        now = time.monotonic()
        if self._ends_at is None:
            self._ends_at = now + deadline
        left = self._ends_at - now
        if left <= 0:
            raise self._past_deadline(None)
        return httpx.Timeout(
            connect=_at_most(base.connect, left),
            read=_at_most(base.read, left),
            write=_at_most(base.write, left),
            pool=_at_most(base.pool, left),
        )

    def begin(self, status: int, headers: Mapping[str, str]) -> None:
        """The status line and headers of the answer arrived."""
        self.status, self.headers = status, headers

    def take(self, piece: bytes) -> None:
        """The next piece of a plain answer's body (kept, counted, timed)."""
        self.count(len(piece))
        self._pieces.append(piece)

    def count(self, size: int) -> None:
        """``size`` more bytes of the answer arrived.

        Raises:
            ResponseTooLargeError: past ``max_response_bytes``.
            DeadlineExceededError: past the deadline.
        """
        self._received += size
        limit = self._protocol.max_response_bytes
        if limit is not None and self._received > limit:
            raise ResponseTooLargeError(
                f"the answer from {self._protocol.url} is larger than max_response_bytes "
                f"({limit:,} bytes); it was not read further",
                limit=limit,
                status=self.status or None,
                request_id=request_id_of(self.headers),
            )
        if self._ends_at is not None and time.monotonic() >= self._ends_at:
            raise self._past_deadline(None)

    def completion(self) -> ChatCompletion:
        """The plain answer read to its end, parsed (or the typed error it stands for)."""
        assert self.headers is not None
        content = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        return self._protocol.parse_completion(self.status, self.headers, content)

    def failed(self, exc: Exception, *, may_retry: bool = True) -> float:
        """An attempt failed: seconds to wait before the next one, or raise the final error.

        ``exc`` is an httpx or agentkit error (anything else is re-raised as is).
        ``may_retry=False``: the failure is final whatever it is (a stream that already
        showed text). A retry is announced to the policy (log, ``on_retry``) first.
        """
        protocol = self._protocol
        if isinstance(exc, httpx.HTTPError):
            error: APIError = protocol.transport_error(exc)
        elif isinstance(exc, APIError):
            error = exc
        else:
            raise exc
        if isinstance(error, DeadlineExceededError):
            raise protocol.scrubbed(error)
        now = time.monotonic()
        if self._ends_at is not None and now >= self._ends_at:
            raise protocol.scrubbed(self._past_deadline(error))
        policy = protocol.retry
        asked = server_delay(self.headers, policy.clock)
        if asked is not None:
            error.retry_after = max(asked, 0.0)
        delay: float | None = None
        if may_retry and self.attempt < policy.max_retries and should_retry(error):
            delay = policy.delay(self.attempt, asked)
            if self._ends_at is not None and delay is not None and now + delay >= self._ends_at:
                delay = None  # the deadline would pass while waiting: give up now
        if delay is None:
            if self.attempt:
                _logger.info(
                    "POST %s failed after %d retries: %s (status %s)",
                    protocol.url,
                    self.attempt,
                    type(error).__name__,
                    error.status,
                )
            raise protocol.scrubbed(error)
        self.attempt += 1
        policy.announce(
            RetryEvent(self.attempt, policy.max_retries, delay, error.status, error, protocol.url)
        )
        notify_retry(error, delay, self.attempt, policy.max_retries)  # tracing, CLI progress
        return delay

    def _past_deadline(self, cause: APIError | None) -> DeadlineExceededError:
        deadline = self._protocol.deadline
        error = DeadlineExceededError(
            f"the request took longer than its deadline of {deadline:g} s "
            f"(POST {self._protocol.url}, {self.attempt + 1} attempt(s))",
            deadline=deadline,
            status=self.status or None,
            request_id=request_id_of(self.headers),
        )
        error.__cause__ = cause
        return error


def _at_most(value: float | None, bound: float) -> float:
    return bound if value is None else min(value, bound)


def check_finish(completion: ChatCompletion, status: int, request_id: str | None) -> None:
    """Refuse an answer that says it called tools but carries neither a call nor text.

    Taken as is, it would end a run with the final answer ``""``. It is a model glitch a
    second try usually clears, so it is retried like a 5xx (a stream only while nothing
    was shown). With text, the text is the answer and the finish reason is left as sent.

    Raises:
        InvalidResponseError: ``code == "tool_calls_without_calls"``, retryable.
    """
    for choice in completion.choices:
        message = choice.message
        if choice.finish_reason == "tool_calls" and not message.tool_calls and not message.content:
            error = InvalidResponseError(
                "the model's answer says it called tools (finish_reason 'tool_calls') but "
                "carries no tool call and no text",
                status=status,
                code="tool_calls_without_calls",
                request_id=request_id,
            )
            error.retryable = True
            raise error


def _legacy_function_call(message: ChatMessage) -> ChatMessage:
    """A message with only a legacy ``function_call`` gets it as a tool call too."""
    extra = message.__pydantic_extra__
    legacy = extra.get("function_call") if extra else None
    if not isinstance(legacy, Mapping):
        return message
    name = legacy.get("name")
    if not isinstance(name, str) or not name:
        return message
    arguments = legacy.get("arguments")
    call = ToolCall(
        id=new_call_id(),
        type="function",
        function=FunctionCall(name=name, arguments=arguments if isinstance(arguments, str) else ""),
    )
    return message.model_copy(update={"tool_calls": [call]})


class StreamState:
    """One streamed request, from bytes to deltas and a completion, across its retries.

    The client feeds it what the socket gives and takes deltas out one at a time
    (:meth:`next_delta`); :attr:`completion` is set once the stream is whole. On any
    failure the client calls :meth:`recover`, which returns how long to wait before
    sending again, or raises the final error: a stream is retried only while nothing has
    been handed to the caller.
    """

    __slots__ = (
        "_assembler",
        "_decoder",
        "_pending",
        "_protocol",
        "_started",
        "_status",
        "completion",
        "exchange",
        "yielded",
    )

    def __init__(self, protocol: ChatProtocol, exchange: Exchange | None = None) -> None:
        self._protocol = protocol
        # None: a body already read whole (a server that streamed to a plain request)
        self.exchange = exchange
        self.yielded = False
        self.completion: ChatCompletion | None = None
        self._reset()

    def _reset(self) -> None:
        self._decoder = SSEDecoder()
        self._assembler = StreamAssembler(self._protocol.parse_text_tool_calls)
        self._pending: deque[StreamDelta] = deque()
        self._started = False  # a 2xx event stream is being read
        self._status = 0

    # --- what the client calls ------------------------------------------------------

    def next_delta(self) -> StreamDelta | None:
        """The next delta to hand to the caller, or ``None`` when none is ready."""
        if self._pending:
            self.yielded = True
            return self._pending.popleft()
        return None

    def wants_body(self, status: int, headers: Mapping[str, str]) -> bool:
        """Whether the response must be read whole (an error, or not an event stream).

        Otherwise the stream has started and its bytes go to :meth:`feed`.
        """
        self._status = status
        if self.exchange is not None:
            self.exchange.begin(status, headers)
        if _is_success(status):
            kind = headers.get("content-type", "").lower()
            if "event-stream" in kind or not ("json" in kind or "html" in kind):
                self._started = True
                return False
        return True

    def accept_body(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        """A whole body instead of an event stream: raise its error, or take its answer.

        A server that ignores ``stream=True`` and answers JSON is accepted: its
        completion is handed out as deltas.
        """
        if _is_success(status) and "html" in headers.get("content-type", "").lower():
            text = self._protocol.scrub(content.decode("utf-8", "replace"))
            raise InvalidResponseError(
                f"expected an event stream, the server answered {status} with an HTML page: "
                + _snippet(text),
                status=status,
                request_id=request_id_of(headers),
            )
        completion = self._protocol.parse_completion(status, headers, content)
        for choice in completion.choices:
            message = choice.message
            if message.reasoning_content:
                self._pending.append(ReasoningDelta(message.reasoning_content))
            if message.content:
                self._pending.append(TextDelta(message.content))
            for index, call in enumerate(message.tool_calls or ()):
                self._pending.append(
                    ToolCallArgumentsDelta(
                        index, call.id, call.function.name, call.function.arguments
                    )
                )
        self.completion = completion

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the event stream."""
        if self.completion is not None:
            return  # after [DONE]: whatever follows is ignored
        if self.exchange is not None:
            self.exchange.count(len(data))
        for event in self._decoder.feed(data):
            self._on_event(event)
            if self.completion is not None:
                return
        if self._decoder.waiting_data == "[DONE]":
            # A whole `data: [DONE]` line without the blank line after it, on a connection
            # the server holds open: it cannot mean anything else, so the stream ends here.
            self._on_event(ServerSentEvent(data="[DONE]"))

    def end(self) -> None:
        """The event stream ended cleanly: settle the completion, or raise why not."""
        if self.completion is not None:
            return
        for event in self._decoder.flush():
            self._on_event(event)
            if self.completion is not None:
                return
        if not self._assembler.received_any:
            raise IncompleteStreamError(
                f"the server answered {self._status} with an empty stream (no chunks, no "
                "[DONE]); some servers do this for tools with stream=True",
                status=self._status,
                code="empty_stream",
                request_id=self._request_id,
            )
        self._settle()

    def recover(self, exc: Exception) -> float:
        """A failure while sending or reading: seconds to wait before retrying, or raise.

        Returns ``0.0`` without a retry when a cut stream turns out to be whole (its
        finish reason arrived, only ``[DONE]`` was lost). A transport failure after the
        stream started is an :class:`~agentkit._errors.IncompleteStreamError` keeping
        the partial answer. Anything not an httpx or agentkit error is re-raised as is.
        """
        assert self.exchange is not None
        error: Exception = exc
        if isinstance(exc, httpx.HTTPError) and self._started:
            cut = self._cut(self._protocol.transport_error(exc))
            if cut is None:
                return 0.0
            cut.__cause__ = exc
            error = cut
        may_retry = not self.yielded and getattr(error, "code", None) != "empty_stream"
        delay = self.exchange.failed(error, may_retry=may_retry)
        self._reset()
        return delay

    # --- internals ------------------------------------------------------------------

    @property
    def _request_id(self) -> str | None:
        # Looked up only for an error: each header lookup scans httpx's header list.
        return request_id_of(self.exchange.headers if self.exchange is not None else None)

    def _on_event(self, event: ServerSentEvent) -> None:
        data = event.data
        if data == "[DONE]" or data.strip() == "[DONE]":
            self._pending.extend(self._assembler.mark_done())
            self._settle()
            return
        if not data.strip():
            return  # an empty data line: a keep-alive at most
        if event.event == "error":
            self._raise_stream_error(data)
        try:
            chunk = ChatCompletionChunk.model_validate_json(data)
        except ValidationError:
            self._raise_stream_error(data, bad_chunk=True)
        extra = chunk.__pydantic_extra__
        if extra and extra.get("error") is not None:
            self._raise_stream_error(data)
        self._pending.extend(self._assembler.feed(chunk))

    def _settle(self) -> None:
        try:
            completion = self._assembler.finish()
        except IncompleteStreamError as exc:
            exc.status = self._status
            exc.request_id = self._request_id
            raise
        check_finish(completion, self._status, self._request_id)
        self.completion = completion

    def _raise_stream_error(self, data: str, *, bad_chunk: bool = False) -> NoReturn:
        """An ``error`` event or object in the stream, or a ``data:`` line that is no chunk."""
        text = self._protocol.scrub(data)
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, Mapping) else None
        if error is None:
            if bad_chunk:
                raise InvalidResponseError(
                    "the stream sent a data line that is not a valid chunk: " + _snippet(text),
                    status=self._status,
                    request_id=self._request_id,
                )
            error = body if isinstance(body, Mapping) else {"message": text}
        if not isinstance(error, Mapping):
            error = {"message": str(error)}
        status = self._status
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
            status = code  # vLLM puts the HTTP status of a mid-stream error in "code"
        raise error_from_response(status, {"error": error}, request_id=self._request_id, text=text)

    def _cut(self, error: APIError) -> IncompleteStreamError | None:
        """The error for a stream cut mid-way, or ``None`` when what arrived is whole."""
        try:
            for event in self._decoder.flush():
                self._on_event(event)
            if self.completion is None and self._assembler.received_any:
                self._settle()
        except IncompleteStreamError as exc:
            partial = exc.partial
        except APIError as exc:
            partial = None
            error = exc
        else:
            if self.completion is not None:
                return None
            partial = None
        return IncompleteStreamError(
            f"the stream was cut before it was whole: {error.message}",
            partial=partial,
            status=self._status,
            request_id=self._request_id,
        )
