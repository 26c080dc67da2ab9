"""When a failed request is sent again, and after how long: :class:`RetryPolicy`.

One policy serves both clients. Its clock, sleeps and random source can be replaced, so
a test (or a simulation) can check the exact waits without waiting, and its ``on_retry``
callback sees each retry before the wait, for a progress line ("503 from the server;
retrying in 1.2 s (1 of 2)") or a trace event::

    from agentkit import ChatClient, RetryPolicy

    waits = []
    policy = RetryPolicy(max_retries=3, sleep=waits.append, on_retry=print)
    client = ChatClient(retry=policy)

It does no I/O of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ._errors import APIError, APIStatusError, ConfigurationError

__all__ = [
    "MAX_SERVER_DELAY",
    "RETRY_STATUSES",
    "RetryEvent",
    "RetryPolicy",
    "retry_delay",
    "server_delay",
    "should_retry",
]

_logger = logging.getLogger("agentkit._client")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses that are retried (a 429 only when it is a rate limit, not a quota)."""

MAX_SERVER_DELAY = 60.0
"""The longest ``Retry-After`` waited for, in seconds (``RetryPolicy.max_server_delay``).

A server asking for more is not waited for: the error is raised at once, its
``retry_after`` saying what the server asked, so the caller decides (retrying before the
server's time would only fail again)."""


def should_retry(error: BaseException) -> bool:
    """Whether a failed request may be sent again.

    Rate limits (429, but never a quota or billing 429), 500, 502, 503 and 504,
    connection errors and timeouts are retried; any other status (400, 401, 403, 404,
    422, content moderation), an invalid response, a request the client refused, or a
    request past its deadline are not. A cut stream is retried too, but only while
    nothing was shown to the caller (the client knows that).
    """
    if isinstance(error, APIStatusError):
        return error.retryable and error.status in RETRY_STATUSES
    if isinstance(error, APIError):
        return error.retryable
    return False


def server_delay(
    headers: Mapping[str, str] | None, clock: Callable[[], float] = time.time
) -> float | None:
    """The delay a server asked for, in seconds: ``retry-after-ms`` or ``Retry-After``
    (seconds, or an HTTP date read against ``clock``); ``None`` when it asked nothing
    readable. May be negative (a date in the past)."""
    if not headers:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return value
    after = headers.get("retry-after")
    if not after:
        return None
    try:
        value = float(after)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(after)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT even when it says "-0000"
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp() - clock()
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry about to happen, as ``RetryPolicy.on_retry`` sees it (before the wait).

    ``attempt`` is this retry's number (1 for the first), out of ``max_retries``;
    ``delay`` the seconds about to be waited; ``status`` the HTTP status that failed
    (``None`` for a connection error or a timeout); ``error`` the failure itself (its
    text has the API key masked); ``url`` the endpoint.
    """

    attempt: int
    max_retries: int
    delay: float
    status: int | None
    error: APIError
    url: str

    def describe(self) -> str:
        """A one-line account, e.g. ``503 from the server; retrying in 1.2 s (1 of 2)``."""
        what = (
            f"{self.status} from the server"
            if self.status is not None
            else type(self.error).__name__
        )
        return f"{what}; retrying in {self.delay:.1f} s ({self.attempt} of {self.max_retries})"


def _non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
    if math.isinf(value) and name != "max_server_delay":
        raise ConfigurationError(f"{name} must be finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries failed requests; hand one to ``ChatClient(retry=...)``.

    Retry ``n`` (counting from 0) waits what the server asked (``retry-after-ms`` or
    ``Retry-After``, never negative), or else a random time between 0 and
    ``min(max_delay, base_delay * 2**n)`` (full jitter; with ``jitter=False``, that
    bound itself). A server asking for more than ``max_server_delay`` seconds is not
    waited for: the error is raised at once (see :data:`MAX_SERVER_DELAY`).

    Attributes:
        max_retries: retries after the first attempt (0: never retry).
        base_delay, max_delay: the backoff, in seconds.
        max_server_delay: the longest ``Retry-After`` waited for.
        jitter: full jitter (``True``) or the plain exponential bound.
        clock: the wall clock, for ``Retry-After`` dates (``time.time``).
        sleep: how the sync client waits (``time.sleep``).
        async_sleep: how the async client waits (``asyncio.sleep``).
        random: a source of floats in ``[0, 1)`` for the jitter (``random.random``).
        on_retry: called with a :class:`RetryEvent` before each wait; an exception it
            raises is logged, never raised into the request.
    """

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_server_delay: float = MAX_SERVER_DELAY
    jitter: bool = True
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], object] = time.sleep
    async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    random: Callable[[], float] = random.random
    on_retry: Callable[[RetryEvent], object] | None = None

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"max_retries must be an integer >= 0, got {retries!r}")
        _non_negative("base_delay", self.base_delay)
        _non_negative("max_delay", self.max_delay)
        _non_negative("max_server_delay", self.max_server_delay)

    def replace(self, **changes: object) -> RetryPolicy:
        """A copy with some fields changed (``None`` values are ignored)."""
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self  # type: ignore[arg-type]

    def backoff(self, attempt: int) -> float:
        """The wait before retry ``attempt + 1`` when the server asked for none."""
        bound = min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 64))
        return bound * self.random() if self.jitter else bound

    def delay(self, attempt: int, asked: float | None = None) -> float | None:
        """Seconds to wait before retry ``attempt + 1`` (``attempt`` counts from 0), given
        what the server ``asked`` (seconds, see :func:`server_delay`; ``None``: nothing);
        ``None`` when it asked for longer than ``max_server_delay``."""
        if asked is None:
            return self.backoff(attempt)
        if asked > self.max_server_delay:
            return None
        return max(asked, 0.0)

    def announce(self, event: RetryEvent) -> None:
        """Log the retry and tell ``on_retry``."""
        _logger.info(
            "POST %s: %s (status %s); retry %d of %d in %.2f s",
            event.url,
            type(event.error).__name__,
            event.status,
            event.attempt,
            event.max_retries,
            event.delay,
        )
        if self.on_retry is not None:
            try:
                self.on_retry(event)
            except Exception:
                _logger.exception("RetryPolicy.on_retry raised; the request goes on")


def retry_delay(
    attempt: int,
    headers: Mapping[str, str] | None = None,
    *,
    base: float = 0.5,
    maximum: float = 8.0,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    A server's ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date) is honoured,
    at most :data:`MAX_SERVER_DELAY` and never negative. Otherwise exponential backoff
    with full jitter: uniform between 0 and ``min(maximum, base * 2**attempt)``. (A
    client given a longer ``Retry-After`` does not wait: see :class:`RetryPolicy`.)
    """
    policy = RetryPolicy(base_delay=base, max_delay=maximum)
    asked = server_delay(headers)
    if asked is not None:
        return min(max(asked, 0.0), MAX_SERVER_DELAY)
    return policy.backoff(attempt)
