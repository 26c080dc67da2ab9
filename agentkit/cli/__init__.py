"""The ``agentkit`` command: ``chat``, ``serve``, ``tools``, ``sessions``, ``keys``,
``eval`` and ``demo``.

Only the standard library is imported at start-up; the client, the loop and the tools load
when a command needs them, so ``agentkit --help`` answers at once. The pieces:
``_arguments`` (the options), ``_chat`` (one question or a chat), ``_console`` (showing a
run), ``_loading`` (tools and agents from files and modules, ``agentkit tools``),
``_serve`` (``agentkit serve``), ``_errors`` (one
line and a hint per error, the exit codes); ``agentkit.cli._demo`` is ``agentkit demo``.

Exit codes: 0 success, 1 the run failed (API, network, run limits), 2 usage or
configuration (bad option, a tools file that does not load, a missing API key),
130 interrupted (Ctrl-C), 141 the reader of the output went away (``| head``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from ._arguments import PROG, build_parser, parse_arguments
from ._chat import chat, repl
from ._console import Console, ask, play
from ._errors import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    report_error,
)
from ._loading import list_tools, load_tools

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Console",
    "ask",
    "load_tools",
    "main",
    "play",
    "repl",
]


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``agentkit`` command with ``argv``; return the exit code.

    With ``argv=None`` this is the program itself (the console script passes the code to
    ``sys.exit``) and the process arguments are read. A sync tool still running when the
    command ends does not hold the process: tool threads are daemon threads. Tests pass
    ``argv``, and ``stdin``/``stdout``/``stderr`` to capture the streams.
    """
    return _main(argv, stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)


def _main(argv: Sequence[str] | None, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    try:
        args = parse_arguments(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:  # `agentkit` alone: what it can do, not a complaint
        build_parser().print_help(err)
        return EXIT_USAGE
    if args.debug:
        import logging

        logging.basicConfig(stream=err, format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("agentkit").setLevel(logging.DEBUG)
    started = time.perf_counter()
    try:
        if args.command == "chat":
            return chat(args, stdin, out, err)
        if args.command == "tools":
            return list_tools(args, out)
        if args.command == "mcp":
            from ._mcp import run_mcp

            return run_mcp(args, err)
        if args.command == "sessions":
            from ._sessions import sessions_command

            return sessions_command(args, out, err)
        if args.command == "serve":
            from ._serve import serve_command

            return serve_command(args, err)
        if args.command == "keys":
            from ._keys import keys_command

            return keys_command(args, out, err)
        if args.command == "eval":
            from ._eval import eval_command

            return eval_command(args, out, err)
        from ._demo import run_demo

        return run_demo(args.prompt, out, err, verbose=args.verbose, paced=not args.fast)
    except KeyboardInterrupt:
        out.flush()
        err.write(f"\n{PROG}: interrupted after {time.perf_counter() - started:.1f} s\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `agentkit ... | head`: the reader left; stop quietly
        _drop_output(out)
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exception(exc, file=err)
        return report_error(exc, err, args)


def _drop_output(out: TextIO) -> None:
    """Send what is left for a closed pipe to /dev/null, so the exit flush cannot fail."""
    try:
        fileno = out.fileno()
    except (OSError, ValueError):  # not a real file (tests pass a StringIO)
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), fileno)
