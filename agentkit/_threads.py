"""Running tool calls: the agent's threads for sync tools, tasks for async ones, timeouts.

A sync call goes to :class:`ToolThreads` (kept threads, one queue put each way); an async
call runs as a task in ``run_async`` or on its own event loop in a tool thread in ``run``.
:class:`SyncBatch` and :class:`AsyncBatch` are how the two drivers run one round's calls
and hand back each outcome as it ends. Every call's clock starts when it is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, TypeAlias

from ._calls import PlannedCall, ToolOutcome
from ._errors import RunTimeoutError, ToolThreadsExhaustedError

__all__ = ["AsyncBatch", "SyncBatch", "ToolThreads", "ToolTimedOut", "run_timed_out", "this_call"]

_MAX_WAIT = 0.5  # seconds; the sync driver wakes at least this often (Ctrl-C everywhere)
_ASYNC_GRACE = 0.5  # seconds an async tool's own loop has to cancel it (see _limit)

_Ending: TypeAlias = "ToolOutcome | BaseException"
"""How a call in a tool thread ended: its outcome, or what it raised past ``Exception``
(``SystemExit`` in a tool), re-raised on the caller's side."""

Late: TypeAlias = Callable[[ToolOutcome], None]
"""Told, in the tool thread, how a call ended that its run no longer waited for (the run
was cancelled or timed out while the call's thread ran): a side-effect call's late result
is recorded this way. It must not raise."""


class ToolTimedOut(Exception):
    """The tool ran past its timeout (told apart from a TimeoutError the tool raised); an
    agent tool whose sub-run ended by its call's deadline raises it too."""


class _Job:
    """One call handed to a tool thread: it runs in a copy of the caller's context, and how
    it ended goes to ``report`` (from the tool thread) as ``(job, ending)``.

    ``deadline`` (a ``time.perf_counter()`` value, or ``None``) is fixed when the call is
    queued: a call that waits for a thread uses up its time while it waits, so no round
    outlives its calls' timeouts whatever holds the threads.
    """

    __slots__ = (
        "_claim",
        "call",
        "context",
        "deadline",
        "dropped",
        "ending",
        "finished",
        "late",
        "report",
        "stuck",
    )

    def __init__(
        self,
        call: PlannedCall,
        report: Callable[[tuple[_Job, _Ending]], object],
        now: float,
    ) -> None:
        self.call = call
        self.report = report
        self.context = contextvars.copy_context()
        limit = _limit(call)
        self.deadline = None if limit is None else now + limit
        self.finished = False  # set by the tool thread, under the pool's lock
        self.stuck = False  # counted in the pool's stuck threads (the run gave up on it)
        self.dropped = False  # taken back before any thread started it
        self.ending: _Ending | None = None  # how the call ended, once it has
        self.late: Late | None = None  # told how a call the run gave up on ended
        self._claim = threading.Lock()

    def claim(self) -> bool:
        """True for the first taker only: a tool thread about to run the call, or a run
        giving up on it (a call dropped before it started never starts)."""
        return self._claim.acquire(blocking=False)

    def drop(self) -> bool:
        """Take the call back before a thread starts it; whether it was (still) ours."""
        if self.claim():
            self.dropped = True
        return self.dropped

    def run(self) -> None:
        """In a tool thread: run the call unless it was dropped, then report how it ended."""
        if self.claim():
            self.ending = self.context.run(_work, self.call, self)
            self.report((self, self.ending))


