"""An access log line per request, through uvicorn's own ``uvicorn.access`` logger, naming
the principal who asked (never a key, a token or a query string).

uvicorn's access formatter takes exactly five values (client, method, path, HTTP version,
status), so the principal rides along with the client address: ``127.0.0.1:5123 dana -
"POST /v1/chat/completions HTTP/1.1" 200``. ``agentkit serve`` shows only these lines (a
filter drops uvicorn's own), so each request is logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["AccessLog", "only_ours", "uvicorn_would_drop"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("uvicorn.access")


class AccessLog:
    """ASGI middleware: after each HTTP request, one access line with the principal's id
    (``-`` when the request was refused before anyone was recognised)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                where = f"{client[0]}:{client[1]}" if client else "-"
                who = (scope.get("state") or {}).get("principal") or "-"
                line = (
                    f"{where} {_safe(who)}",
                    scope.get("method", ""),
                    _safe(scope.get("path", "")),  # no query string: it is not logged
                    scope.get("http_version", "1.1"),
                    status[0] or 500,
                )
                # Written once this turn of the event loop is over, after the answer has
                # left (serve/_batching.py sends it then): the line's write is a system
                # call the client need not wait for.
                asyncio.get_running_loop().call_soon(_write, line)


def _write(line: tuple[str, str, str, str, int]) -> None:
    log.info('%s - "%s %s HTTP/%s" %d', *line, extra={"agentkit_access": True})


def only_ours(record: logging.LogRecord) -> bool:
    """A logging filter keeping this module's lines and dropping uvicorn's own access lines
    (which cannot name the principal): uvicorn logs whenever the logger has a handler."""
    return bool(getattr(record, "agentkit_access", False))


def uvicorn_would_drop(logger: logging.Logger) -> bool:
    """Whether every line uvicorn itself would log on ``logger`` is dropped by
    :func:`only_ours` (``agentkit serve``'s setup): then uvicorn need not build them."""
    handlers = logger.handlers
    return (
        bool(handlers)
        and not logger.propagate
        and all(only_ours in handler.filters for handler in handlers)
    )


def _safe(text: str) -> str:
    # A principal id or a path is the client's text: no line breaks or control characters
    # in a log line.
    text = str(text)
    if text.isprintable():
        return text[:200]
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:200]
