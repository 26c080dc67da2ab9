"""The transport that joins a turn's writes: order, close and abort over a real socket."""

from __future__ import annotations

import asyncio
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.serve._batching import BatchedWrites


async def _connected() -> tuple[asyncio.Transport, socket.socket]:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    theirs.settimeout(30)  # only a hang reaches it
    return transport, theirs


def _received(sock: socket.socket) -> bytes:
    data = b""
    while piece := sock.recv(65536):
        data += piece
    return data


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=300), max_size=5), max_size=5))
def test_writes_arrive_whole_and_in_order_across_turns(turns: list[list[bytes]]) -> None:
    async def scenario() -> tuple[bytes, int]:
        transport, peer = await _connected()
        sent = []
        real = transport.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            sent.append(bytes(data))
            real(data)

        transport.write = counted  # type: ignore[method-assign]
        batched = BatchedWrites(transport, asyncio.get_running_loop())
        for turn in turns:
            for data in turn:
                batched.write(data)
            await asyncio.sleep(0)  # the next turn of the loop
        batched.close()
        await asyncio.sleep(0)
        received = await asyncio.to_thread(_received, peer)
        peer.close()
        return received, len(sent)

    received, writes = asyncio.run(scenario())
    assert received == b"".join(b"".join(turn) for turn in turns)
    assert writes <= sum(1 for turn in turns if any(turn))  # one write a turn at most


def test_close_sends_what_is_held_and_abort_drops_it() -> None:
    async def scenario(finish: str) -> bytes:
        transport, peer = await _connected()
        batched = BatchedWrites(transport, asyncio.get_running_loop())
        batched.write(b"head ")
        batched.write(b"body")
        assert batched.get_write_buffer_size() == 9
        batched.abort() if finish == "abort" else batched.close()
        assert batched.is_closing()
        batched.write(b" late")  # after the close: dropped, as the transport drops it
        await asyncio.sleep(0)
        try:
            return await asyncio.to_thread(_received, peer)
        except ConnectionResetError:
            return b""
        finally:
            peer.close()

    assert asyncio.run(scenario("close")) == b"head body"
    assert asyncio.run(scenario("abort")) == b""
