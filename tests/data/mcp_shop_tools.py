"""Tools served by `agentkit mcp serve` in the MCP server tests."""

from __future__ import annotations

import time

from agentkit import RunContext, tool


@tool
def add(a: int, b: int = 1) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    print("stray output that must not reach the protocol")
    return a + b


@tool
async def shout(text: str) -> str:
    """Shout the text."""
    return text.upper()


@tool(requires_approval=True)
def delete_contact(contact_id: int) -> str:
    """Delete a contact for good."""
    return f"deleted {contact_id}"


@tool
def whose(ctx: RunContext[str]) -> str:
    """Who is asking."""
    return f"asked by {ctx.deps}"


@tool
def broken() -> str:
    """Always fails."""
    raise ValueError("the database is down")


@tool(timeout=0.2)
def sleepy() -> str:
    """Sleeps past its timeout."""
    time.sleep(2)
    return "late"


def make_deps() -> str:
    """The deps for RunContext tools."""
    return "the operator"
