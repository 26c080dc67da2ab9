"""What the CLI shows while it waits: a spinner with the elapsed time, and retries.

:class:`Progress` is a run observer (see :mod:`agentkit._observe`). On a terminal it keeps
one line on stderr, ``⠋ waiting for qwen-plus · 2.4 s``, redrawn ten times a second by a
daemon thread while the run waits for the model or a tool, and erased before anything
else is written. When stderr is not a terminal there is no spinner at all. Retries are
announced either way, one line each: ``503 from the server; retrying in 1.2 s (1 of 2)``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from .._observe import RunInfo, RunObserver

if TYPE_CHECKING:
    from .._calls import PlannedCall
    from .._events import ToolResult
    from .._wire import ChatCompletion

__all__ = ["Progress", "retry_line"]

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_ASCII_FRAMES = "-\\|/"
_TICK = 0.1  # seconds between two frames


def retry_line(error: BaseException, delay: float, attempt: int, max_retries: int) -> str:
    """``503 from the server; retrying in 1.2 s (1 of 2)``, or the transport's words."""
    from .._errors import APITimeoutError, IncompleteStreamError

    status = getattr(error, "status", None)
    if isinstance(error, IncompleteStreamError):
        what = "the answer stream was cut"
    elif isinstance(error, APITimeoutError):
        what = "the server did not answer in time"
    elif isinstance(status, int) and not isinstance(status, bool) and status:
        what = f"{status} from the server"
    else:
        what = "the connection failed"
    return f"{what}; retrying in {delay:.1f} s ({attempt} of {max_retries})"


class Progress(RunObserver):
    """The spinner and the retry lines of the runs of one CLI command.

    Args:
        err: where the spinner and the retry lines go.
        spinner: draw the spinner (``err`` is a terminal).
        fancy: braille frames and a middle dot, or plain ASCII.
        announce: writes one line on ``err`` (the console's, so it erases the spinner
            first and keeps its colours).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        err: TextIO,
        *,
        spinner: bool,
        fancy: bool = True,
        announce: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._err = err
        self._spinner = spinner
        self._frames = _FRAMES if fancy else _ASCII_FRAMES
        self._dot = "·" if fancy else "-"
        self._announce = announce or self._write_line
        self._clock = clock
        self._lock = threading.RLock()
        self._what: str | None = None  # what the run waits for; None: not waiting
        self._since = 0.0
        self._drawn = False  # the spinner line is on the screen
        self._held = 0  # > 0 while the console writes: no drawing
        self._tools: dict[str, str] = {}  # call id -> tool name, running now
        self._model = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def observe(self, info: RunInfo) -> Progress:
        """The observer factory: every run of the command reports to this one object."""
        return self

    # --- what the run tells ----------------------------------------------------------

    def model_call_started(self, turn: int, request: Mapping[str, Any]) -> None:
        self._model = str(request.get("model") or "the model")
        self._wait(f"waiting for {self._model}")

    def model_call_finished(self, turn: int, completion: ChatCompletion) -> None:
        self._wait(None)

    def retrying(self, error: BaseException, delay: float, attempt: int, max_retries: int) -> None:
        self._announce(retry_line(error, delay, attempt, max_retries))

    def tool_call_started(self, call: PlannedCall) -> None:
        self._tools[call.call_id] = call.name
        self._wait(f"running {', '.join(self._tools.values())}", restart=len(self._tools) == 1)

    def tool_call_finished(self, call: PlannedCall, result: ToolResult) -> None:
        if self._tools.pop(call.call_id, None) is None:
            return
        if self._tools:
            self._wait(f"running {', '.join(self._tools.values())}", restart=False)
        else:
            self._wait(None)

    def run_finished(self, result: Any) -> None:
        self._wait(None)

    def run_failed(self, error: BaseException) -> None:
        self._tools.clear()
        self._wait(None)

    # --- for the console -------------------------------------------------------------

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Erase the spinner and keep it off while the caller writes."""
        with self._lock:
            self._held += 1
            self._erase()
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1

    def answering(self) -> None:
        """The model's answer is streaming: no spinner until the next wait."""
        with self._lock:
            self._what = None
            self._erase()

    def close(self) -> None:
        """Stop the spinner thread and erase its line."""
        self._stop.set()
        with self._lock:
            self._what = None
            self._erase()

    def line(self) -> str | None:
        """The spinner line as it would be drawn now, or ``None`` when not waiting."""
        with self._lock:
            if self._what is None:
                return None
            elapsed = self._clock() - self._since
            frame = self._frames[int(elapsed / _TICK) % len(self._frames)]
            return f"{frame} {self._what} {self._dot} {elapsed:.1f} s"

    # --- internals ---------------------------------------------------------------------

    def _wait(self, what: str | None, *, restart: bool = True) -> None:
        with self._lock:
            if what is not None and (restart or self._what is None):
                self._since = self._clock()
            self._what = what
            if what is None:
                self._erase()
        if what is not None and self._spinner and self._thread is None:
            self._thread = threading.Thread(target=self._spin, name="agentkit-spinner", daemon=True)
            self._thread.start()

    def _spin(self) -> None:
        while not self._stop.wait(_TICK):
            with self._lock:
                if self._held:
                    continue
                shown = self.line()
                if shown is None:
                    continue
                with contextlib.suppress(OSError, ValueError):  # a closed terminal
                    self._err.write(f"\r{shown}\033[K")
                    self._err.flush()
                    self._drawn = True

    def _erase(self) -> None:
        if self._drawn:
            with contextlib.suppress(OSError, ValueError):
                self._err.write("\r\033[K")
                self._err.flush()
            self._drawn = False

    def _write_line(self, text: str) -> None:
        with self.quiet():
            self._err.write(text + "\n")
            self._err.flush()
