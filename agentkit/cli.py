"""The ``agentkit`` command: ``chat``, ``tools`` and ``demo``.

Only the standard library is imported at start-up; the client, the loop and the tools load
when a command needs them, so ``agentkit --help`` answers at once.

Exit codes: 0 success, 1 the run failed (API, network, run limits), 2 usage or
configuration (bad option, a tools file that does not load, a missing API key),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .agent import Agent
    from .client import ChatClient
    from .function_tool import Tool
    from .loop import PlannedCall
    from .result import RunResult

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
"""The command did what was asked."""
EXIT_ERROR = 1
"""The run failed: an API or network error, or a run limit such as ``--max-turns``."""
EXIT_USAGE = 2
"""Usage or configuration: a bad option, tools that do not load, a missing API key."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT, as shells report it)."""

_PROG = "agentkit"


class _UsageError(Exception):
    """A problem with what the user typed; reported with exit code 2."""


# --- arguments ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Multi-round function calling against OpenAI-compatible Chat APIs.",
        epilog="Exit codes: 0 ok, 1 the run failed, 2 usage or configuration, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    chat = commands.add_parser(
        "chat",
        help="chat with a model that can call tools",
        description="Ask once (PROMPT, or text piped on stdin) or chat interactively.",
    )
    chat.add_argument("prompt", nargs="?", metavar="PROMPT", help="ask once and exit")
    conn = chat.add_argument_group("model and provider")
    conn.add_argument("-m", "--model", default="qwen-plus", help="model name (qwen-plus)")
    conn.add_argument("--base-url", help="any OpenAI-compatible endpoint (vLLM, Ollama, ...)")
    conn.add_argument(
        "--provider",
        metavar="PRESET",
        help="preset: dashscope, dashscope-intl, dashscope-cn, openai",
    )
    conn.add_argument(
        "--region",
        choices=("intl", "cn", "singapore", "beijing"),
        help="DashScope region: intl = singapore (the default), cn = beijing",
    )
    conn.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="read the API key from VAR (default: the preset's, e.g. DASHSCOPE_API_KEY)",
    )
    conn.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="wait this long for the server (600)"
    )
    conn.add_argument(
        "--max-retries", type=int, metavar="N", help="retries of a failed request (2)"
    )
    run = chat.add_argument_group("the run")
    run.add_argument(
        "-t",
        "--tools",
        action="append",
        metavar="PATH_OR_MODULE",
        help="a .py file or a module whose Tool objects the model may call (repeatable; "
        "default: the built-in weather and time tools)",
    )
    run.add_argument("--no-tools", action="store_true", help="offer the model no tools")
    run.add_argument(
        "--approve-all",
        action="store_true",
        help="run requires_approval tools without asking (default: ask in a terminal, "
        "refuse otherwise)",
    )
    run.add_argument("-s", "--system", metavar="TEXT", help="system instructions")
    run.add_argument(
        "--max-turns", type=int, default=10, metavar="N", help="model calls per answer (10)"
    )
    params = chat.add_argument_group("sampling (sent only when given)")
    params.add_argument("--temperature", type=float, metavar="T", help="randomness, 0 to 2")
    params.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling, 0 to 1")
    params.add_argument("--max-tokens", type=int, metavar="N", help="longest answer, in tokens")
    params.add_argument("--presence-penalty", type=float, metavar="X", help="-2 to 2")
    params.add_argument("--seed", type=int, metavar="N", help="for repeatable sampling")
    params.add_argument("--stop", action="append", metavar="TEXT", help="stop text (repeatable)")
    out = chat.add_argument_group("output")
    out.add_argument("--no-stream", action="store_true", help="ask for whole answers")
    out.add_argument("--json", action="store_true", help="print the RunResult as JSON")
    _add_output_flags(out)

    tools = commands.add_parser(
        "tools",
        help="list tools and the JSON schema each one sends",
        description="Show what the model sees: each tool's to_openai() JSON.",
    )
    tools.add_argument(
        "sources",
        nargs="*",
        metavar="PATH_OR_MODULE",
        help="a .py file or module (default: the built-in tools)",
    )
    tools.add_argument("--names", action="store_true", help="only list the names")
    tools.add_argument("--debug", action="store_true", help="tracebacks and debug logs")

    demo = commands.add_parser(
        "demo",
        help="the weather-and-time bot, offline: a scripted model, real tools and loop",
        description="Runs the loop and the real tools against a scripted stand-in for Qwen "
        "served on loopback: no key and no network needed.",
    )
    demo.add_argument("prompt", nargs="?", metavar="PROMPT", help="your own question")
    demo.add_argument("--fast", action="store_true", help="do not pace the scripted stream")
    _add_output_flags(demo)
    return parser


