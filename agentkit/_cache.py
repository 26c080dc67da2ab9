"""DashScope's explicit context cache: ``cache_control`` markers on the stable prefix.

DashScope (Model Studio) caches the input from the start of a request up to each content
block marked ``"cache_control": {"type": "ephemeral"}``, for 5 minutes (renewed on each
hit). Its documented rules: at most 4 markers per request; a cached block holds at least
1,024 tokens; markers go on content blocks of ``messages`` (a marked message's
``content`` is a list of blocks), and a marker finds an earlier cache entry by looking
back at most 20 blocks. Creating an entry is billed at 125% of the input price, a hit at
10%.

:func:`mark_cache_prefix` places up to two markers, and only where the prefix they close
is long enough to be cached:

- the system message: the tool definitions and the instructions, the same in every
  round and every run of an agent;
- the last user message: every later round of the run repeats the transcript up to
  there, and the next user turn of a conversation finds this entry within its 20-block
  look-back.

Markers the caller placed count against the 4; none are added past it. The token count
is estimated from the text (about 4 characters of ASCII, or 1 other character, per
token), which is close enough to decide whether a prefix is clearly too short to cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_CACHE_MARKERS", "estimate_tokens", "mark_cache_prefix"]

MAX_CACHE_MARKERS = 4
"""DashScope accepts at most this many ``cache_control`` markers in one request."""

_MARKER = {"type": "ephemeral"}


def estimate_tokens(text: str) -> int:
    """A rough token count of ``text``: ASCII at 4 characters a token, others at 1."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return ascii_chars // 4 + (len(text) - ascii_chars)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, str | bytes):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def _markers_in(content: Any) -> int:
    if isinstance(content, Sequence) and not isinstance(content, str | bytes):
        return sum(1 for part in content if isinstance(part, Mapping) and "cache_control" in part)
    return 0


def _marked(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """``message`` with a marker on its last text block, or ``None`` when it has no text."""
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            return None
        blocks: list[Any] = [{"type": "text", "text": content, "cache_control": dict(_MARKER)}]
    elif isinstance(content, Sequence) and not isinstance(content, bytes):
        blocks = list(content)
        for position in range(len(blocks) - 1, -1, -1):
            part = blocks[position]
            if isinstance(part, Mapping) and part.get("type") == "text":
                blocks[position] = {**part, "cache_control": dict(_MARKER)}
                break
        else:
            return None
    else:
        return None
    return {**message, "content": blocks}


def mark_cache_prefix(
    messages: Sequence[Any],
    tools: Any,
    *,
    min_tokens: int,
) -> list[Any]:
    """The messages with ``cache_control`` markers on the stable prefix (a new list; the
    caller's messages are never changed).

    ``tools`` is the request's tool definitions (they precede the messages in what the
    model reads, so they count toward the system message's prefix); ``min_tokens`` is
    the shortest prefix the server caches.
    """
    out = list(messages)
    budget = MAX_CACHE_MARKERS - sum(
        _markers_in(m.get("content")) for m in out if isinstance(m, Mapping)
    )
    if budget <= 0:
        return out
    prefix = estimate_tokens(json.dumps(tools, ensure_ascii=False)) if tools else 0
    last_user = -1
    for position, message in enumerate(out):
        if isinstance(message, Mapping) and message.get("role") == "user":
            last_user = position
    targets: list[int] = []
    if out and isinstance(out[0], Mapping) and out[0].get("role") == "system":
        targets.append(0)
    if last_user > 0 or (last_user == 0 and not targets):
        targets.append(last_user)
    done = 0
    for position, message in enumerate(out):
        if not targets or done >= budget:
            break
        if not isinstance(message, Mapping):
            continue
        prefix += estimate_tokens(_text_of(message.get("content")))
        if message.get("tool_calls"):
            prefix += estimate_tokens(json.dumps(message["tool_calls"], ensure_ascii=False))
        if position != targets[0]:
            continue
        targets.pop(0)
        if prefix < min_tokens or _markers_in(message.get("content")):
            continue
        marked = _marked(message)
        if marked is not None:
            out[position] = marked
            done += 1
    return out
