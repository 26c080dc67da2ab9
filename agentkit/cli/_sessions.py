"""``agentkit sessions list|show|delete|pending|approve|deny`` and the store behind
``chat --session``.

The default store is a SQLite file under the user's data directory; ``--store`` names
another file, or a ``postgresql://`` DSN for a PostgreSQL store; ``--agent FILE.py:NAME``
uses that agent's own store, the one ``agentkit serve`` of the same agent writes to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._visible import visible, visible_json
from ._errors import EXIT_ERROR, EXIT_OK, UsageError

if TYPE_CHECKING:
    from .._agent import Agent
    from .._result import PendingCall
    from .._store import SessionInfo, SessionRecord, Store

__all__ = ["default_store_path", "open_store", "sessions_command", "store_of_agent"]

_NOT_THERE = "check the path, or add --create to start a new store there"


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


def _is_dsn(where: str) -> bool:
    return where.startswith(("postgresql://", "postgres://"))


def open_store(where: str | None, *, create: bool = True) -> Store:
    """The store ``--store`` names: a ``postgresql://`` DSN, else a SQLite file path.

    With ``create=False`` a SQLite file that does not exist is a ``UsageError`` (a mistyped
    path would otherwise be a new, empty store); the default path is always created.
    """
    if where and _is_dsn(where):
        from ..sessions import PostgresStore

        return PostgresStore(where)
    from ..sessions import SQLiteStore

    path = Path(where).expanduser() if where else default_store_path()
    if where and not create and not path.exists():
        raise UsageError(f"--store {where}: no such file", hint=_NOT_THERE)
    return SQLiteStore(path)


def store_of_agent(agent: Agent[Any], given: str, where: str | None) -> Store | None:
    """The agent's own store, checked against ``--store`` when both are given.

    ``None`` when the agent has no store (then ``--store``, or the default, is used).
    Both given and not provably the same store is a ``UsageError``: a command never
    silently reads one store while the user named another.
    """
    store = agent.store
    if store is None or where is None:
        return store
    from ..sessions import SQLiteStore

    if isinstance(store, SQLiteStore) and not _is_dsn(where):
        if Path(where).expanduser().resolve() == store.path.resolve():
            return store
        raise UsageError(
            f"--store {where} is not the store of {given} ({str(store.path)!r})",
            hint="drop --store: --agent uses the agent's own store",
        )
    raise UsageError(
        f"--store {where} and {given} ({store!r}) may name different stores",
        hint="drop --store: --agent uses the agent's own store",
    )


def sessions_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``agentkit sessions list|show|delete|pending|approve|deny``."""
    from .._store import SessionError

    try:
        return _sessions(args, out, err)
    except (SessionError, ValueError) as error:  # one line, no traceback
        err.write(f"agentkit: error: {visible(str(error))}\n")
        return EXIT_ERROR


def _sessions(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    agent = None
    store = None
    if args.agent:
        from ._loading import load_agent

        _, agent = load_agent(args.agent, option="--agent")
        store = store_of_agent(agent, f"--agent {args.agent}", args.store)
    if args.action in ("approve", "deny") and agent is None:
        raise UsageError(
            f"sessions {args.action} runs the decided calls: name the agent with --agent",
            hint=f"agentkit sessions {args.action} ID CALL_ID --agent bot.py:desk",
        )
    if store is None:
        store = open_store(args.store, create=args.create)
    try:
        if args.action == "list":
            return _list(store, args, out, err)
        if args.action == "pending":
            return _pending(store, args, out, err)
        if not args.name:
            raise UsageError(f"sessions {args.action} needs a session NAME")
        if args.action in ("approve", "deny"):
            from ._decide import decide

            assert agent is not None
            return decide(agent, store, args, out, err)
        if args.calls:
            raise UsageError(f"sessions {args.action} takes one NAME, not call ids")
        if args.action == "delete":
            if store.delete(args.name):
                err.write(f"deleted session {args.name!r}\n")
                return EXIT_OK
            err.write(f"agentkit: error: no session {args.name!r}\n")
            return EXIT_ERROR
        return _show(store.load(args.name), args, out)
    finally:
        store.close()


def _list(store: Store, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    found = store.list_sessions(limit=args.limit, prefix=args.prefix or "")
    if args.json:
        out.write(visible_json(json.dumps([_info_dict(s) for s in found], ensure_ascii=False)))
        out.write("\n")
    for info in [] if args.json else found:
        out.write(_info_line(info) + "\n")
    if not found and not args.json:
        err.write("(no sessions)\n")
    return EXIT_OK


def _pending(store: Store, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Every call waiting for a decision, oldest pause first."""
    paused = [
        info
        for info in store.list_sessions(limit=args.limit, prefix=args.prefix or "")
        if info.status == "paused"
    ]
    waiting = []
    for info in sorted(paused, key=lambda info: info.updated_at):
        record = store.load(info.session_id)
        for call in record.pending_calls:  # every level's (an agent used as a tool's too)
            waiting.append((info, call))
    if args.json:
        rows = [
            {
                "session": info.session_id,
                "call_id": call.key,
                "name": call.name,
                "arguments": call.arguments,
                "arguments_digest": call.digest,  # as GET /v1/approvals shows it
                "path": list(call.path),
                "waiting_since": info.updated_at,
            }
            for info, call in waiting
        ]
        out.write(visible_json(json.dumps(rows, ensure_ascii=False)) + "\n")
        return EXIT_OK
    for info, call in waiting:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.updated_at))
        out.write(f"{visible(info.session_id)}\t{visible(call.key)}\t{_call_text(call)}\t{when}\n")
    if not waiting:
        err.write("(no calls waiting for approval)\n")
    return EXIT_OK


def _show(record: SessionRecord, args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        data = {**_info_dict(record.info), "messages": record.messages}
        if record.pending is not None:
            data["pending"] = [call.to_dict() for call in record.pending_calls]
        out.write(visible_json(json.dumps(data, ensure_ascii=False, indent=2)) + "\n")
        return EXIT_OK
    out.write(_info_line(record.info) + "\n")
    for message in record.messages:
        out.write(_message_line(message) + "\n")
    for call in record.pending_calls:
        out.write(f"  (waiting for approval) {visible(call.key)}: {_call_text(call)}\n")
    return EXIT_OK


def _call_text(call: PendingCall) -> str:
    where = f"[{visible(' > '.join(call.path))}] " if len(call.path) > 1 else ""
    return f"{where}{visible(call.name)}({_short(call.arguments, 120)})"


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
    return f"{visible(info.session_id)}\t{info.length} messages\t{when}{status}"


def _message_line(message: dict[str, Any]) -> str:
    role = message.get("role")
    if role == "tool":
        return f"  tool {_short(message.get('name') or '')}: {_short(message.get('content'))}"
    calls = message.get("tool_calls") or []
    text = _short(message.get("content"))
    called = ", ".join(
        f"{_short(c['function']['name'])}({_short(c['function'].get('arguments'), 80)})"
        for c in calls
    )
    return f"{visible(str(role))}: {text}" + (f" [calls {called}]" if called else "")


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return visible(text if len(text) <= limit else text[: limit - 1] + "…")
