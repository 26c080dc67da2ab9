"""``agentkit chat``: one question, or an interactive chat, with tools."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from .._visible import visible_json
from ._console import Console, ask, compact_json, visible
from ._errors import EXIT_OK, UsageError, report_error
from ._loading import builtin_tools, load_tools

if TYPE_CHECKING:
    from .._agent import Agent
    from .._calls import PlannedCall
    from .._client import ChatClient
    from .._result import PendingCall, RunResult
    from .._tool import Tool
    from ._progress import Progress

__all__ = ["chat", "repl"]


def _client(args: argparse.Namespace) -> ChatClient:
    from .._client import ChatClient

    options: dict[str, Any] = {}
    if args.timeout is not None:
        options["read_timeout"] = args.timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    provider: Any = _preset(args)
    if getattr(args, "context_cache", False):
        from .._providers import resolve_provider

        provider = resolve_provider(provider, args.base_url).with_context_cache()
    return ChatClient(args.base_url, _api_key(args), provider=provider, **options)


def _preset(args: argparse.Namespace) -> str | None:
    if args.provider and args.region:
        if not args.provider.startswith("dashscope"):
            raise UsageError(f"--region is DashScope's: it does not apply to {args.provider}")
        raise UsageError("give --provider or --region, not both")
    if args.provider:
        return str(args.provider)
    return f"dashscope-{args.region}" if args.region else None  # e.g. dashscope-cn


def _build_agent(
    args: argparse.Namespace,
    client: ChatClient,
    console: Console,
    stdin: TextIO,
) -> Agent[str]:
    from .._agent import Agent, Hooks
    from .._records import ModelSettings, RunLimits

    if args.no_tools:
        tools: list[Tool[..., Any]] = []
    else:
        tools = load_tools(args.tools) if args.tools else builtin_tools()
    settings = ModelSettings()
    for name in ("temperature", "top_p", "max_tokens", "presence_penalty", "seed", "stop"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    hooks = None
    if args.no_stream:  # Agent.run yields no events: show tool activity from the hooks
        hooks = Hooks(
            before_tool_call=lambda call: console.tool_started(call.name, call.arguments),
            after_tool_call=lambda call, done: console.tool_result(
                done.name, done.output, done.error, done.duration
            ),
        )
    approve: Callable[[PlannedCall], bool]
    if args.approve_all:
        approve = _approve_all
    elif stdin.isatty():
        approve = functools.partial(_ask_approval, console, stdin)
    else:
        approve = functools.partial(_refuse_unasked, console)
    return Agent(
        args.model,
        tools,
        args.system,
        client=client,
        limits=RunLimits(max_turns=args.max_turns),
        settings=settings,
        hooks=hooks,
        approve=approve,
    )


def _approve_all(call: PlannedCall) -> bool:
    return True


def _ask_approval(console: Console, stdin: TextIO, call: PlannedCall) -> bool:
    """Ask on the terminal whether a ``requires_approval`` tool call may run."""
    console.note(f"  ? {visible(call.name)}({compact_json(call.arguments)}) needs your approval")
    console.err.write("    run it? [y/N] ")
    console.err.flush()
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _refuse_unasked(console: Console, call: PlannedCall) -> bool:
    """Refuse a ``requires_approval`` call when stdin is not a terminal, and say so."""
    console.note(
        f"  ? {visible(call.name)}({compact_json(call.arguments)}) needs your approval, and "
        "stdin is "
        "not a terminal to ask on: refused (--approve-all runs such tools)"
    )
    return False


def _api_key(args: argparse.Namespace) -> str | None:
    """The key from ``--api-key-env``, or ``None`` to let the provider's variable decide.

    A missing key is reported here in the CLI's words (which variable to set), before
    anything is sent.
    """
    from .._errors import ConfigurationError
    from .._providers import resolve_api_key, resolve_provider

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


def chat(args: argparse.Namespace, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    """``agentkit chat``: ask once (a prompt, or piped stdin), or chat in a terminal."""
    prompt = args.prompt
    interactive = prompt is None and stdin.isatty()
    if interactive and args.json:
        raise UsageError("--json prints one result: give a prompt, or pipe one on stdin")
    if prompt is None and not interactive:
        prompt = stdin.read().strip()
        if not prompt:
            raise UsageError("no prompt: give one as an argument or pipe it on stdin")
    console = Console(out, err, verbose=args.verbose, show_text=not args.json)
    from .._observe import add_global_observer, remove_global_observer

    progress = progress_for(console)
    # every agent of the command reports to it, the user's own --agent included
    add_global_observer(progress.observe)
    try:
        if getattr(args, "agent", None):
            return _talk(_own_agent(args), args, prompt, console, out)
        client = _client(args)
        try:
            agent = _build_agent(args, client, console, stdin)
            return _talk(agent, args, prompt, console, out, server=_server_name(client.base_url))
        finally:
            client.close()  # the agent leaves a client it was given open
    finally:
        remove_global_observer(progress.observe)
        progress.close()


def _talk(
    agent: Agent[Any],
    args: argparse.Namespace,
    prompt: str | None,
    console: Console,
    out: TextIO,
    *,
    server: str | None = None,
) -> int:
    session = getattr(args, "session", None)
    where = getattr(args, "store", None)
    if where is not None and session is None:
        raise UsageError("--store names where sessions live: give --session NAME too")
    if session is not None and agent.store is None:
        from ._sessions import open_store

        agent.store = open_store(where)
    elif where is not None and agent.store is not None:  # --agent's own store: never ignored
        from ._sessions import store_of_agent

        store_of_agent(agent, f"--agent {getattr(args, 'agent', '')}", where)
    with agent, _closing_store(agent, session):
        if prompt is None:
            return repl(agent, console, input, stream=not args.no_stream, args=args, server=server)
        result = ask(agent, prompt, console, stream=not args.no_stream, session=session)
        result = _settle_pauses(agent, result, console, args, session)
        if args.json:
            shown = json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
            out.write(visible_json(shown) + "\n")
        return EXIT_OK


def _settle_pauses(
    agent: Agent[Any],
    result: RunResult[Any],
    console: Console,
    args: argparse.Namespace | None,
    session: str | None,
) -> RunResult[Any]:
    """A run paused for approval (an agent with no ``approve=``, e.g. ``--agent``): ask the
    person, as for any approval, and go on until the run is done."""
    while result.status == "paused":
        decisions: dict[PendingCall, bool] = {}
        for call in result.pending:
            shown = f"{visible(call.name)}({compact_json(call.arguments)})"
            if len(call.path) > 1:  # asked inside an agent used as a tool: say which
                shown = f"[{visible(call.path[-1])}] {shown}"
            # the call itself is the key: it names where the call sits (inside agent tools)
            if args is not None and getattr(args, "approve_all", False):
                decisions[call] = True
            elif sys.stdin.isatty():
                console.note(f"  ? {shown} needs your approval")
                decisions[call] = input("    run it? [y/N] ").strip().lower() in (
                    "y",
                    "yes",
                )
            else:
                console.note(
                    f"  ? {shown} needs your approval, and stdin is not a terminal to ask on: "
                    "refused (--approve-all runs such tools)"
                )
                decisions[call] = False
        result = agent.resume(session if session is not None else result, decisions)
        if result.status != "paused":  # paused again: the next calls are asked first
            console.text(str(result.output))
            console.end_answer()
    return result


def _own_agent(args: argparse.Namespace) -> Agent[Any]:
    """The user's Agent named by ``--agent``; it brings its own model, tools and key."""
    from ._loading import load_agent

    clashing = [
        option
        for option, given in (
            ("--tools", args.tools),
            ("--no-tools", args.no_tools),
            ("--system", args.system),
            ("--base-url", args.base_url),
            ("--provider", args.provider),
            ("--region", args.region),
        )
        if given
    ]
    if clashing:
        raise UsageError(
            f"--agent brings its own model, tools and instructions: drop {', '.join(clashing)}"
        )
    return load_agent(args.agent, option="--agent")[1]


