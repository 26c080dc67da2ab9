"""The two drivers: they perform the effects of the one run (see :mod:`agentkit._steps`).

:func:`drive` performs them on the caller's thread (``run``, ``stream``), :func:`drive_async`
on its event loop (``run_async``, ``stream_async``): call the client, call user code (and
await it), hand an event to the caller, start tool calls, wait for the next outcome, within
the run's deadline. Neither takes a decision of the run. :func:`consume` and
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
    Coroutine,
    Generator,
)
from typing import Any

from ._blocking import off_loop, off_loop_to_the_end
from ._calls import PlannedCall
from ._client import AsyncChatClient, ChatClient
from ._events import AgentEvent, RunFinished, StreamDelta
from ._loop import RunLoop
from ._result import RunResult
from ._runtime import Runtime
from ._steps import (
    Approver,
    Callback,
    CallModel,
    Effect,
    Emit,
    RunPlan,
    StartCalls,
    run_steps,
)
from ._threads import AsyncBatch, SyncBatch, run_timed_out
from ._wire import ChatCompletion

__all__ = ["consume", "consume_async", "drive", "drive_async"]


def _plan(runtime: Runtime, loop: RunLoop, stream: bool, approve: Approver | None) -> RunPlan:
    # Made when the run starts, after its observer was made (see _observe.scoped).
    return RunPlan(stream, approve, loop.observer, runtime.forget_stream)


def drive(
    runtime: Runtime,
    loop: RunLoop,
    *,
    stream: bool,
    approve: Approver | None,
    first: list[PlannedCall] | None = None,
) -> Generator[AgentEvent, None, None]:
    """Perform the run's effects on this thread; ``first`` is a resumed round."""
    plan = _plan(runtime, loop, stream, approve)
    steps = run_steps(loop, plan, first)
    timeout, deadline = _deadline(loop)
    batch: SyncBatch | None = None
    answer: Any = None
    failure: BaseException | None = None
    try:
        client = runtime.client()
        while True:
            try:
                effect = steps.send(answer) if failure is None else steps.throw(failure)
            except StopIteration:
                return
            answer = failure = None
            try:
                late = deadline is not None and time.perf_counter() >= deadline
                if late and not isinstance(effect, Emit | Callback):
                    raise run_timed_out(timeout)
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, Callback):
                    answer = _settle_sync(effect.fn(*effect.args))
                elif isinstance(effect, CallModel):
                    answer = yield from _call_model(client, effect, deadline, timeout)
                elif isinstance(effect, StartCalls):
                    if batch is not None:
                        batch.close()
                    batch = SyncBatch(runtime.tool_threads(), effect.calls, effect.late)
                    if stream:  # a sub-agent's events reach this stream while it runs
                        loop.forward = batch.post
                    batch.start()
                else:
                    assert batch is not None
                    answer = batch.next(deadline, timeout)
            except GeneratorExit:
                raise
            except BaseException as exc:  # thrown into the run, which decides
                failure = exc
    finally:
        if batch is not None:
            batch.close()
        steps.close()
        for closing in plan.closing:
            with contextlib.suppress(Exception):  # the caller left; nobody to tell
                closing()


