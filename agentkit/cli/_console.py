"""Showing a run as it happens: the answer on stdout, everything else on stderr."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from .._visible import visible

if TYPE_CHECKING:
    from .._agent import Agent
    from .._result import RunResult
    from ._progress import Progress

__all__ = ["Console", "ask", "compact_json", "play", "use_colour", "visible"]


def use_colour(stream: TextIO) -> bool:
    """Colours on ``stream``: a terminal, ``NO_COLOR`` unset or empty, ``TERM`` not dumb."""
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


class Console:
    """Writes a run as it happens: answer text to ``out``, tool activity to ``err``.

    ``agentkit chat "..." > answer.txt`` keeps only the answer because everything else
    goes to ``err``.
    """

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        *,
        verbose: bool = False,
        show_text: bool = True,
        label: str = "",
    ) -> None:
        self.out = out
        self.err = err
        self.verbose = verbose
        self.show_text = show_text
        self.label = label  # written to ``err`` before each answer, e.g. "qwen › "
        # on a terminal the answer's control characters are written out (a model's ESC
        # sequence would move the cursor or retitle the window); a file gets it as it is
        self._escape_answer = _is_terminal(out)
        self._open_line = False  # the answer on ``out`` does not end with a newline yet
        self._answering = False  # text of the current answer was written
        self._reasoning = False
        self.progress: Progress | None = None  # the spinner, erased before each write
        self._dim, self._red, self._yellow, self._reset = (
            ("\033[2m", "\033[31m", "\033[33m", "\033[0m") if use_colour(err) else ("",) * 4
        )
        encoding = (getattr(err, "encoding", None) or "").lower().replace("-", "")
        self.fancy = encoding == "utf8"  # arrows and rules, or plain ASCII
        self._call, self._back, self._skip = ("→", "←", "✗") if self.fancy else ("->", "<-", "x")
        self._over = "⇒" if self.fancy else "=>"

    def text(self, text: str) -> None:
        """A piece of the answer."""
        if not self.show_text or not text:
            return
        if self.progress is not None:
            self.progress.answering()
        self._end_reasoning()
        if self.label and not self._answering:
            self.err.write(self.label)
            self.err.flush()
        self._answering = True
        if self._escape_answer:
            text = visible(text.replace("\r\n", "\n"), lines=True)
        self.out.write(text)
        self.out.flush()
        self._open_line = not text.endswith("\n")

    def reasoning(self, text: str) -> None:
        """A piece of the model's reasoning; shown, dimmed, with ``--verbose`` only."""
        if self.verbose and text:
            if self.progress is not None:
                self.progress.answering()
            self.err.write(f"{self._dim}{visible(text, lines=True)}{self._reset}")
            self.err.flush()
            self._reasoning = True

    def note(self, line: str) -> None:
        """A line about the run, on ``err``."""
        self._line(f"{self._dim}{line}{self._reset}")

    def warn(self, line: str) -> None:
        """A line that needs attention (a retry), on ``err``."""
        self._line(f"{self._yellow}{line}{self._reset}")

    def interrupted(self, line: str) -> None:
        """Ctrl-C stopped an answer: ``line`` on a line of its own, not after the ``^C``
        the terminal echoed."""
        with self._quiet():
            if self._open_line:
                self.end_answer()
            elif self.err.isatty():
                # erase the echoed ^C where the terminal can; else start a new line
                dumb = os.environ.get("TERM") == "dumb"
                self.err.write("\n" if dumb else "\r\033[K")
            self.note(line)

    def _line(self, text: str) -> None:
        with self._quiet():
            self._end_reasoning()
            if self._open_line and self.out.isatty():
                # keep the terminal tidy; when stdout is a file the answer stays untouched
                self.out.write("\n")
                self.out.flush()
                self._open_line = False
            self.err.write(text + "\n")
            self.err.flush()

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        if self.progress is None:
            yield
        else:
            with self.progress.quiet():
                yield

    def tool_started(self, name: str, arguments: str, *, indent: str = "  ") -> None:
        """A tool call is about to run."""
        shown = _short(compact_json(arguments), 400, self.verbose)
        self.note(f"{indent}{self._call} {visible(name)}({shown})")

    def tool_result(
        self, name: str, output: str, error: str | None, duration: float, *, indent: str = "  "
    ) -> None:
        """A tool call ended."""
        took = f"{duration * 1000:.0f} ms"
        name = visible(name)
        if error is not None:
            shown = _short(output or error, 200, self.verbose)
            self.note(
                f"{indent}{self._back} {name} failed in {took}: {self._red}{shown}{self._dim}"
            )
        else:
            self.note(f"{indent}{self._back} {name} {took}: {_short(output, 200, self.verbose)}")

    def tool_not_run(self, name: str, message: str, *, indent: str = "  ") -> None:
        """A tool call the loop answered without running it (refused, repeated, invalid)."""
        shown = _short(message, 200, self.verbose)
        self.note(f"{indent}{self._skip} {visible(name)} not run: {self._red}{shown}{self._dim}")

    def handoff(self, source: str, target: str, *, indent: str = "  ") -> None:
        """The conversation passed to another agent (``Agent(handoffs=)``): the answer
        after this line is ``target``'s."""
        self.note(f"{indent}{self._over} {visible(target)} takes over from {visible(source)}")

    def sub_agent(self, path: tuple[str, ...], event: Any) -> None:
        """An event of a sub-agent (an agent used as a tool), indented by its depth: its
        tool calls, and its answer once whole (only the top answer goes to ``out``)."""
        from .._events import HandedOff, RunFinished, ToolCallStarted, ToolResult

        indent = "    " * len(path) + "  "
        label = f"[{visible(path[-1])}] "
        if isinstance(event, ToolCallStarted):
            self.tool_started(label + event.name, event.arguments, indent=indent)
        elif isinstance(event, ToolResult):
            self.tool_result(
                label + event.name, event.output, event.error, event.duration, indent=indent
            )
        elif isinstance(event, HandedOff):
            self.handoff(event.source, event.target, indent=indent)
        elif isinstance(event, RunFinished) and event.result.status == "paused":
            waiting = visible(", ".join(call.name for call in event.result.pending))
            self.note(f"{indent}{label}waiting for approval: {waiting}")
        elif isinstance(event, RunFinished):
            answer = _short(str(event.result.output), 200, self.verbose)
            self.note(f"{indent}{label}{answer}")

    def round_finished(self, turn: int, usage: Any, finish_reason: str | None) -> None:
        """One model call finished; shown with ``--verbose``."""
        if self.verbose:
            self.note(
                f"  [round {turn}: {finish_reason or 'no finish reason'} {usage_text(usage)}]"
            )

    def end_answer(self) -> None:
        """The answer is complete: end its line."""
        self._end_reasoning()
        self._answering = False
        if self._open_line:
            self.out.write("\n")
            self.out.flush()
            self._open_line = False

    def _end_reasoning(self) -> None:
        if self._reasoning:
            self.err.write("\n")
            self._reasoning = False


