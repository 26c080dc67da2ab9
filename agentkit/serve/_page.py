"""The chat page at ``GET /``: one file, no CDN, nothing fetched from anywhere else.

Its content security policy allows only its own inline script and style (by hash) and
requests to this server, so even a bug in the page could not load or send anything
elsewhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["favicon_response", "page_html", "page_response"]

_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#2457d6"/>'
    '<path d="M8 10h16v10H14l-5 4v-4H8z" fill="#fff"/></svg>'
)


@functools.cache
def _template() -> tuple[str, str]:
    text = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<(?:script|style)>(.*?)</(?:script|style)>", text, re.S)
    ]
    policy = (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
        f"script-src {' '.join(hashes)}; style-src {' '.join(hashes)}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return text, policy


def page_html(title: str) -> str:
    """The page with ``title`` (escaped) in it."""
    text, _ = _template()
    return text.replace("{{TITLE}}", html.escape(title))


def page_response(title: str) -> Response:
    """The page as a response, with its content security policy."""
    from starlette.responses import HTMLResponse

    _, policy = _template()
    return HTMLResponse(
        page_html(title),
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def favicon_response() -> Response:
    """The page's icon (a small SVG), so that browsers asking for one get no 404."""
    from starlette.responses import Response

    return Response(
        _FAVICON,
        media_type="image/svg+xml",
        headers={"Cache-Control": "max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