def _add_output_flags(group: argparse._ActionsContainer) -> None:
    group.add_argument("-v", "--verbose", action="store_true", help="show rounds, usage, reasoning")
    group.add_argument("--debug", action="store_true", help="tracebacks and debug logs")


def _version() -> str:
    from . import __version__

    return __version__


# --- loading tools --------------------------------------------------------------------------


def load_tools(sources: Sequence[str]) -> list[Tool[..., Any]]:
    """Every ``Tool`` defined at module level in each source, a ``.py`` path or a module.

    A module's tools come in definition order; a name defined twice is an error, because
    the model could not tell the two apart.
    """
    from .function_tool import Tool

    found: dict[str, Tool[..., Any]] = {}
    for source in sources:
        try:
            module = _import_source(source)
        except _UsageError:
            raise
        except Exception as exc:  # the user's module failed while importing
            raise _UsageError(f"--tools {source}: {type(exc).__name__}: {exc}") from exc
        tools = [value for value in vars(module).values() if isinstance(value, Tool)]
        if not tools:
            raise _UsageError(f"--tools {source}: defines no tools (decorate functions with @tool)")
        for found_tool in tools:
            other = found.get(found_tool.name)
            if other is not None and other is not found_tool:
                raise _UsageError(f"two tools are named {found_tool.name!r}; rename one")
            found[found_tool.name] = found_tool
    return list(found.values())


def _import_source(source: str) -> ModuleType:
    import importlib
    import importlib.util

    if source.endswith(".py") or os.sep in source or "/" in source:
        path = os.path.abspath(source)
        if not os.path.isfile(path):
            raise _UsageError(f"--tools {source}: no such file")
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # like `python file.py`: its neighbours import
        name = f"_agentkit_tools_{len(sys.modules)}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise _UsageError(f"--tools {source}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pydantic look their module up
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current folder are found
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name and source.startswith(exc.name):
            raise _UsageError(f"--tools {source}: no such file or module") from exc
        raise


def _builtin_tools() -> list[Tool[..., Any]]:
    import importlib

    # imported by name: agentkit.tools lives in tools/ (mapped at install), where mypy
    # checking agentkit/ cannot follow it
    builtin = importlib.import_module("agentkit.tools")
    return list(builtin.BUILTIN_TOOLS)


