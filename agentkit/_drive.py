"""The two drivers: they perform the effects of the one run (see :mod:`agentkit._steps`).

:func:`drive` performs them on the caller's thread (``run``, ``stream``), :func:`drive_async`
on its event loop (``run_async``, ``stream_async``): ask the tool sources, call a store (in
a thread, from async code), call the client, call user code (and await it), hand an event
to the caller, start tool calls, wait for the next outcome, within the run's deadline.
Neither takes a decision of the run, nor of its start: the agent hands them the run as one
generator of effects, from the session's claim to its release. :func:`consume` and
:func:`consume_async` turn a run's events into its result.

Cancellation: cancelling a task running ``run_async`` (``task.cancel()``, a timeout) stops
the run at its next await, cancels the tool tasks in flight, closes the response stream and
re-raises ``asyncio.CancelledError`` unchanged (so ``asyncio.timeout``, ``TaskGroup`` and
friends keep working); the exception carries ``.messages``, a resendable transcript. Ctrl-C
during ``run`` does the same with ``KeyboardInterrupt``. A sync tool already running in a
thread cannot be stopped: it finishes in the background and its result is dropped. Every
other exception that escapes a run carries ``.messages`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
)
from contextvars import Token
from functools import partial
from typing import Any, ClassVar, Self, TypeAlias

from ._blocking import off_loop, off_loop_or_undo, off_loop_to_the_end
from ._client import AsyncChatClient, AsyncChatStream, ChatClient
from ._errors import DeadlineExceededError
from ._events import AgentEvent, RunFinished, StreamDelta
from ._loop import RunLoop
from ._observe import scoped, scoped_async
from ._outcome import Outcome
from ._protocol import RUN_ENDS
from ._result import RunResult
from ._runtime import Runtime
from ._steps import (
    NEXT_OUTCOME,
    Begin,
    Callback,
    CallModel,
    Effect,
    Emit,
    ListTools,
    RunPlan,
    StartCalls,
)
from ._threads import AsyncBatch, SyncBatch, run_timed_out
from ._wire import ChatCompletion

__all__ = ["Steps", "consume", "consume_async", "drive", "drive_async"]


Steps: TypeAlias = Generator[Effect, Any, RunResult[Any]]
"""A run as effects, from its start (see :mod:`agentkit._steps`)."""


def drive(runtime: Runtime, steps: Steps, plan: RunPlan) -> Generator[AgentEvent, None, None]:
    """Perform the run's effects on this thread; in an observed run (``plan.observed``),
    its observer is current while each event is produced (see :func:`~agentkit._observe.scoped`)."""
    events = _drive(_Run(runtime, steps, plan))
    return scoped(events, plan) if plan.observed else events


def drive_async(runtime: Runtime, steps: Steps, plan: RunPlan) -> AsyncGenerator[AgentEvent, None]:
    """Perform the run's effects on this event loop (observed as in :func:`drive`)."""
    events = _drive_async(_AsyncRun(runtime, steps, plan))
    return scoped_async(events, plan) if plan.observed else events


# The two drivers: what each keeps is what a sync and an async generator cannot share,
# handing an event (or a streamed round's delta) to the caller, and blocking or awaiting.
# A failure, whether performing an effect or thrown in by the caller at a yield, goes
# back to the run, which decides (`run.outcome`); leaving, the run is closed (`with run`).


def _drive(run: _Run) -> Generator[AgentEvent, None, None]:
    with run:
        for effect in run:
            with run.outcome:
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, CallModel) and effect.stream:
                    run.answer = yield from run.stream_model(effect)
                else:
                    run.answer = run.perform(effect)


async def _drive_async(run: _AsyncRun) -> AsyncGenerator[AgentEvent, None]:
    async with run:
        for effect in run:
            with run.outcome:
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, CallModel) and effect.stream:
                    # Inline, not an async generator of its own: one more per delta costs,
                    # and a consumer that leaves here must close the response at once.
                    async with run.client.stream(**effect.request) as chat_stream:
                        while (delta := await run.next_delta(effect, chat_stream)) is not None:
                            if effect.emit:
                                yield delta
                else:
                    run.answer = await run.perform(effect)


# Which method of a driver's run performs each kind of effect (an event, and a streamed
# model call, which hand deltas to the caller, are the drivers' own).
_PERFORMERS: dict[type[Any], str] = {
    Callback: "callback",
    CallModel: "call_model",
    StartCalls: "start_calls",
    type(NEXT_OUTCOME): "next_outcome",
    Begin: "begin",
    ListTools: "list_tools",
}