def _work(call: PlannedCall, job: _Job | None = None) -> _Ending:
    """Run one call in a tool thread; the return value is rendered here, inside the call's
    time budget and off the caller's thread."""
    start = time.perf_counter()
    try:
        if not call.is_async:
            value = call.invoke()
        elif (blocking := _blocking_form(call)) is not None:  # an agent used as a tool
            _in_tool_thread.job = job  # what this_call() reads: the call's deadline, if abandoned
            try:
                value = blocking(call.kwargs, call.context)
            finally:
                _in_tool_thread.job = None
        else:
            # An async tool in the sync driver runs on its own event loop in this thread.
            value = asyncio.run(_with_timeout(call.invoke(), call.timeout))
        return ToolOutcome.ok(call, value, time.perf_counter() - start)
    except ToolTimedOut:
        return ToolOutcome.timed_out(call, call.timeout or 0.0)
    except (Exception, asyncio.CancelledError) as exc:
        # Nothing cancels a run from inside a tool thread: a CancelledError here is the
        # tool's own (an inner await someone cancelled), a failure the model is told about.
        return ToolOutcome.failed(call, exc, time.perf_counter() - start)
    except BaseException as exc:  # SystemExit in a tool: the caller's side re-raises it
        return exc


def _blocking_form(call: PlannedCall) -> Callable[[Any, Any], Any] | None:
    """An async tool's blocking form (``Tool._in_thread``), which the sync driver calls in
    its tool thread instead of running the coroutine on an event loop of its own there."""
    return None if call.tool is None else call.tool._in_thread


_NOT_LENT: contextlib.AbstractContextManager[None] = contextlib.nullcontext()

_in_tool_thread = threading.local()
"""``.pool``: the :class:`ToolThreads` whose thread this is (unset elsewhere); ``.job``:
the call whose blocking form it runs (unset or ``None`` otherwise)."""


def this_call() -> tuple[float | None, Callable[[], bool]] | None:
    """In a tool thread running a call: the call's deadline (a ``time.perf_counter()``
    value, or ``None``) and a check of whether its run gave up on it (timed out, or the
    run ended); ``None`` elsewhere. A blocking form that runs a long job (a sub-agent's
    run) ends by the deadline and stops early once the run gave up."""
    job: _Job | None = getattr(_in_tool_thread, "job", None)
    if job is None:
        return None
    return job.deadline, lambda: job.stuck


