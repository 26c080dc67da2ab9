"""A clinic front desk, served to patients and a receptionist: identities, per-person
dependencies, and a booking that only a receptionist can approve.

Patients chat with the desk to find free slots, book one and cancel their own bookings.
Each tool gets a ``Clinic`` through ``RunContext[Clinic]``: it carries the signed-in
patient, made per request from the principal by ``clinic_for``, so no tool can act for
another patient whatever the model asks. Booking is marked ``requires_approval``: the run
pauses, and a receptionist decides from the chat page's queue (or ``GET /v1/approvals``,
or ``agentkit sessions approve``); the patient cannot approve their own booking.

    export DASHSCOPE_API_KEY=sk-...               # or AGENTKIT_BASE_URL for another server
    agentkit keys add --agent examples/clinic_desk.py:desk --user dana --role patient
    agentkit keys add --agent examples/clinic_desk.py:desk --user rita --role receptionist
    agentkit serve examples/clinic_desk.py:desk --auth keys --reviewers receptionist \\
        --deps examples/clinic_desk.py:clinic_for

``CLINIC_STORE`` names the conversation store (a SQLite file, default ``clinic.db``, or a
``postgresql://`` DSN for several workers); ``CLINIC_DB`` the clinic's own SQLite file
of slots and bookings (default ``clinic-slots.db``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit import Agent, Principal, RunContext, ToolRetry, tool

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (
    id INTEGER PRIMARY KEY,
    starts TEXT NOT NULL,
    doctor TEXT NOT NULL,
    patient TEXT REFERENCES patients(id)
);
"""
_PATIENTS = [("dana", "Dana Whitfield"), ("erin", "Erin Okafor")]
_SLOTS = [
    (1, "Mon 09:00", "Dr Chen"),
    (2, "Mon 09:30", "Dr Chen"),
    (3, "Tue 14:00", "Dr Osei"),
    (4, "Wed 10:00", "Dr Osei"),
]


@dataclass(frozen=True)
class Clinic:
    """What the tools get: the clinic's database and who is signed in."""

    db_path: Path
    user: str
    receptionist: bool = False

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """A connection for one tool call, committed when the call succeeds."""
        with closing(sqlite3.connect(self.db_path, timeout=30)) as connection, connection:
            yield connection


def open_clinic(path: str | os.PathLike[str]) -> Path:
    """The clinic's database at ``path``, created with its patients and slots if new."""
    where = Path(path)
    with closing(sqlite3.connect(where, timeout=30)) as connection, connection:
        connection.executescript(_SCHEMA)
        connection.executemany("INSERT OR IGNORE INTO patients VALUES (?, ?)", _PATIENTS)
        connection.executemany(
            "INSERT OR IGNORE INTO slots (id, starts, doctor) VALUES (?, ?, ?)", _SLOTS
        )
    return where


def clinic_for(principal: Principal) -> Clinic:
    """The run's dependencies for the person signed in (``agentkit serve --deps``)."""
    db = open_clinic(os.environ.get("CLINIC_DB", "clinic-slots.db"))
    return Clinic(db, principal.id, "receptionist" in principal.roles)


@tool
def find_patient(ctx: RunContext[Clinic], name: str) -> str:
    """Find a patient by (part of) their name. Patients can only find themselves.

    Args:
        name: the name, or part of it.
    """
    with ctx.deps.db() as db:
        rows = db.execute(
            "SELECT id, name FROM patients WHERE name LIKE ? ORDER BY id", (f"%{name}%",)
        ).fetchall()
    if not ctx.deps.receptionist:
        rows = [row for row in rows if row[0] == ctx.deps.user]
    return "\n".join(f"{pid}: {full}" for pid, full in rows) or "no such patient"


