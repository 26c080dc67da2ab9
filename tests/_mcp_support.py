"""What the MCP tests share: the fake stdio server, HTTP servers on loopback, leak probes.

The servers are real: child processes spoken to over pipes, and uvicorn on 127.0.0.1 with
the official SDK's streamable-HTTP transport. Nothing reaches the network.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentkit import Agent
from agentkit.mcp import MCPStdio
from agentkit.testing import ScriptedServer

FAKE = str(Path(__file__).parent / "data" / "mcp_fake_server.py")
KEY = "sk-mcp-test-SECRET-0123456789"


def fake(mode: str = "ok", **options: Any) -> MCPStdio:
    """The fake stdio server (``tests/data/mcp_fake_server.py``) in ``mode``."""
    options.setdefault("prefix", "fake")
    return MCPStdio(sys.executable, [FAKE, mode], **options)


def agent_for(server: ScriptedServer, tools: list[Any], **options: Any) -> Agent[str]:
    """An agent on the scripted model, with ``tools`` (sources included)."""
    return Agent("qwen-plus", tools, base_url=server.base_url, api_key=KEY, **options)


def tool_messages(messages: list[dict[str, Any]]) -> list[str]:
    """The contents of the tool messages of a transcript, in order."""
    return [m["content"] for m in messages if m["role"] == "tool"]


def children() -> set[int]:
    """The ids of this process's live (not zombie) child processes."""
    found: set[int] = set()
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry))
    return found


def open_fds() -> int:
    """How many pipes, sockets and event-loop descriptors this process has open (what an
    MCP connection holds). Files on disk are left out: another test's leftover thread in
    this worker (a late result written to a store) may open one meanwhile."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            found += not os.readlink(f"/proc/self/fd/{name}").startswith("/")
        except OSError:
            continue  # the listing's own descriptor, already closed
    return found


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60  # a bound on a hang: a loaded machine starts slowly
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
