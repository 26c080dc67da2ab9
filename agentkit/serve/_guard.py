"""The checks every request passes before any route sees it: a web page must not reach the bot.

A page on another site can make a browser send requests to a server on the user's own
machine. Two ways are closed here:

- **DNS rebinding**: the page's own name is pointed at 127.0.0.1, so its requests are
  same-origin for the browser but carry the page's name in ``Host``. A server without keys
  answers only the loopback names (and the operator's ``allowed_hosts``): anything else is
  ``421``, as agentkit's MCP HTTP server does.
- **Cross-site requests**: a ``text/plain`` or form POST needs no CORS preflight. Every POST
  must be ``application/json`` (``415``; a browser preflights that type, and this server
  answers no preflight), and a browser's ``Origin``, when it sends one, must be this
  server's own (``403``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from ._auth import is_loopback
from ._errors import ServeError
from ._format import encode

__all__ = ["Guard", "host_name"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def host_name(host: str) -> str:
    """The name in a ``Host`` header or an origin's authority, without the port, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        name, bracket, port = host.partition("]")
        if bracket and (not port or (port[0] == ":" and port[1:].isdigit())):
            return name + bracket
        return host  # "[::1].evil.com" is no IPv6 literal: kept whole, it names no loopback
    name, _, port = host.rpartition(":")
    if host.count(":") == 1 and (not port or port.isdigit()):
        return name
    return host  # no port ("127.0.0.1:80@evil.com" keeps its whole, non-loopback name)


class Guard:
    """ASGI middleware refusing rebinding hosts, foreign origins and non-JSON POSTs.

    ``check_host``: refuse a ``Host`` that is neither a loopback name nor in
    ``allowed_hosts`` (names, matched without their port). The app turns it on when it has
    no API keys, or when the operator names hosts.
    """

    def __init__(self, app: App, *, check_host: bool, allowed_hosts: Collection[str]) -> None:
        self._app = app
        self._check_host = check_host
        self._allowed = frozenset(host_name(name) for name in allowed_hosts)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self._refusal(scope)
            if refused is not None:
                await _send_error(send, refused)
                return
        await self._app(scope, receive, send)

    def _refusal(self, scope: MutableMapping[str, Any]) -> ServeError | None:
        host = origin = content_type = None
        seen: set[bytes] = set()
        for key, value in scope["headers"]:
            if key in (b"host", b"origin", b"content-type"):
                if key in seen:
                    # two copies would let one check read one and the app the other
                    return ServeError(
                        400,
                        f"the {key.decode()} header came more than once",
                        code="duplicate_header",
                    )
                seen.add(key)
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
        if self._check_host and not self._host_allowed(host):
            return ServeError(
                421,
                "this server answers only requests addressed to its own name (a loopback "
                "name, or one its operator allowed); the Host header named another",
                code="host_not_allowed",
            )
        if origin is not None and not self._origin_allowed(origin, host):
            return ServeError(
                403,
                "a web page from another origin may not call this server",
                code="origin_not_allowed",
            )
        if scope["method"] == "POST" and not _is_json(content_type):
            return ServeError(
                415,
                "send the body as JSON, with 'Content-Type: application/json'",
                code="unsupported_media_type",
            )
        return None

    def _host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name = host_name(host)
        return name in self._allowed or is_loopback(name)

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        if origin == "null" or host is None:  # sandboxed frames, file: pages
            return False
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            return False
        if not netloc:
            return False
        # The page's own origin: the same authority its requests are addressed to (a proxy
        # in front speaks https on port 443 while Host keeps the public name).
        return netloc == host.strip().lower() or host_name(netloc) in self._allowed


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json"


async def _send_error(send: Send, error: ServeError) -> None:
    body = encode(error.body())
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
