"""Helpers of the session contract suite: open a store from a picklable spec, run code in
another process, build transcripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.sessions import SQLiteStore

HERE = Path(__file__).parent


@dataclass(frozen=True)
class StoreSpec:
    """How to open one test store, in this process or another."""

    kind: str
    where: str
    schema: str = "public"

    def code(self) -> str:
        """Python source that binds ``store`` to this store (for a child process)."""
        if self.kind == "sqlite":
            return f"from agentkit.sessions import SQLiteStore\nstore = SQLiteStore({self.where!r})"
        return (
            "from agentkit.sessions import PostgresStore\n"
            f"store = PostgresStore({self.where!r}, schema={self.schema!r})"
        )


def open_store(spec: StoreSpec, cls: type[Any] | None = None, **options: Any) -> Any:
    """Open the store ``spec`` names (``cls`` overrides the class: a made-up schema version)."""
    if spec.kind == "sqlite":
        return (cls or SQLiteStore)(spec.where, **options)
    from agentkit.sessions import PostgresStore

    return (cls or PostgresStore)(spec.where, schema=spec.schema, **options)


def run_child(spec: StoreSpec, body: str, *, stdin: bool = False) -> Any:
    """Run ``body`` in a fresh Python process with ``store`` open.

    Returns the finished ``CompletedProcess``, or with ``stdin=True`` the running ``Popen``
    (text pipes on stdin and stdout) for a test that talks to it.
    """
    source = spec.code() + "\n" + textwrap.dedent(body)
    command = [sys.executable, "-c", source]
    if stdin:
        return subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
        )
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(os.environ))


def last_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The last line a child printed, parsed."""
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def user(text: str) -> dict[str, Any]:
    """A user message."""
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    """A plain assistant answer."""
    return {"role": "assistant", "content": text}


def calls(*pairs: tuple[str, str], arguments: str = "{}") -> dict[str, Any]:
    """An assistant message calling (id, name) pairs."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": arguments}}
            for i, n in pairs
        ],
    }


def answer(call_id: str, name: str, content: str) -> dict[str, Any]:
    """A tool message."""
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


def raw(spec: StoreSpec, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Run SQL on the store's database behind its back (``?`` placeholders, ``{p}`` prefix)."""
    if spec.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(spec.where) as lite:
            rows = lite.execute(sql.replace("{p}", ""), params).fetchall()
        lite.close()
        return rows
    import psycopg

    with psycopg.connect(spec.where, autocommit=True) as server:
        cursor = server.execute(sql.replace("{p}", f'"{spec.schema}".').replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []
