"""The observer seam: what a run tells whoever watches it (tracing, the CLI's progress).

An :data:`ObserverFactory` is asked once per run, with a :class:`RunInfo`, for a
:class:`RunObserver` (or ``None``: not this run). Factories come from
``Agent(observers=[...])``, from ``Agent(instrument=True)`` (OpenTelemetry, loaded on
first use) and from :func:`add_global_observer` (what ``agentkit.tracing.instrument()`` calls).
With none of them, a run makes no observer and pays one check per step.

The drivers call the observer on the run's own thread or task, never two methods at once;
tool calls run elsewhere, but their start and end are reported from the run. An observer
must not raise: a failing observer would end the run (tracing guards itself).

The client reports retries through :func:`notify_retry`, which reaches the observer of the
run whose request is being retried: the run's events are pulled inside :func:`scoped` /
:func:`scoped_async`, which make that observer current only while the run's code runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, TypeVar, cast

if TYPE_CHECKING:
    from ._calls import PlannedCall
    from ._events import ToolResult
    from ._result import RunResult
    from ._wire import ChatCompletion

# The seam's public part; observer_for, notify_retry and scoped* are the drivers' and the
# client's; provide_instrumentation is the tracing ring's.
__all__ = [
    "ObserverFactory",
    "RunInfo",
    "RunObserver",
    "add_global_observer",
    "remove_global_observer",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run is, as an observer sees it before the first request.

    Attributes:
        agent_name: the agent's ``name``, or ``None``.
        model: the model asked for.
        provider: the provider preset's name (``"dashscope-intl"``, ``"openai"``...).
        base_url: the API root requests go to.
        params: the request parameters sent with every request (``temperature``,
            ``max_tokens``...; no messages, no tools, no API key).
        tools: the names of the tools offered.
        streamed: whether the run streams (``stream``/``stream_async``).
        conversation_id: the session the run belongs to, when there is one.
        caller: for a sub-agent's run (an agent used as a tool, ``Agent.as_tool``): the
            observer of the run whose tool call started it (``None`` for a run at the top,
            or when the caller is not observed). Tracing puts the sub-run's span under
            that call's.
        caller_call_id: the id of that tool call, or ``None``.
    """

    agent_name: str | None
    model: str
    provider: str
    base_url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    tools: Sequence[str] = ()
    streamed: bool = False
    conversation_id: str | None = None
    caller: RunObserver | None = None
    caller_call_id: str | None = None


class RunObserver:
    """Receives one run's events; every method does nothing unless overridden."""

    def model_call_started(self, turn: int, request: Mapping[str, Any]) -> object:
        """A model call is about to be sent (``request``: its keyword arguments). Here and in
        the three methods that :class:`~agentkit.Hooks` stands for (``model_call_finished``,
        ``tool_call_started``, ``tool_call_finished``), a returned awaitable is awaited
        before the run goes on (the sync drivers run it on a fresh event loop)."""

    def model_call_finished(self, turn: int, completion: ChatCompletion) -> object:
        """The model call answered (streamed calls: once the stream is whole)."""

    def stream_fallback(self, turn: int, error: BaseException) -> None:
        """The provider refused tools with ``stream=True``: the round is sent unstreamed."""

    def retrying(self, error: BaseException, delay: float, attempt: int, max_retries: int) -> None:
        """A request failed with ``error`` and is sent again in ``delay`` seconds
        (``attempt`` counts from 1 up to ``max_retries``)."""

    def tool_call_started(self, call: PlannedCall) -> object:
        """A tool call is about to run (after its approval, if it needed one; before a
        side-effect call is written ahead in a session)."""

    def tool_call_finished(self, call: PlannedCall, result: ToolResult) -> object:
        """A tool call ended; also called, without a start, for calls that never ran
        (unknown tool, invalid arguments, a limit, a refused approval)."""

    def approval(self, call: PlannedCall, granted: bool) -> None:
        """A ``requires_approval`` call was decided (by the approver, or by the person
        whose decisions resumed a paused run)."""

    def approval_pending(self, call: PlannedCall) -> None:
        """A ``requires_approval`` call met no approver: the run pauses for it."""

    def before_side_effect(self, call: PlannedCall) -> object:
        """A call to a tool with side effects (``requires_approval``, or
        ``side_effects=True``) is about to start: a session store writes it ahead here.
        In ``run_async``/``stream_async`` a returned awaitable is awaited first."""

    def after_side_effect(self, call: PlannedCall, result: ToolResult) -> object:
        """That call ended (ran, failed or timed out): record ``result`` here. A run
        cancelled mid-call never gets here, so the call stays *in doubt*."""

    def handoff(self, source: str, target: str) -> None:
        """The conversation passed from agent ``source`` to agent ``target`` (by name):
        the model calls after it are ``target``'s."""

    def limit_reached(self, limit: str, error: BaseException) -> None:
        """A run limit ended the run: ``limit`` names it (``"max_turns"``,
        ``"max_tool_calls"``, ``"max_tool_failures"``, ``"max_repeated_calls"``,
        ``"max_output_retries"``, ``"run_timeout"``, ``"max_handoffs"``); ``run_failed``
        follows."""

    def run_finished(self, result: RunResult[Any]) -> None:
        """The run ended with ``result``."""

    def run_failed(self, error: BaseException) -> None:
        """The run ended with ``error`` (a limit, an API error, a cancellation...);
        ``GeneratorExit`` when a streamed run was closed early."""


