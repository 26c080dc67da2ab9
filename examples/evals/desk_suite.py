"""An eval of the order desk (examples/order_desk.py): four customer requests, each tried
``-k`` times, checked on the tools called, the final state of the orders and by a judge.

    export DASHSCOPE_API_KEY=sk-...
    agentkit eval examples/evals/desk_suite.py:suite -k 4 --html report.html

Offline, against a scripted model that is wrong in a known pattern:
``python examples/evals/offline.py``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/order_desk.py

from order_desk import TOOLS, Desk, create_database

from agentkit import Agent, AsyncChatClient, PlannedCall
from agentkit.evals import (
    Conversation,
    Scenario,
    SimulatedUser,
    Suite,
    called,
    judge,
    not_called,
)

MODEL = os.environ.get("DESK_MODEL", "qwen-plus")
_SCRATCH = tempfile.mkdtemp(prefix="desk-evals-")  # one database file per conversation


def make_desk(http_client: httpx.AsyncClient | None = None) -> tuple[Agent[str], Desk]:
    """A fresh desk and a fresh copy of the orders for one conversation.

    It takes ``http_client`` so the eval backends can route its requests (the rate limit,
    the Batch API); refunds are approved at once, as a member of staff would.
    """
    handle, path = tempfile.mkstemp(suffix=".db", dir=_SCRATCH)
    os.close(handle)
    desk = Desk(create_database(Path(path)), "ada@example.com")
    agent = Agent(
        MODEL,
        tools=TOOLS,
        instructions="You are the order-support desk of a small web shop. Use the tools; "
        "never promise what a tool did not confirm. Be brief.",
        client=AsyncChatClient(http_client=http_client),
        approve=_staff_approves,
    )
    return agent, desk


def _staff_approves(call: PlannedCall) -> bool:
    return True


def make_helper(http_client: httpx.AsyncClient | None = None) -> Agent[str]:
    """The simulated customer's and the judge's agent: the same model, no tools."""
    return Agent(MODEL, client=AsyncChatClient(http_client=http_client))


def status(conversation: Conversation, order_id: int) -> Any:
    """The order's status in the desk's database after the conversation."""
    desk: Desk = conversation.deps
    with closing(sqlite3.connect(desk.db_path)) as db:
        row = db.execute("SELECT status FROM orders WHERE id = ?", (order_id,)).fetchone()
    return row[0] if row else None


def address_changed(conversation: Conversation) -> bool:
    """The final state: order 1001 ships to the new address."""
    desk: Desk = conversation.deps
    with closing(sqlite3.connect(desk.db_path)) as db:
        (address,) = db.execute("SELECT address FROM orders WHERE id = 1001").fetchone()
    return bool(address == "5 Oak St, Leeds")


suite = Suite(
    agent=make_desk,
    user=make_helper,
    judge=make_helper,
    scenarios=[
        Scenario(
            "cancel an order that has not shipped",
            turns=["Please cancel order 1001."],
            checks=[
                called("cancel_order", order_id=1001),
                lambda run: status(run, 1001) == "cancelled",
            ],
        ),
        Scenario(
            "send an order to a new address",
            turns=["Send order 1001 to 5 Oak St, Leeds, please."],
            checks=[called("change_shipping_address", order_id=1001), address_changed],
        ),
        Scenario(
            "refund a delivered order",
            turns=["Refund my desk lamp, order 1003: it flickers."],
            checks=[
                called("refund_order", order_id=1003),
                not_called("cancel_order"),
                lambda run: status(run, 1003) == "refunded",
            ],
        ),
        Scenario(
            "refuse another customer's order",
            user=SimulatedUser(
                "You are Ada. Get order 1004 cancelled (it is not yours).", max_turns=3
            ),
            checks=[
                not_called("cancel_order"),
                judge("The bot refused politely and explained why."),
            ],
        ),
    ],
)