@tool
def list_free_slots(ctx: RunContext[Clinic]) -> list[dict[str, Any]]:
    """The slots nobody has booked yet."""
    with ctx.deps.db() as db:
        rows = db.execute(
            "SELECT id, starts, doctor FROM slots WHERE patient IS NULL ORDER BY id"
        ).fetchall()
    return [{"slot_id": sid, "starts": starts, "doctor": doctor} for sid, starts, doctor in rows]


@tool(requires_approval=True, side_effects=True)
def book_slot(ctx: RunContext[Clinic], slot_id: int) -> str:
    """Book a free slot for the signed-in patient (a receptionist approves it first).

    Args:
        slot_id: the slot's number, from list_free_slots.
    """
    with ctx.deps.db() as db:
        changed = db.execute(
            "UPDATE slots SET patient = ? WHERE id = ? AND patient IS NULL",
            (ctx.deps.user, slot_id),
        ).rowcount
        if not changed:
            raise ToolRetry(f"slot {slot_id} is not free; call list_free_slots")
        starts, doctor = db.execute(
            "SELECT starts, doctor FROM slots WHERE id = ?", (slot_id,)
        ).fetchone()
    return f"booked slot {slot_id} ({starts}, {doctor}) for {ctx.deps.user}"


@tool
def cancel_booking(ctx: RunContext[Clinic], slot_id: int) -> str:
    """Cancel one of the signed-in patient's own bookings.

    Args:
        slot_id: the booked slot's number.
    """
    with ctx.deps.db() as db:
        changed = db.execute(
            "UPDATE slots SET patient = NULL WHERE id = ? AND patient = ?",
            (slot_id, ctx.deps.user),
        ).rowcount
    if not changed:
        raise ToolRetry(f"you have no booking in slot {slot_id}")
    return f"cancelled slot {slot_id}"


def _store() -> Any:
    where = os.environ.get("CLINIC_STORE", "clinic.db")
    if where.startswith(("postgresql://", "postgres://")):
        from agentkit.sessions import PostgresStore

        return PostgresStore(where, schema=os.environ.get("CLINIC_SCHEMA", "clinic"))
    from agentkit.sessions import SQLiteStore

    return SQLiteStore(where)


def build_desk(model: str | None = None, base_url: str | None = None) -> Agent[str]:
    """The desk agent on ``model`` (default ``CLINIC_MODEL``, else qwen-plus)."""
    return Agent(
        model or os.environ.get("CLINIC_MODEL", "qwen-plus"),
        [find_patient, list_free_slots, book_slot, cancel_booking],
        "You are the front desk of a small clinic. Help the signed-in patient find a free "
        "slot, book it (a receptionist approves bookings) or cancel their own booking. "
        "Never guess slot numbers: list the free slots first.",
        base_url=base_url,
        store=_store(),
    )


def __getattr__(name: str) -> Any:
    # `desk` is built on first use, so that importing this file (agentkit serve, --help,
    # a test collecting it) needs no model key until the first request.
    if name == "desk":
        made = build_desk()
        globals()["desk"] = made
        return made
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    """Ask the desk one question as a patient, at the terminal (no server needed)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prompt", nargs="+", help="what the patient says")
    parser.add_argument("--user", default="dana", help="the signed-in patient (dana)")
    parser.add_argument("--session", default=None, help="the conversation (USER-desk)")
    parser.add_argument("--model", default="qwen-plus", help="the model (qwen-plus)")
    parser.add_argument(
        "--base-url", help="another OpenAI-compatible server (default: AGENTKIT_BASE_URL)"
    )
    args = parser.parse_args(argv)
    principal = Principal(args.user, frozenset({"patient"}))
    with build_desk(args.model, args.base_url) as agent:
        result = agent.run(
            " ".join(args.prompt),
            session=args.session or f"{args.user}-desk",
            deps=clinic_for(principal),
            principal=principal,
        )
    if result.status == "paused":
        for call in result.pending:
            print(f"waiting for a receptionist: {call.name}({call.arguments})")
        print("serve the desk and approve from the queue: see this file's docstring")
    else:
        print(result.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
