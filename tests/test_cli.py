"""The ``agentkit`` command, driven as a user drives it: in-process and as a subprocess.

Every chat test talks HTTP to ``agentkit.testing``'s scripted server on loopback; nothing
here reaches the internet.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, RunLimits, tool
from agentkit.cli import Console, main, play, repl
from agentkit.cli._demo import scripted_qwen
from agentkit.testing import RecordedRequest, Reply, ScriptedServer, always
from agentkit.tools import BUILTIN_TOOLS

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``python -m agentkit.cli ARGS`` in a fresh process, with a clean provider environment."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DASHSCOPE_", "OPENAI_", "AGENTKIT_"))
    }
    environment.update(env or {})
    environment["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        cwd=REPO,
    )


TOOLS_FILE = '''
from typing import Literal

from agentkit import tool


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool(name="shout", strict=True)
def make_loud(text: str, mark: Literal["!", "?"] = "!") -> str:
    """Upper-case a text."""
    return text.upper() + mark


def not_a_tool() -> None:
    """Plain functions are not offered to the model."""
'''


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_tools.py"
    path.write_text(TOOLS_FILE, encoding="utf-8")
    return path


def json_blocks(text: str) -> dict[str, Any]:
    """The ``agentkit tools`` output: one ``# name`` header and one JSON object per tool."""
    found: dict[str, Any] = {}
    for block in text.strip().split("\n\n"):
        header, _, body = block.partition("\n")
        found[header.split()[1]] = json.loads(body)
    return found


# --- agentkit tools -------------------------------------------------------------------------


def test_tools_prints_what_the_builtin_tools_send(capsys: pytest.CaptureFixture[str]) -> None:
    from agentkit.tools import BUILTIN_TOOLS

    assert main(["tools"]) == 0
    shown = json_blocks(capsys.readouterr().out)
    assert shown == {t.name: t.to_openai() for t in BUILTIN_TOOLS}


