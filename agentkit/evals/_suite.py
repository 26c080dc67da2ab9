"""``Suite``: the bot's factory, the scenarios, and ``run``: every scenario ``k`` times on a
backend, into one :class:`Report`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._checks import Judge, ToolCheck
from ._conversation import Attempt, build_agent, takes_http_client
from ._errors import SuiteError
from ._report import Report, group
from ._scenario import Scenario

if TYPE_CHECKING:
    from .._pricing import ModelPrice
    from ._limit import RateLimit

__all__ = ["Backend", "Job", "Progress", "Suite"]

Progress = Callable[[int, int, Attempt], object]
"""Told after each finished conversation: ``(finished, total, attempt)``."""


@dataclass(frozen=True, slots=True)
class Job:
    """One conversation to run: scenario number ``scenario``, try number ``attempt``."""

    scenario: int
    attempt: int


class Backend(Protocol):
    """Where conversations run. A backend only decides that: every one runs the same
    :func:`~agentkit.evals._conversation.converse`, so the report is the same."""

    name: str
    price_factor: float

    def check(self, suite: Suite) -> None:
        """Refuse (``SuiteError``) what this backend cannot run, before any request."""

    async def run(self, suite: Suite, jobs: Sequence[Job], progress: Progress) -> list[Attempt]:
        """Run every job once; hand each finished attempt to ``progress``."""


@dataclass
class Suite:
    """A bot and the scenarios it is measured on.

    Args:
        agent: a factory of a fresh ``Agent`` for every conversation, or of
            ``(Agent, deps)`` when the bot has data the checks look at afterwards. A
            factory that accepts ``http_client=`` and passes it to its ``AsyncChatClient``
            lets the backend route its requests (the shared rate limit; the Batch API).
        scenarios: the :class:`Scenario` list; names are unique.
        user: a factory of the simulated customers' ``Agent`` (for ``SimulatedUser``).
        judge: a factory of the judge's ``Agent`` (for ``judge(...)`` checks).
        prices: what a token costs (``ModelPrice``) per model name, or one price for all,
            for the cost figures of the report.
    """

    agent: Callable[..., Any] | None
    scenarios: Sequence[Scenario]
    user: Callable[..., Any] | None = None
    judge: Callable[..., Any] | None = None
    prices: ModelPrice | Mapping[str, ModelPrice] | None = None
    _model: str = field(default="", init=False, repr=False)
    shared_agent: bool = field(default=False, init=False, repr=False)

    def check(self) -> None:
        """Refuse a suite that cannot run, before any request: no agent factory, a factory
        that does not build an ``Agent``, a check naming a tool the bot does not have, a
        simulated customer or a judge without an agent."""
        if not callable(self.agent):
            raise SuiteError(
                "the suite has no agent factory: Suite(agent=lambda: make_bot(), ...), a "
                "function returning a fresh Agent (or (Agent, deps)) for each conversation"
            )
        scenarios = list(self.scenarios)
        if not scenarios:
            raise SuiteError("the suite has no scenarios")
        names = [scenario.name for scenario in scenarios]
        for scenario in scenarios:
            if not isinstance(scenario, Scenario):
                raise SuiteError(f"scenarios holds a {type(scenario).__name__}, not a Scenario")
            if names.count(scenario.name) > 1:
                raise SuiteError(f"two scenarios are named {scenario.name!r}")
        try:
            bot, _ = build_agent(self.agent, None)
            again, _ = build_agent(self.agent, None)
        except SuiteError:
            raise
        except (Exception, SystemExit) as exc:  # an exit would end `agentkit eval` with 0
            raise SuiteError(f"the agent factory failed: {type(exc).__name__}: {exc}") from exc
        self._model = bot.model
        # a factory handing out one shared agent: conversations must not close it
        self.shared_agent = again is bot
        if not self.shared_agent:
            again.close()
        tools = {tool.name for tool in bot.tools}
        if not self.shared_agent:
            bot.close()
        for scenario in scenarios:
            for check in scenario.checks:
                if isinstance(check, ToolCheck) and check.tool not in tools:
                    raise SuiteError(
                        f"scenario {scenario.name!r}: {check.name} names a tool the bot does "
                        f"not have; its tools are {sorted(tools)}"
                    )
                if isinstance(check, Judge) and check.agent is None and self.judge is None:
                    raise SuiteError(
                        f"scenario {scenario.name!r} has a judge but the suite has no "
                        "judge= agent factory"
                    )
            user = scenario.user
            if user is not None and user.agent is None and self.user is None:
                raise SuiteError(
                    f"scenario {scenario.name!r} has a SimulatedUser but the suite has no "
                    "user= agent factory"
                )
        self._check_helpers(scenarios)

    def _check_helpers(self, scenarios: Sequence[Scenario]) -> None:
        # The customers' and judges' factories are built once here, as the bot's is: one
        # that fails would otherwise stop the suite at its first conversation, after the
        # requests of every conversation before it were paid for.
        used: dict[int, tuple[str, Callable[..., Any]]] = {}
        for scenario in scenarios:
            if scenario.user is not None:
                factory = scenario.user.agent or self.user
                if factory is not None:
                    used.setdefault(
                        id(factory), (f"customer of scenario {scenario.name!r}", factory)
                    )
            for check in scenario.checks:
                if isinstance(check, Judge):
                    factory = check.agent or self.judge
                    if factory is not None:
                        used.setdefault(
                            id(factory), (f"judge of scenario {scenario.name!r}", factory)
                        )
        for whose, factory in used.values():
            try:
                helper, _ = build_agent(factory, None)
            except (Exception, SystemExit) as exc:
                raise SuiteError(
                    f"the agent factory of the {whose} failed: {type(exc).__name__}: {exc}"
                ) from exc
            helper.close()

    def factories(self) -> list[Callable[..., Any]]:
        """Every agent factory the suite uses: the bot's, the customers', the judges'."""
        found: list[Callable[..., Any]] = [f for f in (self.agent, self.user, self.judge) if f]
        for scenario in self.scenarios:
            if scenario.user is not None and scenario.user.agent is not None:
                found.append(scenario.user.agent)
            for check in scenario.checks:
                if isinstance(check, Judge) and check.agent is not None:
                    found.append(check.agent)
        return found

    def routable(self) -> bool:
        """Whether every factory takes ``http_client=`` (the Batch API needs it)."""
        return all(takes_http_client(factory) for factory in self.factories())

    def run(
        self,
        k: int = 1,
        concurrency: int = 8,
        *,
        backend: str | Backend = "local",
        progress: Progress | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Report:
        """Run every scenario ``k`` times, ``concurrency`` conversations at once, on
        ``backend`` (``"local"``, ``"ray"``, ``"batch"``, or a backend object such as
        ``BatchBackend(state="nightly.json")``); returns the :class:`Report`.
        ``rate_limit`` (a :class:`RateLimit`) bounds the requests and tokens per minute
        of the local and Ray backends named by a string.

        Raises ``SuiteError`` before any request for a suite that cannot run, and
        ``SuiteStopped`` at once when the provider's quota is used up.
        """
        return asyncio.run(
            self.run_async(
                k, concurrency, backend=backend, progress=progress, rate_limit=rate_limit
            )
        )

    async def run_async(
        self,
        k: int = 1,
        concurrency: int = 8,
        *,
        backend: str | Backend = "local",
        progress: Progress | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Report:
        """The asynchronous :meth:`run`."""
        if not isinstance(k, int) or k < 1:
            raise SuiteError("k, the tries per scenario, must be a positive integer")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise SuiteError("concurrency must be a positive integer")
        self.check()
        chosen = resolve_backend(backend, concurrency, rate_limit)
        chosen.check(self)
        jobs = [Job(s, a) for s in range(len(self.scenarios)) for a in range(k)]
        started = time.perf_counter()
        attempts = await chosen.run(self, jobs, progress or _quiet)
        return Report(
            k=k,
            scenarios=group([s.name for s in self.scenarios], attempts),
            backend=chosen.name,
            seconds=time.perf_counter() - started,
            prices=self._price_table(),
            price_factor=chosen.price_factor,
            model=self._model,
        )

    def _price_table(self) -> Mapping[str, ModelPrice]:
        if self.prices is None:
            return {}
        if isinstance(self.prices, Mapping):
            return self.prices
        return {self._model: self.prices}


def _quiet(finished: int, total: int, attempt: Attempt) -> None:
    return None


def resolve_backend(
    backend: str | Backend, concurrency: int, rate_limit: RateLimit | None = None
) -> Backend:
    """A backend object from its name (with default options) or as given."""
    if not isinstance(backend, str):
        if rate_limit is not None:
            raise SuiteError("give the rate limit to the backend object itself")
        return backend
    if backend == "local":
        from ._local import LocalBackend

        return LocalBackend(concurrency, rate_limit)
    if backend == "ray":
        from ._ray import RayBackend

        return RayBackend(concurrency=concurrency, rate_limit=rate_limit)
    if rate_limit is not None:
        raise SuiteError("the batch backend takes no rate limit: the Batch API queues for you")
    if backend == "batch":
        from ._batch import BatchBackend

        return BatchBackend()
    raise SuiteError(f"unknown backend {backend!r}: use local, ray or batch")