# --- showing a run --------------------------------------------------------------------------


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
        self._open_line = False  # the answer on ``out`` does not end with a newline yet
        self._answering = False  # text of the current answer was written
        self._reasoning = False
        color = err.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self._dim, self._red, self._reset = (
            ("\033[2m", "\033[31m", "\033[0m") if color else ("",) * 3
        )
        encoding = (getattr(err, "encoding", None) or "").lower().replace("-", "")
        self.fancy = encoding == "utf8"  # arrows and rules, or plain ASCII
        self._call, self._back = ("→", "←") if self.fancy else ("->", "<-")

    def text(self, text: str) -> None:
        """A piece of the answer."""
        if not self.show_text or not text:
            return
        self._end_reasoning()
        if self.label and not self._answering:
            self.err.write(self.label)
            self.err.flush()
        self._answering = True
        self.out.write(text)
        self.out.flush()
        self._open_line = not text.endswith("\n")

    def reasoning(self, text: str) -> None:
        """A piece of the model's reasoning; shown, dimmed, with ``--verbose`` only."""
        if self.verbose and text:
            self.err.write(f"{self._dim}{text}{self._reset}")
            self.err.flush()
            self._reasoning = True

    def note(self, line: str) -> None:
        """A line about the run, on ``err``."""
        self._end_reasoning()
        if self._open_line and self.out.isatty():
            # keep the terminal tidy; when stdout is a file the answer stays untouched
            self.out.write("\n")
            self.out.flush()
            self._open_line = False
        self.err.write(f"{self._dim}{line}{self._reset}\n")
        self.err.flush()

    def tool_started(self, name: str, arguments: str) -> None:
        """A tool call is about to run."""
        self.note(f"  {self._call} {name}({_short(_compact_json(arguments), 400, self.verbose)})")

    def tool_result(self, name: str, output: str, error: str | None, duration: float) -> None:
        """A tool call ended."""
        took = f"{duration * 1000:.0f} ms"
        if error is not None:
            shown = _short(output or error, 200, self.verbose)
            self.note(f"  {self._back} {name} failed in {took}: {self._red}{shown}{self._dim}")
        else:
            self.note(f"  {self._back} {name} {took}: {_short(output, 200, self.verbose)}")

    def round_finished(self, turn: int, usage: Any, finish_reason: str | None) -> None:
        """One model call finished; shown with ``--verbose``."""
        if self.verbose:
            tokens = f"{usage.prompt_tokens} in, {usage.completion_tokens} out"
            self.note(f"  [round {turn}: {finish_reason or 'no finish reason'}, {tokens}]")

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


def _compact_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text or "{}"), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        return text


def _short(text: str, limit: int, verbose: bool) -> str:
    text = " ".join(text.split())
    if verbose or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def play(
    agent: Agent[str], conversation: str | list[dict[str, Any]], console: Console
) -> RunResult[Any]:
    """Run ``agent`` on ``conversation``, showing each event on ``console`` as it comes."""
    from .events import (
        ModelRoundFinished,
        ReasoningDelta,
        RunFinished,
        TextDelta,
        ToolCallStarted,
        ToolResult,
    )

    result: RunResult[Any] | None = None
    events = agent.stream(conversation)
    try:
        for event in events:
            if isinstance(event, TextDelta):
                console.text(event.text)
            elif isinstance(event, ReasoningDelta):
                console.reasoning(event.text)
            elif isinstance(event, ToolCallStarted):
                console.tool_started(event.name, event.arguments)
            elif isinstance(event, ToolResult):
                console.tool_result(event.name, event.output, event.error, event.duration)
            elif isinstance(event, ModelRoundFinished):
                if event.message.get("tool_calls"):
                    console.end_answer()  # the next round's text starts on a new line
                console.round_finished(event.turn, event.usage, event.finish_reason)
            elif isinstance(event, RunFinished):
                result = event.result
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # Ctrl-C mid-answer: stop the stream and the tools now
        console.end_answer()
    if result is None:  # pragma: no cover - the loop always ends with RunFinished
        raise RuntimeError("the run ended without a result")
    return result


def ask(
    agent: Agent[str], conversation: str | list[dict[str, Any]], console: Console, *, stream: bool
) -> RunResult[Any]:
    """One run: streamed event by event, or (``stream=False``) whole answers per round."""
    if stream:
        return play(agent, conversation, console)
    result = agent.run(conversation)
    console.text(str(result.output))
    console.end_answer()
    return result


# --- errors ---------------------------------------------------------------------------------


