"""A support desk made of agents: triage hands the customer to billing or to tech support.

- **triage** only routes: ``handoffs=[billing, tech]`` gives its model a
  ``transfer_to_billing`` and a ``transfer_to_tech`` tool.
- **billing** looks invoices up and refunds them. A refund moves money, so that tool is
  ``requires_approval``: the run pauses until a person decides (at the terminal, later with
  ``--approve``/``--deny``, or over HTTP when served). Billing asks tech, used as a tool
  (``tech.as_tool()``), whether an outage on the line explains a charge, and hands the
  customer back to triage for anything else.
- **tech** checks the customer's line.

Every conversation is a session in SQLite: the customer's next message goes to the agent
that has the conversation now (billing, after a handoff), not back to triage.

    export DASHSCOPE_API_KEY=sk-...           # or AGENTKIT_BASE_URL for another server
    python examples/support_desk.py "I was charged twice for March."
    python examples/support_desk.py --approve        # a person approves the waiting refund
    agentkit serve examples/support_desk.py:triage --deps examples/support_desk.py:account_for

``DESK_DB`` names the SQLite file of accounts, invoices and refunds (default ``desk.db``);
``DESK_STORE`` the conversations' store (default ``desk-sessions.db``); ``DESK_MODEL``
the model (default qwen-plus).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit import Agent, AgentKitError, Principal, RunContext, RunResult, tool

DEMO_CUSTOMER = "cust-9"
"""The account a person gets who is not a customer of the demo (``local`` when served
without sign-in): a real desk looks the signed-in person's account up instead."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    month TEXT NOT NULL,           -- 2025-03
    amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL           -- paid, refunded
);
CREATE TABLE IF NOT EXISTS lines (
    customer TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    outages TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    invoice_id INTEGER NOT NULL REFERENCES invoices(id),
    amount_cents INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""
_INVOICES = [
    (301, DEMO_CUSTOMER, "2025-03", 4000, "paid"),
    (302, DEMO_CUSTOMER, "2025-03", 4000, "paid"),  # charged twice
    (303, DEMO_CUSTOMER, "2025-04", 4000, "paid"),
    (401, "cust-12", "2025-03", 2500, "paid"),
]
_LINES = [
    (DEMO_CUSTOMER, "up, 95 Mbit/s", "down 2025-04-03 to 2025-04-05"),
    ("cust-12", "down since this morning", "none before today"),
]


@dataclass(frozen=True)
class Account:
    """What the tools get through ``RunContext[Account]``: the desk's database and the
    customer being served. No tool takes a customer from the model."""

    db_path: Path
    customer: str

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """A connection for one tool call, committed when the call succeeds (one per call:
        tools run in threads, and an sqlite3 connection belongs to its thread)."""
        with closing(sqlite3.connect(self.db_path, timeout=30)) as connection, connection:
            connection.row_factory = sqlite3.Row
            yield connection


def open_desk(path: str | os.PathLike[str]) -> Path:
    """The desk's database at ``path``, created with the demo accounts if new."""
    where = Path(path)
    with closing(sqlite3.connect(where, timeout=30)) as connection, connection:
        connection.executescript(_SCHEMA)
        connection.executemany("INSERT OR IGNORE INTO invoices VALUES (?,?,?,?,?)", _INVOICES)
        connection.executemany("INSERT OR IGNORE INTO lines VALUES (?,?,?)", _LINES)
    return where


def account_for(principal: Principal) -> Account:
    """The run's deps for the person served (``agentkit serve --deps``)."""
    customer = principal.id if principal.id.startswith("cust-") else DEMO_CUSTOMER
    return Account(open_desk(os.environ.get("DESK_DB", "desk.db")), customer)


# --- the tools ------------------------------------------------------------------------------


@tool
def lookup_invoices(ctx: RunContext[Account], month: str) -> list[dict[str, Any]]:
    """The customer's invoices of one month.

    Args:
        month: The month as YYYY-MM, such as 2025-03.
    """
    with ctx.deps.db() as db:
        rows = db.execute(
            "SELECT * FROM invoices WHERE customer = ? AND month = ? ORDER BY id",
            (ctx.deps.customer, month),
        )
        return [
            {
                "invoice": r["id"],
                "amount": f"{r['amount_cents'] / 100:.2f} EUR",
                "status": r["status"],
            }
            for r in rows
        ]


@tool(requires_approval=True)
def issue_refund(ctx: RunContext[Account], invoice_id: int, reason: str) -> str:
    """Refund one paid invoice in full. A person approves every refund.

    Args:
        invoice_id: The invoice number, such as 302.
        reason: Why, in the customer's words.
    """
    with ctx.deps.db() as db:
        row = db.execute(
            "SELECT * FROM invoices WHERE id = ? AND customer = ?", (invoice_id, ctx.deps.customer)
        ).fetchone()
        if row is None:
            return f"The customer has no invoice {invoice_id}."
        if row["status"] != "paid":
            return f"Invoice {invoice_id} is {row['status']}: only paid invoices are refunded."
        db.execute("UPDATE invoices SET status = 'refunded' WHERE id = ?", (invoice_id,))
        refund = (invoice_id, row["amount_cents"], reason)
        db.execute("INSERT INTO refunds VALUES (?, ?, ?)", refund)
        return f"Refunded {row['amount_cents'] / 100:.2f} EUR for invoice {invoice_id}."


@tool
def check_line(ctx: RunContext[Account]) -> dict[str, str]:
    """The customer's line: its status now and the outages on record."""
    with ctx.deps.db() as db:
        row = db.execute("SELECT * FROM lines WHERE customer = ?", (ctx.deps.customer,)).fetchone()
    if row is None:
        return {"status": "no line on this account", "outages": "none"}
    return {"status": row["status"], "outages": row["outages"]}


# --- the agents -----------------------------------------------------------------------------

TRIAGE = (
    "You are the triage agent of a telecom support desk. Do not answer questions yourself: "
    "hand billing questions (invoices, charges, refunds) to billing and connection problems "
    "to tech."
)
BILLING = (
    "You are the billing agent of a telecom support desk. Look invoices up before you "
    "answer; refund a double charge with issue_refund (a person approves it). If a charge "
    "may be explained by an outage, ask tech. Hand anything that is not billing back to "
    "triage. Be brief."
)
TECH = (
    "You are the technical support agent of a telecom support desk. Check the customer's "
    "line before you answer. Be brief."
)


def build_desk(
    model: str | None = None, base_url: str | None = None, store: Any = None
) -> Agent[str]:
    """The desk's entry agent, triage, and the agents it hands off to. The conversations
    live in ``store`` (default: ``DESK_STORE``, else ``desk-sessions.db``)."""
    from agentkit.sessions import SQLiteStore

    model = model or os.environ.get("DESK_MODEL", "qwen-plus")
    if store is None:
        store = SQLiteStore(os.environ.get("DESK_STORE", "desk-sessions.db"))
    tech = Agent(model, [check_line], TECH, name="tech", base_url=base_url)
    ask_tech = tech.as_tool(
        name="ask_tech", description="Ask technical support about the customer's line."
    )
    billing = Agent(
        model, [lookup_invoices, issue_refund, ask_tech], BILLING, name="billing",
        base_url=base_url,
    )  # fmt: skip
    triage = Agent(
        model, [], TRIAGE, name="triage", handoffs=[billing, tech], base_url=base_url,
        store=store,
    )  # fmt: skip
    billing.handoffs.append(triage)  # billing may hand the customer back
    return triage


def __getattr__(name: str) -> Any:
    # `triage` is built on first use, so that importing this file (agentkit serve, --help,
    # a test collecting it) needs no model key until the first request.
    if name == "triage":
        made = build_desk()
        globals()["triage"] = made
        return made
    raise AttributeError(name)


# --- at the terminal ------------------------------------------------------------------------


def show(result: RunResult[str]) -> None:
    """Print who answered and what, or what waits for a person."""
    if result.status == "paused":
        for call in result.pending:
            print(f"[{result.agent}] waiting for approval: {call.name}({call.arguments})")
        print("decide with --approve or --deny")
    else:
        print(f"[{result.agent}] {result.output}")


def main(argv: list[str] | None = None) -> int:
    """Serve one customer at the terminal: one message, or a decision on a waiting refund."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("message", nargs="*", help="what the customer says")
    parser.add_argument("--customer", default=DEMO_CUSTOMER, help=f"the account ({DEMO_CUSTOMER})")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve the waiting refund")
    decision.add_argument("--deny", action="store_true", help="refuse the waiting refund")
    parser.add_argument("--model", help="the model (default: DESK_MODEL, else qwen-plus)")
    parser.add_argument(
        "--base-url", help="another OpenAI-compatible server (default: AGENTKIT_BASE_URL)"
    )
    args = parser.parse_args(argv)
    account = Account(open_desk(os.environ.get("DESK_DB", "desk.db")), args.customer)
    with build_desk(args.model, args.base_url) as desk:
        session = f"{account.customer}-desk"
        if args.approve or args.deny:
            record = desk.store.load(session) if desk.store else None
            waiting = record.pending_calls if record is not None else ()
            if not waiting:
                print("nothing is waiting for approval", file=sys.stderr)
                return 1
            decisions = {call: bool(args.approve) for call in waiting}
            show(desk.resume(session, decisions, deps=account, decided_by="cli"))
            return 0
        for message in [" ".join(args.message)] if args.message else _ask(account.customer):
            show(desk.run(message, session=session, deps=account))
    return 0


def _ask(customer: str) -> Iterator[str]:
    with suppress(EOFError):  # Ctrl-D ends the chat, as an empty line does
        while message := input(f"{customer}> ").strip():
            yield message


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except AgentKitError as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
