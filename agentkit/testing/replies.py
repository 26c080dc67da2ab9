"""Replies the scripted server sends: immutable descriptions, rendered per request.

A :class:`Reply` says *what* to answer (a completion, an error, raw bytes, an SSE stream,
a reset, a hang) and *how badly* to deliver it (delays, cuts, stalls, byte splits, set with
:meth:`Reply.with_`). The server renders it against the request it answers, so one reply
can serve JSON to a plain request and SSE to a streaming one.
"""

from __future__ import annotations

import dataclasses
import http
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

__all__ = ["Reply", "ToolCallSpec", "ToolCallStyle"]

ToolCallSpec: TypeAlias = (
    "tuple[str, Mapping[str, Any] | str] | tuple[str, Mapping[str, Any] | str, str]"
)
"""``(name, arguments)`` or ``(name, arguments, call_id)``; arguments a dict (JSON-encoded)
or a string sent verbatim (so a test can send arguments that are not JSON)."""

ToolCallStyle: TypeAlias = Literal["openai", "dashscope", "llama.cpp"]
"""How streamed tool calls are shaped; see :meth:`Reply.tool_calls`."""

SSE_CONTENT_TYPE = "text/event-stream"
JSON_CONTENT_TYPE = "application/json"
_DONE = b"data: [DONE]\n\n"
_Number = TypeVar("_Number", int, float)
_EVENT_BOUNDARY = re.compile(rb"(?<=\n\n)|(?<=\r\n\r\n)|(?<=\r\r)")


# -- what to send ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ToolCall:
    name: str
    arguments: str
    call_id: str | None


@dataclass(frozen=True, slots=True)
class _Completion:
    content: str | None
    reasoning: str | None
    tool_calls: tuple[_ToolCall, ...]
    finish_reason: str | None
    usage: Mapping[str, Any] | None
    stream: bool | None
    chunk_size: int | None
    model: str | None
    style: ToolCallStyle


@dataclass(frozen=True, slots=True)
class _Raw:
    status: int
    body: bytes
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Stream:
    status: int
    events: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Reset:
    pass


@dataclass(frozen=True, slots=True)
class _Hang:
    pass