def describe_error(exc: BaseException, args: argparse.Namespace | None = None) -> tuple[str, str]:
    """One line saying what went wrong and one hint saying what to do about it."""
    from . import errors as e

    message = str(exc) or type(exc).__name__
    max_turns = getattr(args, "max_turns", None)
    hints: list[tuple[type[BaseException], str, str]] = [
        (
            e.QuotaExceededError,
            "quota exceeded",
            "this is a quota or billing error, not a rate "
            "limit: check your plan and billing in the provider's console; retrying will not help",
        ),
        (e.RateLimitError, "rate limited", "too many requests for now: wait a little and retry"),
        (
            e.AuthenticationError,
            "authentication failed",
            "check the API key (DashScope keys "
            "belong to one region: Singapore keys fail in Beijing and back)",
        ),
        (
            e.PermissionDeniedError,
            "permission denied",
            "this key may not use this model: check --model and your account's access",
        ),
        (e.NotFoundError, "not found", "check --model and --base-url"),
        (e.ContentModerationError, "refused by content moderation", "rephrase the request"),
        (e.BadRequestError, "request refused", "check --model and the sampling options"),
        (e.ServerError, "server error", "the provider failed; try again later"),
        (
            e.APITimeoutError,
            "timed out",
            "the server is slow or unreachable: check --base-url, or raise --timeout",
        ),
        (e.APIConnectionError, "cannot connect", "check --base-url and your network"),
        (e.IncompleteStreamError, "the answer stream was cut", "retry, or use --no-stream"),
        (
            e.InvalidResponseError,
            "invalid answer from the server",
            "check that --base-url points at an OpenAI-compatible API (it usually ends in /v1)",
        ),
        (e.MaxTurnsExceeded, "no final answer", f"raise --max-turns (now {max_turns})"),
        (e.OutputTruncatedError, "answer cut at the token limit", "raise --max-tokens"),
        (e.RepeatedToolCallError, "the model repeats itself", "rephrase, or try another model"),
        (e.ToolFailureLimitExceeded, "a tool keeps failing", "run with --verbose to see why"),
        (e.ToolCallLimitExceeded, "too many tool calls", "ask for less in one question"),
        (e.RequestValidationError, "invalid option", "see `agentkit chat --help`"),
        (e.ToolDefinitionError, "cannot use a tool", "fix the function's signature"),
        (e.ConfigurationError, "", _configuration_hint(message, args)),
    ]
    for cls, title, hint in hints:
        if isinstance(exc, cls):
            return (f"{title}: {message}" if title else message), hint
    if isinstance(exc, e.AgentKitError):
        return message, "run again with --debug for details"
    return f"{type(exc).__name__}: {message}", "run again with --debug for the traceback"


def _configuration_hint(message: str, args: argparse.Namespace | None) -> str:
    if "key" in message.lower():
        named = re.search(r"\b([A-Z][A-Z0-9_]*_KEY[A-Z0-9_]*)\b", message)
        variable = named.group(1) if named else "DASHSCOPE_API_KEY"
        return (
            f"set {variable} (export {variable}=sk-...), or pass --base-url for a local "
            "server that needs no key; `agentkit demo` runs with no key at all"
        )
    return "see `agentkit chat --help`"


def _exit_code(exc: BaseException) -> int:
    from .errors import ConfigurationError, RequestValidationError, ToolDefinitionError

    if isinstance(exc, _UsageError | ConfigurationError | RequestValidationError):
        return EXIT_USAGE
    if isinstance(exc, ToolDefinitionError):
        return EXIT_USAGE
    return EXIT_ERROR


def report_error(exc: BaseException, err: TextIO, args: argparse.Namespace | None) -> int:
    """Print the error as one line and a hint on ``err``; return the exit code."""
    if isinstance(exc, _UsageError):
        err.write(f"{_PROG}: error: {exc}\n")
        return EXIT_USAGE
    line, hint = describe_error(exc, args)
    err.write(f"{_PROG}: error: {line}\n{_PROG}: hint: {hint}\n")
    err.flush()
    return _exit_code(exc)


# --- chat -----------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> ChatClient:
    from .client import ChatClient

    options: dict[str, Any] = {}
    if args.timeout is not None:
        options["read_timeout"] = args.timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    return ChatClient(args.base_url, _api_key(args), provider=_preset(args), **options)


