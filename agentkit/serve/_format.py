"""The answer in the seed's wire format: a ``chat.completion``, its stream chunks, SSE frames.

Tool activity travels in an ``agentkit`` extension field (plain clients ignore unknown
fields) and, while a stream is under way, as SSE comment lines (``: agentkit {...}``) that
every SSE parser skips.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["Answer", "comment", "completion", "data", "done", "encode", "json_response"]


def encode(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8.

    A lone surrogate (a model or a tool may produce one) cannot be UTF-8: then the text is
    sent with ``\\u`` escapes instead, which is the same JSON value, rather than failing.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``value`` as an ``application/json`` response that can always be encoded."""
    from starlette.responses import Response

    return Response(encode(value), status, headers, media_type="application/json")


def data(value: Any) -> bytes:
    """One SSE event carrying ``value`` as JSON."""
    return b"data: " + encode(value) + b"\n\n"


def comment(value: Any) -> bytes:
    """One SSE comment line carrying ``value`` as JSON (ignored by plain SSE clients)."""
    # JSON text has no raw line breaks, so the comment stays one line.
    return b": agentkit " + encode(value) + b"\n\n"


def done() -> bytes:
    """The stream's last event."""
    return b"data: [DONE]\n\n"


class Answer:
    """The fixed fields of one response (id, created, model) and builders of its parts."""

    __slots__ = ("_text_frame", "created", "id", "model")

    def __init__(self, model: str) -> None:
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.model = model
        self._text_frame: tuple[bytes, bytes] | None = None

    def text_frame(self, text: str) -> bytes:
        """The SSE event of one text delta: ``data(self.chunk({"content": text}))``, byte
        for byte, with only the text encoded per delta (the rest is encoded once)."""
        parts = self._text_frame
        if parts is None:
            # the content is the last string of the chunk: split the frame around it
            head, _, tail = data(self.chunk({"content": ""})).rpartition(b'""')
            parts = self._text_frame = (head, tail)
        try:
            quoted = json.dumps(text, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: the whole frame is \u-escaped
            return data(self.chunk({"content": text}))
        return parts[0] + quoted + parts[1]

    def chunk(
        self,
        delta: dict[str, Any],
        *,
        finish_reason: str | None = None,
        extension: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A ``chat.completion.chunk`` with one choice."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
            "usage": None,
        }
        if extension is not None:
            body["agentkit"] = extension
        return body

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        """The last chunk asked for by ``stream_options.include_usage``: no choices."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage,
        }


def completion(
    answer: Answer,
    content: str,
    finish_reason: str,
    usage: dict[str, int],
    extension: dict[str, Any],
) -> dict[str, Any]:
    """A whole ``chat.completion``."""
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
        "agentkit": extension,
    }
