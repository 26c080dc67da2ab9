"""Decoding and assembling a streamed answer: the cost per SSE event, without a network.

    python -m tests.benchmarks.assemble            # µs per event, median of 7 runs

Replays 5,000 one-word text chunks in 1 KiB reads through the SSE decoder and the stream
assembler, as the client does. Measured, not asserted: a shared machine makes a time bound
in the test suite flaky (this used to be a test with a 1.5 s ceiling around some 0.1 s).
"""

from __future__ import annotations

import json
import statistics
import time

from agentkit._assemble import StreamAssembler
from agentkit._sse import SSEDecoder
from agentkit._wire import ChatCompletionChunk

EVENTS = 5000


def _stream() -> list[bytes]:
    chunk = {
        "id": "chatcmpl-b",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "qwen-plus",
        "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}],
    }
    one = json.dumps(chunk, separators=(",", ":")).encode()
    raw = b"".join(b"data: " + one + b"\n\n" for _ in range(EVENTS)) + b"data: [DONE]\n\n"
    return [raw[i : i + 1024] for i in range(0, len(raw), 1024)]


def one_run(pieces: list[bytes]) -> float:
    """Seconds to decode and assemble the whole stream once."""
    started = time.perf_counter()
    decoder = SSEDecoder()
    assembler = StreamAssembler()
    deltas = 0
    for piece in pieces:
        for event in decoder.feed(piece):
            if event.data == "[DONE]":
                deltas += len(assembler.mark_done())
            else:
                deltas += len(assembler.feed(ChatCompletionChunk.model_validate_json(event.data)))
    elapsed = time.perf_counter() - started
    assert deltas == EVENTS, deltas
    return elapsed


def main() -> None:
    pieces = _stream()
    one_run(pieces)  # warm up
    seconds = statistics.median(one_run(pieces) for _ in range(7))
    print(f"decode + assemble: {seconds / EVENTS * 1e6:.1f} µs per event ({EVENTS} events)")


if __name__ == "__main__":
    main()