def _preset(args: argparse.Namespace) -> str | None:
    if args.provider:
        return str(args.provider)
    return f"dashscope-{args.region}" if args.region else None  # e.g. dashscope-cn


def _build_agent(
    args: argparse.Namespace, client: ChatClient, console: Console, stdin: TextIO
) -> Agent[str]:
    from .agent import Agent, Hooks

    if args.no_tools:
        tools: list[Tool[..., Any]] = []
    else:
        tools = load_tools(args.tools) if args.tools else _builtin_tools()
    params = {
        name: getattr(args, name)
        for name in ("temperature", "top_p", "max_tokens", "presence_penalty", "seed", "stop")
        if getattr(args, name) is not None
    }
    hooks = None
    if args.no_stream:  # Agent.run yields no events: show tool activity from the hooks
        hooks = Hooks(
            before_tool_call=lambda call: console.tool_started(call.name, call.arguments),
            after_tool_call=lambda call, done: console.tool_result(
                done.name, done.output, done.error, done.duration
            ),
        )
    approve: Callable[[PlannedCall], bool] | None = None
    if args.approve_all:
        approve = _approve_all
    elif stdin.isatty():
        approve = functools.partial(_ask_approval, console, stdin)
    return Agent(
        args.model,
        tools,
        args.system,
        client=client,
        max_turns=args.max_turns,
        hooks=hooks,
        approve=approve,
        **params,
    )


def _approve_all(call: PlannedCall) -> bool:
    return True


def _ask_approval(console: Console, stdin: TextIO, call: PlannedCall) -> bool:
    """Ask on the terminal whether a ``requires_approval`` tool call may run."""
    console.note(f"  ? {call.name}({_compact_json(call.arguments)}) needs your approval")
    console.err.write("    run it? [y/N] ")
    console.err.flush()
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _api_key(args: argparse.Namespace) -> str | None:
    """The key from ``--api-key-env``, or ``None`` to let the provider's variable decide.

    A missing key is reported here in the CLI's words (which variable to set), before
    anything is sent.
    """
    from .errors import ConfigurationError
    from .providers import resolve_api_key, resolve_provider

    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "").strip()
        if not key:
            raise ConfigurationError(f"no API key: {args.api_key_env} is not set")
        return key
    provider = resolve_provider(_preset(args), args.base_url)
    try:
        return resolve_api_key(provider)
    except ConfigurationError:
        raise ConfigurationError(
            f"no API key for {provider.name}: {provider.api_key_env} is not set"
        ) from None