_Body: TypeAlias = _Completion | _Raw | _Stream | _Reset | _Hang


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: what to send and which faults to inject while sending it.

    Build replies with the constructors (:meth:`text`, :meth:`tool_calls`,
    :meth:`text_tool_calls`, :meth:`error`, :meth:`raw`, :meth:`sse`, :meth:`replay`,
    :meth:`empty_stream`, :meth:`reset`, :meth:`hang`) and add faults with :meth:`with_`.
    Replies are immutable and may be queued many times.

    Fault fields (all off by default):

    - ``delay``: seconds to wait before the status line.
    - ``chunk_delay``: seconds between the pieces of a body (SSE events, or the pieces of
      ``split_bytes``).
    - ``cut_after``: close the connection after this many pieces: SSE events of a stream
      (the rest, ``[DONE]`` and the chunked terminator are never sent, so the client sees
      an incomplete body), or bytes of a plain body (fewer than its ``Content-Length``).
    - ``hang_after``: send this many SSE events (bytes of a plain body), then send nothing
      more until the server stops or the client leaves: a stalled stream, for read
      timeouts and cancellations. A reply is cut or stalled, not both.
    - ``split_bytes``: re-split the body into pieces of these byte sizes (an int: pieces of
      that size; a sequence: successive sizes, the rest in one last piece), each flushed on
      its own, ``chunk_delay`` (2 ms when unset) apart. Lets a test split mid-event or in
      the middle of a UTF-8 character.
    - ``rst``: when a fault closes the connection, close it with a TCP reset (RST) instead
      of an orderly close (FIN).
    - ``headers``: extra response headers; they replace default headers of the same name
      (so even ``Content-Length`` can be made to lie), and later ones earlier ones.
    """

    body: _Body
    delay: float = 0.0
    chunk_delay: float | None = None
    cut_after: int | None = None
    hang_after: int | None = None
    split_bytes: int | tuple[int, ...] | None = None
    rst: bool = False
    headers: tuple[tuple[str, str], ...] = ()

    # -- completions ----------------------------------------------------------------------

    @classmethod
    def text(
        cls,
        content: str,
        *,
        reasoning: str | None = None,
        finish_reason: str | None = "stop",
        usage: Mapping[str, Any] | None = None,
        stream: bool | None = None,
        chunk_size: int | None = None,
        model: str | None = None,
    ) -> Reply:
        """A ``chat.completion`` whose assistant message is ``content``.

        ``stream=None`` follows the request (SSE when it asked for ``stream: true``, JSON
        otherwise); ``True``/``False`` force one form. Streamed, the content is split into
        one delta per word (or per ``chunk_size`` characters) in DashScope's shape: a first
        chunk with the role and ``""`` content, reasoning deltas (``reasoning_content``),
        text deltas, a chunk with ``finish_reason``, a usage chunk with empty ``choices``
        when the request set ``stream_options.include_usage``, then ``data: [DONE]``.
        ``usage=None`` reports token counts estimated from the sizes; ``model=None``
        echoes the request's model.
        """
        return cls(
            _Completion(
                content=content,
                reasoning=reasoning,
                tool_calls=(),
                finish_reason=finish_reason,
                usage=usage,
                stream=stream,
                chunk_size=_positive("chunk_size", chunk_size),
                model=model,
                style="dashscope",
            )
        )

    @classmethod
    def tool_calls(
        cls,
        *calls: ToolCallSpec,
        content: str | None = "",
        finish_reason: str | None = "tool_calls",
        usage: Mapping[str, Any] | None = None,
        stream: bool | None = None,
        style: ToolCallStyle = "openai",
        chunk_size: int | None = None,
        model: str | None = None,
    ) -> Reply:
        """An assistant message calling tools, one ``(name, arguments[, call_id])`` per call.

        Arguments given as a dict are JSON-encoded; a string is sent verbatim. Missing ids
        are generated, unique per server (``call_<request>_<index>``).

        Streamed, each call's first delta carries ``id``, ``type`` and ``function.name``
        and the argument JSON follows in several fragments (``chunk_size`` characters each,
        default: about four fragments). ``style`` reproduces a real server:

        - ``"openai"``: as above; continuation deltas carry only ``index`` and arguments.
        - ``"dashscope"``: continuation deltas carry ``"id": ""`` and ``type``, and a
          trailing delta per call carries ``"function": {}``.
        - ``"llama.cpp"``: every delta repeats ``id``, ``type`` and ``function.name``, with
          a legacy ``function_call`` delta beside ``tool_calls``; content is ``null``
          unless given (the JSON form also carries ``function_call``).
        """
        if not calls:
            raise ValueError("Reply.tool_calls() needs at least one (name, arguments) call")
        return cls(
            _Completion(
                content=content,
                reasoning=None,
                tool_calls=tuple(_tool_call(spec) for spec in calls),
                finish_reason=finish_reason,
                usage=usage,
                stream=stream,
                chunk_size=_positive("chunk_size", chunk_size),
                model=model,
                style=style,
            )
        )

    @classmethod
    def text_tool_calls(
        cls,
        *calls: ToolCallSpec,
        content: str = "",
        finish_reason: str | None = "stop",
        stream: bool | None = None,
        chunk_size: int | None = None,
    ) -> Reply:
        """Tool calls written into the text, as Qwen does when served without a tool parser.

        The content is ``content`` followed by one
        ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`` block per call, and
        the message has no ``tool_calls`` field. Streamed, the tags are split like any text.
        """
        if not calls:
            raise ValueError("Reply.text_tool_calls() needs at least one (name, arguments) call")
        blocks = []
        for spec in calls:
            call = _tool_call(spec)
            try:
                arguments = json.loads(call.arguments)
            except ValueError:
                arguments = call.arguments  # invalid JSON stays a string, as a model would
            payload = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
            blocks.append(f"<tool_call>\n{payload}\n</tool_call>")
        text = "\n".join(filter(None, [content, *blocks]))
        return cls.text(text, finish_reason=finish_reason, stream=stream, chunk_size=chunk_size)

    # -- errors and raw bodies ------------------------------------------------------------

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An OpenAI/DashScope-style error: ``{"error": {"message", "type", "param", "code"}}``.

        ``message`` defaults to the status' reason phrase; ``type`` to
        ``invalid_request_error`` for 4xx and ``server_error`` for 5xx. ``headers`` adds
        response headers, e.g. ``{"Retry-After": "2"}``.
        """
        if message is None:
            message = _reason(status)
        if type is None:
            type = "server_error" if status >= 500 else "invalid_request_error"
        body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        return cls.raw(json.dumps(body), status=status, headers=headers)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None) -> Reply:
        """A 429 rate limit (retryable), with ``Retry-After`` when given (seconds or a date)."""
        headers = {} if retry_after is None else {"Retry-After": _retry_after(retry_after)}
        return cls.error(
            429,
            "Rate limit reached for requests",
            code="rate_limit_exceeded",
            type="requests",
            headers=headers,
        )

    @classmethod
    def quota_exceeded(cls) -> Reply:
        """A 429 meaning the quota or the bill, not a rate limit: never to be retried."""
        return cls.error(
            429,
            "You exceeded your current quota, please check your plan and billing details",
            code="insufficient_quota",
            type="insufficient_quota",
        )

    @classmethod
    def invalid_api_key(cls) -> Reply:
        """DashScope's 401 for a wrong API key, as captured."""
        return cls.error(401, "Incorrect API key provided. ", code="invalid_api_key")

    @classmethod
    def content_moderation(cls) -> Reply:
        """DashScope's 400 when content moderation refuses the input."""
        return cls.error(
            400,
            "Input data may contain inappropriate content.",
            code="data_inspection_failed",
        )

    @classmethod
    def raw(
        cls,
        body: bytes | str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = JSON_CONTENT_TYPE,
    ) -> Reply:
        """Any body, sent as is with a ``Content-Length`` (``content_type=None``: no header).

        For bodies that are not JSON, JSON without ``choices``, an HTML page from a proxy,
        or nothing at all.
        """
        data = body.encode() if isinstance(body, str) else bytes(body)
        return cls(
            _Raw(status=status, body=data, content_type=content_type), headers=_pairs(headers)
        )

    @classmethod
    def sse(
        cls,
        events: Iterable[Mapping[str, Any] | str | bytes],
        *,
        done: bool = True,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A raw SSE stream: a dict is sent as ``data: <json>\\n\\n``, a str or bytes verbatim.

        Verbatim events carry their own line endings, for garbage lines, comments
        (``": ping\\n\\n"``) and CRLF variants. ``done`` appends ``data: [DONE]``.
        """
        encoded = [_sse_event(event) for event in events]
        if done:
            encoded.append(_DONE)
        return cls(_Stream(status=status, events=tuple(encoded)), headers=_pairs(headers))

    @classmethod
    def empty_stream(cls) -> Reply:
        """A 200 SSE response with no events and no ``[DONE]``, as llama.cpp sends it."""
        return cls.sse((), done=False)

    @classmethod
    def replay(
        cls,
        data: bytes | str,
        *,
        status: int = 200,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A captured body replayed byte for byte.

        ``content_type=None`` guesses: SSE when the body starts like an event stream, JSON
        otherwise. An SSE body is streamed chunked, one piece per event (so ``cut_after``
        and ``chunk_delay`` count events); its bytes are never changed.
        """
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if content_type is None:
            start = raw.lstrip()[:6]
            looks_sse = start.startswith((b"data:", b"event:", b"id:", b":"))
            content_type = SSE_CONTENT_TYPE if looks_sse else JSON_CONTENT_TYPE
        if not content_type.startswith(SSE_CONTENT_TYPE):
            return cls.raw(raw, status=status, headers=headers, content_type=content_type)
        events = tuple(piece for piece in _EVENT_BOUNDARY.split(raw) if piece)
        return cls(_Stream(status=status, events=events), headers=_pairs(headers))

    # -- connection faults ----------------------------------------------------------------

    @classmethod
    def reset(cls, *, rst: bool = True) -> Reply:
        """Close the connection without answering: a TCP reset, or an orderly close
        (``rst=False``) which the client sees as the server disconnecting."""
        return cls(_Reset(), rst=rst)

    @classmethod
    def hang(cls) -> Reply:
        """Read the request and never answer, until the server stops or the client leaves
        (for read timeouts and cancellations: ``open_connections`` drops when the client
        closes its socket)."""
        return cls(_Hang())

    # -- modifiers ------------------------------------------------------------------------

    def with_(
        self,
        *,
        delay: float | None = None,
        chunk_delay: float | None = None,
        cut_after: int | None = None,
        hang_after: int | None = None,
        split_bytes: int | Sequence[int] | None = None,
        rst: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A copy with faults added (see the class docstring); ``None`` leaves a field as is.

        Example: ``Reply.text("hi").with_(delay=0.5)``,
        ``Reply.tool_calls(("f", {"x": 1})).with_(cut_after=3)``.
        """
        changes: dict[str, Any] = {}
        if delay is not None:
            changes["delay"] = _non_negative("delay", delay)
        if chunk_delay is not None:
            changes["chunk_delay"] = _non_negative("chunk_delay", chunk_delay)
        if cut_after is not None:
            changes["cut_after"] = _non_negative("cut_after", cut_after)
        if hang_after is not None:
            changes["hang_after"] = _non_negative("hang_after", hang_after)
        if split_bytes is not None:
            changes["split_bytes"] = _split_spec(split_bytes)
        if rst is not None:
            changes["rst"] = rst
        if headers:
            added = _pairs(headers)
            names = {name.lower() for name, _ in added}
            kept = tuple(pair for pair in self.headers if pair[0].lower() not in names)
            changes["headers"] = (*kept, *added)
        reply = dataclasses.replace(self, **changes)
        if reply.cut_after is not None and reply.hang_after is not None:
            raise ValueError("a reply can be cut (cut_after) or stalled (hang_after), not both")
        return reply


def _sse_event(event: Mapping[str, Any] | str | bytes) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode()
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


def _tool_call(spec: ToolCallSpec) -> _ToolCall:
    if not isinstance(spec, tuple) or len(spec) not in (2, 3) or not isinstance(spec[0], str):
        raise TypeError(f"a tool call is (name, arguments) or (name, arguments, id), not {spec!r}")
    arguments = spec[1]
    if not isinstance(arguments, str):
        arguments = json.dumps(dict(arguments), ensure_ascii=False)
    call_id = spec[2] if len(spec) == 3 else None
    return _ToolCall(name=spec[0], arguments=arguments, call_id=call_id)


def _pairs(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in (headers or {}).items())


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _non_negative(name: str, value: _Number) -> _Number:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _split_spec(value: int | Sequence[int]) -> int | tuple[int, ...]:
    if isinstance(value, int):
        return _positive("split_bytes", value) or 1
    sizes = tuple(value)
    if not sizes or any(size < 1 for size in sizes):
        raise ValueError(f"split_bytes sizes must all be at least 1, got {sizes}")
    return sizes
