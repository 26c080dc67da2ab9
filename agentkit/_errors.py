"""The exception tree: every error agentkit raises derives from :class:`AgentKitError`.

This module also maps an HTTP status and an OpenAI-style error body
(``{"error": {"message", "type", "param", "code"}}``) to the matching exception class.
It does no I/O.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._deprecation import AgentKitDeprecationWarning

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AgentKitError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ContentModerationError",
    "DeadlineExceededError",
    "HandoffLimitError",
    "IncompleteStreamError",
    "InvalidResponseError",
    "MaxTurnsExceededError",
    "NotFoundError",
    "OutputTruncatedError",
    "OutputValidationError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RepeatedToolCallError",
    "RequestValidationError",
    "ResponseTooLargeError",
    "RunError",
    "RunTimeoutError",
    "ServerError",
    "ToolArgumentsError",
    "ToolCallLimitExceededError",
    "ToolDefinitionError",
    "ToolFailureLimitExceededError",
    "ToolRetry",
    "ToolThreadsExhaustedError",
    "error_from_response",
]


class AgentKitError(Exception):
    """Base of every agentkit exception.

    ``messages`` is the transcript so far (plain wire-format dicts) when the error escaped
    an agent run, so nothing the run produced is lost; it is ``None`` outside a run.
    """

    def __init__(self, message: str, *, messages: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.messages = messages

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigurationError(AgentKitError):
    """Client or agent set up wrongly: a missing API key, an unknown preset, a bad option."""


class RequestValidationError(AgentKitError, ValueError):
    """A request parameter breaks the provider's documented rules; raised before sending.

    ``param`` names the offending parameter (for example ``"temperature"``).
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ToolDefinitionError(AgentKitError, TypeError):
    """A function cannot become a tool (bad name, ``*args``, an unsupported type...).

    Raised at decoration time, never per call.
    """


class ToolArgumentsError(AgentKitError, ValueError):
    """Tool-call arguments from a model are not JSON or do not fit the tool's schema.

    ``str(error)`` is the readable text fed back to the model so it can correct itself;
    ``errors`` lists the individual problems as ``(location, message)`` pairs.
    """

    def __init__(
        self, message: str, *, tool_name: str, errors: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.tool_name = tool_name
        self.errors = errors or []


class ToolRetry(AgentKitError):
    """Raise inside a tool to ask the model to try again; the message goes to the model."""


# --- errors from the API ------------------------------------------------------------------


class APIError(AgentKitError):
    """An error talking to the Chat Completions API.

    Attributes: ``status`` (HTTP status or ``None``), ``code`` and ``type`` and ``param``
    (from the error body, when the server sent one) and ``request_id`` (from the
    ``x-request-id`` style headers or the body), plus ``message``. ``retry_after`` is the
    wait in seconds a server asked for (``Retry-After``), when it asked; it is set on an
    error raised because the server asked for longer than the client waits. The API key
    never appears in any of them.
    """

    retryable: bool = False
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        messages: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, messages=messages)
        self.status = status
        self.code = code
        self.type = type
        self.param = param
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.status is not None:
            details.append(f"status {self.status}")
        if self.code:
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, request_id={self.request_id!r})"
        )


class APIStatusError(APIError):
    """The server answered with an HTTP error status."""


class BadRequestError(APIStatusError):
    """400 or 422: the server refused the request as invalid. Never retried."""


class ContentModerationError(BadRequestError):
    """DashScope's content moderation refused the input or output (``data_inspection_failed``).

    Never retried: the same content would be refused again.
    """


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked. Never retried."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or resource. Never retried."""


class NotFoundError(APIStatusError):
    """404: unknown model or endpoint (check the base URL). Never retried."""


class RateLimitError(APIStatusError):
    """429: too many requests for now. Retried with backoff, honouring ``Retry-After``."""

    retryable = True


class QuotaExceededError(RateLimitError):
    """429 meaning the quota is used up or the bill is overdue. Never retried."""

    retryable = False


