"""A rate limit shared by every conversation of a suite: requests and tokens per minute, and
a pause for everyone when the provider answers 429 with ``Retry-After``.

It sits in each conversation's HTTP client (the agent factory's ``http_client=``): before a
request goes out it reserves one request and the request's estimated tokens and waits out
any debt; the answer's ``usage`` corrects the estimate. On Ray the buckets live in one actor,
so the limit holds across all workers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

__all__ = ["RateLimit"]


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests_per_minute`` model requests and ``tokens_per_minute`` tokens, over
    all the conversations of a suite (``None``: no bound), spread evenly (a burst of at most a
    second's worth). A 429 with ``Retry-After`` pauses every conversation that long.

    ``clock`` and ``sleep`` are injectable for tests.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    sleep: Callable[[float], Awaitable[None]] = field(
        default=asyncio.sleep, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"RateLimit's {name} must be positive (or None)")


class Buckets:
    """Two token buckets that may go into debt: a reservation is taken at once and the
    caller waits until the debt it made is paid back. Pure bookkeeping on a clock."""

    def __init__(self, limit: RateLimit) -> None:
        self._clock = limit.clock
        self._rates = (
            None if limit.requests_per_minute is None else limit.requests_per_minute / 60,
            None if limit.tokens_per_minute is None else limit.tokens_per_minute / 60,
        )
        # a second's worth, at least one request (and one request's tokens)
        self._sizes = tuple(None if r is None else max(1.0, r) for r in self._rates)
        self._levels = [size or 0.0 for size in self._sizes]
        self._at = self._clock()
        self._paused_until = 0.0

    def _refill(self, now: float) -> None:
        elapsed, self._at = now - self._at, now
        for i, rate in enumerate(self._rates):
            size = self._sizes[i]
            if rate is not None and size is not None:
                self._levels[i] = min(size, self._levels[i] + elapsed * rate)

    def reserve(self, tokens: int) -> float:
        """Take one request and ``tokens``; the seconds to wait before sending."""
        now = self._clock()
        self._refill(now)
        wait = max(0.0, self._paused_until - now)
        for i, amount in enumerate((1.0, float(tokens))):
            rate = self._rates[i]
            if rate is None:
                continue
            self._levels[i] -= amount
            if self._levels[i] < 0:
                wait = max(wait, -self._levels[i] / rate)
        return wait

    def settle(self, estimated: int, actual: int) -> None:
        """Correct a reservation's tokens by what the answer says it used."""
        if self._rates[1] is not None:
            self._levels[1] += estimated - actual

    def pause(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` (a 429's ``Retry-After``)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)


class Ledger(Protocol):
    """Where the buckets are: in this process, or in a Ray actor."""

    async def reserve(self, tokens: int) -> float:
        """The seconds to wait before sending."""

    async def settle(self, estimated: int, actual: int) -> None:
        """Correct the estimate."""

    async def pause(self, seconds: float) -> None:
        """Pause everyone."""


class LocalLedger:
    """The buckets in this process."""

    def __init__(self, limit: RateLimit) -> None:
        self._buckets = Buckets(limit)

    async def reserve(self, tokens: int) -> float:
        """The seconds to wait before sending."""
        return self._buckets.reserve(tokens)

    async def settle(self, estimated: int, actual: int) -> None:
        """Correct the estimate."""
        self._buckets.settle(estimated, actual)

    async def pause(self, seconds: float) -> None:
        """Pause everyone."""
        self._buckets.pause(seconds)


class LimitedTransport(httpx.AsyncBaseTransport):
    """One conversation's transport: waits its turn, then sends through ``inner``."""

    def __init__(
        self,
        ledger: Ledger,
        sleep: Callable[[float], Awaitable[None]],
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._ledger = ledger
        self._sleep = sleep
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        estimated = len(request.content) // 4 + 1  # about four bytes a token
        wait = await self._ledger.reserve(estimated)
        if wait > 0:
            await self._sleep(wait)
        response = await self._inner.handle_async_request(request)
        if response.status_code == 429:
            after = _retry_after(response.headers.get("retry-after"))
            if after:
                await self._ledger.pause(after)
        elif response.status_code == 200 and response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            body = await response.aread()
            await self._ledger.settle(estimated, _total_tokens(body, estimated))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the client's own retry honours it
    return seconds if seconds is not None and 0 < seconds <= 3600 else None


def _total_tokens(body: bytes, fallback: int) -> int:
    try:
        usage: Any = json.loads(body).get("usage") or {}
        return int(usage.get("total_tokens") or fallback)
    except (ValueError, AttributeError, TypeError):
        return fallback  # a stream, or no usage: keep the estimate
