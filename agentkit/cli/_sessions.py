"""``agentkit sessions list|show|delete`` and the store behind ``chat --session``.

The default store is a SQLite file under the user's data directory; ``--store`` names
another file, or a ``postgresql://`` DSN for a PostgreSQL store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import EXIT_ERROR, EXIT_OK, UsageError

if TYPE_CHECKING:
    from .._store import SessionInfo, Store

__all__ = ["default_store_path", "open_store", "sessions_command"]


def default_store_path() -> Path:
    """Where ``chat --session`` keeps conversations unless ``--store`` says otherwise.

    ``$XDG_DATA_HOME/agentkit/sessions.db`` (``~/.local/share`` when unset) on Linux and
    other Unix systems, ``~/Library/Application Support/agentkit`` on macOS and
    ``%LOCALAPPDATA%\\agentkit`` on Windows.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "agentkit" / "sessions.db"


def open_store(where: str | None) -> Store:
    """The store ``--store`` names: a ``postgresql://`` DSN, else a SQLite file path."""
    if where and where.startswith(("postgresql://", "postgres://")):
        from ..sessions import PostgresStore

        return PostgresStore(where)
    from ..sessions import SQLiteStore

    return SQLiteStore(Path(where).expanduser() if where else default_store_path())


def sessions_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``agentkit sessions list|show NAME|delete NAME``."""
    from .._store import SessionError

    try:
        return _sessions(args, out, err)
    except (SessionError, ValueError) as error:  # one line, no traceback
        err.write(f"agentkit: error: {error}\n")
        return EXIT_ERROR


def _sessions(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .._store import SessionNotFoundError

    store = open_store(args.store)
    try:
        if args.action == "list":
            found = store.list_sessions(limit=args.limit, prefix=args.prefix or "")
            if args.json:
                out.write(json.dumps([_info_dict(s) for s in found], ensure_ascii=False) + "\n")
            for info in [] if args.json else found:
                out.write(_info_line(info) + "\n")
            if not found and not args.json:
                err.write("(no sessions)\n")
            return EXIT_OK
        if not args.name:
            raise UsageError(f"sessions {args.action} needs a session NAME")
        if args.action == "delete":
            if store.delete(args.name):
                err.write(f"deleted session {args.name!r}\n")
                return EXIT_OK
            err.write(f"agentkit: error: no session {args.name!r}\n")
            return EXIT_ERROR
        try:
            record = store.load(args.name)
        except SessionNotFoundError as error:
            err.write(f"agentkit: error: {error}\n")
            return EXIT_ERROR
        if args.json:
            data = {**_info_dict(record.info), "messages": record.messages}
            if record.pending is not None:
                data["pending"] = record.pending.get("calls", [])
            out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
            return EXIT_OK
        out.write(_info_line(record.info) + "\n")
        for message in record.messages:
            out.write(_message_line(message) + "\n")
        for call in (record.pending or {}).get("calls", []):
            out.write(f"  (waiting for approval) {call.get('name')}({call.get('arguments')})\n")
        return EXIT_OK
    finally:
        store.close()


def _info_dict(info: SessionInfo) -> dict[str, Any]:
    return {
        "session": info.session_id,
        "messages": info.length,
        "status": info.status,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
    }


def _info_line(info: SessionInfo) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.updated_at))
    status = "  paused" if info.status == "paused" else ""
    return f"{info.session_id}\t{info.length} messages\t{when}{status}"


def _message_line(message: dict[str, Any]) -> str:
    role = message.get("role")
    if role == "tool":
        return f"  tool {message.get('name') or ''}: {_short(message.get('content'))}"
    calls = message.get("tool_calls") or []
    text = _short(message.get("content"))
    called = ", ".join(
        f"{c['function']['name']}({_short(c['function'].get('arguments'), 80)})" for c in calls
    )
    return f"{role}: {text}" + (f" [calls {called}]" if called else "")


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
