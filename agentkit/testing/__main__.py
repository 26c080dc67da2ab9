"""Serve a scripted model from the command line: ``python -m agentkit.testing --help``.

The first line printed is the base URL (``http://127.0.0.1:PORT/v1``), so a parent process
can start the server with ``port 0`` and read where it listens; stderr says how to point
agentkit at it (``export AGENTKIT_BASE_URL=...``). ``--script FILE`` serves a script the
user wrote (see :mod:`agentkit.testing.script`) instead of a ready-made ``--model``. The
server runs until it is interrupted (Ctrl-C) or terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .models import always, echo, tool_then_answer
from .replies import Reply
from .script import ScriptError, load_script
from .server import Handler, ScriptedServer

_MODELS = ("tool-then-answer", "echo", "text", "tool-forever")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until interrupted, return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m agentkit.testing",
        description="Serve a scripted OpenAI-compatible Chat Completions model on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--model",
        choices=_MODELS,
        default="tool-then-answer",
        help="tool-then-answer: call --tool, then answer --text once the result is in; "
        "echo: repeat the last user message; text: always answer --text; "
        "tool-forever: always call --tool",
    )
    parser.add_argument("--tool", default="get_current_time", help="the tool to call")
    parser.add_argument("--arguments", default="{}", help="the tool's arguments, as JSON")
    parser.add_argument("--text", default="Done.", help="the answer text")
    parser.add_argument(
        "--script",
        metavar="FILE",
        help="serve your own script instead of --model: a .json list of turns "
        '([{"when": "order", "replies": [...]}, ...]) or a .py file defining script or '
        "handler(request); see docs/testing.md",
    )
    args = parser.parse_args(argv)
    handler: Handler
    if args.script:
        try:
            handler = load_script(args.script)
        except ScriptError as error:
            parser.error(f"--script {error}")
    else:
        try:
            arguments = json.loads(args.arguments)
        except ValueError:
            parser.error(f"--arguments is not JSON: {args.arguments!r}")
        call = (args.tool, arguments)
        handler = {
            "tool-then-answer": tool_then_answer(call, answer=args.text),
            "echo": echo(),
            "text": always(Reply.text(args.text)),
            "tool-forever": always(Reply.tool_calls(call)),
        }[args.model]

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with ScriptedServer(host=args.host, port=args.port, handler=handler) as server:
        print(server.base_url, flush=True)
        print(
            f"agentkit.testing: serving on {server.base_url} until Ctrl-C; point agentkit "
            f"at it with\n  export AGENTKIT_BASE_URL={server.base_url}",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