ObserverFactory: TypeAlias = Callable[[RunInfo], "RunObserver | None"]
"""Makes the observer of one run, or ``None`` to leave the run unobserved."""

_global: list[ObserverFactory] = []
_current: contextvars.ContextVar[RunObserver | None] = contextvars.ContextVar(
    "agentkit_run_observer", default=None
)


_instrumentation: Callable[[], ObserverFactory] | None = None


def provide_instrumentation(provider: Callable[[], ObserverFactory]) -> None:
    """Register how ``Agent(instrument=True)`` gets its observer factory (the tracing ring,
    ``agentkit.tracing``, calls this when it is imported; the core never imports it)."""
    global _instrumentation
    _instrumentation = provider


def instrumentation() -> ObserverFactory:
    """The observer factory of ``Agent(instrument=True)``, from the registered provider.

    With none registered yet, the package's surface loads the tracing ring
    (``agentkit._load_tracing``), which registers itself on import.
    """
    if _instrumentation is None:
        import agentkit

        agentkit._load_tracing()
    if _instrumentation is None:  # a broken install
        from ._errors import ConfigurationError

        raise ConfigurationError("agentkit.tracing did not register its instrumentation")
    return _instrumentation()


def add_global_observer(factory: ObserverFactory) -> None:
    """Observe every agent's runs with ``factory`` (added once, however often called)."""
    if factory not in _global:
        _global.append(factory)


def remove_global_observer(factory: ObserverFactory) -> None:
    """Stop observing every run with ``factory`` (nothing happens if it was not added)."""
    if factory in _global:
        _global.remove(factory)


class _Fanout(RunObserver):
    """Several observers of one run, called in order."""

    def __init__(self, observers: list[RunObserver]) -> None:
        self._observers = observers

    def _in_turn(self, method: str, *args: Any) -> object:
        # Each observer in order, an awaitable one awaited before the next is called (a
        # hook's order holds in run_async too); no coroutine at all when none is async.
        for index, observer in enumerate(self._observers):
            result = getattr(observer, method)(*args)
            if inspect.isawaitable(result):
                return self._rest(result, index + 1, method, args)
        return None

    async def _rest(self, pending: Any, start: int, method: str, args: tuple[Any, ...]) -> None:
        await pending
        for observer in self._observers[start:]:
            result = getattr(observer, method)(*args)
            if inspect.isawaitable(result):
                await result

    def model_call_started(self, turn: int, request: Mapping[str, Any]) -> object:
        return self._in_turn("model_call_started", turn, request)

    def model_call_finished(self, turn: int, completion: ChatCompletion) -> object:
        return self._in_turn("model_call_finished", turn, completion)

    def stream_fallback(self, turn: int, error: BaseException) -> None:
        for observer in self._observers:
            observer.stream_fallback(turn, error)

    def retrying(self, error: BaseException, delay: float, attempt: int, max_retries: int) -> None:
        for observer in self._observers:
            observer.retrying(error, delay, attempt, max_retries)

    def tool_call_started(self, call: PlannedCall) -> object:
        return self._in_turn("tool_call_started", call)

    def tool_call_finished(self, call: PlannedCall, result: ToolResult) -> object:
        return self._in_turn("tool_call_finished", call, result)

    def approval(self, call: PlannedCall, granted: bool) -> None:
        for observer in self._observers:
            observer.approval(call, granted)

    def approval_pending(self, call: PlannedCall) -> None:
        for observer in self._observers:
            observer.approval_pending(call)

    async def _each(self, results: list[object]) -> None:
        for result in results:
            if inspect.isawaitable(result):
                await result

    def before_side_effect(self, call: PlannedCall) -> object:
        results = [observer.before_side_effect(call) for observer in self._observers]
        return self._each(results) if any(inspect.isawaitable(r) for r in results) else None

    def after_side_effect(self, call: PlannedCall, result: ToolResult) -> object:
        results = [observer.after_side_effect(call, result) for observer in self._observers]
        return self._each(results) if any(inspect.isawaitable(r) for r in results) else None

    def handoff(self, source: str, target: str) -> None:
        for observer in self._observers:
            observer.handoff(source, target)

    def limit_reached(self, limit: str, error: BaseException) -> None:
        for observer in self._observers:
            observer.limit_reached(limit, error)

    def run_finished(self, result: RunResult[Any]) -> None:
        for observer in self._observers:
            observer.run_finished(result)

    def run_failed(self, error: BaseException) -> None:
        for observer in self._observers:
            observer.run_failed(error)


