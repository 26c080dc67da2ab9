"""The local backend: conversations as asyncio tasks on this event loop, a bounded number at
once; a used-up quota stops them all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import httpx

from .._errors import QuotaExceededError
from ._conversation import Attempt, converse, takes_http_client
from ._errors import SuiteError, SuiteStopped
from ._limit import LimitedTransport, LocalLedger, RateLimit

if TYPE_CHECKING:
    from ._suite import Job, Progress, Suite

__all__ = ["LocalBackend", "gather_attempts"]


class LocalBackend:
    """Conversations as asyncio tasks, ``concurrency`` at once, within ``rate_limit`` (which
    needs agent factories that take ``http_client=``)."""

    name = "local"
    price_factor = 1.0

    def __init__(self, concurrency: int = 8, rate_limit: RateLimit | None = None) -> None:
        self.concurrency = concurrency
        self.rate_limit = rate_limit

    def check(self, suite: Suite) -> None:
        """Refuse a rate limit the suite's agent factories cannot apply."""
        if self.rate_limit is not None:
            refuse_unroutable(suite, "a rate limit")

    async def run(self, suite: Suite, jobs: Sequence[Job], progress: Progress) -> list[Attempt]:
        """Run the jobs; a used-up quota cancels the rest and raises ``SuiteStopped``."""
        limit = self.rate_limit
        if limit is None:
            return await gather_attempts(suite, jobs, progress, self.concurrency, None)
        ledger = LocalLedger(limit)
        opened: list[httpx.AsyncClient] = []

        def limited(job: Job) -> httpx.AsyncClient:
            made = httpx.AsyncClient(transport=LimitedTransport(ledger, limit.sleep))
            opened.append(made)
            return made

        try:
            return await gather_attempts(suite, jobs, progress, self.concurrency, limited)
        finally:
            for made in opened:
                await made.aclose()


def refuse_unroutable(suite: Suite, what: str) -> None:
    """``SuiteError`` unless every agent factory takes ``http_client=``."""
    for factory in suite.factories():
        if not takes_http_client(factory):
            name = getattr(factory, "__name__", repr(factory))
            raise SuiteError(
                f"{what} needs every agent factory to take http_client= and build its Agent "
                f"with client=AsyncChatClient(..., http_client=http_client); {name} does not"
            )


async def gather_attempts(
    suite: Suite,
    jobs: Sequence[Job],
    progress: Progress,
    concurrency: int,
    http_client: Callable[[Job], httpx.AsyncClient | None] | None,
) -> list[Attempt]:
    """Every job through ``converse``, ``concurrency`` at once, progress as each ends;
    ``http_client`` gives each conversation's HTTP client (the backend's seam)."""
    gate = asyncio.Semaphore(concurrency)
    scenarios = suite.scenarios

    async def one(job: Job) -> Attempt:
        async with gate:
            return await converse(
                scenarios[job.scenario],
                job.scenario,
                job.attempt,
                agent=suite.agent,  # type: ignore[arg-type]  # Suite.check saw a callable
                user=suite.user,
                judge=suite.judge,
                http_client=None if http_client is None else http_client(job),
                close=not suite.shared_agent,
            )

    return await collect([asyncio.ensure_future(one(job)) for job in jobs], progress)


async def collect(tasks: Sequence[asyncio.Future[Attempt]], progress: Progress) -> list[Attempt]:
    """Each attempt as it ends, told to ``progress``; a quota error stops the suite at once
    (every task still running is cancelled, on every backend)."""
    attempts: list[Attempt] = []
    try:
        for finished in asyncio.as_completed(tasks):
            attempt = await finished
            attempts.append(attempt)
            progress(len(attempts), len(tasks), attempt)
    except QuotaExceededError as exc:
        raise SuiteStopped(
            f"the suite stopped: the provider says the quota is used up ({exc}); "
            f"{len(attempts)} of {len(tasks)} conversations had finished",
            cause=exc,
            finished=len(attempts),
        ) from exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return attempts