class ServerError(APIStatusError):
    """5xx: the server failed. 500, 502, 503 and 504 are retried with backoff."""

    retryable = True


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke. Retried with backoff."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """The connect or read timeout fired. Retried with backoff."""


class DeadlineExceededError(APITimeoutError):
    """The request took longer than the client's ``deadline``, retries and waits included.

    Raised whatever the server was doing: silent, trickling a body a byte at a time, or
    sending keep-alive comments forever. Never retried (the deadline is the caller's
    bound on the whole request); ``deadline`` holds it, in seconds.
    """

    retryable = False

    def __init__(self, message: str, *, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.deadline = deadline


class IncompleteStreamError(APIError):
    """A stream ended before ``[DONE]`` or a finish reason: the answer is not whole.

    ``partial`` holds what had arrived, for inspection; it is never used as an answer.
    """

    retryable = True

    def __init__(self, message: str, *, partial: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial = partial


class InvalidResponseError(APIError):
    """A 2xx answer that is not a valid completion (not JSON, no ``choices``, HTML...)."""


class ResponseTooLargeError(InvalidResponseError):
    """The answer grew past the client's ``max_response_bytes`` and was not read further.

    Counted on the decoded body (a compressed bomb counts at its real size), for a plain
    answer and a stream alike. Never retried; ``limit`` holds the bound, in bytes.
    """

    def __init__(self, message: str, *, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit


# --- errors that end an agent run -------------------------------------------------------


class RunError(AgentKitError):
    """An agent run stopped before a final answer; ``messages`` holds the transcript."""


class MaxTurnsExceededError(RunError):
    """The run made ``max_turns`` model calls without reaching a final answer."""


class ToolCallLimitExceededError(RunError):
    """The run asked for more tool calls than its per-run cap allows."""


class ToolFailureLimitExceededError(RunError):
    """One tool failed too many times in a row; ``tool_name`` says which."""

    def __init__(
        self, message: str, *, tool_name: str, messages: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, messages=messages)
        self.tool_name = tool_name


class RepeatedToolCallError(RunError):
    """The model repeated the same call with the same arguments too many rounds in a row."""


class OutputTruncatedError(RunError):
    """The model stopped at ``max_tokens`` (``finish_reason == "length"``): not an answer."""


class OutputValidationError(RunError):
    """The final answer did not validate against ``output_type`` after the allowed retries."""


class ToolThreadsExhaustedError(RunError):
    """A sync tool call found no thread: the agent's leak bound of threads stuck in
    abandoned calls (timed out, or left behind by a cancelled run) is reached.

    An agent runs at most ``parallel_tool_calls_limit`` sync calls at once and keeps at
    most as many threads again for calls it gave up on; those come back when their calls
    return. The message says how many are stuck.
    """


class HandoffLimitError(RunError):
    """The run's agents handed the conversation to each other too often: more than
    ``max_handoffs`` times, or back and forth between two agents (A to B to A to B).
    ``path`` holds the agents' names in the order they had the conversation, the refused
    target last; ``messages`` the transcript (the refused transfer told it was not made)."""

    def __init__(
        self,
        message: str,
        *,
        path: tuple[str, ...] = (),
        messages: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, messages=messages)
        self.path = path


class RunTimeoutError(RunError):
    """The run went past its ``run_timeout`` (seconds for the whole run); ``timeout``
    says how long that was."""

    def __init__(
        self, message: str, *, timeout: float, messages: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, messages=messages)
        self.timeout = timeout


# --- mapping an HTTP error to an exception ----------------------------------------------

_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: BadRequestError,
    429: RateLimitError,
}

# A 429 is a used-up quota or an unpaid bill, not a momentary rate limit, when its code or
# message says so (the seed's status table; OpenAI's "insufficient_quota"; DashScope's
# "Throttling.AllocationQuota" and "Arrearage"). DashScope's "Throttling.RateQuota" is a
# plain rate limit despite its name.
_BILLING_MARKERS = ("billing", "arrearage", "overdue", "insufficient_quota")


def _is_quota(lowered: str) -> bool:
    if any(marker in lowered for marker in _BILLING_MARKERS):
        return True
    return "quota" in lowered and "ratequota" not in lowered


_MODERATION_CODES = ("data_inspection_failed", "datainspectionfailed", "content_filter")


def _as_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def error_from_response(
    status: int,
    body: Any,
    *,
    request_id: str | None = None,
    text: str | None = None,
) -> APIStatusError:
    """Build the exception for an HTTP error answer.

    ``body`` is the decoded JSON body if there was one (any shape is tolerated), ``text``
    the raw body text for servers that answer HTML or plain text.
    """
    message: str | None = None
    code = type_ = param = None
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        message = _as_str(error.get("message"))
        code = _as_str(error.get("code"))
        type_ = _as_str(error.get("type"))
        param = _as_str(error.get("param"))
    elif isinstance(body, Mapping):
        # DashScope's native shape: {"code": ..., "message": ..., "request_id": ...}
        message = _as_str(body.get("message")) or _as_str(error)
        code = _as_str(body.get("code"))
    if isinstance(body, Mapping) and request_id is None:
        request_id = _as_str(body.get("request_id")) or _as_str(body.get("id"))
    if message is None:
        snippet = " ".join((text or "").split())[:200]
        message = f"HTTP {status}" + (f": {snippet}" if snippet else "")

    cls: type[APIStatusError]
    lowered = " ".join(filter(None, (code, type_, message))).lower().replace(" ", "")
    if any(marker in lowered for marker in _MODERATION_CODES):
        cls = ContentModerationError
    elif status == 429 and _is_quota(lowered):
        cls = QuotaExceededError
    elif status >= 500:
        cls = ServerError
    else:
        cls = _STATUS_CLASSES.get(status, APIStatusError)
    return cls(
        message.strip(),
        status=status,
        code=code,
        type=type_,
        param=param,
        request_id=request_id,
    )


# --- old names ----------------------------------------------------------------------------

RENAMED = {
    "MaxTurnsExceeded": "MaxTurnsExceededError",
    "ToolCallLimitExceeded": "ToolCallLimitExceededError",
    "ToolFailureLimitExceeded": "ToolFailureLimitExceededError",
    "ToolThreadsExhausted": "ToolThreadsExhaustedError",
}
"""Exceptions renamed before 0.1.0 (old name -> new name): the old names still resolve, to
the same class, with a ``DeprecationWarning`` that names the new one."""


def renamed(owner: str, old: str, new: type[AgentKitError]) -> type[AgentKitError]:
    """``new``, the class the old name ``old`` stands for, after warning the code that looked
    ``old`` up in module ``owner`` (two frames up: through a module ``__getattr__``) to use
    the new name. Every renamed exception goes through here, the ring's too."""
    warnings.warn(
        f"{owner}.{old} is renamed {new.__name__}; import {new.__name__} instead (the old "
        "name will be removed)",
        AgentKitDeprecationWarning,
        stacklevel=3,
    )
    return new


# Hidden from type checkers, so that only the names above are valid to them.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in RENAMED:
            return renamed(__name__, name, globals()[RENAMED[name]])
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
