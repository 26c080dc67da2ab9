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
from typing import Any, TypeAlias

from ._blocking import off_loop, off_loop_or_undo, off_loop_to_the_end
from ._client import AsyncChatClient, ChatClient
from ._events import AgentEvent, RunFinished, StreamDelta
from ._loop import RunLoop
from ._observe import scoped, scoped_async
from ._result import RunResult
from ._runtime import Runtime
from ._steps import (
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
    events = _drive(runtime, steps, plan)
    return scoped(events, plan) if plan.observed else events


def drive_async(runtime: Runtime, steps: Steps, plan: RunPlan) -> AsyncGenerator[AgentEvent, None]:
    """Perform the run's effects on this event loop (observed as in :func:`drive`)."""
    events = _drive_async(runtime, steps, plan)
    return scoped_async(events, plan) if plan.observed else events


class _Driving:
    """What both drivers keep of a run: its steps, sent each answer (``answer``) or thrown
    each failure (``failure``) as the effects are iterated; its clock, once it has begun."""

    __slots__ = ("answer", "deadline", "failure", "given_up", "plan", "steps", "timeout")

    def __init__(self, steps: Steps, plan: RunPlan) -> None:
        self.steps, self.plan = steps, plan
        self.answer: Any = None
        self.failure: BaseException | None = None
        self.timeout: float | None = None
        self.deadline: float | None = None
        self.given_up: Callable[[], BaseException | None] | None = None

    def __iter__(self) -> _Driving:
        return self

    def __next__(self) -> Effect:
        failure, answer, self.failure, self.answer = self.failure, self.answer, None, None
        return self.steps.send(answer) if failure is None else self.steps.throw(failure)

    def begin(self, loop: RunLoop) -> None:
        """The run's clock starts: its ``run_timeout``, and its deadline (a ``perf_counter``
        value), kept on the loop for the sub-agents its tools run (they end by it too)."""
        self.timeout = timeout = loop.settings.run_timeout
        self.deadline = loop.deadline = None if timeout is None else time.perf_counter() + timeout
        self.given_up = loop.given_up

    def late(self, effect: Effect) -> BaseException | None:
        """What the sync driver raises instead of performing ``effect``: the run is past
        its deadline, or (a sub-run in a tool thread) its caller gave up on it. An event or
        a callback still goes through; the run then ends."""
        if isinstance(effect, Emit | Callback):
            return None
        if self.given_up is not None and (left := self.given_up()) is not None:
            return left
        deadline = self.deadline
        if deadline is not None and time.perf_counter() >= deadline:
            return run_timed_out(self.timeout)
        return None

    def forward(self, post_events: Callable[[], Callable[[Any], None]]) -> None:
        """In a streamed run, a sub-agent's events reach the stream while its call runs."""
        if self.plan.stream:
            assert self.plan.loop is not None  # tools run only once the loop has begun
            self.plan.loop.forward = post_events()

    def close(self) -> list[Callable[[], object]]:
        """Close the steps; the blocking calls they left for the driver."""
        self.steps.close()
        return self.plan.closing


def _drive(runtime: Runtime, steps: Steps, plan: RunPlan) -> Generator[AgentEvent, None, None]:
    run = _Driving(steps, plan)
    client: ChatClient | None = None
    batch: SyncBatch | None = None
    try:
        for effect in run:
            try:
                if (late := run.late(effect)) is not None:
                    raise late
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, Callback):
                    run.answer = _settle_sync(effect.fn(*effect.args))
                elif isinstance(effect, CallModel):
                    assert client is not None
                    run.answer = yield from _call_model(client, effect, run)
                elif isinstance(effect, StartCalls):
                    if batch is not None:
                        batch.close()
                    batch = SyncBatch(runtime.tool_threads(), effect.calls, effect.late)
                    run.forward(batch.post_events)
                    batch.start()
                elif isinstance(effect, Begin):
                    run.begin(effect.loop)
                    client = runtime.client()
                elif isinstance(effect, ListTools):  # the run's agent's, or a handoff target's
                    run.answer = (effect.runtime or runtime).source_tools()
                else:
                    assert batch is not None
                    run.answer = batch.next(run.deadline, run.timeout)
            except GeneratorExit:
                raise
            except BaseException as exc:  # thrown into the run, which decides
                run.failure = exc
    finally:
        if batch is not None:
            batch.close()
        for closing in run.close():
            with contextlib.suppress(Exception):  # the caller left; nobody to tell
                closing()


