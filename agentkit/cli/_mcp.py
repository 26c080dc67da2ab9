"""``agentkit mcp serve FILE``: a file's ``@tool``s served to MCP clients.

Over stdio by default (what desktop assistants and IDEs start), or over streamable HTTP
with ``--http`` (127.0.0.1:8931 unless told otherwise; any other address needs a bearer
token: ``--token`` or the ``AGENTKIT_MCP_TOKEN`` environment variable). In stdio mode
stdout carries the protocol only: messages go to stderr.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, TextIO

from ._errors import EXIT_OK, UsageError

__all__ = ["add_mcp_parser", "run_mcp"]

_TOKEN_ENV = "AGENTKIT_MCP_TOKEN"  # the same name as agentkit.mcp._server.TOKEN_ENV


def add_mcp_parser(commands: Any) -> None:
    """Add ``mcp serve`` to the ``agentkit`` subcommands."""
    mcp = commands.add_parser(
        "mcp",
        help="serve tools to MCP clients (needs agentkit[mcp])",
        description="Model Context Protocol: serve a file's @tools to any MCP client.",
    )
    actions = mcp.add_subparsers(dest="mcp_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve the @tools of a file or module over stdio or HTTP",
        description="Serve the @tools of a .py file or module to MCP clients. stdio by "
        "default; --http for streamable HTTP.",
        epilog="examples:\n  agentkit mcp serve shop/tools.py\n"
        "  agentkit mcp serve shop/tools.py --http --port 8931\n"
        "  AGENTKIT_MCP_TOKEN=... agentkit mcp serve shop/tools.py --http --host 0.0.0.0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("source", metavar="PATH_OR_MODULE", help="a .py file or module")
    serve.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8931, help="port (default 8931; 0: any)")
    serve.add_argument(
        "--token",
        help=f"bearer token required on every HTTP request (or set {_TOKEN_ENV}); "
        "required when binding beyond 127.0.0.1",
    )
    serve.add_argument(
        "--deps",
        metavar="NAME",
        help="a function in the file whose result becomes RunContext.deps for tools that "
        "take a RunContext",
    )
    serve.add_argument("--context", metavar="NAME", help=argparse.SUPPRESS)  # --deps' old name
    serve.add_argument(
        "--allow-approval",
        action="store_true",
        help="run requires_approval tools when a client calls them (default: refuse)",
    )
    serve.add_argument("--name", default="agentkit", help="the server name shown to clients")
    serve.add_argument("--debug", action="store_true", help="tracebacks and debug logs")


def run_mcp(args: argparse.Namespace, err: TextIO) -> int:
    """``agentkit mcp serve``: load the tools, then serve until the client goes away."""
    from .._errors import ConfigurationError
    from ._errors import report_error

    try:
        return _serve(args, err)
    except UsageError:
        raise
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # the port is taken, the address is not ours...
        raise UsageError(f"cannot serve: {exc}") from None
    except Exception as exc:
        if args.debug:
            raise
        return report_error(exc, err, None)  # the chat options are not there to hint at


def _serve(args: argparse.Namespace, err: TextIO) -> int:
    from .._tool import Tool
    from ._loading import _import_source

    try:
        from agentkit.mcp import serve, serve_http
    except ImportError as exc:
        raise UsageError(str(exc)) from None

    module = _import_source(args.source, args.source)
    tools = [value for value in vars(module).values() if isinstance(value, Tool)]
    if not tools:
        raise UsageError(f"{args.source}: defines no tools (decorate functions with @tool)")
    deps = None
    option, name = "--deps", args.deps
    if args.context:
        if args.deps:
            raise UsageError("pass --deps (--context is its old name), not both")
        err.write(
            "agentkit: warning: --context is renamed --deps; the old name goes before 0.1.0\n"
        )
        option, name = "--context", args.context
    if name:
        deps = getattr(module, name, None)
        if not callable(deps):
            raise UsageError(f"{option} {name}: no such function in {args.source}")
    names = ", ".join(item.name for item in tools)
    if not args.http:
        err.write(f"agentkit: serving {len(tools)} tools over stdio: {names}\n")
        err.flush()
        serve(tools, name=args.name, deps=deps, allow_approval=args.allow_approval)
        return EXIT_OK
    token = args.token or os.environ.get(_TOKEN_ENV) or None

    def ready(url: str) -> None:
        guard = "bearer token required" if token else "no token: this machine only"
        err.write(f"agentkit: serving {len(tools)} tools at {url} ({guard}): {names}\n")
        err.flush()

    serve_http(
        tools,
        host=args.host,
        port=args.port,
        token=token,
        name=args.name,
        deps=deps,
        allow_approval=args.allow_approval,
        on_ready=ready,
    )
    return EXIT_OK