def _chat(args: argparse.Namespace, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    prompt = args.prompt
    interactive = prompt is None and stdin.isatty()
    if interactive and args.json:
        raise _UsageError("--json prints one result: give a prompt, or pipe one on stdin")
    if prompt is None and not interactive:
        prompt = stdin.read().strip()
        if not prompt:
            raise _UsageError("no prompt: give one as an argument or pipe it on stdin")
    console = Console(out, err, verbose=args.verbose, show_text=not args.json)
    client = _client(args)
    try:
        with _build_agent(args, client, console, stdin) as agent:
            if interactive:
                return repl(agent, console, input, stream=not args.no_stream)
            result = ask(agent, prompt, console, stream=not args.no_stream)
            if args.json:
                out.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
            return EXIT_OK
    finally:
        client.close()  # the agent leaves a client it was given open


def repl(
    agent: Agent[str], console: Console, read_line: Callable[[str], str], *, stream: bool = True
) -> int:
    """The interactive chat: history kept across turns; ``/reset``, ``/tools``, ``/exit``.

    ``read_line`` is ``input`` in a terminal (tests pass their own). Ctrl-C stops the
    current answer and returns to the prompt, leaving the history as it was before the
    question; Ctrl-D (end of input) or ``/exit`` leaves. An error is shown and the chat
    goes on.
    """
    from .errors import AgentKitError

    _enable_line_editing()
    history: list[dict[str, Any]] = []
    console.note(
        f"agentkit chat · {agent.model} · tools: {_tool_names(agent.tools) or 'none'}\n"
        "/help for commands · Ctrl-C stops an answer · Ctrl-D leaves"
    )
    while True:
        try:
            line = read_line("> ").strip()
        except EOFError:
            console.note("")
            return EXIT_OK
        except KeyboardInterrupt:
            console.note("\n(Ctrl-D or /exit to leave)")
            continue
        if not line:
            continue
        if line.startswith("/"):
            command = line.split()[0].lower()
            if command in ("/exit", "/quit"):
                return EXIT_OK
            if command == "/reset":
                history = []
                console.note("(history cleared)")
            elif command == "/tools":
                for item in agent.tools:
                    console.note(f"{item.name}: {_first_line(item.description)}")
                if not agent.tools:
                    console.note("(no tools)")
            elif command == "/help":
                console.note(
                    "/reset  forget the conversation\n/tools  list the tools\n/exit   leave"
                )
            else:
                console.note(f"unknown command {command}; /help lists them")
            continue
        question = [*history, {"role": "user", "content": line}]
        try:
            result = ask(agent, question, console, stream=stream)
        except KeyboardInterrupt:
            console.note("(stopped; that question is left out of the history)")
            continue
        except AgentKitError as exc:
            report_error(exc, console.err, None)
            continue
        history = result.messages


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def _tool_names(tools: Iterable[Tool[..., Any]]) -> str:
    return ", ".join(t.name for t in tools)


def _enable_line_editing() -> None:
    import contextlib

    with contextlib.suppress(ImportError):  # Windows has no readline
        import readline  # noqa: F401  # input() gains history and editing once loaded


# --- tools ----------------------------------------------------------------------------------


def _list_tools(args: argparse.Namespace, out: TextIO) -> int:
    tools = load_tools(args.sources) if args.sources else _builtin_tools()
    for index, item in enumerate(tools):
        if args.names:
            out.write(f"{item.name}\n")
            continue
        if index:
            out.write("\n")
        flags = [
            flag
            for flag, on in (
                ("strict", item.strict),
                ("requires approval", item.requires_approval),
                ("async", item.is_async),
            )
            if on
        ]
        out.write(f"# {item.name}" + (f"  ({', '.join(flags)})" if flags else "") + "\n")
        out.write(json.dumps(item.to_openai(), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


# --- entry point ----------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``agentkit`` command with ``argv``; return the exit code.

    With ``argv=None`` this is the program itself (the console script passes the code to
    ``sys.exit``): the process arguments are read, and once the command is over the
    process does not wait for tool threads that are still running (a sync tool cannot be
    stopped, and Ctrl-C must not leave the user waiting for it). Tests pass ``argv``, and
    ``stdin``/``stdout``/``stderr`` to capture the streams.
    """
    code = _main(argv, stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)
    if argv is None:
        _leave_stuck_threads(code)
    return code


def _main(argv: Sequence[str] | None, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.debug:
        import logging

        logging.basicConfig(stream=err, format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("agentkit").setLevel(logging.DEBUG)
    started = time.perf_counter()
    try:
        if args.command == "chat":
            return _chat(args, stdin, out, err)
        if args.command == "tools":
            return _list_tools(args, out)
        from .demo import run_demo

        return run_demo(args.prompt, out, err, verbose=args.verbose, paced=not args.fast)
    except KeyboardInterrupt:
        out.flush()
        err.write(f"\n{_PROG}: interrupted after {time.perf_counter() - started:.1f} s\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exception(exc, file=err)
        return report_error(exc, err, args)


def _leave_stuck_threads(code: int) -> None:
    """Exit now if a tool thread is still running, rather than wait for it at shutdown."""
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    deadline = time.monotonic() + 0.5  # idle pool threads wind down in far less
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in others):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
