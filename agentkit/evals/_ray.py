"""The Ray backend: each conversation is a Ray task, on a local cluster or one joined with
``address``. A task whose worker dies is run again by Ray and counted once: a conversation
counts only when its task returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx

from .._errors import QuotaExceededError
from ._conversation import Attempt, converse
from ._errors import EvalError, SuiteError
from ._limit import Buckets, LimitedTransport, RateLimit
from ._local import collect, refuse_unroutable

if TYPE_CHECKING:
    from ._scenario import Scenario
    from ._suite import Job, Progress, Suite

__all__ = ["RayBackend"]


class RayBackend:
    """Conversations as Ray tasks (``pip install 'agentkit[ray]'``).

    Args:
        address: a running cluster to join (``"ray://host:10001"``, ``"auto"``); ``None``
            joins the one ``RAY_ADDRESS`` names, else starts a local cluster (unless
            ``ray.init`` was called already: that cluster is used). Workers get the driver's
            import path and ``AGENTKIT_BASE_URL``; keys come from their own environment.
        concurrency: conversations in flight at once.
        num_cpus: CPUs of a local cluster this backend starts (default: all).
        max_retries: how often Ray runs a conversation again whose worker died.
        rate_limit: requests and tokens per minute over all workers (one Ray actor keeps
            the count); needs agent factories that take ``http_client=``.
    """

    name = "ray"
    price_factor = 1.0

    def __init__(
        self,
        address: str | None = None,
        *,
        concurrency: int = 8,
        num_cpus: int | None = None,
        max_retries: int = 3,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.address = address
        self.concurrency = concurrency
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.rate_limit = rate_limit

    def check(self, suite: Suite) -> None:
        """Refuse at once when Ray is not installed, or a rate limit the suite's agent
        factories cannot apply."""
        _ray()
        if self.rate_limit is not None:
            refuse_unroutable(suite, "a rate limit")

    async def run(self, suite: Suite, jobs: Sequence[Job], progress: Progress) -> list[Attempt]:
        """Run every job as a Ray task; a used-up quota cancels the rest."""
        ray = _ray()
        if not ray.is_initialized():
            joining = self.address is not None or bool(os.environ.get("RAY_ADDRESS"))
            options = {
                # "local": a cluster of our own, never one another process left on this host
                "address": self.address if joining else "local",
                "num_cpus": None if joining else self.num_cpus,
                "include_dashboard": None if joining else False,
                "log_to_driver": False,
                "runtime_env": {"env_vars": _worker_environment()},
            }
            if joining:
                ray.init(**options)
            else:
                start_local(ray, options)
        _pickle_by_value(suite)
        task = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_conversation)
        limit = self.rate_limit
        ledger = None
        if limit is not None:  # one actor holds the buckets for every worker
            ledger = ray.remote(num_cpus=0)(_LedgerActor).remote(limit)
        parts = ray.put((suite.scenarios, suite.agent, suite.user, suite.judge, limit, ledger))
        gate = asyncio.Semaphore(self.concurrency)
        refs: list[Any] = []

        async def one(job: Job) -> Attempt:
            async with gate:
                ref = task.remote(parts, job.scenario, job.attempt)
                refs.append(ref)
                try:
                    result: Attempt = await ref
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, QuotaExceededError):
                        raise cause from None
                    raise
                return result

        tasks = [asyncio.ensure_future(one(job)) for job in jobs]
        try:
            return await collect(tasks, progress)
        finally:
            for ref in refs:
                with contextlib.suppress(Exception):  # finished already, or the cluster went
                    ray.cancel(ref)


_LOCAL_STARTS = 2


def start_local(ray: Any, options: dict[str, Any]) -> None:
    """Start a local cluster; started again once if it timed out starting.

    Ray waits a fixed 30 s for its raylet to register (not configurable): on a loaded
    machine one start can pass that and fail with a bare ``Exception``. A second failure
    is an ``EvalError`` that says so.
    """
    for attempt in range(1, _LOCAL_STARTS + 1):
        try:
            ray.init(**options)
            return
        except Exception as exc:
            if "timed out" not in str(exc).lower():
                raise
            _stop_started(exc)
            with contextlib.suppress(Exception):
                ray.shutdown()
            if attempt == _LOCAL_STARTS:
                first = str(exc).split("\n", 1)[0]
                raise EvalError(
                    f"Ray's local cluster did not start, {_LOCAL_STARTS} times ({first}); "
                    "the machine may be too busy: retry, or start Ray yourself (ray start "
                    "--head) and pass RayBackend(address=...)"
                ) from exc


def _stop_started(exc: BaseException) -> None:
    """End the processes a failed start left running (its GCS, its slow raylet): Ray's
    ``Node`` raised in its constructor, so only the traceback still holds it."""
    traceback = exc.__traceback__
    while traceback is not None:
        node: Any = traceback.tb_frame.f_locals.get("self")
        if type(node).__name__ == "Node" and hasattr(node, "kill_all_processes"):
            with contextlib.suppress(Exception):
                node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
            return
        traceback = traceback.tb_next


def _conversation(parts: tuple[Any, ...], scenario: int, attempt: int) -> Attempt:
    """One conversation in a Ray worker, on an event loop of its own."""
    scenarios: Sequence[Scenario] = parts[0]
    limit: RateLimit | None = parts[4]

    async def run() -> Attempt:
        http_client = None
        if limit is not None:
            transport = LimitedTransport(_RayLedger(parts[5]), limit.sleep)
            http_client = httpx.AsyncClient(transport=transport)
        try:
            return await converse(
                scenarios[scenario],
                scenario,
                attempt,
                agent=parts[1],
                user=parts[2],
                judge=parts[3],
                http_client=http_client,
            )
        finally:
            if http_client is not None:
                await http_client.aclose()

    return asyncio.run(run())


class _LedgerActor:
    """The rate limit's buckets, in one Ray actor that every worker asks."""

    def __init__(self, limit: RateLimit) -> None:
        self._buckets = Buckets(limit)

    def reserve(self, tokens: int) -> float:
        return self._buckets.reserve(tokens)

    def settle(self, estimated: int, actual: int) -> None:
        self._buckets.settle(estimated, actual)

    def pause(self, seconds: float) -> None:
        self._buckets.pause(seconds)


