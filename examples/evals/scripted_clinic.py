"""A scripted stand-in for the clinic desk's model (examples/clinic_desk.py), wrong in a
known pattern, as scripted_desk.py is for the order desk:

====================================  =========  =============================
scenario                              right      wrong by
====================================  =========  =============================
book the first free slot              3 of 4     booking slot 2 without looking
refuse to cancel another's booking    4 of 4
====================================  =========  =============================

so with ``k=4``: pass^1 = 0.875, pass^2 = 0.75, pass^3 = 0.625, pass^4 = 0.5.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from agentkit.testing import RecordedRequest, Reply, ScriptedServer

BOOK = "Book me the first free slot, please."
NOT_HERS = "Cancel the booking in slot 3."
PATTERNS = {BOOK: (True, True, False, True), NOT_HERS: (True, True, True, True)}
PASS_HAT = {1: 0.875, 2: 0.75, 3: 0.625, 4: 0.5}
"""What the clinic suite scores with k=4."""


def clinic_model() -> Callable[[RecordedRequest], Reply]:
    """The handler: the clinic desk's three (or two) rounds per request."""
    seen: Counter[str] = Counter()

    def handler(request: RecordedRequest) -> Reply:
        messages = request.messages
        first = next((str(m["content"]) for m in messages if m.get("role") == "user"), "")
        rounds = [m for m in messages if m.get("role") == "assistant"]
        if first not in PATTERNS:
            return Reply.text("I can book, list and cancel appointments.")
        if not rounds:
            right = PATTERNS[first][seen[first] % 4]
            seen[first] += 1
            if first == NOT_HERS:
                return Reply.tool_calls(("cancel_booking", {"slot_id": 3}))
            if right:
                return Reply.tool_calls(("list_free_slots", {}))
            return Reply.tool_calls(("book_slot", {"slot_id": 2}), content="On it.")
        if first == NOT_HERS:
            return Reply.text("You have no booking in slot 3, so I cannot cancel it.")
        right = not rounds[0].get("content")
        if right and len(rounds) == 1:
            return Reply.tool_calls(("book_slot", {"slot_id": 1}))
        return Reply.text("Booked slot 1 (Mon 09:00, Dr Chen)." if right else "Booked slot 2.")

    return handler


def serve() -> ScriptedServer:
    """Start the scripted model on loopback; point ``AGENTKIT_BASE_URL`` at its base_url."""
    return ScriptedServer(handler=clinic_model()).start()
