"""The command line: subcommands, their options and their help."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = ["PRESETS", "PROG", "build_parser", "parse_arguments"]

PROG = "agentkit"
"""The command's name, in help and in error lines."""

PRESETS = (
    "dashscope",
    "dashscope-intl",
    "dashscope-singapore",
    "dashscope-cn",
    "dashscope-beijing",
    "dashscope-us",
    "dashscope-hongkong",
    "openai",
    "custom",
)
"""The ``--provider`` choices: ``agentkit.PROVIDERS``' names, written out so that
``agentkit --help`` need not import the client (a test keeps the two lists equal)."""

_CHAT_EPILOG = """\
examples:
  agentkit chat "What's the weather in Hangzhou, and what time is it there?"
  echo "What time is it in Tokyo?" | agentkit chat
  agentkit chat                                   # interactive: /help, Ctrl-D leaves
  agentkit chat --tools my_tools.py "Refund order 1042"
  agentkit chat --base-url http://localhost:11434/v1 --model qwen2.5:7b   # Ollama

environment:
  DASHSCOPE_API_KEY   the Model Studio key (Singapore; --region cn for a Beijing key)
  OPENAI_API_KEY      the key for --provider openai
  AGENTKIT_BASE_URL   the server when neither --base-url nor --provider/--region is given;
                      a DashScope or OpenAI URL is sent that provider's key from above
  AGENTKIT_API_KEY    the key for any other server AGENTKIT_BASE_URL names (optional)
  NO_COLOR            no colours on stderr

A server of your own named by --base-url is sent no key unless --api-key-env names one.
Exit codes: 0 ok, 1 the run failed, 2 usage or configuration, 130 interrupted."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps long lines of a description or epilog to the terminal's width, and keeps the
    lines that start with spaces (examples, the environment table) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        lines = []
        for line in text.splitlines():
            if len(line) > width and not line.startswith(" "):
                lines.extend(
                    textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent)
                )
            else:
                lines.append(indent + line)
        return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and a hint rather than the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            2,
            f"{self.prog}: error: {message}\n"
            f"{PROG}: hint: `{self.prog} --help` lists the options\n",
        )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``agentkit`` and its subcommands (chat, serve, tools, sessions, demo)."""
    parser = _Parser(
        prog=PROG,
        description="Multi-round function calling against OpenAI-compatible Chat APIs.",
        epilog="Start with `agentkit demo` (no key needed), then `agentkit chat --help`.\n"
        "Exit codes: 0 ok, 1 the run failed, 2 usage or configuration, 130 interrupted.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # not required=True: ``agentkit`` alone prints the whole help, not a one-line complaint
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = commands.add_parser(
        "chat",
        help="chat with a model that can call tools",
        description="Ask once (PROMPT, or text piped on stdin) or chat interactively. "
        "The answer goes to stdout; tool calls, notes and errors to stderr.",
        epilog=_CHAT_EPILOG,
        formatter_class=_Formatter,
    )
    chat.add_argument(
        "prompt",
        nargs="*",
        metavar="PROMPT",
        help="ask once and exit (several words are joined, so quotes are optional)",
    )
    conn = chat.add_argument_group("model and provider")
    conn.add_argument("-m", "--model", default="qwen-plus", help="model name (qwen-plus)")
    conn.add_argument(
        "--base-url",
        metavar="URL",
        help="any OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, Ollama, ...)",
    )
    conn.add_argument(
        "--provider",
        metavar="PRESET",
        choices=PRESETS,
        help="preset: dashscope (the default), dashscope-cn, openai, custom",
    )
    conn.add_argument(
        "--region",
        choices=("intl", "cn", "singapore", "beijing", "us", "hongkong"),
        help="DashScope region: intl = singapore (the default), cn = beijing, us, hongkong",
    )
    conn.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="read the API key from VAR (default: the preset's, e.g. DASHSCOPE_API_KEY)",
    )
    conn.add_argument(
        "--timeout",
        type=_positive(float),
        metavar="SECONDS",
        help="wait this long for the server's next bytes (600)",
    )
    conn.add_argument(
        "--max-retries", type=_at_least(0), metavar="N", help="retries of a failed request (2)"
    )
    conn.add_argument(
        "--context-cache",
        action="store_true",
        help="mark the stable prefix for DashScope's explicit context cache (DashScope only)",
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
        "--session",
        metavar="NAME",
        help="continue (or start) the stored conversation NAME; see `agentkit sessions`",
    )
    _add_store_flag(run)
    run.add_argument(
        "--max-turns",
        type=_at_least(1),
        default=10,
        metavar="N",
        help="model calls per answer (10)",
    )
    params = chat.add_argument_group("sampling (sent only when given)")
    params.add_argument("--temperature", type=float, metavar="T", help="randomness, 0 to 2")
    params.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling, 0 to 1")
    params.add_argument(
        "--max-tokens", type=_at_least(1), metavar="N", help="longest answer, in tokens"
    )
    params.add_argument("--presence-penalty", type=float, metavar="X", help="-2 to 2")
    params.add_argument("--seed", type=int, metavar="N", help="for repeatable sampling")
    params.add_argument("--stop", action="append", metavar="TEXT", help="stop text (repeatable)")
    out = chat.add_argument_group("output")
    out.add_argument("--no-stream", action="store_true", help="ask for whole answers")
    out.add_argument("--json", action="store_true", help="print the RunResult as JSON")
    _add_output_flags(out)

    _add_serve(commands)
    run.add_argument(
        "--agent",
        metavar="FILE.py:NAME",
        help="chat with your own Agent (its model, tools and instructions), e.g. bot.py:desk",
    )

    tools = commands.add_parser(
        "tools",
        help="list tools and the JSON schema each one sends",
        description="Show what the model sees: each tool's to_openai() JSON.",
        epilog="examples:\n  agentkit tools\n  agentkit tools my_tools.py\n"
        "  agentkit tools --names mypackage.tools",
        formatter_class=_Formatter,
    )
    tools.add_argument(
        "sources",
        nargs="*",
        metavar="PATH_OR_MODULE",
        help="a .py file or module (default: the built-in tools)",
    )
    tools.add_argument("--names", action="store_true", help="only list the names")
    tools.add_argument("--debug", action="store_true", help="tracebacks and debug logs")

    sessions = commands.add_parser(
        "sessions",
        help="list, show, delete or decide stored conversations (chat --session, serve)",
        description="Conversations kept by `agentkit chat --session NAME`, or by "
        "`agentkit serve` of an agent with a store (--agent reads that agent's store). "
        "A paused conversation waits for approval decisions: `pending` lists the waiting "
        "calls, `approve`/`deny` decide them and resume the run with the agent's tools.",
        epilog="examples:\n  agentkit sessions list\n  agentkit sessions show cust-17\n"
        "  agentkit sessions delete cust-17\n"
        "  agentkit sessions list --store postgresql://user@host/db\n"
        "  agentkit sessions pending --agent bot.py:desk\n"
        "  agentkit sessions approve cust-17 call_1 --agent bot.py:desk\n"
        '  agentkit sessions deny cust-17 call_1 --reason "not today" --agent bot.py:desk',
        formatter_class=_Formatter,
    )
    sessions.add_argument(
        "action",
        choices=("list", "show", "delete", "pending", "approve", "deny"),
        help="what to do",
    )
    sessions.add_argument(
        "name", nargs="?", metavar="NAME", help="the session (show, delete, approve, deny)"
    )
    sessions.add_argument(
        "calls",
        nargs="*",
        metavar="CALL_ID",
        help="approve, deny: the waiting calls to decide (every one the session waits on)",
    )
    sessions.add_argument(
        "--agent",
        metavar="FILE.py:NAME",
        help="use this Agent's store (and its tools, to resume an approved run)",
    )
    _add_store_flag(sessions)
    sessions.add_argument(
        "--create",
        action="store_true",
        help="start a new SQLite store if --store names no file (else that is an error)",
    )
    sessions.add_argument("--reason", metavar="TEXT", help="deny: the reason the model is told")
    sessions.add_argument(
        "--deps",
        metavar="FILE.py:FUNCTION",
        help="approve, deny: make the run's deps for the conversation's owner, as "
        "`agentkit serve --deps` does",
    )
    sessions.add_argument("--prefix", metavar="TEXT", help="list, pending: names starting so")
    sessions.add_argument(
        "--limit",
        type=_at_least(1),
        default=100,
        metavar="N",
        help="list, pending: at most N sessions (100)",
    )
    sessions.add_argument("--json", action="store_true", help="print JSON")
    sessions.add_argument("--debug", action="store_true", help="tracebacks and debug logs")

    demo = commands.add_parser(
        "demo",
        help="the weather-and-time bot, offline: a scripted model, real tools and loop",
        description="Runs the loop and the real tools against a scripted stand-in for Qwen "
        "served on loopback: no key and no network needed.",
    )
    demo.add_argument("prompt", nargs="*", metavar="PROMPT", help="your own question")
    demo.add_argument("--fast", action="store_true", help="do not pace the scripted stream")
    _add_output_flags(demo)

    from ._mcp import add_mcp_parser

    add_mcp_parser(commands)
    from ._keys import add_keys_parser

    add_keys_parser(commands)
    from ._eval import add_eval_parser

    add_eval_parser(commands)
    return parser


