"""``agentkit serve``: a bot as an OpenAI-compatible endpoint with a chat page."""

from __future__ import annotations

import argparse
import os
import socket
from typing import TextIO

from ._errors import EXIT_OK, UsageError
from ._loading import load_agent

__all__ = ["serve_command"]


def serve_command(args: argparse.Namespace, err: TextIO) -> int:
    """Check the options and the agents, then serve until interrupted."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError(
            "agentkit serve needs Starlette and uvicorn", hint="pip install 'agentkit[serve]'"
        ) from None
    from ..serve._auth import is_loopback
    from ..serve._server import API_KEY_VARIABLE, keys_from, run

    keys = keys_from(args.api_key or ())
    if not is_loopback(args.host) and not keys:
        raise UsageError(
            f"--host {args.host} is reachable from other machines, and no API key is set",
            hint=f"give --api-key KEY (or set {API_KEY_VARIABLE}) so that only your clients "
            "get in; a long random key: python -c 'import secrets; print(secrets.token_hex(24))'",
        )
    if any(len(key) < 8 for key in keys):
        raise UsageError(
            "an API key must be at least 8 characters",
            hint="python -c 'import secrets; print(secrets.token_hex(24))' makes a good one",
        )
    targets = [_absolute(target) for target in args.targets]
    names = [load_agent(target, option="")[0] for target in targets]  # fail before binding
    if len(set(names)) != len(names):
        raise UsageError("two agents have the same name; serve each name once")
    _check_port(args.host, args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    err.write(
        f"agentkit: serving {', '.join(names)} on http://{shown}:{args.port}/v1 "
        f"(chat page: http://{shown}:{args.port}/; {args.workers} worker"
        f"{'s' if args.workers > 1 else ''}; Ctrl-C stops)\n"
    )
    err.flush()
    run(
        targets,
        host=args.host,
        port=args.port,
        workers=args.workers,
        api_keys=keys,
        title=args.title or names[0],
        log_level="debug" if args.debug else "warning",
    )
    return EXIT_OK


def _absolute(target: str) -> str:
    # Worker processes load the file again; an absolute path finds it whatever their cwd.
    source, _, name = target.rpartition(":")
    if source.endswith(".py") or os.sep in source:
        return f"{os.path.abspath(source)}:{name}"
    return target


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno in (98, 48) else f"cannot be used ({exc.strerror})"
            raise UsageError(
                f"{host}:{port} {reason}", hint=f"choose another port, e.g. --port {port + 1}"
            ) from None
