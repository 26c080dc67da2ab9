"""The CLI shows progress: a spinner on a terminal (nothing when piped), retries announced,
-v usage lines with cached tokens apart from the answer, colours and NO_COLOR, the header
naming the server, Ctrl-C before any text, the help wrapping, and exit 141 for real."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit._errors import APIConnectionError, APITimeoutError, IncompleteStreamError, ServerError
from agentkit.cli import main
from agentkit.cli._console import Console
from agentkit.cli._progress import Progress, retry_line
from agentkit.testing import Reply, ScriptedServer

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Shared(io.StringIO):
    """stdout and stderr as one file, the way `> all.txt 2>&1` leaves them."""


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


# --- the pieces ------------------------------------------------------------------------------


def test_retry_lines_say_what_happened() -> None:
    assert (
        retry_line(ServerError("busy", status=503), 1.234, 1, 2)
        == "503 from the server; retrying in 1.2 s (1 of 2)"
    )
    assert retry_line(APITimeoutError("slow"), 0.5, 2, 2).startswith(
        "the server did not answer in time; retrying in 0.5 s (2 of 2)"
    )
    assert retry_line(APIConnectionError("refused"), 0, 1, 3).startswith("the connection failed")
    assert retry_line(IncompleteStreamError("cut"), 0, 1, 3).startswith("the answer stream was cut")


def test_the_spinner_line_counts_the_time_and_names_what_runs() -> None:
    now = [100.0]
    progress = Progress(io.StringIO(), spinner=False, clock=lambda: now[0])
    assert progress.line() is None
    progress.model_call_started(1, {"model": "qwen-plus"})
    now[0] += 2.44
    assert progress.line() == "⠼ waiting for qwen-plus · 2.4 s"  # frame 24 of 10

    class Call:
        def __init__(self, call_id: str, name: str) -> None:
            self.call_id, self.name = call_id, name

    weather, clock = Call("w", "get_current_weather"), Call("t", "get_current_time")
    progress.model_call_finished(1, None)  # type: ignore[arg-type]
    assert progress.line() is None
    progress.tool_call_started(weather)  # type: ignore[arg-type]
    progress.tool_call_started(clock)  # type: ignore[arg-type]
    now[0] += 0.3
    assert progress.line() == "⠹ running get_current_weather, get_current_time · 0.3 s"
    progress.tool_call_finished(weather, None)  # type: ignore[arg-type]
    assert progress.line() == "⠹ running get_current_time · 0.3 s"  # the clock runs on
    progress.tool_call_finished(clock, None)  # type: ignore[arg-type]
    assert progress.line() is None


# --- piped: no spinner, retries announced ----------------------------------------------------


def test_piped_output_has_no_spinner_but_announces_retries(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.queue(
        Reply.rate_limited(retry_after=0.1),
        Reply.error(503, headers={"Retry-After": "0"}),
        Reply.text("Hello.").with_(delay=0.5),
    )
    code = main(["chat", "--base-url", server.base_url, "--no-tools", "Hi"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out == "Hello.\n"
    assert captured.err.splitlines() == [
        "429 from the server; retrying in 0.1 s (1 of 2)",
        "503 from the server; retrying in 0.0 s (2 of 2)",
    ]
    assert "waiting" not in captured.err and "\r" not in captured.err


def test_verbose_usage_is_a_line_of_its_own_with_cached_tokens(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(("get_current_time", {}), usage=usage(1204, 41, cached=1024)),
        Reply.text("It is noon.", usage=usage(1300, 5, cached=1024, reasoning=3)),
    )
    shared = Shared()
    code = main(
        ["chat", "-v", "--base-url", server.base_url, "Time?"], stdout=shared, stderr=shared
    )
    assert code == 0
    lines = shared.getvalue().splitlines()
    assert "  [round 1: tool_calls · 1,204 in (1,024 cached) · 41 out]" in lines
    assert "It is noon." in lines  # the answer is not glued to the usage line
    assert "  [round 2: stop · 1,300 in (1,024 cached) · 5 out (3 reasoning)]" in lines


def test_console_writes_erase_the_spinner_first() -> None:
    err = io.StringIO()
    console = Console(io.StringIO(), err)
    progress = Progress(err, spinner=False, announce=console.warn)
    console.progress = progress
    progress._drawn = True  # as if the thread had drawn a frame
    console.note("a note")
    assert err.getvalue() == "\r\x1b[Ka note\n"


# --- on a terminal ------------------------------------------------------------------------------


def _own_terminal() -> None:
    """In the child: a session of its own with the pty as its controlling terminal, so a
    typed Ctrl-C is echoed as ^C and sends SIGINT, as for a person."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``agentkit`` in a pseudo-terminal with a real TERM, reading everything it writes."""

    def __init__(self, *args: str, colour: bool = True, term: str = "xterm") -> None:
        self.master, slave = pty.openpty()
        environment = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DASHSCOPE_", "AGENTKIT_", "NO_COLOR"))
        }
        environment.update(PYTHONIOENCODING="utf-8", TERM=term, COLUMNS="80")
        if not colour:
            environment["NO_COLOR"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agentkit.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=environment,
            cwd=REPO,
            preexec_fn=_own_terminal,
        )
        os.close(slave)
        self.seen = ""
        self.position = 0

    def expect(self, text: str, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.position :]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"{text!r} never showed; the terminal shows:\n{self.seen!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"{text!r} never showed before exit:\n{self.seen!r}")
            self.seen += chunk.decode("utf-8", "replace")
        self.position = self.seen.index(text, self.position) + len(text)

    def drain(self) -> None:
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.seen += chunk.decode("utf-8", "replace")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(45)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*args: str, **options: Any) -> Terminal:
        opened.append(Terminal(*args, **options))
        return opened[-1]

    yield open_terminal
    for item in opened:
        item.close()


