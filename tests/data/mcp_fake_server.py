"""A raw JSON-RPC MCP server over stdio (the 2025 handshake), with scripted misbehaviour.

``python fake_server.py MODE``; the modes are the faults the MCP tests need:

- ``ok``: tools ``echo`` (returns its text), ``crash`` (exits mid-call), ``image`` (an image
  and a resource beside text), ``fail`` (an isError result), ``big`` (200,000 characters),
  ``add_tool`` (adds ``extra`` and notifies list_changed), ``garbage`` (a result that is not
  a CallToolResult), ``slow`` (never answers; with ``FAKE_MCP_ARRIVED`` set to a path, it
  first writes that file, so a test can wait for the call to be on the server), ``whoami``
  (the process id), ``noise`` (writes lines that are not JSON-RPC before its answer),
  ``chatty`` (writes 1 MB to stderr, then answers);
- ``hang``: reads stdin and never answers anything (not even initialize);
- ``duplicate``: lists ``echo`` twice;
- ``names``: tool names that are too long or use ``.`` and ``/``, and a 100,000-character
  description;
- ``garbage-list``: a tools/list result that is not a list of tools;
- ``slow-list``: answers the handshake, never tools/list;
- ``many``: 8,000 tools of about 650 bytes each (5.2 MB), listed in pages of 100;
- ``huge-schema``: one tool whose input schema is 5 MB;
- ``slow-schemas``: 50 tools of 8 kB whose nested schemas take jsonschema most of a second
  each to check (40 s in all).

It writes a line to stderr as it starts, so errors can quote the server's last words.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
EXTRA = {"added": False}


def tool(name: str, **properties: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"The {name} tool.",
        "inputSchema": {
            "type": "object",
            "properties": properties,
            "required": list(properties),
        },
    }


def many(index: int) -> dict[str, Any]:
    properties = {f"field_{n}": {"type": "string", "description": "x" * 40} for n in range(8)}
    return {**tool(f"t{index:04d}", **properties), "description": f"Tool number {index}."}


def tools() -> Any:
    if MODE == "slow-schemas":
        nested = {"anyOf": [{"allOf": [{"type": "string"}] * 20}] * 20}
        return [tool(f"s{i:02d}", a=nested) for i in range(50)]
    if MODE == "huge-schema":
        return [tool("huge", blob={"type": "string", "description": "h" * 5_000_000})]
    if MODE == "garbage-list":
        return "not a list"
    if MODE == "duplicate":
        return [tool("echo", text={"type": "string"}), tool("echo")]
    if MODE == "names":
        wordy = {**tool("wordy"), "description": "w" * 100_000}
        return [tool("x" * 100), tool("files.read/v2"), tool("files_read_v2"), wordy]
    listed = [
        tool("echo", text={"type": "string"}),
        tool("crash"),
        tool("image"),
        tool("fail"),
        tool("big"),
        tool("add_tool"),
        tool("garbage"),
        tool("slow"),
        tool("whoami"),
        tool("noise"),
        tool("chatty", n={"type": "integer"}),
    ]
    if EXTRA["added"]:
        listed.append(tool("extra"))
    return listed


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def text(value: str, error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": error}


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
    if name == "echo":
        return text(str(arguments.get("text")))
    if name == "crash":
        sys.stderr.write("boom: the fake server crashes on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    if name == "image":
        return {
            "content": [
                {"type": "text", "text": "a chart"},
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
                {
                    "type": "resource",
                    "resource": {"uri": "file:///r.bin", "blob": "AAAA", "mimeType": "x/y"},
                },
            ]
        }
    if name == "fail":
        return text("the record is locked", error=True)
    if name == "big":
        return text("y" * 200_000)
    if name == "add_tool":
        EXTRA["added"] = True
        send({"method": "notifications/tools/list_changed"})
        return text("added")
    if name == "garbage":
        return {"content": "this is not a list of content blocks"}
    if name == "slow":
        arrived = os.environ.get("FAKE_MCP_ARRIVED")
        if arrived:  # the signal a test waits on: the call is on the server now
            with open(arrived, "w") as file:
                file.write("slow\n")
        return None  # never answered
    if name == "whoami":
        return text(str(os.getpid()))
    if name == "noise":  # lines that are not JSON-RPC on stdout, then the answer
        sys.stdout.write('this line is not JSON\n{"jsonrpc": "2.0", "id": "nobody"}\n[1, 2\n')
        sys.stdout.flush()
        return text("after the noise")
    if name == "chatty":  # a server that logs a lot: 1 MB of stderr per call
        line = "debug: " + "z" * 1017 + "\n"
        sys.stderr.write(line * 1024)
        sys.stderr.flush()
        return text("chatted")
    return text(f"called {name}")


def main() -> None:
    sys.stderr.write(f"fake MCP server starting in mode {MODE}\n")
    sys.stderr.flush()
    for line in sys.stdin:
        if MODE == "hang":
            continue
        message = json.loads(line)
        method = message.get("method")
        ident = message.get("id")
        if ident is None:
            continue  # a notification
        if method == "initialize":
            result: Any = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": "fake", "version": "1"},
            }
        elif method == "tools/list":
            if MODE == "slow-list":
                continue  # never answered
            if MODE == "many":
                start = int((message.get("params") or {}).get("cursor") or 0)
                result = {"tools": [many(i) for i in range(start, start + 100)]}
                if start + 100 < 8000:
                    result["nextCursor"] = str(start + 100)
            else:
                result = {"tools": tools()}
        elif method == "tools/call":
            params = message["params"]
            result = call(params["name"], params.get("arguments") or {})
            if result is None:
                continue
        elif method == "ping":
            result = {}
        else:
            send({"id": ident, "error": {"code": -32601, "message": f"no method {method}"}})
            continue
        send({"id": ident, "result": result})


if __name__ == "__main__":
    main()
