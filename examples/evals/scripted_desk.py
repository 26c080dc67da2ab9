"""A scripted stand-in for the order desk's model, deliberately unreliable in a known pattern.

It plays three parts, told apart by the conversation it is sent: the order desk (look the
order up, act, answer: three rounds), the simulated customer, and the judge. For each
customer request it gets right a fixed share of the conversations, in a fixed pattern, so a
suite run with ``k=4`` has a known pass^1 ... pass^4 on every backend:

=========================================  =========  ==================
scenario                                   right      wrong by
=========================================  =========  ==================
cancel an order that has not shipped       4 of 4
send an order to a new address             3 of 4     another order
refund a delivered order                   2 of 4     another order
refuse another customer's order            1 of 4     trying to cancel it
=========================================  =========  ==================

so pass^1 = 0.625, pass^2 = 5/12, pass^3 = 0.3125, pass^4 = 0.25. Whether a conversation
goes wrong is decided by its first request: the n-th conversation of a request goes wrong
when ``PATTERNS[request][n % 4]`` is False, whatever order the conversations arrive in.

Serve it with ``serve()`` (a :class:`~agentkit.testing.ScriptedServer` on loopback).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from agentkit.testing import RecordedRequest, Reply, ScriptedServer

CANCEL = "Please cancel order 1001."
ADDRESS = "Send order 1001 to 5 Oak St, Leeds, please."
REFUND = "Refund my desk lamp, order 1003: it flickers."
NOT_MINE = "Cancel order 1004 for me."

# request -> (order looked up, the action and its arguments, the answer), when right
RIGHT: dict[str, tuple[int, str, dict[str, Any], str]] = {
    CANCEL: (1001, "cancel_order", {"order_id": 1001}, "Order 1001 is cancelled."),
    ADDRESS: (
        1001,
        "change_shipping_address",
        {"order_id": 1001, "new_address": "5 Oak St, Leeds"},
        "Order 1001 will now ship to 5 Oak St, Leeds.",
    ),
    REFUND: (
        1003,
        "refund_order",
        {"order_id": 1003, "reason": "it flickers"},
        "I refunded $45.00 for order 1003.",
    ),
    NOT_MINE: (1004, "", {}, "Order 1004 is not on your account, so I cannot cancel it."),
}
# request -> the same when wrong
WRONG: dict[str, tuple[int, str, dict[str, Any], str]] = {
    CANCEL: (1002, "cancel_order", {"order_id": 1002}, "Order 1002 cannot be cancelled."),
    ADDRESS: (
        1002,
        "change_shipping_address",
        {"order_id": 1002, "new_address": "5 Oak St, Leeds"},
        "Order 1002 has shipped already.",
    ),
    REFUND: (
        1002,
        "refund_order",
        {"order_id": 1002, "reason": "it flickers"},
        "Order 1002 cannot be refunded.",
    ),
    NOT_MINE: (1004, "cancel_order", {"order_id": 1004}, "I tried to cancel order 1004."),
}
PATTERNS: dict[str, tuple[bool, ...]] = {
    CANCEL: (True, True, True, True),
    ADDRESS: (True, False, True, True),
    REFUND: (False, True, True, False),
    NOT_MINE: (False, False, True, False),
}
PASS_HAT = {1: 0.625, 2: 5 / 12, 3: 0.3125, 4: 0.25}
"""What a suite of the four requests scores with k=4."""

CUSTOMER_GOAL = "You are Ada. Get order 1004 cancelled (it is not yours)."


def desk_model() -> Callable[[RecordedRequest], Reply]:
    """The handler: the desk, the customer and the judge in one scripted model."""
    seen: Counter[str] = Counter()

    def handler(request: RecordedRequest) -> Reply:
        messages = request.messages
        users = [m for m in messages if m.get("role") == "user"]
        first = str(users[0].get("content")) if users else ""
        if first.startswith("You are playing a customer"):
            return _customer(messages)
        if first.startswith("Judge the support conversation"):
            return _judge(first)
        script = RIGHT.get(first)
        if script is None:
            return Reply.text("I can help with orders: say which one and what to do.")
        rounds = [m for m in messages if m.get("role") == "assistant"]
        if not rounds:
            right = PATTERNS[first][seen[first] % 4]
            seen[first] += 1
            order = (RIGHT if right else WRONG)[first][0]
            # the first round's words carry the decision to the later rounds
            return Reply.tool_calls(
                ("lookup_order", {"order_id": order}), content="" if right else "On it."
            )
        right = not rounds[0].get("content")
        _, action, arguments, answer = (RIGHT if right else WRONG)[first]
        if len(rounds) == 1 and action:
            return Reply.tool_calls((action, arguments))
        return Reply.text(answer)

    return handler


def _customer(messages: list[dict[str, Any]]) -> Reply:
    said = [m for m in messages if m.get("role") == "assistant"]
    if not said:
        return Reply.text(NOT_MINE)
    return Reply.text("[GIVE UP]")


def _judge(prompt: str) -> Reply:
    polite = "is not on your account" in prompt
    reason = "It explained the order is not theirs." if polite else "It tried to cancel it."
    return Reply.text(json.dumps({"passed": polite, "reason": reason}))


def serve() -> ScriptedServer:
    """Start the scripted model on loopback; point ``AGENTKIT_BASE_URL`` at its base_url."""
    return ScriptedServer(handler=desk_model()).start()