class _RayLedger:
    """A worker's view of the actor."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    async def reserve(self, tokens: int) -> float:
        wait: float = await self._actor.reserve.remote(tokens)
        return wait

    async def settle(self, estimated: int, actual: int) -> None:
        await self._actor.settle.remote(estimated, actual)

    async def pause(self, seconds: float) -> None:
        await self._actor.pause.remote(seconds)


def _ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise SuiteError("the ray backend needs Ray: pip install 'agentkit[ray]'") from None
    return ray


def _worker_environment() -> dict[str, str]:
    """What the workers need of the driver's environment: its import path (to import the
    suite's modules as it does) and the server its agents are pointed at. Never a key:
    workers read their keys from their own environment."""
    entries = [os.path.abspath(entry or os.curdir) for entry in sys.path]
    found = {"PYTHONPATH": os.pathsep.join(entry for entry in entries if os.path.isdir(entry))}
    if os.environ.get("AGENTKIT_BASE_URL"):
        found["AGENTKIT_BASE_URL"] = os.environ["AGENTKIT_BASE_URL"]
    return found


def _pickle_by_value(suite: Suite) -> None:
    """A suite loaded from a file (``agentkit eval evals.py:suite``) lives in a module no
    worker can import by name: send its code by value instead."""
    from ray import cloudpickle

    callables: list[Any] = [*suite.factories()]
    for scenario in suite.scenarios:
        callables.extend(scenario.checks)
    for item in callables:
        name = getattr(item, "__module__", None) or type(item).__module__
        module = sys.modules.get(name)
        if module is not None and not name.startswith("agentkit") and not _importable(module):
            cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]


def _importable(module: ModuleType) -> bool:
    """Whether a worker can import ``module`` by its name from its file: not a script
    (``__main__``) nor a file loaded under another name."""
    if module.__name__ == "__main__":
        return False
    path = getattr(module, "__file__", None)
    if not path:
        return True  # built in
    stem = Path(path).stem
    if stem == "__init__":
        stem = Path(path).parent.name
    return stem == module.__name__.rpartition(".")[2]
