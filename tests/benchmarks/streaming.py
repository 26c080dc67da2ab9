"""Streaming: from the server's first byte to the caller's first text event.

The server notes ``time.monotonic_ns()`` just before it writes a streamed answer's status
line, sends the first text chunk, then the rest 10 ms apart (so a client that
buffers the whole stream cannot hide it). The caller notes the same clock when its first
piece of answer text reaches user code. The difference is what the client stack adds to
the wire: reading the headers, decoding SSE, parsing JSON, building events, plus the
loopback hop both contenders share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

from . import scripted
from .contenders import API_KEY, Skip
from .server import ServerProcess

Sampler = Callable[[], int]
"""Runs one streamed answer to its end; returns the monotonic ns of the first text."""


def _raw_httpx(base_url: str) -> Sampler:
    import httpx

    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"})
    body = {
        "model": scripted.ANSWER_MODEL,
        "messages": [{"role": "user", "content": scripted.QUESTION}],
        "tools": scripted.TOOLS,
        "stream": True,
    }

    def sample() -> int:
        first = 0
        with client.stream("POST", "/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                for choice in json.loads(data)["choices"]:
                    if choice["delta"].get("content") and not first:
                        first = time.monotonic_ns()
        return first

    return sample


def _openai_sdk(base_url: str) -> Sampler:
    from .contenders import _require

    _require("openai", "openai")
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    def sample() -> int:
        first = 0
        stream = client.chat.completions.create(
            model=scripted.ANSWER_MODEL,
            messages=[{"role": "user", "content": scripted.QUESTION}],
            tools=cast(Any, scripted.TOOLS),
            stream=True,
        )
        for chunk in cast(Any, stream):
            if chunk.choices and chunk.choices[0].delta.content and not first:
                first = time.monotonic_ns()
        return first

    return sample


def _agentkit_stream(base_url: str) -> Sampler:
    from .contenders import _agentkit_agent

    agent = _agentkit_agent(base_url, scripted.ANSWER_MODEL)
    from agentkit._events import TextDelta

    def sample() -> int:
        first = 0
        for event in agent.stream(scripted.QUESTION):
            if isinstance(event, TextDelta) and not first:
                first = time.monotonic_ns()
        return first

    return sample


CASES: tuple[tuple[str, Callable[[str], Sampler]], ...] = (
    ("floor: raw httpx SSE loop", _raw_httpx),
    ("openai SDK stream=True", _openai_sdk),
    ("agentkit Agent.stream", _agentkit_stream),
)


def measure(server: ServerProcess, repeats: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Per case, ``repeats`` samples of first-byte-to-first-text (ms), interleaved; and the
    cases skipped, with the reason."""
    samplers: dict[str, Sampler] = {}
    skipped: dict[str, str] = {}
    for label, factory in CASES:
        try:
            samplers[label] = factory(server.url)
        except Skip as reason:
            skipped[label] = str(reason)
    samples: dict[str, list[float]] = {label: [] for label in samplers}
    for index in range(repeats + 1):  # the first pass warms up
        for label, sample in samplers.items():
            server.stamps()
            first = sample()
            stamps = server.stamps()
            assert first and len(stamps) == 1, f"{label}: no text, or {len(stamps)} streams"
            if index:
                samples[label].append((first - stamps[0]) / 1e6)
    return samples, skipped
