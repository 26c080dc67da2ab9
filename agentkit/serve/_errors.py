"""Errors as the served endpoint answers them: the seed's ``{"error": {...}}`` with a status.

A run's exception becomes a :class:`ServeError` here, in one place, so that every route
answers alike and no message can carry the model's API key to a client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["ServeError", "error_body", "from_exception", "redact"]

# Anything shaped like a bearer secret: "sk-..." keys and long opaque tokens after "Bearer".
_SECRET_SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|(?i:bearer)\s+[A-Za-z0-9._\-~+/=]{8,})")
_LONGEST_MESSAGE = 1000


class ServeError(Exception):
    """A request the endpoint refuses or could not answer: HTTP ``status`` and the seed's
    error fields (``message``, ``type``, ``param``, ``code``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return error_body(self.message, self.type, self.code, self.param)


def error_body(
    message: str, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The seed's error shape."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secrets or anything shaped like an API key, and cut to a
    readable length."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _SECRET_SHAPES.sub("[redacted]", text)
    return text if len(text) <= _LONGEST_MESSAGE else text[: _LONGEST_MESSAGE - 1] + "…"


def from_exception(exc: BaseException, secrets: Iterable[str] = ()) -> ServeError:
    """The error a client is told for ``exc`` raised by a run.

    The model service's own failures are 502/503/504 (the client's request was fine);
    a run that ended without an answer is 500 with agentkit's message; anything else is a
    bare 500 whose details stay in the server's log.
    """
    from .. import _errors as e

    if isinstance(exc, ServeError):
        return exc
    busy = _session_busy(exc)
    if busy is not None:
        return busy
    text = redact(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, e.RateLimitError):
        return ServeError(
            503,
            f"the model service is rate limiting this bot: {text}",
            type="server_error",
            code="model_rate_limited",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, e.APITimeoutError):
        return ServeError(
            504, f"the model service timed out: {text}", type="server_error", code="model_timeout"
        )
    if isinstance(exc, e.APIError):
        return ServeError(
            502, f"the model service failed: {text}", type="server_error", code="model_error"
        )
    if isinstance(exc, e.RunError):
        return ServeError(
            500, f"the run ended without an answer: {text}", type="server_error", code="run_failed"
        )
    if isinstance(exc, TimeoutError):
        return ServeError(
            504,
            "the run took longer than the server allows",
            type="server_error",
            code="run_timeout",
        )
    return ServeError(
        500,
        "the server failed while answering; see its log",
        type="server_error",
        code="internal_error",
    )


def _session_busy(exc: BaseException) -> ServeError | None:
    # matched by name: the sessions package is optional and must not be imported here
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "SessionBusyError" in names:
        return ServeError(
            409,
            "this conversation is answering another request; retry when it is done",
            type="invalid_request_error",
            code="session_busy",
        )
    if "SessionNotFoundError" in names:
        return ServeError(404, "no such conversation", code="conversation_not_found")
    if "ResumeError" in names:
        # says which call id is unknown, missing or changed; ids and tool names only
        return ServeError(409, _first_line(str(exc)), code="approval_mismatch")
    if "SessionError" in names:
        # The store is down or refused a write (a PostgreSQL restart, a full disk): the
        # request was fine and may be sent again; nothing of this run was stored as done.
        return ServeError(
            503,
            f"the conversation store failed: {redact(_first_line(str(exc)))}",
            type="server_error",
            code="store_unavailable",
            headers={"Retry-After": "1"},
        )
    return None


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0][:_LONGEST_MESSAGE]