def members(observer: RunObserver) -> Sequence[RunObserver]:
    """The observers ``observer`` stands for: itself, or each of a run's several."""
    return observer._observers if isinstance(observer, _Fanout) else (observer,)


def observer_for(
    factories: Sequence[ObserverFactory], info: Callable[[], RunInfo]
) -> RunObserver | None:
    """The observer of a new run: the agent's ``factories`` and the global ones asked in
    turn; ``None`` (and ``info`` never built) when there are none."""
    if not factories and not _global:
        return None
    details = info()
    made = []
    asked: list[ObserverFactory] = []
    for factory in (*_global, *factories):
        if any(factory is seen for seen in asked):
            continue  # instrumented globally and per agent: one set of spans
        asked.append(factory)
        observer = factory(details)
        if observer is not None:
            made.append(observer)
    if not made:
        return None
    return made[0] if len(made) == 1 else _Fanout(made)


def notify_retry(error: BaseException, delay: float, attempt: int, max_retries: int) -> None:
    """Tell the observer of the run being driven, if any, that a request is retried."""
    observer = _current.get()
    if observer is not None:
        observer.retrying(error, delay, attempt, max_retries)


def observing(factories: Sequence[ObserverFactory]) -> bool:
    """Whether a run with these factories may be observed at all (else: no wrapper)."""
    return bool(factories or _global)


def make_current(observer: RunObserver | None) -> None:
    """Make a run's observer, made just now inside :func:`scoped`, current for the rest of
    the step (``scoped`` restores what was current before the step, at its end)."""
    if observer is not None:
        _current.set(observer)


class Observed(Protocol):
    """What :func:`scoped` reads: the run's observer, made once the run has started."""

    observer: RunObserver | None


class _Scope:
    """The run's observer current while the run's code runs (``with scope:``), and what was
    current before it in between: the part of :func:`scoped` both worlds share."""

    __slots__ = ("outer", "run", "token")

    def __init__(self, run: Observed) -> None:
        self.run, self.outer = run, _current.get()

    def __enter__(self) -> None:
        observer = self.run.observer
        self.token = _current.set(self.outer if observer is None else observer)

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self.token)

    def pull(self, events: Generator[_T, None, None]) -> Any:
        """The next of ``events`` (``_END`` after the last), pulled in the scope."""
        with self:
            return next(events, _END)


_END: Final = object()


def scoped(events: Generator[_T, None, None], run: Observed) -> Generator[_T, None, None]:
    """``events``, with the run's observer (``run.observer``) current while each one is
    produced (never across a ``yield``, so nothing leaks into the consumer's code). Until
    the run has made its observer (its session loaded), or when it has none, the observer
    current where the run started stays current: a sub-agent's retries reach its caller's."""
    scope = _Scope(run)
    with contextlib.closing(events):
        while (item := scope.pull(events)) is not _END:
            yield cast(_T, item)


async def scoped_async(events: AsyncGenerator[_T, None], run: Observed) -> AsyncGenerator[_T, None]:
    """The asynchronous :func:`scoped`."""
    scope = _Scope(run)
    async with contextlib.aclosing(events):
        while True:
            with scope:
                item = await anext(events, _END)
            if item is _END:
                return
            yield cast(_T, item)
