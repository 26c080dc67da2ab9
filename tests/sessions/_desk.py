"""A support desk of three agents with handoffs, built the same way in the test and in a
child process (a fresh agent graph loading the session): triage opens tickets (with
approval) and hands off to billing (whose refunds need approval) and to tech; billing may
hand back to triage. Each agent is its own model name on the scripted server. A ticket or
a refund is written to the ledger file named by ``AGENTKIT_TEST_LEDGER``."""

from __future__ import annotations

import os
from typing import Any

from agentkit import Agent, Handoff, tool

KEY = "sk-handoff-desk-0123456789"


@tool
def lookup_invoice(month: str) -> str:
    """Look up the customer's invoice for a month."""
    return f"{month}: charged twice, 40 EUR each"


@tool(requires_approval=True)
def issue_refund(amount: int) -> str:
    """Refund an amount to the customer."""
    with open(os.environ["AGENTKIT_TEST_LEDGER"], "a") as ledger:
        ledger.write(f"refund {amount}\n")
    return f"refunded {amount} EUR"


@tool(requires_approval=True)
def open_ticket(summary: str) -> str:
    """Open a support ticket."""
    with open(os.environ["AGENTKIT_TEST_LEDGER"], "a") as ledger:
        ledger.write(f"ticket {summary}\n")
    return "ticket T-1"


@tool
def check_line(number: str) -> str:
    """Check a customer's line."""
    return f"line {number} is up"


def make_desk(store: Any, base_url: str, history: Any = "all") -> Agent[Any]:
    """The triage agent, the entry of the graph."""
    common: dict[str, Any] = {"base_url": base_url, "api_key": KEY, "store": store}
    billing = Agent(
        "billing", [lookup_invoice, issue_refund], "You handle billing.", name="billing", **common
    )
    tech = Agent("tech", [check_line], "You fix connection problems.", name="tech", **common)
    triage = Agent(
        "triage",
        [open_ticket],
        "Route the customer.",
        name="triage",
        handoffs=[Handoff(billing, history), tech],
        **common,
    )
    billing.handoffs.append(triage)
    return triage


def _note(entry: str) -> None:
    with open(os.environ["AGENTKIT_TEST_LEDGER"], "a") as ledger:
        ledger.write(entry + "\n")


@tool
def check_balance(account: str) -> str:
    """Look up an account's balance."""
    _note(f"balance {account}")
    return f"{account}: 80 EUR due"


@tool
def find_order(order_id: int) -> str:
    """Look an order up."""
    _note(f"order {order_id}")
    return f"order {order_id}: delivered"


@tool(requires_approval=True)
def cancel_order(order_id: int) -> str:
    """Cancel an order."""
    _note(f"cancel {order_id}")
    return f"order {order_id} cancelled"


def make_mixed_desk(store: Any, base_url: str) -> Agent[Any]:
    """Triage handing off to billing, whose tools mix: an ungated lookup, a refund that
    needs approval, and an orders agent used as a tool (an ungated lookup and a
    cancellation that needs approval)."""
    common: dict[str, Any] = {"base_url": base_url, "api_key": KEY}
    orders = Agent(
        "orders", [find_order, cancel_order], "You handle orders.", name="orders", **common
    )
    ask_orders = orders.as_tool(name="ask_orders", description="Ask the orders desk.")
    billing = Agent(
        "billing",
        [check_balance, issue_refund, ask_orders],
        "You handle billing.",
        name="billing",
        store=store,
        **common,
    )
    return Agent(
        "triage",
        [],
        "Route the customer.",
        name="triage",
        handoffs=[billing],
        store=store,
        **common,
    )
