"""The command line: subcommands, their options and their help."""

from __future__ import annotations

import argparse

__all__ = ["PROG", "build_parser"]

PROG = "agentkit"
"""The command's name, in help and in error lines."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``agentkit`` and its ``chat``, ``tools`` and ``demo`` subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
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
    from .. import __version__

    return __version__