class ToolThreads:
    """The threads that run one agent's sync tool calls, started as calls need them.

    At most ``size`` threads run calls some run still waits for. A call the run gave up
    on (timed out, or its run was cancelled) cannot be stopped: its thread is *stuck*
    until the call returns, and no longer counts against ``size``, so a new thread takes
    its place and later runs are never starved. Stuck threads are bounded too: the pool
    never holds more than ``2 * size`` threads, and a call that would need one more raises
    :class:`~agentkit.ToolThreadsExhaustedError` instead of waiting for ever. A tool thread that
    waits on a nested run of the same agent (a tool calling its own agent) lends its slot
    the same way while it waits.

    A call reaches an idle thread through one queue put and comes back through one
    ``report``: no ``Future`` and no executor bookkeeping on the way (see
    docs/decisions.md). Daemon threads, so a stuck call does not keep the program alive.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._count = 0
        self._idle = 0  # threads free for the next call, less those it was promised to
        self._stuck = 0  # threads in calls nobody waits for (or lent to a nested run)
        self._closed = False

    def submit(self, job: _Job) -> None:
        """Hand ``job`` to a free thread, a new one, or (``size`` calls running) the first
        to free; raises ``ToolThreadsExhaustedError`` at the leak bound."""
        with self._lock:
            if self._closed:
                if job.drop():
                    job.report((job, ToolOutcome.cancelled(job.call)))
                return
            if self._idle:
                self._idle -= 1
            elif self._count - self._stuck < self._size:
                if self._count >= 2 * self._size:
                    job.drop()
                    raise ToolThreadsExhaustedError(
                        f"no thread for tool {job.call.name}: {self._stuck} of this agent's "
                        f"{self._count} tool threads are stuck in calls that timed out or "
                        "were cancelled and have not returned (the bound is twice "
                        f"parallel_tool_calls_limit={self._size}); give the blocking "
                        "tools a timeout of their own"
                    )
                name = f"agentkit-tool_{self._count}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
                self._count += 1
            # Under the lock: a call is never queued behind close()'s stop signals.
            self._jobs.put(job)

    def abandon(self, job: _Job, late: Late | None = None) -> ToolOutcome | None:
        """The run no longer waits for ``job``: a queued call never starts, a running
        one's thread counts as stuck until the call returns, and then tells ``late`` how
        it ended. Returns the outcome of a call that had already ended (its report
        unread): the caller hands it on itself."""
        if job.drop():
            return None
        with self._lock:
            if not job.finished:
                if not job.stuck:
                    job.stuck = True
                    self._stuck += 1
                job.late = late
                return None
        return job.ending if isinstance(job.ending, ToolOutcome) else None

    def lent(self) -> contextlib.AbstractContextManager[None]:
        """Around a wait for tool calls: if this is one of the pool's own threads (a tool
        running a nested run of its agent), its slot is free for the nested calls."""
        if getattr(_in_tool_thread, "pool", None) is not self:
            return _NOT_LENT  # the common case, with no generator to make and run
        lending: contextlib.AbstractContextManager[None] = self._lending()
        return lending

    @contextlib.contextmanager
    def _lending(self) -> Generator[None, None, None]:
        with self._lock:
            self._stuck += 1
        try:
            yield
        finally:
            with self._lock:
                self._stuck -= 1

    def close(self) -> None:
        """End the threads: idle ones now, busy ones when their call returns (it cannot be
        interrupted); a call still queued is reported cancelled and never starts."""
        with self._lock:
            self._closed = True
            count = self._count
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.claim():
                job.dropped = True
                job.report((job, ToolOutcome.cancelled(job.call)))
        for _ in range(count):
            self._jobs.put(None)

    def _serve(self) -> None:
        _in_tool_thread.pool = self
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            job.run()
            with self._lock:
                job.finished = True
                late = job.late if job.stuck else None
                if job.stuck:
                    self._stuck -= 1
                # More than one thread is never counted idle per thread.
                self._idle = min(self._idle + 1, self._count)
            if late is not None and isinstance(job.ending, ToolOutcome):
                tell_late(late, job.ending)
            job = late = None  # hold no finished call (and its result) while idle


def tell_late(late: Late, outcome: ToolOutcome) -> None:
    """Hand ``late`` the outcome; what it raises (a store that is down) is dropped: the
    call stays in doubt, which is what the store already says."""
    with contextlib.suppress(Exception):
        late(outcome)


def _tell_late_off_loop(late: Late | None, outcome: ToolOutcome | None) -> None:
    """``tell_late`` from the event loop: in a thread of its own (a store write blocks)."""
    if late is not None and outcome is not None:
        threading.Thread(target=tell_late, args=(late, outcome), daemon=True).start()


def _resolve(future: asyncio.Future[_Ending], ending: _Ending) -> None:
    if not future.done():
        future.set_result(ending)


def _time_out(future: asyncio.Future[_Ending], call: PlannedCall) -> None:
    _resolve(future, ToolOutcome.timed_out(call, call.timeout or 0.0))


def _call_order(outcome: ToolOutcome) -> int:
    return outcome.call.index


def _limit(call: PlannedCall) -> float | None:
    """How long a driver waits for a queued call: its timeout, and for an async tool in
    the sync driver a grace on top. Its own event loop cancels it at the timeout and
    reports that, so the run goes on after its cleanup has run; the grace only ends a wait
    whose loop is blocked."""
    if call.timeout is None:
        return None
    if call.is_async and _blocking_form(call) is None:
        return call.timeout + _ASYNC_GRACE
    return call.timeout


def _timed_out(jobs: Iterable[_Job], now: float) -> list[_Job]:
    """The calls whose deadline has passed."""
    return [job for job in jobs if job.deadline is not None and job.deadline <= now]


def _wait_time(jobs: Iterable[_Job], now: float) -> float:
    """How long the sync driver may sleep: until the next deadline (0 when one has
    passed), and never so long that Ctrl-C waits (some platforms deliver it only between
    waits)."""
    wait = _MAX_WAIT
    for job in jobs:
        if job.deadline is not None:
            wait = min(wait, job.deadline - now)
    return wait


async def _with_timeout(awaitable: Awaitable[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await awaitable
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise ToolTimedOut from None
        raise


class SyncBatch:
    """One round's calls in the sync driver: started at once, each outcome handed back
    by :meth:`next` as it ends (a call past its deadline ends as timed out)."""

    __slots__ = (
        "_late",
        "_lent",
        "_posted",
        "_ready",
        "_reports",
        "_threads",
        "_waiting",
        "jobs",
    )

    def __init__(
        self, threads: ToolThreads, calls: list[PlannedCall], late: Late | None = None
    ) -> None:
        self._threads = threads
        self._late = late
        self._reports: queue.SimpleQueue[tuple[_Job | None, Any]] = queue.SimpleQueue()
        now = time.perf_counter()
        self.jobs = [_Job(call, self._reports.put, now) for call in calls]
        self._waiting = {job.call.index: job for job in self.jobs}
        self._ready: list[ToolOutcome] = []
        self._posted: list[Any] = []
        self._lent = threads.lent()

    def post(self, event: Any) -> None:
        """From a call's thread: an event of a sub-agent's run, for the caller's stream
        (handed back by :meth:`next` before the call's own outcome)."""
        self._reports.put((None, event))

    def post_events(self) -> Callable[[Any], None]:
        """The function a call's sub-agent hands its events to: :meth:`post`."""
        return self.post

    def start(self) -> None:
        """Hand every call to the threads."""
        self._lent.__enter__()
        for job in self.jobs:
            self._threads.submit(job)

    def next(self, run_deadline: float | None, run_timeout: float | None) -> Any:
        """The next call to end, or an event :meth:`post`-ed before it; raises
        ``RunTimeoutError`` past the run's deadline."""
        while not self._ready and not self._posted:
            self._wait(run_deadline, run_timeout)
        if self._posted:
            return self._posted.pop(0)
        return self._ready.pop(0)

    def close(self) -> None:
        """Give up on the calls still running (each tells ``late`` when it returns);
        queued ones never start."""
        for job in self._waiting.values():
            ended = self._threads.abandon(job, self._late)
            if ended is not None and self._late is not None:
                tell_late(self._late, ended)
        self._waiting.clear()
        self._lent.__exit__(None, None, None)

    def _wait(self, run_deadline: float | None, run_timeout: float | None) -> None:
        waiting = self._waiting
        now = time.perf_counter()
        wait = _wait_time(waiting.values(), now)
        if run_deadline is not None:
            if run_deadline <= now:
                raise run_timed_out(run_timeout)
            wait = min(wait, run_deadline - now)
        if wait <= 0:  # past a call's deadline: the model is told, the call left
            for job in _timed_out(waiting.values(), now):
                del waiting[job.call.index]
                ended = self._threads.abandon(job, self._late)
                if ended is not None and self._late is not None:
                    tell_late(self._late, ended)
                self._ready.append(ToolOutcome.timed_out(job.call, job.call.timeout or 0.0))
            return
        try:
            reporter, ending = self._reports.get(timeout=wait)
        except queue.Empty:
            return
        if reporter is None:  # a sub-agent's event
            self._posted.append(ending)
            return
        if waiting.pop(reporter.call.index, None) is None:
            return  # the late result of a call that timed out
        if isinstance(ending, BaseException):
            raise ending
        self._ready.append(ending)


class AsyncBatch:
    """One round's calls in the async driver: async tools as tasks (a lone call is awaited
    in place, with no task), sync tools through the agent's threads."""

    __slots__ = (
        "_calls",
        "_late",
        "_limit",
        "_loop",
        "_posted",
        "_ready",
        "_tasks",
        "_threads",
        "_wake",
    )

    def __init__(
        self,
        threads: Callable[[], ToolThreads],
        calls: list[PlannedCall],
        limit: int,
        late: Late | None = None,
    ):
        self._threads = threads
        self._late = late
        self._calls = calls
        self._limit = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Future[ToolOutcome]] = set()
        self._ready: list[ToolOutcome] = []
        self._posted: list[Any] | None = None  # set by post_events(): sub-agents' events
        self._wake: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def post_events(self) -> Callable[[Any], None]:
        """Before :meth:`start`: the function a call's sub-agent hands its events to (from
        this loop or a thread); :meth:`next` returns them before the call's own outcome."""
        self._posted = []
        self._loop = asyncio.get_running_loop()
        return self._post

    def _post(self, event: Any) -> None:
        running = self._loop
        assert running is not None
        try:
            on_loop = asyncio.get_running_loop() is running
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._take(event)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                running.call_soon_threadsafe(self._take, event)

    def _take(self, event: Any) -> None:
        assert self._posted is not None
        self._posted.append(event)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def start(self) -> None:
        """Start the calls as tasks (a lone call waits for :meth:`next`, unless its events
        are wanted while it runs)."""
        if len(self._calls) > 1 or self._posted is not None:
            self._tasks = {asyncio.ensure_future(self._execute(call)) for call in self._calls}

    async def next(self) -> Any:
        """The next call to end, or an event posted before it (see :meth:`post_events`)."""
        if not self._tasks and not self._ready and self._posted is None:
            return await self._execute(self._calls[0])
        while not self._ready and not self._posted:
            waiting: set[asyncio.Future[Any]] = set(self._tasks)
            if self._posted is not None:
                self._wake = asyncio.get_running_loop().create_future()
                waiting.add(self._wake)
            try:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if self._wake is not None:
                    self._wake.cancel()
                    self._wake = None
            finished = [task for task in done if task in self._tasks]
            self._tasks.difference_update(finished)
            self._ready.extend(sorted((task.result() for task in finished), key=_call_order))
        if self._posted:
            return self._posted.pop(0)
        return self._ready.pop(0)

    async def close(self) -> None:
        """Cancel the calls still running and wait for their cleanup."""
        pending, self._tasks = self._tasks, set()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _execute(self, call: PlannedCall) -> ToolOutcome:
        if not call.is_async:
            return await _in_thread(self._threads(), call, self._late)
        async with self._limit:
            start = time.perf_counter()
            try:
                value = await _with_timeout(call.invoke(), call.timeout)
            except ToolTimedOut:
                return ToolOutcome.timed_out(call, call.timeout or 0.0)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the run itself is cancelled
                # The tool's own (an inner await someone else cancelled): a failure.
                return ToolOutcome.failed(call, exc, time.perf_counter() - start)
            except Exception as exc:
                return ToolOutcome.failed(call, exc, time.perf_counter() - start)
            return ToolOutcome.ok(call, value, time.perf_counter() - start)


async def _in_thread(threads: ToolThreads, call: PlannedCall, late: Late | None) -> ToolOutcome:
    running = asyncio.get_running_loop()
    done: asyncio.Future[_Ending] = running.create_future()

    def report(item: tuple[_Job, _Ending]) -> None:  # in the tool thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            running.call_soon_threadsafe(_resolve, done, item[1])

    job = _Job(call, report, 0.0)
    timer = None
    if call.timeout is not None:
        timer = running.call_later(call.timeout, _time_out, done, call)
    ending: _Ending | None = None
    try:
        with threads.lent():
            threads.submit(job)
            ending = await done
    finally:
        if timer is not None:
            timer.cancel()
        if ending is None or (isinstance(ending, ToolOutcome) and ending.status == "timeout"):
            _tell_late_off_loop(late, threads.abandon(job, late))
    if isinstance(ending, BaseException):
        raise ending
    return ending


def run_timed_out(timeout: float | None) -> RunTimeoutError:
    """The error for a run past its ``run_timeout``."""
    return RunTimeoutError(
        f"the run went past its run_timeout of {timeout or 0:g} s", timeout=timeout or 0.0
    )
