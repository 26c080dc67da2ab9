"""Taking back a served decision whose resume ran nothing (``Owners.unrecord``), on every
store: the record goes only while nothing of the resume reached the store."""

from __future__ import annotations

from typing import Any

from agentkit.sessions._owners import Owners

from ._support import answer, calls, user

STATE = {"calls": [{"id": "c9", "name": "refund", "arguments": '{"order_id": 7}'}]}


def _paused(store: Any, session: str = "s") -> None:
    claim = store.claim(session)
    store.append(claim, [user("refund 7"), calls(("c9", "refund"))], pending=STATE)
    store.release(claim)


def _who(owners: Owners) -> list[tuple[str, str]]:
    return [(d.decided_by, d.call_id) for d in owners.decisions("s")]


def test_a_decision_whose_resume_ran_nothing_is_taken_back(store: Any) -> None:
    _paused(store)
    owners = Owners(store)
    at = owners.record("s", {"c9": True}, "rita")
    assert at is not None
    assert owners.record("s", {"c9": True}, "ray") is None  # rita's record locks ray out
    assert not owners.unrecord("s", ["c9"], "ray", at)  # only the decider's own record
    assert not owners.unrecord("s", ["c9"], "rita", at + 1)  # only the one written then
    assert owners.unrecord("s", ["c9"], "rita", at)
    assert _who(owners) == []
    assert owners.record("s", {"c9": True}, "ray") is not None
    assert _who(owners) == [("ray", "c9")]


def test_a_decision_stays_once_a_side_effect_call_was_written_ahead(store: Any) -> None:
    """The resume wrote the call ahead (it may have run): a second decision must not run
    it again, so the record stays and keeps the other reviewers out."""
    _paused(store)
    owners = Owners(store)
    at = owners.record("s", {"c9": True}, "rita")
    assert at is not None
    claim = store.claim("s")
    store.write_ahead(claim, "c9", "refund", '{"order_id": 7}', "d")
    store.release(claim)
    assert not owners.unrecord("s", ["c9"], "rita", at)
    assert _who(owners) == [("rita", "c9")]
    assert owners.record("s", {"c9": True}, "ray") is None


def test_a_decision_stays_once_the_resume_stored_its_round(store: Any) -> None:
    """The resume stored the decided call's round (then failed later, at the model): what
    was decided is history and stays on the record."""
    _paused(store)
    owners = Owners(store)
    at = owners.record("s", {"c9": False}, "rita")
    assert at is not None
    claim = store.claim("s")
    store.append(claim, [answer("c9", "refund", "Not run")], close_round=True)
    assert not owners.unrecord("s", ["c9"], "rita", at)
    # and paused again, on a call that has the same id (models reuse ids): still history
    store.append(claim, [calls(("c9", "refund"))], pending=STATE)
    store.release(claim)
    assert not owners.unrecord("s", ["c9"], "rita", at)
    assert _who(owners) == [("rita", "c9")]


def test_taking_back_a_decision_of_a_session_that_is_gone_changes_nothing(store: Any) -> None:
    owners = Owners(store)
    assert not owners.unrecord("nobody", ["c9"], "rita", 0.0)
