"""``ToolSource``: tools that live outside the program, such as an MCP server's.

A source goes in an agent's tool list next to ``@tool`` functions. The agent asks it for its
tools at the start of every run (:meth:`ToolSource.tools` from ``run``/``stream``,
:meth:`ToolSource.tools_async` from ``run_async``/``stream_async``). A source fetches them
on first use and caches them, and returns the *same* sequence object while its tools are
unchanged, so the agent derives the request's tool definitions again only when they change.
``with agent:`` / ``async with agent:`` opens every source and closes it on exit; ``close``
and ``aclose`` close them too. The core knows nothing else about a source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._tool import Tool

__all__ = ["ToolSource"]


class ToolSource:
    """Base class of objects that supply tools to an :class:`~agentkit.Agent` from elsewhere.

    Subclasses implement :meth:`tools` and :meth:`tools_async`; the lifecycle methods
    default to doing nothing. Each call of ``tools``/``tools_async`` marks the start of a
    run, and the sequence it returns is the tool list of that run.
    """

    def tools(self) -> Sequence[Tool[..., Any]]:
        """The tools for a run that is starting (may block: connect, list)."""
        raise NotImplementedError

    async def tools_async(self) -> Sequence[Tool[..., Any]]:
        """The tools for a run that is starting, from async code."""
        raise NotImplementedError

    def open(self) -> None:
        """Connect now instead of on first use (``with agent:``)."""

    async def aopen(self) -> None:
        """Connect now, from async code (``async with agent:``)."""

    def close(self) -> None:
        """Release what the source holds (idempotent; it may be used again afterwards)."""

    async def aclose(self) -> None:
        """Release what the source holds, from async code."""
