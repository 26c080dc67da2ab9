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
- :class:`~agentkit._stream_state.StreamState` (its own module): one streamed request's
  bytes to deltas and a completion, and the decision whether a failed stream may be retried.

The API key is known here only to be scrubbed from anything a server echoes back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ._answer import check_finish, is_success, legacy_function_call, request_id_of, snippet
from ._cache import mark_cache_prefix
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    DeadlineExceededError,
    InvalidResponseError,
    RequestValidationError,
    ResponseTooLargeError,
    error_from_response,
)
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
from ._stream_state import StreamState
from ._textcalls import extract_text_tool_calls
from ._wire import (
    ChatCompletion,
    ChatMessage,
    distinct_calls,
    message_to_dict,
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

# What httpx says when a request meets a closed client ("Cannot send a request, as the
# client has been closed."): a RuntimeError, told apart by its text.
_POOL_CLOSED = "client has been closed"

_logger = logging.getLogger("agentkit._client")

# When the run that makes a request must end (a monotonic time), set by the sync driver
# while it makes the request: a thread cannot be cancelled, so the run's deadline has to
# bound the request's own timeouts (a hung model would hold a run, or a sub-agent's tool
# thread, for the 600 s read timeout). Read once per request; None: no run deadline.
RUN_ENDS: ContextVar[float | None] = ContextVar("agentkit_run_ends", default=None)
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
        if type(messages) is not list and (
            isinstance(messages, str | bytes) or not isinstance(messages, Sequence)
        ):
            raise RequestValidationError(
                "messages must be a list of message dicts", param="messages"
            )
        out: list[Any] | None = None
        for position, message in enumerate(messages):
            fixed: Any = None
            # (a plain dict first: the ABC check costs more than the rest of the loop)
            if type(message) is dict or isinstance(message, Mapping):
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
        if not is_success(status):
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
                + snippet(self.scrub(content.decode("utf-8", "replace"))),
                status=status,
                request_id=request_id_of(headers),
            )
        for choice in completion.choices:
            message = choice.message
            if not message.tool_calls:
                message = legacy_function_call(message)
            if self.parse_text_tool_calls:
                message = extract_text_tool_calls(message)
            if message.tool_calls:
                calls = distinct_calls(message.tool_calls)
                if calls is not message.tool_calls:  # (a pydantic assignment costs a few us)
                    message.tool_calls = calls
            if message is not choice.message:
                choice.message = message
        check_finish(completion, status, headers)
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
                f"the server answered {status} with {what}: {snippet(text)}".rstrip(": "),
                status=status,
                request_id=request_id,
            )
        if isinstance(body, Mapping) and body.get("error") is not None:
            return error_from_response(status, body, request_id=request_id, text=text)
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        return InvalidResponseError(
            f"the server answered {status} with JSON that is not a chat completion "
            f"({where}: {first['msg']}): {snippet(text)}",
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
        "_run_ends",
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
        self._run_ends = RUN_ENDS.get()  # the run's, sooner when it is set
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
        deadline, run_ends = self._protocol.deadline, self._run_ends
        if deadline is None and run_ends is None:
            return base
        now = time.monotonic()
        ends_at = self._ends_at
        if ends_at is None:
            if deadline is not None:
                ends_at = now + deadline if run_ends is None else min(now + deadline, run_ends)
            else:
                assert run_ends is not None
                ends_at = run_ends
            self._ends_at = ends_at
        left = ends_at - now
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
        elif isinstance(exc, RuntimeError) and _POOL_CLOSED in str(exc):
            # httpx's closed client: the agent (or the client) was closed under this run.
            # Final (a retry meets the same closed pool), and typed, with the transcript.
            raise APIConnectionError(
                f"the connection pool was closed while this request to {protocol.url} used "
                "it (agent.close() or the client's close() during the run); nothing more "
                "was sent",
                code="client_closed",
            ) from exc
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
        by_run = self._run_ends is not None and self._ends_at == self._run_ends
        what = (
            "its run's deadline"
            if by_run or deadline is None
            else f"its deadline of {deadline:g} s"
        )
        error = DeadlineExceededError(
            f"the request took longer than {what} "
            f"(POST {self._protocol.url}, {self.attempt + 1} attempt(s))",
            deadline=deadline,
            status=self.status or None,
            request_id=request_id_of(self.headers),
        )
        error.__cause__ = cause
        return error


def _at_most(value: float | None, bound: float) -> float:
    return bound if value is None else min(value, bound)