def usage_text(usage: Any) -> str:
    """``· 1,204 in (1,024 cached) · 41 out (12 reasoning)``: one round's tokens."""
    given = f"· {usage.prompt_tokens:,} in"
    cached = getattr(usage, "cached_tokens", 0)
    created = getattr(usage, "cache_creation_tokens", 0)
    details = [f"{cached:,} cached"] if cached else []
    if created:
        details.append(f"{created:,} written to the cache")
    if details:
        given += f" ({', '.join(details)})"
    taken = f"· {usage.completion_tokens:,} out"
    reasoning = getattr(usage, "reasoning_tokens", 0)
    if reasoning:
        taken += f" ({reasoning:,} reasoning)"
    return f"{given} {taken}"


def compact_json(text: str) -> str:
    """Argument JSON on one line, as the model wrote it when it is not JSON (either with
    its disguising characters written out: see :func:`visible`)."""
    try:
        shown = json.dumps(json.loads(text or "{}"), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        shown = text
    return visible(shown)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _short(text: str, limit: int, verbose: bool) -> str:
    """Model, tool or agent text on one line (cut at ``limit`` unless ``verbose``), its
    control and invisible characters written out."""
    text = " ".join(text.split())
    if not verbose and len(text) > limit:
        text = text[: limit - 1] + "…"
    return visible(text)


def play(
    agent: Agent[str],
    conversation: str | list[dict[str, Any]],
    console: Console,
    *,
    session: str | None = None,
) -> RunResult[Any]:
    """Run ``agent`` on ``conversation`` (on a stored ``session``, if given), showing each
    event on ``console`` as it comes."""
    from .._events import (
        HandedOff,
        ModelRoundFinished,
        ReasoningDelta,
        RunFinished,
        SubAgentEvent,
        TextDelta,
        ToolCallStarted,
        ToolResult,
    )

    result: RunResult[Any] | None = None
    started: set[str] = set()  # calls that ran; the others were answered without running
    events = agent.stream(conversation, session=session)
    try:
        for event in events:
            if isinstance(event, TextDelta):
                console.text(event.text)
            elif isinstance(event, ReasoningDelta):
                console.reasoning(event.text)
            elif isinstance(event, ToolCallStarted):
                started.add(event.call_id)
                console.tool_started(event.name, event.arguments)
            elif isinstance(event, ToolResult):
                if event.call_id in started:
                    console.tool_result(event.name, event.output, event.error, event.duration)
                elif not _transfer_made(event):  # a transfer made: its HandedOff says so
                    console.tool_not_run(event.name, event.output or event.error or "")
            elif isinstance(event, ModelRoundFinished):
                # the round's text is whole: the next round's text, or the -v usage line,
                # starts on a line of its own (also when stdout and stderr share a file)
                console.end_answer()
                console.round_finished(event.turn, event.usage, event.finish_reason)
            elif isinstance(event, RunFinished):
                result = event.result
            elif isinstance(event, SubAgentEvent):
                console.sub_agent(event.path, event.event)
            elif isinstance(event, HandedOff):
                console.handoff(event.source, event.target)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # Ctrl-C mid-answer: stop the stream and the tools now
        console.end_answer()
    if result is None:  # pragma: no cover - the loop always ends with RunFinished
        raise RuntimeError("the run ended without a result")
    return result


def _transfer_made(event: Any) -> bool:
    """Whether ``event`` (a ``ToolResult``) is a ``transfer_to_<agent>`` call that handed
    the conversation over (one refused, past ``max_handoffs`` say, is shown as not run)."""
    from .._handoff_plan import TRANSFER_PREFIX, transferred

    name: str = event.name
    return name.startswith(TRANSFER_PREFIX) and event.output == transferred(
        name[len(TRANSFER_PREFIX) :]
    )


def ask(
    agent: Agent[str],
    conversation: str | list[dict[str, Any]],
    console: Console,
    *,
    stream: bool,
    session: str | None = None,
) -> RunResult[Any]:
    """One run: streamed event by event, or (``stream=False``) whole answers per round."""
    if stream:
        return play(agent, conversation, console, session=session)
    result = agent.run(conversation, session=session)
    console.text(str(result.output))
    console.end_answer()
    return result