async def drive_async(
    runtime: Runtime,
    loop: RunLoop,
    *,
    stream: bool,
    approve: Approver | None,
    first: list[PlannedCall] | None = None,
) -> AsyncGenerator[AgentEvent, None]:
    """Perform the run's effects on this event loop; ``first`` is a resumed round."""
    plan = _plan(runtime, loop, stream, approve)
    steps = run_steps(loop, plan, first)
    timeout, deadline = _deadline(loop)
    batch: AsyncBatch | None = None
    answer: Any = None
    failure: BaseException | None = None
    try:
        client = await runtime.client_async()
        while True:
            try:
                effect = steps.send(answer) if failure is None else steps.throw(failure)
            except StopIteration:
                return
            answer = failure = None
            try:
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, Callback):
                    if effect.blocking:
                        answer = await off_loop(effect.fn, *effect.args)
                    else:
                        answer = await _settle(effect.fn(*effect.args))
                elif isinstance(effect, StartCalls):
                    if batch is not None:
                        await batch.close()
                    batch = AsyncBatch(
                        runtime.tool_threads, effect.calls, runtime.parallel_limit, effect.late
                    )
                    if stream:  # a sub-agent's events reach this stream while it runs
                        loop.forward = batch.post_events()
                    batch.start()
                elif isinstance(effect, CallModel) and effect.stream:
                    async with client.stream(**effect.request) as chat_stream:
                        while (delta := await _next(chat_stream, deadline, timeout)) is not None:
                            effect.yielded = True
                            if effect.emit:
                                yield delta
                        answer = chat_stream.completion
                elif deadline is None:
                    answer = await _await_effect(client, effect, batch)
                else:
                    async with _run_deadline(deadline, timeout):
                        answer = await _await_effect(client, effect, batch)
            except GeneratorExit:
                raise
            except BaseException as exc:  # thrown into the run, which decides
                failure = exc
    finally:
        if batch is not None:
            await batch.close()
        steps.close()
        for closing in plan.closing:
            with contextlib.suppress(Exception):  # the caller left; nobody to tell
                await off_loop_to_the_end(closing)


def consume(
    events: Generator[AgentEvent, None, None], loop: RunLoop | None = None
) -> RunResult[Any]:
    """Run ``events`` to the end and return the result of their ``RunFinished``."""
    result: RunResult[Any] | None = None
    try:
        for event in events:
            if isinstance(event, RunFinished):
                result = event.result
    except BaseException as exc:  # e.g. Ctrl-C between two events
        events.close()
        if loop is not None:
            loop.fail(exc)
        raise
    assert result is not None
    return result


async def consume_async(
    events: AsyncGenerator[AgentEvent, None], loop: RunLoop | None = None
) -> RunResult[Any]:
    """The asynchronous :func:`consume`."""
    result: RunResult[Any] | None = None
    try:
        async with contextlib.aclosing(events) as running:
            async for event in running:
                if isinstance(event, RunFinished):
                    result = event.result
    except BaseException as exc:
        if loop is not None:
            loop.fail(exc)
        raise
    assert result is not None
    return result


# --- helpers --------------------------------------------------------------------------------


def _call_model(
    client: ChatClient, effect: CallModel, deadline: float | None, timeout: float | None
) -> Generator[StreamDelta, None, ChatCompletion]:
    """Perform a model call in the sync driver, yielding the deltas the caller sees."""
    if not effect.stream:
        return client.create(**effect.request)
    with client.stream(**effect.request) as chat_stream:
        for delta in chat_stream:
            effect.yielded = True
            if effect.emit:
                yield delta
            if deadline is not None and time.perf_counter() >= deadline:
                raise run_timed_out(timeout)
        return chat_stream.completion


async def _await_effect(client: AsyncChatClient, effect: Effect, batch: AsyncBatch | None) -> Any:
    """A plain model call or the next tool outcome, in the async driver."""
    if isinstance(effect, CallModel):
        return await client.create(**effect.request)
    assert batch is not None
    return await batch.next()


async def _next(
    chat_stream: AsyncIterator[StreamDelta], deadline: float | None, timeout: float | None
) -> StreamDelta | None:
    """The stream's next delta (``None`` at its end), within the run's deadline."""
    try:
        if deadline is None:
            return await anext(chat_stream)
        async with _run_deadline(deadline, timeout):
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


def _deadline(loop: RunLoop) -> tuple[float | None, float | None]:
    """The run's ``run_timeout`` and its deadline (a ``perf_counter`` value), kept on the
    loop for the sub-agents its tools run (they end by it too)."""
    timeout = loop.settings.run_timeout
    loop.deadline = None if timeout is None else time.perf_counter() + timeout
    return timeout, loop.deadline


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