def test_a_terminal_shows_a_spinner_while_waiting_then_erases_it(
    server: ScriptedServer, terminal: Callable[..., Terminal]
) -> None:
    server.queue(Reply.text("The answer.").with_(delay=1.5))
    term = terminal("chat", "--base-url", server.base_url, "--no-tools", "Hi")
    term.expect("waiting for qwen-plus · ")  # a frame with the elapsed time
    term.expect("The answer.")
    assert term.process.wait(45) == 0
    term.drain()
    before_answer = term.seen[: term.seen.index("The answer.")]
    assert before_answer.rstrip(" ").endswith("\r\x1b[K")  # erased before the answer
    frames = re.findall(r"waiting for qwen-plus · (\d+\.\d) s", term.seen)
    assert len(frames) >= 2 and frames == sorted(frames, key=float)  # it counts up
    assert all(float(frame) < 5 for frame in frames)


def test_errors_are_red_on_a_terminal_and_plain_with_no_color(
    server: ScriptedServer, terminal: Callable[..., Terminal]
) -> None:
    server.queue(Reply.invalid_api_key(), Reply.invalid_api_key())
    coloured = terminal("chat", "--base-url", server.base_url, "--no-tools", "Hi")
    coloured.expect("agentkit: hint:")
    coloured.process.wait(45)
    assert "\x1b[31magentkit: error:" in coloured.seen
    plain = terminal("chat", "--base-url", server.base_url, "--no-tools", "Hi", colour=False)
    plain.expect("agentkit: hint:")
    plain.process.wait(45)
    assert "agentkit: error:" in plain.seen
    assert "\x1b[3" not in plain.seen and "\x1b[2m" not in plain.seen


@pytest.mark.parametrize("term_name", ["xterm", "dumb"])
def test_ctrl_c_before_any_text_is_not_glued_to_the_echoed_c(
    server: ScriptedServer, terminal: Callable[..., Terminal], term_name: str
) -> None:
    server.queue(Reply.text("too late").with_(delay=30), Reply.text("Second."))
    term = terminal("chat", "--base-url", server.base_url, "--no-tools", term=term_name)
    term.expect(f"qwen-plus on 127.0.0.1:{server.port}")  # the header names the server
    term.expect("> ")
    term.type("first question\n")
    server.wait_for_requests(1)  # the CLI waits for the model: nothing written yet
    term.type("\x03")  # Ctrl-C typed: the terminal echoes ^C and sends SIGINT
    term.expect("(stopped; that question is left out of the history)")
    stopped = term.seen.index("(stopped;")
    assert "^C(stopped" not in ANSI.sub("", term.seen)
    if term_name == "dumb":
        assert term.seen[:stopped].endswith("\r\n")  # a new line after the ^C
    else:
        assert "\r\x1b[K" in term.seen[stopped - 12 : stopped]  # the ^C line erased
    term.expect("> ")
    term.type("again\n")
    term.expect("Second.")
    term.expect("> ")
    term.type("\x04")
    term.expect("\n")
    assert term.process.wait(45) == 0, term.seen


def test_chat_help_wraps_its_description() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentkit.cli", "chat", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "60"},
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0
    description = done.stdout.split("\n\n")[1]
    assert "Ask once" in description
    assert all(len(line) <= 60 for line in description.splitlines())
    assert "  agentkit chat --base-url http://localhost:11434/v1" in done.stdout  # examples kept


def test_the_documented_exit_141_is_real() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "agentkit.cli", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
        cwd=REPO,
    )
    assert demo.stdout is not None
    head = subprocess.Popen(["head", "-c", "20"], stdin=demo.stdout, stdout=subprocess.PIPE)
    demo.stdout.close()  # head alone reads it now
    shown, _ = head.communicate(timeout=60)
    assert demo.wait(60) == 141
    assert len(shown) == 20
    assert "agentkit demo \\| head -c 20" in (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def test_sigint_one_shot_still_exits_130(
    server: ScriptedServer, terminal: Callable[..., Terminal]
) -> None:
    server.queue(Reply.text("slow").with_(delay=30))
    term = terminal("chat", "--base-url", server.base_url, "--no-tools", "Hi")
    term.expect("waiting for")
    os.kill(term.process.pid, signal.SIGINT)
    assert term.process.wait(45) == 130
