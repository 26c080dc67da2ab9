"""An order-support desk: a bot that reads and changes orders in a real SQLite database.

The tools get the database through the run context (``RunContext``), never from the
model, and only ever touch the signed-in customer's orders. Each customer's conversation
is a session in a ``SQLiteStore``, so it goes on where it left off, run after run. Refunds
move money, so that tool is marked ``requires_approval``: the run pauses, nothing is
refunded, and a person decides, at the terminal or later with ``--approve``/``--deny``
(another process, another day: the pause is stored), and the model is told the outcome.

    export DASHSCOPE_API_KEY=sk-...
    python examples/order_desk.py "Where is my keyboard? Please send it to 1 Main St instead."
    python examples/order_desk.py --db orders.db "Refund my lamp, it flickers"   # pauses
    python examples/order_desk.py --db orders.db --approve     # a manager approves, later
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit import Agent, AgentKitError, Approver, RunContext, RunResult, tool
from agentkit.sessions import SQLiteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    item TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    status TEXT NOT NULL,          -- processing, shipped, delivered, cancelled, refunded
    address TEXT NOT NULL,
    placed_on TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    amount_cents INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""
_ORDERS = [
    (1001, "ada@example.com", "Mechanical keyboard", 12900, "processing",
     "12 Analytical Way, London", "2025-05-02"),
    (1002, "ada@example.com", "USB-C dock", 8950, "shipped",
     "12 Analytical Way, London", "2025-04-28"),
    (1003, "ada@example.com", "Desk lamp", 4500, "delivered",
     "12 Analytical Way, London", "2025-03-14"),
    (1004, "grace@example.com", "Laptop stand", 3990, "delivered",
     "3 Compiler Court, Arlington", "2025-04-01"),
]  # fmt: skip


@dataclass(frozen=True)
class Desk:
    """What the tools need: the database file and the signed-in customer."""

    db_path: Path
    customer: str

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """A connection for one tool call, committed when the call succeeds.

        One per call: the agent runs sync tools in worker threads, and an sqlite3
        connection belongs to the thread that opened it.
        """
        with closing(sqlite3.connect(self.db_path)) as connection, connection:
            connection.row_factory = sqlite3.Row
            yield connection

    def order(self, connection: sqlite3.Connection, order_id: int) -> sqlite3.Row | None:
        """The customer's order ``order_id``; another customer's order counts as missing."""
        query = "SELECT * FROM orders WHERE id = ? AND customer = ?"
        row: sqlite3.Row | None = connection.execute(query, (order_id, self.customer)).fetchone()
        return row


def create_database(path: Path) -> Path:
    """Create the tables and the sample orders, unless ``path`` already has them."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executescript(_SCHEMA)
        connection.executemany("INSERT OR IGNORE INTO orders VALUES (?,?,?,?,?,?,?)", _ORDERS)
    return path


def _describe(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "order_id": row["id"],
        "item": row["item"],
        "total": f"${row['total_cents'] / 100:.2f}",
        "status": row["status"],
        "shipping_address": row["address"],
        "placed_on": row["placed_on"],
    }


@tool
def list_orders(ctx: RunContext[Desk]) -> list[dict[str, Any]]:
    """List all orders of the signed-in customer, newest first."""
    with ctx.deps.db() as db:
        query = "SELECT * FROM orders WHERE customer = ? ORDER BY placed_on DESC"
        return [_describe(row) for row in db.execute(query, (ctx.deps.customer,))]


@tool
def lookup_order(ctx: RunContext[Desk], order_id: int) -> dict[str, Any] | str:
    """Look up one order: the item, total, status and shipping address.

    Args:
        order_id: The order number, such as 1001.
    """
    with ctx.deps.db() as db:
        row = ctx.deps.order(db, order_id)
        return _describe(row) if row else f"The customer has no order {order_id}."


@tool
def change_shipping_address(ctx: RunContext[Desk], order_id: int, new_address: str) -> str:
    """Send an order that has not shipped yet to a different address.

    Args:
        order_id: The order number.
        new_address: The full new shipping address.
    """
    with ctx.deps.db() as db:
        row = ctx.deps.order(db, order_id)
        if row is None:
            return f"The customer has no order {order_id}."
        if row["status"] != "processing":
            return f"Order {order_id} is {row['status']}: its address can no longer change."
        db.execute("UPDATE orders SET address = ? WHERE id = ?", (new_address, order_id))
        return f"Order {order_id} will now ship to {new_address}."


@tool
def cancel_order(ctx: RunContext[Desk], order_id: int) -> str:
    """Cancel an order that has not shipped yet.

    Args:
        order_id: The order number.
    """
    with ctx.deps.db() as db:
        row = ctx.deps.order(db, order_id)
        if row is None:
            return f"The customer has no order {order_id}."
        if row["status"] != "processing":
            return f"Order {order_id} is {row['status']}: it can no longer be cancelled."
        db.execute("UPDATE orders SET status = 'cancelled' WHERE id = ?", (order_id,))
        return f"Order {order_id} is cancelled; nothing was charged."


