"""The local backend: conversations as asyncio tasks on this event loop, a bounded number at
once; a used-up quota stops them all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._errors import QuotaExceededError
from ._conversation import Attempt, converse
from ._errors import SuiteStopped

if TYPE_CHECKING:
    import httpx

    from ._suite import Job, Progress, Suite

__all__ = ["LocalBackend", "gather_attempts"]


class LocalBackend:
    """Conversations as asyncio tasks, ``concurrency`` at once."""

    name = "local"
    price_factor = 1.0

    def __init__(self, concurrency: int = 8) -> None:
        self.concurrency = concurrency

    def check(self, suite: Suite) -> None:
        """Nothing to refuse: any suite runs locally."""

    async def run(self, suite: Suite, jobs: Sequence[Job], progress: Progress) -> list[Attempt]:
        """Run the jobs; a used-up quota cancels the rest and raises ``SuiteStopped``."""
        return await gather_attempts(suite, jobs, progress, self.concurrency, None)


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
            )

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
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
