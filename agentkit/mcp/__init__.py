"""MCP both ways: an MCP server's tools in an agent, and ``@tool``s served to MCP clients.

Needs the extra: ``pip install 'agentkit[mcp]'``. ``import agentkit`` never loads it.

Client::

    from agentkit import Agent
    from agentkit.mcp import MCPHttp, MCPStdio

    clock = MCPStdio("mcp-server-time", ["--local-timezone", "Asia/Shanghai"], prefix="clock")
    crm = MCPHttp("http://127.0.0.1:8931/mcp", headers={"Authorization": "Bearer ..."},
                  prefix="crm", requires_approval={"delete_contact"}, timeout=20)
    with Agent("qwen-plus", [get_order, clock, crm]) as agent:
        print(agent.run("Is the London office open right now?").output)

Server: ``agentkit mcp serve shop/tools.py`` (stdio) or ``--http --port 8931``; in Python,
:func:`serve` and :func:`asgi_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import renamed
from ._client import MCPHttp, MCPStdio
from ._errors import (
    RENAMED,
    MCPConnectionError,
    MCPError,
    MCPProtocolError,
    MCPServerExitedError,
    MCPTimeoutError,
    MCPToolError,
)
from ._tools import MCPTool

if TYPE_CHECKING:
    from ._server import asgi_app, build_server, serve, serve_http

__all__ = [
    "MCPConnectionError",
    "MCPError",
    "MCPHttp",
    "MCPProtocolError",
    "MCPServerExitedError",
    "MCPStdio",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolError",
    "asgi_app",
    "build_server",
    "serve",
    "serve_http",
]

_SERVER_NAMES = {"asgi_app", "build_server", "serve", "serve_http"}


def __getattr__(name: str) -> Any:
    # The server side loads starlette and uvicorn: only when asked for.
    if name in _SERVER_NAMES:
        from . import _server

        return getattr(_server, name)
    if name in RENAMED:  # an old name: warns at each use
        return renamed(__name__, name, globals()[RENAMED[name]])
    raise AttributeError(f"module 'agentkit.mcp' has no attribute {name!r}")
