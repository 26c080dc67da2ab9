"""What the scripted server saw: one :class:`RecordedRequest` per HTTP request."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest"]


class _Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively; repeated headers are joined by ", "."""

    __slots__ = ("_items",)

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        items: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            items[key] = f"{items[key]}, {value}" if key in items else value
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


_NOT_PARSED: Any = object()


@dataclass(frozen=True, eq=False)
class RecordedRequest:
    """One HTTP request as the scripted server received it.

    ``headers`` is a case-insensitive mapping (names are stored lower-case); ``body`` is the
    raw body. A test can build one to call a handler directly:
    ``RecordedRequest("POST", "/v1/chat/completions", {}, b'{"messages": []}')``.

    ``number`` counts requests from 1 in arrival order (lines of a batch take numbers
    too, so the numbers of HTTP requests skip them once batches run; the response's
    ``x-request-id`` is ``req-<number>``); ``received_at`` is a ``time.monotonic()`` reading,
    for tests about the time between requests (retry backoff, ``Retry-After``).
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    number: int = 0
    received_at: float = 0.0
    _parsed: Any = field(default=_NOT_PARSED, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, _Headers):  # a plain dict from a test: make it
            object.__setattr__(self, "headers", _Headers(self.headers.items()))

    def json(self) -> Any:
        """The body decoded as JSON; raises ``ValueError`` when it is not JSON."""
        if self._parsed is not _NOT_PARSED:
            return self._parsed
        parsed = json.loads(self.body)
        object.__setattr__(self, "_parsed", parsed)  # parse once; the request stays immutable
        return parsed

    def _object(self) -> dict[str, Any]:
        try:
            data = self.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def request_id(self) -> str:
        """The ``x-request-id`` the server answered with (``req-<number>``)."""
        return f"req-{self.number}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` (empty when absent or the body is not a JSON object)."""
        messages = self._object().get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The request's ``tools`` (empty when absent)."""
        tools = self._object().get("tools")
        return tools if isinstance(tools, list) else []

    @property
    def model(self) -> str | None:
        """The request's ``model``, or ``None``."""
        model = self._object().get("model")
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        """Whether the request asked for a stream (``"stream": true``)."""
        return self._object().get("stream") is True

    @property
    def include_usage(self) -> bool:
        """Whether a stream should end with a usage chunk (``stream_options.include_usage``)."""
        options = self._object().get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True
