"""Tools that raise their own ``CancelledError``, served by ``agentkit mcp serve`` in the
MCP server tests: each must be a tool error, and the server must go on."""

from __future__ import annotations

import asyncio

from agentkit import tool


@tool
async def cancels() -> str:
    """Raise CancelledError of its own accord."""
    raise asyncio.CancelledError


@tool
def cancels_in_a_thread() -> str:
    """A sync tool that raises CancelledError."""
    raise asyncio.CancelledError


@tool
async def inner_cancelled() -> str:
    """Await a task that something else cancels."""
    inner = asyncio.ensure_future(asyncio.sleep(30))
    asyncio.get_running_loop().call_soon(inner.cancel)
    await inner
    return "never"


@tool
async def slow_echo(text: str) -> str:
    """Answer after a moment (a call in flight while another one fails)."""
    await asyncio.sleep(0.5)
    return text
