"""The order desk the session tests run, in the test process and in child processes.

Side effects go to the JSON-lines file named by ``AGENTKIT_TEST_LEDGER``, so a test can count
them across processes; ``AGENTKIT_TEST_CRASH=1`` makes a paying tool kill its process right
after the side effect, before its result can be recorded.
"""

from __future__ import annotations

import json
import os
from typing import Any

from agentkit import Agent, RunContext, tool


def _effect(kind: str, ctx: RunContext[Any] | None, **data: Any) -> None:
    with open(os.environ["AGENTKIT_TEST_LEDGER"], "a") as ledger:
        key = ctx.idempotency_key if ctx is not None else ""
        ledger.write(json.dumps({"kind": kind, "key": key, **data}) + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())
    if os.environ.get("AGENTKIT_TEST_CRASH") == "1":
        os._exit(17)  # the crash: after the effect, before its result is recorded


@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order in full."""
    _effect("refund", None, order_id=order_id)
    return f"refunded order {order_id}"


@tool(requires_approval=True, side_effects=True)
def refund_card(ctx: RunContext[Any], order_id: int) -> str:
    """Refund an order to the card it was paid with (a person approves each)."""
    _effect("refund_card", ctx, order_id=order_id)
    return f"refunded order {order_id} to the card"


@tool(side_effects=True)
def pay(ctx: RunContext[Any], order_id: int, amount: float) -> str:
    """Pay a supplier for an order."""
    _effect("pay", ctx, order_id=order_id, amount=amount)
    return f"paid {amount} for order {order_id}"


@tool(side_effects=True, idempotent=True)
def charge(ctx: RunContext[Any], order_id: int) -> str:
    """Charge an order through a payment API that takes an idempotency key."""
    _effect("charge", ctx, order_id=order_id)
    return f"charged order {order_id} (key {ctx.idempotency_key})"


def make_agent(store: Any, base_url: str, **options: Any) -> Agent[str]:
    """The desk on ``store``, talking to the scripted server at ``base_url``."""
    options.setdefault("instructions", "You run the order desk.")
    instructions = options.pop("instructions")
    return Agent(
        "desk-model",
        [get_order, refund, pay, charge],
        instructions,
        base_url=base_url,
        api_key="sk-sessions-test",
        store=store,
        **options,
    )


def make_planner(store: Any, base_url: str) -> Agent[str]:
    """A planner on ``store`` that uses the order desk (no store of its own) as a tool; the
    two talk to the scripted server as ``planner-model`` and ``desk-model``."""
    desk = Agent(
        "desk-model",
        [get_order, refund, refund_card, pay, charge],
        "You run the order desk.",
        base_url=base_url,
        api_key="sk-sessions-test",
        name="desk",
    )
    return Agent(
        "planner-model",
        [desk.as_tool(description="Ask the order desk.")],
        "You plan.",
        base_url=base_url,
        api_key="sk-sessions-test",
        store=store,
        name="planner",
    )