class _Driving:
    """What both drivers keep of a run: its steps, sent each answer (``answer``) or thrown
    each failure (which ``outcome`` caught) as the effects are iterated; its clock, once
    it has begun; its client and its round's tool calls. Each driver's subclass performs
    the effects with the primitive of its world (blocking, or awaiting): :meth:`perform`
    picks the method, written once for both; each is a context manager that closes the
    run (:meth:`_Run.close`, :meth:`_AsyncRun.close`)."""

    __slots__ = (
        "answer",
        "batch",
        "client",
        "deadline",
        "given_up",
        "outcome",
        "plan",
        "runtime",
        "steps",
        "timeout",
    )
    _performers: ClassVar[dict[type[Any], Callable[[Any, Any], Any]]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._performers = {kind: getattr(cls, name) for kind, name in _PERFORMERS.items()}

    def __init__(self, runtime: Runtime, steps: Steps, plan: RunPlan) -> None:
        self.runtime, self.steps, self.plan = runtime, steps, plan
        self.answer: Any = None
        self.outcome = Outcome()
        self.batch: SyncBatch | AsyncBatch | None = None
        self.timeout: float | None = None
        self.deadline: float | None = None
        self.given_up: Callable[[], BaseException | None] | None = None

    def __iter__(self) -> _Driving:
        return self

    def __next__(self) -> Effect:
        answer, self.answer = self.answer, None
        return self.outcome.resume(self.steps, answer)

    def perform(self, effect: Effect) -> Any:
        """Perform ``effect`` (the async driver awaits what this returns)."""
        return self._performers[type(effect)](self, effect)

    def clock(self, loop: RunLoop) -> None:
        """The run's clock starts: its ``run_timeout``, and its deadline (a ``perf_counter``
        value), kept on the loop for the sub-agents its tools run (they end by it too)."""
        self.timeout = timeout = loop.settings.run_timeout
        self.deadline = loop.deadline = None if timeout is None else time.perf_counter() + timeout
        self.given_up = loop.given_up

    def started(self, batch: SyncBatch | AsyncBatch) -> None:
        """Start a round's calls; in a streamed run, a sub-agent's events reach the stream
        while its call runs."""
        self.batch = batch
        if self.plan.stream:
            assert self.plan.loop is not None  # tools run only once the loop has begun
            self.plan.loop.forward = batch.post_events()
        batch.start()

    def closing(self) -> list[Callable[[], None]]:
        """Close the steps; the blocking calls they left for the driver, each quiet (the
        caller left: nobody to tell of a failure)."""
        self.steps.close()
        return [partial(_quietly, closing) for closing in self.plan.closing]


class _Run(_Driving):
    """A run driven on the caller's thread: each effect blocks, and is refused past the
    run's deadline (an event or a callback still goes through; the run then ends)."""

    __slots__ = ()
    client: ChatClient
    batch: SyncBatch | None

    def check(self) -> None:
        """Raise instead of performing an effect when the run is past its deadline, or (a
        sub-run in a tool thread) its caller gave up on it."""
        if self.given_up is not None and (left := self.given_up()) is not None:
            raise left
        deadline = self.deadline
        if deadline is not None and time.perf_counter() >= deadline:
            raise run_timed_out(self.timeout)

    def callback(self, effect: Callback) -> Any:
        return _settle_sync(effect.fn(*effect.args))

    # A thread cannot be cancelled: the run's deadline bounds a model request itself (its
    # timeouts, read on this thread while the request is made), so a hung model ends the
    # run at its run_timeout (and a sub-agent's request by its call's deadline), not after
    # the client's 600 s read timeout.

    def call_model(self, effect: CallModel) -> ChatCompletion:
        self.check()
        ends = self._bounded()
        try:
            return self.client.create(**effect.request)
        except DeadlineExceededError:
            self._ran_out()
            raise
        finally:
            if ends is not None:
                RUN_ENDS.reset(ends)

    def stream_model(self, effect: CallModel) -> Generator[StreamDelta, None, ChatCompletion]:
        """A streamed model call, yielding the deltas the caller sees."""
        self.check()
        ends = self._bounded()
        try:
            chat_stream = self.client.stream(**effect.request)  # reads the run's end
        finally:
            if ends is not None:
                RUN_ENDS.reset(ends)
        try:
            with chat_stream:
                for delta in chat_stream:
                    effect.yielded = True
                    if effect.emit:
                        yield delta
                    self.check()
                return chat_stream.completion
        except DeadlineExceededError:
            self._ran_out()
            raise

    def _bounded(self) -> Token[float | None] | None:
        """Set the run's end (on the client's monotonic clock) for the request made now."""
        deadline = self.deadline
        if deadline is None:
            return None
        return RUN_ENDS.set(time.monotonic() + (deadline - time.perf_counter()))

    def _ran_out(self) -> None:
        """A request's deadline passed: the run's own (the two clocks may differ by a
        tick) is a RunTimeoutError."""
        deadline = self.deadline
        if deadline is not None and time.perf_counter() >= deadline - 0.05:
            raise run_timed_out(self.timeout) from None

    def start_calls(self, effect: StartCalls) -> None:
        self.check()
        if self.batch is not None:
            self.batch.close()
        self.started(SyncBatch(self.runtime.tool_threads(), effect.calls, effect.late))

    def next_outcome(self, effect: object) -> Any:
        self.check()
        assert self.batch is not None
        return self.batch.next(self.deadline, self.timeout)

    def begin(self, effect: Begin) -> None:
        self.clock(effect.loop)
        self.client = self.runtime.client()

    def list_tools(self, effect: ListTools) -> Any:  # the run's agent's, or a handoff target's
        self.check()
        return (effect.runtime or self.runtime).source_tools()

    def close(self) -> None:
        """The calls still running are given up, then the steps closed."""
        if self.batch is not None:
            self.batch.close()
        for closing in self.closing():
            closing()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AsyncRun(_Driving):
    """A run driven on an event loop: each effect awaited, a store's call in a thread,
    a model call and the wait for a tool bounded by the run's deadline."""

    __slots__ = ()
    client: AsyncChatClient
    batch: AsyncBatch | None

    async def callback(self, effect: Callback) -> Any:
        if effect.undo is not None:
            return await off_loop_or_undo(effect.fn, effect.args, effect.undo)
        if effect.through:
            return await off_loop_to_the_end(effect.fn, *effect.args)
        if effect.blocking:
            return await off_loop(effect.fn, *effect.args)
        return await _settle(effect.fn(*effect.args))

    async def call_model(self, effect: CallModel) -> ChatCompletion:
        if self.deadline is None:
            return await self.client.create(**effect.request)
        async with _run_deadline(self.deadline, self.timeout):
            return await self.client.create(**effect.request)

    async def next_delta(
        self, effect: CallModel, chat_stream: AsyncChatStream
    ) -> StreamDelta | None:
        """The stream's next delta, within the run's deadline; at its end, ``None``, and
        the completion is the answer."""
        try:
            if self.deadline is None:
                delta = await anext(chat_stream)
            else:
                async with _run_deadline(self.deadline, self.timeout):
                    delta = await anext(chat_stream)
        except StopAsyncIteration:
            self.answer = chat_stream.completion
            return None
        effect.yielded = True
        return delta

    async def start_calls(self, effect: StartCalls) -> None:
        if self.batch is not None:
            await self.batch.close()
        threads, limit = self.runtime.tool_threads, self.runtime.parallel_limit
        self.started(AsyncBatch(threads, effect.calls, limit, effect.late))

    async def next_outcome(self, effect: object) -> Any:
        assert self.batch is not None
        if self.deadline is None:
            return await self.batch.next()
        async with _run_deadline(self.deadline, self.timeout):
            return await self.batch.next()

    async def begin(self, effect: Begin) -> None:
        self.clock(effect.loop)
        self.client = await self.runtime.client_async()

    async def list_tools(self, effect: ListTools) -> Any:
        return await (effect.runtime or self.runtime).source_tools_async()

    async def close(self) -> None:
        """The calls still running are cancelled, the steps closed, and the blocking
        calls they left run in a thread."""
        if self.batch is not None:
            await self.batch.close()
        for closing in self.closing():
            with contextlib.suppress(RuntimeError):  # no thread left: the loop is closing
                await off_loop_to_the_end(closing)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def consume(
    events: Generator[AgentEvent, None, None], plan: RunPlan | None = None
) -> RunResult[Any]:
    """Run ``events`` to the end and return the result of their ``RunFinished``; an
    interrupt between two events is put on the run's loop (``plan.loop``)."""
    result: RunResult[Any] | None = None
    try:
        for event in events:
            if isinstance(event, RunFinished):
                result = event.result
    except BaseException as exc:  # e.g. Ctrl-C between two events
        events.close()
        if plan is not None and plan.loop is not None:
            plan.loop.fail(exc)
        raise
    assert result is not None
    return result


async def consume_async(
    events: AsyncGenerator[AgentEvent, None], plan: RunPlan | None = None
) -> RunResult[Any]:
    """The asynchronous :func:`consume`."""
    result: RunResult[Any] | None = None
    try:
        async with contextlib.aclosing(events) as running:
            async for event in running:
                if isinstance(event, RunFinished):
                    result = event.result
    except BaseException as exc:
        if plan is not None and plan.loop is not None:
            plan.loop.fail(exc)
        raise
    assert result is not None
    return result


# --- helpers --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _run_deadline(deadline: float, timeout: float | None) -> AsyncIterator[None]:
    """Bound an await by the run's deadline (a ``perf_counter`` value)."""
    running = asyncio.get_running_loop()
    scope = asyncio.timeout_at(running.time() + (deadline - time.perf_counter()))
    try:
        async with scope:
            yield
    except TimeoutError:
        if scope.expired():
            raise run_timed_out(timeout) from None
        raise


def _quietly(fn: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        fn()


async def _settle(value: Any) -> Any:
    """A hook's or approver's result, awaited if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


def _settle_sync(value: Any) -> Any:
    """The same in the sync driver: an awaitable runs to completion on a fresh loop."""
    if inspect.isawaitable(value):
        return asyncio.run(_as_coroutine(value))
    return value


def _as_coroutine(value: Awaitable[Any]) -> Coroutine[Any, Any, Any]:
    async def wait() -> Any:
        return await value

    return wait()
