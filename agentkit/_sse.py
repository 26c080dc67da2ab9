"""Bytes to server-sent events, incrementally, for any split of the byte stream.

The decoder follows the WHATWG ``text/event-stream`` parsing rules: lines end in CRLF, LF
or CR (a CR at the end of one piece and an LF at the start of the next are one line end);
lines starting with ``:`` are comments; a field without a colon has an empty value; one
space after the colon is dropped; ``data`` lines are joined with ``\\n``; a blank line
dispatches the event, unless it carried no ``data`` field; a UTF-8 byte order mark at the
very start is skipped. Each complete line is decoded as UTF-8 on its own (a multi-byte
character cannot contain a line-end byte, so a character split across pieces is whole
again by the time its line is), with undecodable bytes replaced as the standard says.

It does no I/O: the client feeds it what the socket gave, in whatever pieces arrived::

    decoder = SSEDecoder()
    for piece in response.iter_bytes():
        for event in decoder.feed(piece):
            ...
    for event in decoder.flush():
        ...
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import InvalidResponseError

__all__ = ["DEFAULT_MAX_LINE_BYTES", "SSEDecoder", "ServerSentEvent"]

DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
"""Default bound on one line, and on the data of one event, held while decoding."""

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched server-sent event.

    ``event`` is the event type (``"message"`` unless an ``event:`` field set it), ``data``
    the ``data:`` lines joined with ``\\n``, ``id`` the last event id seen on the stream
    (it carries over to later events, as the standard says; ``""`` if none), and
    ``retry`` the reconnection time in milliseconds if this event carried a valid
    ``retry:`` field.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """An incremental ``text/event-stream`` decoder: feed bytes, get whole events.

    Feeding the same bytes in any split gives the same events. ``max_line_bytes`` bounds
    both one line and the data of one event held while waiting for its end; a stream
    that exceeds it (for example a server sending garbage without line ends) raises
    :class:`~agentkit._errors.InvalidResponseError` instead of growing without limit.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_data_size",
        "_event",
        "_last_id",
        "_max",
        "_partial",
        "_partial_size",
        "_retry",
        "_skip_lf",
    )

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._max = max_line_bytes
        self._at_start = True  # no byte seen yet: a BOM may come
        self._skip_lf = False  # the last piece ended in CR: a leading LF ends no line
        self._partial: list[bytes] = []  # bytes of the line not yet ended
        self._partial_size = 0
        self._event = ""
        self._data: list[str] | None = None  # None: no data field in this event yet
        self._data_size = 0
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode one more piece of the stream; return the events it completed."""
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
        if self._at_start:
            if self._partial:
                data = b"".join(self._partial) + data
                self._partial = []
                self._partial_size = 0
            if len(data) < len(_BOM) and _BOM.startswith(data):
                # Too short to tell whether this is a BOM; wait for more.
                self._partial = [data] if data else []
                self._partial_size = len(data)
                return []
            self._at_start = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if not data:
            return []
        has_cr = b"\r" in data
        if not has_cr and b"\n" not in data:
            self._hold(data)
            return []
        if self._partial:
            self._partial.append(data)
            data = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        if has_cr:
            # A trailing CR ends its line now; an LF opening the next piece belongs to it.
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._hold(rest)
        return self._process(lines)

    @property
    def waiting_data(self) -> str | None:
        """The data of the event whose lines have all ended but whose closing blank line has
        not arrived yet (``None`` when there is none, or a line is still incomplete)."""
        if self._data is None or self._partial:
            return None
        return self._data[0] if len(self._data) == 1 else "\n".join(self._data)

    def flush(self) -> list[ServerSentEvent]:
        """End of input: return the last event if its lines all arrived, then reset.

        A final line without a line end may have been cut off mid-way, so it is dropped
        (as the standard says). An event whose lines all ended but which lacks only the
        closing blank line is dispatched: some servers omit it, and every line of it
        arrived whole. The last event id is kept; everything else starts afresh.
        """
        cut_line = bool(self._partial)
        events = [] if cut_line else self._process([b""])
        self._partial = []
        self._partial_size = 0
        self._at_start = True
        self._skip_lf = False
        self._event = ""
        self._data = None
        self._data_size = 0
        self._retry = None
        return events

    def _hold(self, piece: bytes) -> None:
        self._partial.append(piece)
        self._partial_size += len(piece)
        if self._partial_size > self._max:
            raise InvalidResponseError(
                f"server-sent event stream: a line longer than {self._max} bytes "
                "without a line end; the response is not a valid event stream"
            )

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                if self._data is not None:
                    parts = self._data
                    events.append(
                        ServerSentEvent(
                            self._event or "message",
                            parts[0] if len(parts) == 1 else "\n".join(parts),
                            self._last_id,
                            self._retry,
                        )
                    )
                    self._data = None
                    self._data_size = 0
                self._event = ""
                self._retry = None
                continue
            colon = line.find(b":")
            if colon == 0:
                continue  # a comment, often a keep-alive
            if colon < 0:
                field, value = line, b""
            else:
                field = line[:colon]
                value = (
                    line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
                )
            if field == b"data":
                text = value.decode("utf-8", "replace")
                if self._data is None:
                    self._data = [text]
                else:
                    self._data.append(text)
                self._data_size += len(value) + 1
                if self._data_size > self._max:
                    raise InvalidResponseError(
                        f"server-sent event stream: one event carries more than {self._max} "
                        "bytes of data; the response is not a valid event stream"
                    )
            elif field == b"event":
                self._event = value.decode("utf-8", "replace")
            elif field == b"id":
                if b"\0" not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif field == b"retry" and value.isdigit() and len(value) <= 18:
                # Only ASCII digits count; an absurdly long number is ignored rather
                # than handed to int(), which refuses over 4300 digits.
                self._retry = int(value)
            # Any other field is ignored, as the standard says.
        return events
