"""``agentkit keys add|list|revoke``: API keys with identities, kept hashed in a store.

The keys live in the store of the agent named by ``--agent`` (the store ``agentkit serve
--auth keys`` of that agent reads) or in the one ``--store`` names. ``add`` prints the new
key once, alone on the last line of stdout, so that ``KEY=$(agentkit keys add ...)`` works;
it is never stored or shown again.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, TextIO

from ._errors import EXIT_OK, UsageError

__all__ = ["add_keys_parser", "keys_command"]


def add_keys_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """The ``keys`` subcommand's options."""
    keys = commands.add_parser(
        "keys",
        help="add, list or revoke API keys that sign people in (agentkit serve --auth keys)",
        description="API keys with identities for `agentkit serve --auth keys`: each key "
        "signs in one user with their roles. Only a digest of each key is stored.",
        epilog="examples:\n"
        "  agentkit keys add --agent bot.py:desk --user dana --role patient\n"
        "  agentkit keys add --agent bot.py:desk --user rita --role receptionist\n"
        "  agentkit keys list --agent bot.py:desk\n"
        "  agentkit keys revoke 4b3107407e25 --agent bot.py:desk\n"
        "  agentkit keys revoke --user dana --agent bot.py:desk",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keys.add_argument("action", choices=("add", "list", "revoke"), help="what to do")
    keys.add_argument("key_id", nargs="?", metavar="ID", help="revoke: the key's id (keys list)")
    keys.add_argument("--agent", metavar="FILE.py:NAME", help="keep the keys in this Agent's store")
    keys.add_argument(
        "--store", metavar="PATH_OR_DSN", help="keep the keys here (a SQLite file or a DSN)"
    )
    keys.add_argument(
        "--create", action="store_true", help="start a new SQLite store if --store names none"
    )
    keys.add_argument(
        "--user", metavar="NAME", help="add: who the key signs in; revoke: all theirs"
    )
    keys.add_argument(
        "--role", action="append", default=[], metavar="ROLE", help="add: a role (repeatable)"
    )
    keys.add_argument("--json", action="store_true", help="list: print JSON")
    keys.add_argument("--debug", action="store_true", help="tracebacks and debug logs")


def keys_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``agentkit keys``."""
    from .._errors import ConfigurationError
    from ..sessions._keys import KeyTable
    from ._sessions import open_store, store_of_agent

    store: Any = None
    if args.agent:
        from ._loading import load_agent

        _, agent = load_agent(args.agent, option="--agent")
        store = store_of_agent(agent, f"--agent {args.agent}", args.store)
        if store is None:
            raise UsageError(
                f"--agent {args.agent} has no store to keep keys in",
                hint="give the Agent a store (store=SQLiteStore('bot.db')), or name one "
                "with --store",
            )
    elif args.store:
        store = open_store(args.store, create=args.create)
    else:
        raise UsageError(
            "name where the keys live: --agent FILE.py:NAME or --store PATH",
            hint="agentkit keys add --agent bot.py:desk --user dana --role patient",
        )
    try:
        table = KeyTable(store)
        if args.action == "add":
            return _add(table, args, out, err)
        if args.action == "list":
            return _list(table, args, out)
        return _revoke(table, args, out)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()


def _add(table: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.user:
        raise UsageError("keys add needs --user NAME", hint="e.g. --user dana --role patient")
    made = table.add(args.user, args.role)
    roles = ", ".join(sorted(made.info.roles)) or "no roles"
    out.write(
        f"a key for {made.info.principal} ({roles}), id {made.info.id}; it is shown once, "
        "here, and only its digest is kept:\n"
    )
    out.write(made.key + "\n")
    return EXIT_OK


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _list(table: Any, args: argparse.Namespace, out: TextIO) -> int:
    found = table.list()
    if args.json:
        rows = [
            {
                "id": info.id,
                "user": info.principal,
                "roles": sorted(info.roles),
                "created_at": info.created_at,
                "revoked_at": info.revoked_at,
            }
            for info in found
        ]
        out.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    if not found:
        out.write("no keys yet (agentkit keys add --user NAME --role ROLE ...)\n")
        return EXIT_OK
    out.write(f"{'ID':<14}{'USER':<20}{'ROLES':<24}{'CREATED':<18}REVOKED\n")
    for info in found:
        roles = ",".join(sorted(info.roles)) or "-"
        out.write(
            f"{info.id:<14}{info.principal:<20}{roles:<24}{_when(info.created_at):<18}"
            f"{_when(info.revoked_at)}\n"
        )
    return EXIT_OK


def _revoke(table: Any, args: argparse.Namespace, out: TextIO) -> int:
    if bool(args.key_id) == bool(args.user):
        raise UsageError(
            "keys revoke takes a key's ID or --user NAME (one of them)",
            hint="agentkit keys list shows the ids",
        )
    target = args.key_id or f"user:{args.user}"
    if not table.revoke(target):
        what = f"key {args.key_id}" if args.key_id else f"key of {args.user}"
        raise UsageError(f"no working {what} to revoke", hint="agentkit keys list shows them")
    what = f"key {args.key_id}" if args.key_id else f"every key of {args.user}"
    out.write(f"revoked {what}; every server refuses it from its next request\n")
    return EXIT_OK