@contextlib.contextmanager
def _closing_store(agent: Agent[Any], session: str | None) -> Iterator[None]:
    try:
        yield
    finally:
        if session is not None and agent.store is not None:
            agent.store.close()


def progress_for(console: Console) -> Progress:
    """The spinner (on a terminal) and retry lines of ``console``'s runs."""
    from ._progress import Progress

    spinner = console.err.isatty() and os.environ.get("TERM") != "dumb"
    made = Progress(console.err, spinner=spinner, fancy=console.fancy, announce=console.warn)
    console.progress = made
    return made


def _server_name(base_url: str) -> str:
    """``dashscope-intl.aliyuncs.com`` or ``127.0.0.1:8000``: the server a chat talks to."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    return parts.netloc.rsplit("@", 1)[-1] or base_url  # never a user:password@ part


def repl(
    agent: Agent[str],
    console: Console,
    read_line: Callable[[str], str],
    *,
    stream: bool = True,
    args: argparse.Namespace | None = None,
    server: str | None = None,
) -> int:
    """The interactive chat: history kept across turns; ``/reset``, ``/tools``, ``/exit``.

    ``read_line`` is ``input`` in a terminal (tests pass their own). Ctrl-C stops the
    current answer and returns to the prompt, leaving the history as it was before the
    question; Ctrl-D (end of input) or ``/exit`` leaves. An error is shown and the chat
    goes on; ``args`` (the command's options) lets its hint name the values in use.
    """
    from .._errors import AgentKitError

    _enable_line_editing()
    history: list[dict[str, Any]] = []
    session = getattr(args, "session", None)  # the store keeps the history
    dot = "·" if console.fancy else "-"
    where = f" on {server}" if server else ""
    console.note(
        f"agentkit chat {dot} {agent.model}{where} {dot} tools: "
        f"{_tool_names(agent.tools) or 'none'}\n"
        f"/help for commands {dot} Ctrl-C stops an answer {dot} Ctrl-D leaves"
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
            if command == "/reset" and session is not None:
                console.note(f"(kept: `agentkit sessions delete {session}` forgets it)")
            elif command == "/reset":
                history = []
                console.note("(history cleared)")
            elif command == "/tools":
                for item in agent.tools:
                    # a tool's description may come from a server (MCP): written out
                    console.note(f"{visible(item.name)}: {visible(_first_line(item.description))}")
                if not agent.tools:
                    console.note("(no tools)")
            elif command == "/help":
                console.note(
                    "/reset  forget the conversation\n/tools  list the tools\n/exit   leave"
                )
            else:
                console.note(f"unknown command {command}; /help lists them")
            continue
        question: str | list[dict[str, Any]] = [*history, {"role": "user", "content": line}]
        if session is not None:
            question = line
        try:
            result = ask(agent, question, console, stream=stream, session=session)
            result = _settle_pauses(agent, result, console, args, session)
        except KeyboardInterrupt:
            console.interrupted("(stopped; that question is left out of the history)")
            continue
        except AgentKitError as exc:
            report_error(exc, console.err, args)
            continue
        history = result.messages


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def _tool_names(tools: Iterable[Tool[..., Any]]) -> str:
    return visible(", ".join(t.name for t in tools))


def _enable_line_editing() -> None:
    import contextlib

    with contextlib.suppress(ImportError):  # Windows has no readline
        import readline  # noqa: F401  # input() gains history and editing once loaded