async def _drive_async(
    runtime: Runtime, steps: Steps, plan: RunPlan
) -> AsyncGenerator[AgentEvent, None]:
    run = _Driving(steps, plan)
    client: AsyncChatClient | None = None
    batch: AsyncBatch | None = None
    try:
        for effect in run:
            try:
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, Callback):
                    run.answer = await _callback(effect)
                elif isinstance(effect, StartCalls):
                    if batch is not None:
                        await batch.close()
                    threads, limit = runtime.tool_threads, runtime.parallel_limit
                    batch = AsyncBatch(threads, effect.calls, limit, effect.late)
                    run.forward(batch.post_events)
                    batch.start()
                elif isinstance(effect, CallModel) and effect.stream:
                    assert client is not None
                    async with client.stream(**effect.request) as chat_stream:
                        while (delta := await _next(chat_stream, run)) is not None:
                            effect.yielded = True
                            if effect.emit:
                                yield delta
                        run.answer = chat_stream.completion
                elif isinstance(effect, Begin):
                    run.begin(effect.loop)
                    client = await runtime.client_async()
                elif isinstance(effect, ListTools):
                    run.answer = await (effect.runtime or runtime).source_tools_async()
                elif run.deadline is None:
                    run.answer = await _await_effect(client, effect, batch)
                else:
                    async with _run_deadline(run.deadline, run.timeout):
                        run.answer = await _await_effect(client, effect, batch)
            except GeneratorExit:
                raise
            except BaseException as exc:  # thrown into the run, which decides
                run.failure = exc
    finally:
        if batch is not None:
            await batch.close()
        for closing in run.close():
            with contextlib.suppress(Exception):  # the caller left; nobody to tell
                await off_loop_to_the_end(closing)


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


def _call_model(
    client: ChatClient, effect: CallModel, run: _Driving
) -> Generator[StreamDelta, None, ChatCompletion]:
    """Perform a model call in the sync driver, yielding the deltas the caller sees."""
    if not effect.stream:
        return client.create(**effect.request)
    with client.stream(**effect.request) as chat_stream:
        for delta in chat_stream:
            effect.yielded = True
            if effect.emit:
                yield delta
            if (late := run.late(effect)) is not None:
                raise late
        return chat_stream.completion


async def _callback(effect: Callback) -> Any:
    """A callback in the async driver: a store's call in a thread, user code awaited."""
    if effect.undo is not None:
        return await off_loop_or_undo(effect.fn, effect.args, effect.undo)
    if effect.through:
        return await off_loop_to_the_end(effect.fn, *effect.args)
    if effect.blocking:
        return await off_loop(effect.fn, *effect.args)
    return await _settle(effect.fn(*effect.args))


async def _await_effect(
    client: AsyncChatClient | None, effect: Effect, batch: AsyncBatch | None
) -> Any:
    """A plain model call or the next tool outcome, in the async driver."""
    if isinstance(effect, CallModel):
        assert client is not None
        return await client.create(**effect.request)
    assert batch is not None
    return await batch.next()


async def _next(chat_stream: AsyncIterator[StreamDelta], run: _Driving) -> StreamDelta | None:
    """The stream's next delta (``None`` at its end), within the run's deadline."""
    try:
        if run.deadline is None:
            return await anext(chat_stream)
        async with _run_deadline(run.deadline, run.timeout):
            return await anext(chat_stream)
    except StopAsyncIteration:
        return None


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
