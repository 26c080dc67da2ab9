"""One streamed request, from bytes to deltas and a completion, across its retries.

:class:`StreamState` is fed what the socket gives by :mod:`agentkit._client`, hands out
deltas, and decides whether a failed stream may be retried (only while nothing was handed
to the caller). It does no I/O.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

import httpx
from pydantic import ValidationError

from ._answer import check_finish, is_success, request_id_of, snippet
from ._assemble import StreamAssembler
from ._errors import APIError, IncompleteStreamError, InvalidResponseError, error_from_response
from ._events import ReasoningDelta, StreamDelta, TextDelta, ToolCallArgumentsDelta
from ._sse import ServerSentEvent, SSEDecoder
from ._wire import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from ._protocol import ChatProtocol, Exchange

__all__ = ["StreamState"]


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
        "closed",
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
        self.closed = False  # by its caller: the stream does no more I/O
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
        if is_success(status):
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
        if is_success(status) and "html" in headers.get("content-type", "").lower():
            text = self._protocol.scrub(content.decode("utf-8", "replace"))
            raise InvalidResponseError(
                f"expected an event stream, the server answered {status} with an HTML page: "
                + snippet(text),
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
                request_id=request_id_of(self._headers),
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
    def _headers(self) -> Mapping[str, str] | None:
        # The request id in them is looked up only for an error: each header lookup
        # scans httpx's header list.
        return self.exchange.headers if self.exchange is not None else None

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
            exc.request_id = request_id_of(self._headers)
            raise
        check_finish(completion, self._status, self._headers)
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
                    "the stream sent a data line that is not a valid chunk: " + snippet(text),
                    status=self._status,
                    request_id=request_id_of(self._headers),
                )
            error = body if isinstance(body, Mapping) else {"message": text}
        if not isinstance(error, Mapping):
            error = {"message": str(error)}
        status = self._status
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
            status = code  # vLLM puts the HTTP status of a mid-stream error in "code"
        raise error_from_response(
            status, {"error": error}, request_id=request_id_of(self._headers), text=text
        )

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
            request_id=request_id_of(self._headers),
        )