def test_tools_loads_every_tool_of_a_file(
    tools_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tools", str(tools_file)]) == 0
    out = capsys.readouterr().out
    shown = json_blocks(out)
    assert list(shown) == ["add", "shout"]  # definition order; not_a_tool left out
    assert shown["add"]["function"]["parameters"]["required"] == ["a", "b"]
    assert shown["add"]["function"]["parameters"]["properties"]["a"]["description"] == (
        "The first number."
    )
    assert shown["shout"]["function"]["strict"] is True
    assert "# shout  (strict)" in out


def test_tools_loads_a_dotted_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--names", "agentkit.tools.clock"]) == 0
    assert capsys.readouterr().out == "get_current_time\n"


@pytest.mark.parametrize(
    ("source", "content", "expected"),
    [
        ("missing.py", None, "no such file"),
        ("no_such_module_anywhere", None, "no such file or module"),
        ("empty.py", "x = 1\n", "defines no tools"),
        ("broken.py", "raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("bad_tool.py", "from agentkit import tool\n@tool\ndef f(*args): pass\n", "*args"),
    ],
)
def test_tools_that_do_not_load_are_one_clear_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    content: str | None,
    expected: str,
) -> None:
    target = source
    if source.endswith(".py"):
        target = str(tmp_path / source)
        if content is not None:
            (tmp_path / source).write_text(content, encoding="utf-8")
    assert main(["tools", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentkit: error: {target}: ")  # as typed: no --tools here
    assert expected in err
    assert "Traceback" not in err
    # `chat` names the option the source came with
    assert main(["chat", "--base-url", "http://127.0.0.1:9/v1", "--tools", target, "Hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentkit: error: --tools {target}: ")
    assert expected in err


def test_two_tools_with_one_name_are_refused(
    tmp_path: Path, tools_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.py"
    other.write_text(
        textwrap.dedent(
            '''
            from agentkit import tool

            @tool
            def add(x: float) -> float:
                """Another add."""
                return x
            '''
        ),
        encoding="utf-8",
    )
    assert main(["tools", str(tools_file), str(other)]) == 2
    assert "two tools are named 'add'" in capsys.readouterr().err


# --- agentkit chat, one-shot --------------------------------------------------------------

SECRET = "sk-test-0123456789abcdef-SECRET"


def last_tool_result(request: RecordedRequest) -> str:
    message = request.messages[-1]
    assert message["role"] == "tool"
    return str(message["content"])


def answer_with_tool_result(request: RecordedRequest) -> Reply:
    """A model whose final answer quotes the tool result it was sent."""
    return Reply.text(f"The tool said: {last_tool_result(request)}")


def test_one_shot_with_a_tools_file_streams_the_answer_to_stdout(
    server: ScriptedServer, tools_file: Path
) -> None:
    server.queue(
        Reply.tool_calls(("add", {"a": 2, "b": 3}), style="dashscope"),
        Reply.text("2 + 3 = 5, as the tool confirms."),
    )
    done = run_cli(
        "chat", "--base-url", server.base_url, "--tools", str(tools_file), "What is 2 + 3?"
    )
    assert done.returncode == 0, done.stderr
    # stdout holds the answer and nothing else: `> answer.txt` keeps only the answer
    assert done.stdout == "2 + 3 = 5, as the tool confirms.\n"
    # the tool activity went to stderr: name, arguments, duration, result
    assert re.search(r"add\(\{\"a\": 2, \"b\": 3\}\)", done.stderr)
    assert re.search(r"add \d+ ms: 5\b", done.stderr)
    first, second = server.requests
    assert [t["function"]["name"] for t in first.tools] == ["add", "shout"]
    assert first.model == "qwen-plus"
    assert first.stream
    assert last_tool_result(second) == "5"  # the real function ran on the model's arguments


def test_builtin_time_tool_from_piped_stdin(server: ScriptedServer) -> None:
    server.queue(Reply.tool_calls(("get_current_time", {"timezone": "Asia/Tokyo"})))
    server.respond_with(answer_with_tool_result)
    done = run_cli("chat", "--base-url", server.base_url, input="What time is it in Tokyo?\n")
    assert done.returncode == 0, done.stderr
    first, second = server.requests
    assert first.messages == [{"role": "user", "content": "What time is it in Tokyo?"}]
    assert {t["function"]["name"] for t in first.tools} == {
        "get_current_time",
        "get_current_weather",
    }
    result = last_tool_result(second)
    clock = r"It is \w+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in Asia/Tokyo \(UTC\+09:00\)\."
    assert re.fullmatch(clock, result)
    assert done.stdout == f"The tool said: {result}\n"
    assert "get_current_time" in done.stderr


def test_quota_error_is_one_clear_line_and_never_shows_the_key(server: ScriptedServer) -> None:
    server.queue(Reply.quota_exceeded())
    done = run_cli(
        "chat",
        "--provider",
        "dashscope",
        "--base-url",
        server.base_url,
        "Hello?",
        env={"DASHSCOPE_API_KEY": SECRET},
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("agentkit: error: quota exceeded: You exceeded your current quota")
    assert lines[1].startswith("agentkit: hint: this is a quota or billing error")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert len(server.requests) == 1  # a quota error is never retried
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent...
    assert SECRET not in done.stderr + done.stdout  # ...and never shown


def test_debug_shows_the_traceback(server: ScriptedServer) -> None:
    server.queue(Reply.quota_exceeded())
    done = run_cli("chat", "--base-url", server.base_url, "--debug", "Hello?")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "QuotaExceededError" in done.stderr


@pytest.mark.parametrize(
    ("options", "variable"),
    [
        ((), "DASHSCOPE_API_KEY"),
        (("--region", "cn"), "DASHSCOPE_API_KEY"),
        (("--provider", "openai"), "OPENAI_API_KEY"),
        (("--api-key-env", "MY_KEY"), "MY_KEY"),
    ],
)
def test_a_missing_key_names_the_variable_to_set(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: tuple[str, ...],
    variable: str,
) -> None:
    for name in ("DASHSCOPE_API_KEY", "OPENAI_API_KEY", "MY_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["chat", *options, "Hello?"]) == 2
    captured = capsys.readouterr()
    first, hint = captured.err.splitlines()
    assert first.startswith("agentkit: error: ") and f"{variable} is not set" in first
    assert hint.startswith(f"agentkit: hint: set {variable} ")
    assert captured.out == ""


def test_json_output_is_the_run_result_without_the_key(server: ScriptedServer) -> None:
    server.queue(Reply.tool_calls(("get_current_time", {"timezone": "UTC"})))
    server.respond_with(answer_with_tool_result)
    done = run_cli(
        "chat",
        "--json",
        "--provider",
        "dashscope",
        "--base-url",
        server.base_url,
        "--system",
        "Be brief.",
        "What time is it in UTC?",
        env={"DASHSCOPE_API_KEY": SECRET},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert set(result) >= {"output", "messages", "usage", "turns"}
    assert result["turns"] == 2
    assert result["output"].startswith("The tool said: It is ")
    roles = [m["role"] for m in result["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert result["messages"][0]["content"] == "Be brief."
    assert result["usage"]["total_tokens"] > 0
    assert SECRET not in done.stdout + done.stderr
    assert "get_current_time" in done.stderr  # tool activity still shown, on stderr


def test_no_stream_asks_for_whole_answers_and_still_shows_tools(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.queue(Reply.tool_calls(("get_current_time", {})))
    server.respond_with(answer_with_tool_result)
    assert main(["chat", "--no-stream", "--base-url", server.base_url, "Time?"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("The tool said: It is ") and captured.out.endswith("\n")
    assert "get_current_time" in captured.err
    assert not any(request.stream for request in server.requests)


def test_model_options_reach_the_request(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.queue(Reply.text("ok"))
    code = main(
        [
            "chat",
            "--base-url",
            server.base_url,
            "--model",
            "qwen-max",
            "--no-tools",
            "--temperature",
            "0.2",
            "--top-p",
            "0.9",
            "--max-tokens",
            "50",
            "--seed",
            "7",
            "--presence-penalty",
            "0.5",
            "--stop",
            "END",
            "--system",
            "Answer in French.",
            "Hi",
        ]
    )
    assert code == 0
    body = server.requests[0].json()
    assert body["model"] == "qwen-max"
    assert "tools" not in body
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.2,
        0.9,
        50,
        7,
    )
    assert body["presence_penalty"] == 0.5 and body["stop"] == ["END"]
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert capsys.readouterr().out == "ok\n"


def test_max_turns_says_what_to_raise(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.respond_with(always(Reply.tool_calls(("get_current_time", {}))))
    assert main(["chat", "--base-url", server.base_url, "--max-turns", "2", "Loop!"]) == 1
    err = capsys.readouterr().err
    assert "agentkit: error: no final answer" in err
    assert "raise --max-turns (now 2)" in err
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("reply", "title", "hint"),
    [
        (Reply.invalid_api_key(), "authentication failed", "pass --api-key-env VAR"),
        (Reply.error(404, "model not found"), "not found", "check --model and --base-url"),
        (Reply.content_moderation(), "refused by content moderation", "rephrase"),
        (
            Reply.raw("<html>bad gateway</html>", content_type="text/html"),
            "invalid answer",
            "OpenAI-compatible",
        ),
    ],
)
def test_api_errors_come_with_a_hint(
    server: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    reply: Reply,
    title: str,
    hint: str,
) -> None:
    server.queue(reply)
    assert main(["chat", "--base-url", server.base_url, "--max-retries", "0", "Hi"]) == 1
    first, second = capsys.readouterr().err.splitlines()
    assert first.startswith(f"agentkit: error: {title}")
    assert second.startswith("agentkit: hint: ") and hint in second


def test_an_unreachable_server_says_check_the_base_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        assert main(["chat", "--base-url", url, "--max-retries", "0", "Hi"]) == 1
    first, second = capsys.readouterr().err.splitlines()
    assert first.startswith("agentkit: error: cannot connect")
    assert "check --base-url and your network" in second


def test_an_unreachable_provider_says_check_the_network(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        monkeypatch.setenv("AGENTKIT_BASE_URL", url)  # no --base-url to check
        monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
        assert main(["chat", "--max-retries", "0", "Hi"]) == 1
    err = capsys.readouterr().err
    first, second = err.splitlines()
    assert first.startswith("agentkit: error: cannot connect")
    assert second.startswith("agentkit: hint: check your network") and "--base-url" not in second
    assert SECRET not in err


@pytest.mark.parametrize(
    ("argv", "error", "help_of"),
    [
        (["chat", "--temperature", "warm", "Hi"], "argument --temperature: invalid", "chat"),
        (["chat", "--no-such-option"], "unrecognized arguments: --no-such-option", "chat"),
        (["demo", "--no-such-option"], "unrecognized arguments: --no-such-option", "demo"),
        (["chat", "--max-turns", "0", "Hi"], "--max-turns: must be at least 1, got 0", "chat"),
        (["chat", "--max-turns", "many", "Hi"], "invalid integer value: 'many'", "chat"),
        (["chat", "--max-retries", "-1", "Hi"], "--max-retries: must be at least 0", "chat"),
        (["chat", "--timeout", "0", "Hi"], "--timeout: must be more than 0", "chat"),
        (["chat", "--provider", "acme", "Hi"], "invalid choice: 'acme'", "chat"),
        (["frobnicate"], "invalid choice: 'frobnicate'", ""),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(
    argv: list[str], error: str, help_of: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    command = f"agentkit {help_of}".strip()
    first, hint = capsys.readouterr().err.splitlines()  # not the whole usage block
    assert first.startswith(f"{command}: error: ") and error in first
    assert hint == f"agentkit: hint: `{command} --help` lists the options"


def test_agentkit_alone_shows_what_it_can_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: agentkit")
    for command in ("chat", "tools", "demo"):
        assert f"\n    {command} " in err
    assert "agentkit demo" in err  # where to start


def test_chat_help_shows_examples_and_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chat", "--help"]) == 0
    out = capsys.readouterr().out
    assert 'agentkit chat "What' in out and "| agentkit chat" in out
    for variable in (
        "DASHSCOPE_API_KEY",
        "AGENTKIT_BASE_URL",
        "AGENTKIT_API_KEY",
        "OPENAI_API_KEY",
    ):
        assert variable in out


def test_provider_choices_are_the_presets() -> None:
    from agentkit import PROVIDERS
    from agentkit.cli._arguments import PRESETS

    assert sorted(PRESETS) == sorted(PROVIDERS)


def test_region_is_refused_beside_another_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--provider", "openai", "--region", "cn", "Hi"]) == 2
    assert capsys.readouterr().err == (
        "agentkit: error: --region is DashScope's: it does not apply to openai\n"
    )


def test_an_unquoted_prompt_is_one_question(server: ScriptedServer) -> None:
    server.respond_with(echo_history)
    done = run_cli("chat", "--base-url", server.base_url, "--no-tools", "What", "time", "is", "it?")
    assert done.returncode == 0, done.stderr
    assert server.requests[0].messages == [{"role": "user", "content": "What time is it?"}]
    assert done.stdout == "What time is it?\n"


@pytest.mark.parametrize(
    ("written", "whole"),
    [
        ("localhost:8000", "http://localhost:8000/v1"),
        ("127.0.0.1:8131/v1", "http://127.0.0.1:8131/v1"),
        ("127.0.0.1:8131/v1/", "http://127.0.0.1:8131/v1"),
        ("gateway.example:8080/openai/v1", "http://gateway.example:8080/openai/v1"),
    ],
)
def test_a_base_url_without_a_scheme_gets_the_whole_url_as_a_hint(
    capsys: pytest.CaptureFixture[str], written: str, whole: str
) -> None:
    assert main(["chat", "--base-url", written, "Hi"]) == 2
    first, hint = capsys.readouterr().err.splitlines()
    assert written in first
    assert hint == f"agentkit: hint: write the whole URL, such as {whole}"


def test_agentkit_base_url_without_a_scheme_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKIT_BASE_URL", "127.0.0.1:8131/v1")
    assert main(["chat", "Hi"]) == 2
    first, hint = capsys.readouterr().err.splitlines()
    assert "AGENTKIT_BASE_URL must be an http:// or https:// URL" in first
    assert (
        hint
        == "agentkit: hint: set AGENTKIT_BASE_URL to the whole URL, such as http://127.0.0.1:8131/v1"
    )


def test_a_dashscope_key_that_fails_points_at_the_region(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    server.queue(Reply.invalid_api_key())
    argv = ["chat", "--provider", "dashscope", "--base-url", server.base_url, "Hi"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    first, hint = err.splitlines()
    assert first.startswith("agentkit: error: authentication failed: Incorrect API key")
    assert "--region cn" in hint
    assert SECRET not in err


def test_a_parameter_the_provider_refuses_is_named_as_its_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)  # checked before anything is sent
    assert main(["chat", "--temperature", "5", "Hi"]) == 2
    first, hint = capsys.readouterr().err.splitlines()
    assert first == (
        "agentkit: error: invalid option: --temperature must be in [0, 2) for DashScope, got 5.0"
    )
    assert hint.startswith("agentkit: hint: change --temperature")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.hang(), "agentkit: error: timed out waiting"),  # not "timed out: timed out"
        (Reply.text("cut short", finish_reason="length"), "agentkit: error: answer cut at the"),
    ],
)
def test_error_lines_say_it_once_in_the_cli_s_words(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str], reply: Reply, expected: str
) -> None:
    server.queue(reply)
    argv = ["chat", "--base-url", server.base_url, "--max-retries", "0", "--timeout", "0.3", "Hi"]
    assert main(argv) == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(expected)
    assert "on_truncated" not in first  # the Python API's advice, not the CLI's


def test_a_reader_that_leaves_early_ends_the_command_quietly(server: ScriptedServer) -> None:
    # `agentkit chat ... | head -c 1`: no BrokenPipeError line, no traceback, exit 141.
    # Sixty words 0.05 s apart: the reader has left long before the answer is over.
    server.queue(Reply.text("word " * 60, chunk_size=5).with_(chunk_delay=0.05))
    command = [sys.executable, "-m", "agentkit.cli", "chat", "--base-url", server.base_url]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    with subprocess.Popen(
        [*command, "--no-tools", "Talk"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(1) == b"w"
        process.stdout.close()  # the reader leaves
        err = process.stderr.read().decode()
        code = process.wait(timeout=30)
    assert code == 141, err
    assert err == ""  # no BrokenPipeError, no traceback, no "Exception ignored"


def test_an_empty_pipe_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--base-url", "http://127.0.0.1:9/v1"], stdin=io.StringIO("  \n")) == 2
    assert "no prompt" in capsys.readouterr().err


# --- interactive chat -------------------------------------------------------------------


def scripted_input(*lines: str | type[BaseException]) -> Callable[[str], str]:
    """An ``input()`` stand-in: returns the lines, raises the exceptions, then EOF."""
    pending = list(lines)

    def read_line(prompt: str) -> str:
        if not pending:
            raise EOFError
        item = pending.pop(0)
        if isinstance(item, str):
            return item
        raise item()

    return read_line


def echo_history(request: RecordedRequest) -> Reply:
    """A model that answers with the user messages it was sent, joined by " | "."""
    said = [m["content"] for m in request.messages if m["role"] == "user"]
    return Reply.text(" | ".join(said))


def test_the_repl_keeps_history_and_obeys_its_commands(server: ScriptedServer) -> None:
    server.respond_with(echo_history)
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err)
    with Agent("qwen-plus", BUILTIN_TOOLS, base_url=server.base_url) as agent:
        code = repl(
            agent,
            console,
            scripted_input(
                "first", "second", "/tools", KeyboardInterrupt, "/reset", "", "third", "/nope"
            ),
        )
    assert code == 0
    assert out.getvalue().splitlines() == ["first", "first | second", "third"]
    assert "get_current_time: Get the current date and time" in err.getvalue()
    assert "(history cleared)" in err.getvalue()
    assert "Ctrl-D or /exit to leave" in err.getvalue()  # Ctrl-C at the prompt: stay
    assert "unknown command /nope" in err.getvalue()
    assert len(server.requests) == 3  # commands and the empty line sent nothing


def test_the_repl_exit_command_leaves(server: ScriptedServer) -> None:
    console = Console(io.StringIO(), io.StringIO())
    with Agent("qwen-plus", base_url=server.base_url) as agent:
        assert repl(agent, console, scripted_input("/exit", "never asked")) == 0
    assert server.requests == []


def test_an_error_in_the_repl_is_shown_and_the_chat_goes_on(server: ScriptedServer) -> None:
    server.queue(Reply.error(400, "bad request, scripted"))
    server.respond_with(echo_history)
    out, err = io.StringIO(), io.StringIO()
    with Agent("qwen-plus", base_url=server.base_url) as agent:
        assert repl(agent, Console(out, err), scripted_input("fails", "works")) == 0
    assert "agentkit: error: request refused: bad request, scripted" in err.getvalue()
    assert out.getvalue() == "works\n"  # the failed question is not in the history


def test_a_limit_hit_in_the_repl_names_the_value_in_use(server: ScriptedServer) -> None:
    from agentkit.cli._arguments import parse_arguments

    server.respond_with(always(Reply.tool_calls(("get_current_time", {}))))
    args = parse_arguments(["chat", "--max-turns", "1"])
    out, err = io.StringIO(), io.StringIO()
    with Agent(
        "qwen-plus", BUILTIN_TOOLS, base_url=server.base_url, limits=RunLimits(max_turns=1)
    ) as agent:
        assert repl(agent, Console(out, err), scripted_input("Loop!"), args=args) == 0
    assert "agentkit: hint: raise --max-turns (now 1)" in err.getvalue()


class _InterruptAfterFirstWord(Console):
    """Ctrl-C arriving while the answer is printed (KeyboardInterrupt in the main thread)."""

    armed = True

    def text(self, text: str) -> None:
        super().text(text)
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def test_ctrl_c_mid_answer_returns_to_the_prompt_without_that_question(
    server: ScriptedServer,
) -> None:
    # The answer stalls after its first words, for longer than the test may take: only
    # the Ctrl-C ends it.
    server.queue(Reply.text("a long answer that is never finished " * 20).with_(hang_after=3))
    server.respond_with(echo_history)
    out, err = io.StringIO(), io.StringIO()
    with Agent("qwen-plus", base_url=server.base_url) as agent:
        console = _InterruptAfterFirstWord(out, err)
        assert repl(agent, console, scripted_input("stop me", "next")) == 0
    assert "(stopped; that question is left out of the history)" in err.getvalue()
    assert out.getvalue().splitlines() == ["a", "next"]
    assert server.requests[1].messages == [{"role": "user", "content": "next"}]


class Terminal:
    """``agentkit chat`` in a pseudo-terminal, so it runs interactively as for a person."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
        environment.update(PYTHONIOENCODING="utf-8", TERM="dumb", NO_COLOR="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agentkit.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=environment,
            cwd=REPO,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = ""
        self.position = 0  # where the next expect() starts looking

    def expect(self, text: str, timeout: float = 45) -> None:
        """Read the terminal until ``text`` shows after the last match, or fail."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.position :]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"{text!r} never showed; the terminal shows:\n{self.seen}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"{text!r} never showed before exit:\n{self.seen}")
            self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        self.position = self.seen.index(text, self.position) + len(text)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(45)
        os.close(self.master)


@pytest.fixture
def terminal_factory() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*args: str) -> Terminal:
        opened.append(Terminal(*args))
        return opened[-1]

    yield open_terminal
    for terminal in opened:
        terminal.close()


def test_interactive_chat_in_a_terminal_ctrl_c_and_ctrl_d(
    server: ScriptedServer, terminal_factory: Callable[..., Terminal]
) -> None:
    slow = "words keep coming slowly " * 40
    # It stalls after "words keep" for longer than the test may take: only Ctrl-C ends it.
    server.queue(Reply.text(slow).with_(hang_after=4), Reply.text("Second answer."))
    term = terminal_factory("chat", "--base-url", server.base_url, "--no-tools")
    term.expect("Ctrl-D leaves")
    term.expect("> ")
    term.type("tell me everything\n")
    term.expect("words keep")
    os.kill(term.process.pid, signal.SIGINT)  # what Ctrl-C sends
    term.expect("(stopped; that question is left out of the history)")
    term.expect("> ")
    term.type("and now?\n")
    term.expect("Second answer.")
    term.expect("> ")
    term.type("\x04")  # Ctrl-D
    assert term.process.wait(45) == 0
    assert server.requests[1].messages == [{"role": "user", "content": "and now?"}]


SLOW_TOOL = '''
import sys, time

from agentkit import tool


@tool
def slow() -> str:
    """A tool that takes longer than the test may."""
    print("the slow tool started", file=sys.stderr, flush=True)
    time.sleep(600)
    return "done"
'''


def test_ctrl_c_in_a_one_shot_run_exits_130_without_waiting_for_the_tool(
    server: ScriptedServer, tmp_path: Path
) -> None:
    (tmp_path / "slow_tools.py").write_text(SLOW_TOOL, encoding="utf-8")
    server.queue(Reply.tool_calls(("slow", {})))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentkit.cli",
            "chat",
            "--base-url",
            server.base_url,
            "--tools",
            str(tmp_path / "slow_tools.py"),
            "Go slowly",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=REPO,
    )
    try:
        assert process.stderr is not None
        before = ""
        while "the slow tool started" not in before:  # the child says when: no polling
            line = process.stderr.readline()
            assert line, f"the CLI ended before the tool started: {before}"
            before += line
        process.send_signal(signal.SIGINT)
        out, err = process.communicate()  # the 600 s tool thread is not waited for
    finally:
        process.kill()
    assert process.returncode == 130
    assert "agentkit: interrupted after" in err
    assert "Traceback" not in err
    assert out == ""


# --- agentkit demo --------------------------------------------------------------------------


def test_demo_runs_the_weather_and_time_conversation_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKIT_GEOCODING_URL", "http://example.invalid/kept")
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)  # no key needed
    assert main(["demo", "--fast"]) == 0
    captured = capsys.readouterr()
    answer = captured.out
    assert re.match(r"It is \d+°C and [\w ]+ in Singapore, scripted demo weather", answer)
    assert re.search(r"It is \w+ [\d-]+ [\d:]+ in Asia/Singapore \(UTC\+08:00\)\.\n$", answer)
    err = captured.err
    assert "the model is a scripted stand-in for Qwen, no network" in err
    assert "the weather they report comes from a scripted source" in err
    # both calls in round 1: they ran in parallel
    round_1 = err[err.index("round 1") : err.index("round 2")]
    assert 'get_current_weather({"location": "Singapore"})' in round_1
    assert 'get_current_time({"timezone": "Asia/Singapore"})' in round_1
    assert "not a real reading" in round_1  # the real tool, asking the scripted source
    assert "round 3" not in err
    assert "2 model calls · 2 tool calls" in err
    assert 'Ask your own: agentkit demo "' in err and "export DASHSCOPE_API_KEY" in err
    # the weather tool's endpoints are the user's again afterwards
    assert os.environ["AGENTKIT_GEOCODING_URL"] == "http://example.invalid/kept"
    assert "AGENTKIT_FORECAST_URL" not in os.environ


NO_NETWORK = """
import socket, sys

def refuse(address):
    host = address[0] if isinstance(address, tuple) else address
    if host not in ("127.0.0.1", "::1", "localhost"):
        sys.stderr.write(f"NETWORK ATTEMPT {address}\\n")
        raise OSError("network disabled by the test")

connect = socket.socket.connect
def guarded(self, address):
    refuse(address)
    return connect(self, address)
socket.socket.connect = guarded
resolve = socket.getaddrinfo
def guarded_resolve(host, *args, **kwargs):
    refuse((host,))
    return resolve(host, *args, **kwargs)
socket.getaddrinfo = guarded_resolve

from agentkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_demo_touches_no_network_and_needs_no_key() -> None:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "OPENAI_"))
    }
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, "demo", "--fast", "Is it raining in Hangzhou?"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "NETWORK ATTEMPT" not in done.stderr
    assert "in Hangzhou, scripted demo weather, not a real reading" in done.stdout


def test_demo_paces_its_stream_like_a_real_model(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["demo", "What time is it in Tokyo?"]) == 0
    elapsed = time.perf_counter() - started
    assert elapsed > 0.5  # two paced rounds: visible, not instant
    assert "in Asia/Tokyo" in capsys.readouterr().out


def test_the_console_script_runs_the_demo() -> None:
    script = shutil.which("agentkit", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the agentkit console script is not installed next to this Python")
    done = subprocess.run([script, "demo", "--fast"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Asia/Singapore" in done.stdout


def request_body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"messages": list(messages), "tools": [t.to_openai() for t in BUILTIN_TOOLS]}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def called(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(arguments)}
    call = {"id": "c1", "type": "function", "function": function}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


def tool_said(text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": "c1", "content": text}


def test_the_scripted_model_calls_both_tools_in_one_round_then_answers() -> None:
    question = user("What's the weather in Paris, and what time is it there?")
    weather = {"location": "Paris"}
    assert scripted_qwen(request_body(question)) == {
        "tool_calls": [
            {"name": "get_current_weather", "arguments": json.dumps(weather)},
            {"name": "get_current_time", "arguments": json.dumps({"timezone": "Europe/Paris"})},
        ]
    }
    # a call already made is not asked for again
    after_weather = [question, called("get_current_weather", weather), tool_said("Sunny.")]
    assert scripted_qwen(request_body(*after_weather)) == {
        "tool_calls": [
            {"name": "get_current_time", "arguments": json.dumps({"timezone": "Europe/Paris"})}
        ]
    }
    done = [*after_weather, called("get_current_time", {}), tool_said("It is noon.")]
    assert scripted_qwen(request_body(*done)) == {"content": "Sunny. It is noon."}


def test_the_scripted_model_follows_the_conversation() -> None:
    earlier = [
        user("Is it sunny in Beijing?"),
        called("get_current_weather", {"location": "Beijing"}),
        tool_said("Clear."),
        {"role": "assistant", "content": "Clear."},
    ]
    follow_up = scripted_qwen(request_body(*earlier, user("And what time is it there?")))
    assert follow_up["tool_calls"][0]["arguments"] == json.dumps({"timezone": "Asia/Shanghai"})
    # no place at all: the local time
    assert (
        scripted_qwen(request_body(user("What time is it?")))["tool_calls"][0]["arguments"] == "{}"
    )
    # nothing it can do: it says what it is
    reply = scripted_qwen(request_body(user("Write me a poem")))
    assert "scripted stand-in for Qwen" in reply["content"]
    # tools not offered: it does not call them
    assert "content" in scripted_qwen({"messages": [user("What time is it?")]})


# --- approvals ----------------------------------------------------------------------------

REFUND_TOOL = '''
from agentkit import tool

REFUNDS = []


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    REFUNDS.append(order_id)
    return f"refunded order {order_id}"
'''


class TerminalInput(io.StringIO):
    """Typed answers on a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("options", "typed", "runs"),
    [((), "y\n", True), ((), "n\n", False), (("--approve-all",), "", True)],
)
def test_approval_is_asked_on_the_terminal(
    server: ScriptedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
    typed: str,
    runs: bool,
) -> None:
    (tmp_path / "refunds.py").write_text(REFUND_TOOL, encoding="utf-8")
    server.queue(Reply.tool_calls(("refund", {"order_id": 7})))
    server.respond_with(answer_with_tool_result)
    code = main(
        [
            "chat",
            "--base-url",
            server.base_url,
            "--tools",
            str(tmp_path / "refunds.py"),
            *options,
            "Refund order 7",
        ],
        stdin=TerminalInput(typed),
    )
    assert code == 0
    result = last_tool_result(server.requests[1])
    err = capsys.readouterr().err
    if runs:
        assert result == "refunded order 7"
    else:
        assert result.startswith("The call to refund was refused")
    assert ("run it? [y/N]" in err) is not bool(options)


def test_approval_is_refused_when_nobody_can_be_asked(
    server: ScriptedServer, tmp_path: Path
) -> None:
    (tmp_path / "refunds.py").write_text(REFUND_TOOL, encoding="utf-8")
    server.queue(Reply.tool_calls(("refund", {"order_id": 7})))
    server.respond_with(answer_with_tool_result)
    done = run_cli(
        "chat",
        "--base-url",
        server.base_url,
        "--tools",
        str(tmp_path / "refunds.py"),
        input="Refund order 7",
    )
    assert done.returncode == 0, done.stderr
    assert last_tool_result(server.requests[1]).startswith("The call to refund was refused")
    assert "stdin is not a terminal to ask on: refused (--approve-all runs" in done.stderr
    # shown as a call that did not run, not as one that ran and failed
    assert "✗ refund not run: The call to refund was refused" in done.stderr
    assert "← refund" not in done.stderr


# --- what the console shows -----------------------------------------------------------------


def test_verbose_shows_reasoning_rounds_and_whole_tool_output(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    long_time = "It is teatime. " * 30
    server.queue(
        Reply.tool_calls(("get_current_time", {})),
        Reply.text(
            "Teatime.",
            reasoning="The tool says tea.",
            usage={"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        ),
    )
    for _ in ("short", "verbose"):
        server.queue(Reply.tool_calls(("long", {})), Reply.text("Done."))

    @tool
    def long() -> str:
        """A long answer."""
        return long_time

    console_out, console_err = io.StringIO(), io.StringIO()
    with Agent("qwen-plus", BUILTIN_TOOLS, base_url=server.base_url) as agent:
        play(agent, "Time?", Console(console_out, console_err, verbose=True))
    err = console_err.getvalue()
    assert "The tool says tea.\n" in err  # the reasoning, apart from the answer
    assert "[round 2: stop · 11 in · 3 out]" in err
    assert console_out.getvalue() == "Teatime.\n"

    for verbose in (False, True):
        shown = io.StringIO()
        with Agent("qwen-plus", [long], base_url=server.base_url) as agent:
            play(agent, "Long?", Console(io.StringIO(), shown, verbose=verbose))
        line = next(x for x in shown.getvalue().splitlines() if "long " in x and "ms:" in x)
        assert line.endswith("…") is not verbose  # cut short unless --verbose
        assert (long_time.strip() in line) is verbose


def test_the_answer_label_is_written_once_per_answer() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, label="qwen › ")
    for piece in ("First line\n", "second ", "line."):
        console.text(piece)
    console.end_answer()
    console.text("Next answer.")
    console.end_answer()
    assert out.getvalue() == "First line\nsecond line.\nNext answer.\n"
    assert err.getvalue() == "qwen › qwen › "


def test_json_needs_a_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["chat", "--json", "--base-url", "http://127.0.0.1:9/v1"], stdin=TerminalInput(""))
        == 2
    )
    assert "--json prints one result" in capsys.readouterr().err


def test_the_cli_shows_a_handoff_and_the_specialists_answer(server: ScriptedServer) -> None:
    # A transfer that was made is the line saying who takes over, not a call "not run"; a
    # second transfer in the same round was refused, and is shown as not run.
    server.queue(
        Reply.tool_calls(("transfer_to_billing", {}, "t1"), ("transfer_to_tech", {}, "t2")),
        Reply.text("Billing here."),
    )
    options: dict[str, Any] = {"base_url": server.base_url}
    billing = Agent("qwen-plus", [], "You handle billing.", name="billing", **options)
    tech = Agent("qwen-plus", [], "You fix lines.", name="tech", **options)
    triage = Agent("qwen-plus", [], "Route.", name="triage", handoffs=[billing, tech], **options)
    out, err = io.StringIO(), io.StringIO()
    result = play(triage, "Charged twice", Console(out, err))
    assert result.agent == "billing" and out.getvalue() == "Billing here.\n"
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("  x transfer_to_tech not run: ")
    assert lines[1] == "  => billing takes over from triage"
    assert len(lines) == 2


NESTED_BOT = '''
import os
from agentkit import Agent, tool

booked = []

@tool(requires_approval=True)
def book_flight(flight: str) -> str:
    """Book a flight."""
    booked.append(flight)
    return f"booked {flight}"

url = os.environ["BOT_MODEL_URL"]
flights = Agent("flights", [book_flight], "You book flights.", name="flights",
                base_url=url, api_key="sk-model-key-123456")
planner = Agent("planner", [flights.as_tool()], "You plan trips.", name="planner",
                base_url=url, api_key="sk-model-key-123456")
'''


@pytest.mark.parametrize(("options", "typed"), [(("--approve-all",), ""), ((), "y\ny\n")])
def test_chat_settles_approvals_asked_inside_an_agent_tool(
    server: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
    typed: str,
) -> None:
    # The sub-agent pauses twice in a row (two bookings, one per round): chat decides each
    # call by its key (call_0/call_0), goes on through both pauses, and shows the answer.
    def answer(request: RecordedRequest) -> Reply:
        body = request.json()
        messages = body["messages"]
        if body["model"] == "planner":
            if messages[-1]["role"] == "user":
                return Reply.tool_calls(("flights", {"request": "Oslo and back"}, "call_0"))
            return Reply.text(f"Planned: {messages[-1]['content']}")
        booked = [m for m in messages if m["role"] == "tool"]
        if len(booked) < 2:
            flight = "SK1" if not booked else "SK2"
            return Reply.tool_calls(("book_flight", {"flight": flight}, f"call_{len(booked)}"))
        return Reply.text("Both booked.")

    server.respond_with(answer)
    (tmp_path / "trip.py").write_text(NESTED_BOT, encoding="utf-8")
    monkeypatch.setenv("BOT_MODEL_URL", server.base_url)
    monkeypatch.setattr(sys, "stdin", TerminalInput(typed))  # what input() reads
    code = main(
        ["chat", "--agent", f"{tmp_path / 'trip.py'}:planner", *options, "Book Oslo"],
        stdin=TerminalInput(typed),
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip().splitlines()[-1].endswith("Planned: Both booked.")
    assert "None" not in captured.out  # no paused result printed as an answer
    told = [m["content"] for m in server.requests[-2].json()["messages"] if m["role"] == "tool"]
    assert told == ["booked SK1", "booked SK2"]
    assert "[flights] waiting for approval: book_flight" in captured.err
    if not options:  # each pause's call was asked, saying which agent asks it
        assert captured.err.count("? [flights] book_flight") == 2
