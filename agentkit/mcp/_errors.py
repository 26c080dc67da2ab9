"""The errors of an MCP connection; all derive from :class:`agentkit.AgentKitError`.

Raised from a run when a server cannot be reached or listed (the run has not called the
model yet). A failing *call* is fed back to the model as a tool failure instead, with one of
these as the error, so the model can answer without the tool or try again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import AgentKitError, renamed

__all__ = [
    "MCPConnectionError",
    "MCPError",
    "MCPProtocolError",
    "MCPServerExitedError",
    "MCPTimeoutError",
    "MCPToolError",
]

_INSTALL_HINT = "pip install 'agentkit[mcp]'"


class MCPError(AgentKitError):
    """Base of the MCP errors. ``server`` names the server (its command or URL)."""

    def __init__(self, message: str, *, server: str = "") -> None:
        super().__init__(message)
        self.server = server


class MCPConnectionError(MCPError):
    """The server could not be started or connected to, or refused the handshake."""


class MCPTimeoutError(MCPConnectionError):
    """The server did not answer in time: initialize, the tool list, or a call."""


class MCPServerExitedError(MCPConnectionError):
    """The server process exited or the connection closed (before or during a call)."""


class MCPProtocolError(MCPError):
    """The server answered with something that is not valid MCP (garbage, a bad tool list)."""


class MCPToolError(MCPError):
    """The tool answered with an error result (``isError``); the text is the server's."""


def missing_sdk() -> ImportError:
    """The error for a missing ``mcp`` package, naming the extra to install."""
    return ImportError(f"agentkit.mcp needs the MCP SDK: {_INSTALL_HINT}")


RENAMED = {"MCPServerExited": "MCPServerExitedError"}
"""Old names that still resolve, with a ``DeprecationWarning`` (see ``agentkit._errors``)."""

# Hidden from type checkers, so that only the names above are valid to them.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in RENAMED:
            return renamed(__name__, name, globals()[RENAMED[name]])
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