@tool(requires_approval=True)
def refund_order(ctx: RunContext[Desk], order_id: int, reason: str) -> str:
    """Refund a delivered order in full. A member of staff must approve every refund.

    Args:
        order_id: The order number.
        reason: Why the customer wants the refund, in their words.
    """
    with ctx.deps.db() as db:
        row = ctx.deps.order(db, order_id)
        if row is None:
            return f"The customer has no order {order_id}."
        if row["status"] != "delivered":
            return f"Order {order_id} is {row['status']}: only delivered orders are refunded."
        db.execute("UPDATE orders SET status = 'refunded' WHERE id = ?", (order_id,))
        db.execute("INSERT INTO refunds VALUES (?, ?, ?)", (order_id, row["total_cents"], reason))
        return f"Refunded ${row['total_cents'] / 100:.2f} for order {order_id}."


TOOLS = (list_orders, lookup_order, change_shipping_address, cancel_order, refund_order)
"""Every tool of the desk."""


def make_agent(
    model: str = "qwen-plus",
    base_url: str | None = None,
    approve: Approver | None = None,
    store: SQLiteStore | None = None,
) -> Agent[str]:
    """The desk: the tools above, a support persona, the conversations in ``store``.

    Without ``approve`` a refund pauses the run until a person decides (``Agent.resume``).
    """
    return Agent(
        model,
        tools=TOOLS,
        instructions=_instructions,
        base_url=base_url,
        approve=approve,
        store=store,
    )


def _instructions(ctx: RunContext[Desk]) -> str:
    # Built at every run, so a change here reaches stored conversations too.
    return (
        "You are the order-support desk of a small web shop, serving "
        f"{ctx.deps.customer}. Use the tools to look orders up and change them; never "
        "promise what a tool did not confirm. Be brief."
    )


def decide(agent: Agent[str], result: RunResult[str], desk: Desk, approve: bool | None) -> None:
    """Settle a paused run: ask at the terminal, or take ``approve`` (``--approve``/``--deny``)."""
    while result.status == "paused":
        decisions: dict[str, bool] = {}
        for call in result.pending:
            shown = f"{call.name}({', '.join(f'{k}={v!r}' for k, v in call.kwargs.items())})"
            if approve is None and not sys.stdin.isatty():
                print(f"[waiting for approval: {shown}; run again with --approve or --deny]")
                return
            if approve is None:
                decisions[call.call_id] = input(f"Approve {shown}? [y/N] ").strip().lower() in {
                    "y",
                    "yes",
                }
            else:
                decisions[call.call_id] = approve
        result = agent.resume(desk.customer, decisions, deps=desk)
        print(result.output)


def main(argv: list[str] | None = None) -> None:
    """Serve one customer: the request on the command line, or a chat at the prompt."""
    parser = argparse.ArgumentParser(description="An order-support desk on SQLite.")
    parser.add_argument("request", nargs="*", help="the customer's message")
    parser.add_argument(
        "--customer", default="ada@example.com", help="the signed-in customer (ada@example.com)"
    )
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve the waiting refund")
    decision.add_argument("--deny", action="store_true", help="refuse the waiting refund")
    parser.add_argument("--model", default="qwen-plus", help="the model (qwen-plus)")
    parser.add_argument(
        "--base-url",
        help="any OpenAI-compatible server, such as http://localhost:8000/v1 "
        "(default: $AGENTKIT_BASE_URL, else DashScope with $DASHSCOPE_API_KEY)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        db = args.db or Path(scratch, "orders.db")
        desk = Desk(create_database(db), args.customer)
        # The conversations live beside the orders: one session per customer.
        store = SQLiteStore(db.with_name(db.stem + ".sessions.db"))
        with store, make_agent(args.model, args.base_url, store=store) as agent:
            chosen = True if args.approve else False if args.deny else None
            if chosen is not None:
                record = store.load(desk.customer)
                pending = [call["id"] for call in (record.pending or {}).get("calls", [])]
                if not pending:
                    sys.exit("nothing is waiting for approval")
                result = agent.resume(desk.customer, dict.fromkeys(pending, chosen), deps=desk)
                print(result.output)
                return
            for request in [" ".join(args.request)] if args.request else _ask(args.customer):
                result = agent.run(request, session=desk.customer, deps=desk)
                if result.status == "paused":
                    decide(agent, result, desk, None)
                else:
                    print(result.output)


def _ask(customer: str) -> Iterator[str]:
    with suppress(EOFError):  # Ctrl-D ends the chat, as an empty line does
        while request := input(f"{customer}> ").strip():
            yield request


if __name__ == "__main__":
    try:
        main()
    except AgentKitError as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