_SERVE_EPILOG = """\
examples:
  agentkit serve bot.py:desk                    # http://127.0.0.1:8000, chat page at /
  agentkit serve bot.py:desk --host 0.0.0.0 --port 8080 --workers 4 --api-key "$KEY"
  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "desk", "messages": [{"role": "user", "content": "Hi"}]}'

environment:
  AGENTKIT_SERVE_API_KEY  the accepted API keys (comma-separated), instead of --api-key

A host other than loopback needs an API key. See docs/serve.md for a reverse proxy."""


def _add_serve(commands: argparse._SubParsersAction[Any]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve your Agent as an OpenAI-compatible endpoint with a chat page",
        description="Serve Agents from your own code: POST /v1/chat/completions (the model "
        "field names the agent), GET /v1/models, and a chat page at /.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "targets",
        nargs="+",
        metavar="FILE.py:NAME",
        help="the Agent to serve, e.g. bot.py:desk (or MODULE:NAME); several may be given",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port (8000; 0: any free port, named on stderr)"
    )
    serve.add_argument(
        "--workers", type=_at_least(1), default=1, metavar="N", help="worker processes (1)"
    )
    serve.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        help="a bearer key clients must send (repeatable; required off loopback)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a name clients may address besides the loopback ones, e.g. the public name "
        "behind a proxy (repeatable); other names are refused with 421",
    )
    serve.add_argument(
        "--max-connections",
        type=_at_least(1),
        default=500,
        metavar="N",
        help="open connections per worker; past it the longest idle one is closed (500)",
    )
    serve.add_argument(
        "--head-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a client may take to send a request's headers (10)",
    )
    serve.add_argument("--title", metavar="TEXT", help="the chat page's title")
    who = serve.add_argument_group("identities (docs/serve.md)")
    who.add_argument(
        "--auth",
        choices=("keys", "oidc", "proxy"),
        help="keys: keys from `agentkit keys add` in the agent's store; oidc: bearer tokens "
        "of --oidc-issuer; proxy: a trusted proxy's --trust-proxy-header",
    )
    who.add_argument("--oidc-issuer", metavar="URL", help="the token issuer (its iss)")
    who.add_argument("--oidc-audience", metavar="AUD", help="the audience tokens must name")
    who.add_argument("--oidc-jwks-url", metavar="URL", help="the keys (default: discovered)")
    who.add_argument("--oidc-id-claim", metavar="CLAIM", default="sub", help="the id (sub)")
    who.add_argument(
        "--oidc-roles-claim", metavar="CLAIM", default="roles", help="the roles (roles)"
    )
    who.add_argument(
        "--trust-proxy-header", metavar="HEADER", help="the proxy's user header (implies proxy)"
    )
    who.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="an address or network of the proxy (repeatable; default on loopback: loopback)",
    )
    who.add_argument("--proxy-roles-header", metavar="HEADER", help="the proxy's roles header")
    who.add_argument(
        "--reviewers",
        action="append",
        metavar="ROLE",
        help="a role whose holders decide waiting calls (repeatable); then only they do",
    )
    who.add_argument(
        "--deps",
        metavar="FILE.py:FUNCTION",
        help="a function of the principal returning each run's deps, e.g. bot.py:clinic_for",
    )
    serve.add_argument("--debug", action="store_true", help="tracebacks and debug logs")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"must be 0 (any free port) to 65535, got {value}")
    return value


_port.__name__ = "port"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """``argv`` parsed; ``SystemExit`` for ``--help``, ``--version`` and usage errors.

    An unknown option is reported by the subcommand it was given to, so the hint points
    at that subcommand's ``--help``.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if "prompt" in args:  # the words of PROMPT, unquoted or not, as one question
        args.prompt = " ".join(args.prompt).strip() or None
    if extra:
        commands = next(
            action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        )
        owner = commands.choices.get(args.command or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _add_store_flag(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--store",
        metavar="PATH_OR_DSN",
        help="where sessions live: a SQLite file, or a postgresql:// DSN (default: "
        "sessions.db in agentkit's folder under your data directory)",
    )


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        value = int(text)  # a ValueError reads "invalid _at_least.<locals>.parse value"...
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "integer"  # ...so argparse says "invalid integer value: 'x'"
    return parse


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number above zero."""

    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:  # NaN too
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _add_output_flags(group: argparse._ActionsContainer) -> None:
    group.add_argument("-v", "--verbose", action="store_true", help="show rounds, usage, reasoning")
    group.add_argument("--debug", action="store_true", help="tracebacks and debug logs")


def _version() -> str:
    from .._version import __version__

    return __version__
