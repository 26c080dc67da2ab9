"""A scripted OpenAI-compatible Chat Completions server on loopback, for testing bots.

:class:`ScriptedServer` listens on a real socket on 127.0.0.1 and answers each request
from a script of :class:`Reply` objects (or a function of the request), as JSON or SSE,
with the faults real networks and servers produce: error statuses, delays, cut and stalled
streams, resets, hangs, bodies that are not JSON, and the format quirks of llama.cpp,
DashScope and Qwen without a tool parser. Every request is recorded as a
:class:`RecordedRequest`.

Example::

    from agentkit.testing import Reply, ScriptedServer

    with ScriptedServer() as server:
        server.queue(
            Reply.tool_calls(("get_current_time", {})),
            Reply.text("It is noon."),
        )
        ...  # point the client or agent at server.base_url
        assert server.requests[1].messages[-1]["role"] == "tool"

Run ``python -m agentkit.testing --help`` to serve a scripted model from the command line,
and ``--script FILE`` to serve a script of your own (:func:`load_script`) to ``agentkit
serve``, ``agentkit chat`` or a test suite in another process.
"""

from __future__ import annotations

from .models import always, echo, tool_then_answer
from .recorded import RecordedRequest
from .replies import Reply, ToolCallSpec, ToolCallStyle
from .script import ScriptError, load_script, script_model
from .server import Handler, ScriptedServer

__all__ = [
    "Handler",
    "RecordedRequest",
    "Reply",
    "ScriptError",
    "ScriptedServer",
    "ToolCallSpec",
    "ToolCallStyle",
    "always",
    "echo",
    "load_script",
    "script_model",
    "tool_then_answer",
]
