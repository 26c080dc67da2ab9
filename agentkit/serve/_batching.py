"""A transport that sends the writes of one turn of the event loop as one ``send``.

uvicorn writes a response's head and its body separately (and a stream's chunk, the end
of the stream and the chunked terminator separately), and with ``TCP_NODELAY`` each write
is its own ``send`` system call, packet and wake-up of the client. An ASGI app that sends
``http.response.start`` and its body without waiting in between (every whole answer; the
last chunks of a stream) produces them in one turn of the loop: here they are joined and
sent once at the end of that turn, before the loop waits for anything. Nothing is held
longer: a write that the app follows by a wait still goes out before the wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["BatchedWrites"]


class BatchedWrites(asyncio.Transport):
    """``transport`` with its writes joined per turn of ``loop``; everything else is the
    transport's own. ``close`` sends what is held first; ``abort`` drops it, as the
    transport drops its own buffer."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(None)
        self._transport = transport
        self._loop = loop
        self._held: list[bytes | bytearray | memoryview] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data`` until the end of this turn of the loop."""
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def writelines(self, list_of_data: Any) -> None:
        """Hold each piece, as :meth:`write` does."""
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if not self._held:
            return
        held = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held = []
        if not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        """Send what is held, then close."""
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is held (and the transport's own buffer)."""
        self._held = []
        self._transport.abort()

    def is_closing(self) -> bool:
        """Whether the transport is closing or closed."""
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's own extra information (``socket``, ``peername``...)."""
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the connection to another protocol (an upgrade), after what is held."""
        self._flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The transport's protocol."""
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        """Whether the transport is reading."""
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        """Stop reading (flow control)."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again."""
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """The transport's flow-control marks."""
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        """Bytes waiting to be sent, held here or in the transport."""
        held = sum(len(data) for data in self._held)
        return held + self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The transport's flow-control marks."""
        return self._transport.get_write_buffer_limits()

    def write_eof(self) -> None:
        """Send what is held, then close the write side."""
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        """Whether the transport can close its write side alone."""
        return self._transport.can_write_eof()
