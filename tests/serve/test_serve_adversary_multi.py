"""An outside review of approvals over HTTP for a bot of several waiting calls: each test
is a probe that broke, kept as its regression."""

from __future__ import annotations

from pathlib import Path

from agentkit.serve import StoredKeys, create_app
from agentkit.testing import Reply, ScriptedServer

from .conftest import HTTP, sessions_or_skip, uvicorn_serving
from .test_serve_identities import ask, bearer, booked, clinic_for, decide, make_desk

sessions = sessions_or_skip()


def test_a_refused_partial_decision_does_not_lock_other_reviewers_out(
    model: ScriptedServer, tmp_path: Path
) -> None:
    """Two calls wait; reviewer rita decides only one, which is refused (every waiting call
    needs a decision) and runs nothing. Reviewer ray then decides both: that must run. The
    refused decision stood in the record, so ray was told "already decided by someone
    else" (409) and only rita could ever decide the conversation."""
    store = sessions.SQLiteStore(tmp_path / "partial.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    rita, ray = (bearer(keys.add(name, ["receptionist"]).key) for name in ("rita", "ray"))
    app = create_app(
        {"desk": make_desk(model, store)},
        auth=StoredKeys(store),
        deps=clinic_for,
        reviewers={"receptionist"},
    )
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "mon"}), ("book", {"slot": "tue"})))
    with uvicorn_serving(app) as url:
        first, second = ask(url, "book two", "two", dana).json()["agentkit"]["pending"]
        digests = {call["id"]: call["arguments_digest"] for call in (first, second)}
        partial = decide(url, "two", {first["id"]: True}, rita, {first["id"]: digests[first["id"]]})
        assert partial.status_code == 409, partial.text
        assert booked == []
        model.queue(Reply.text("Booked both."))
        both = decide(url, "two", {first["id"]: True, second["id"]: True}, ray, digests)
        assert both.status_code == 200, both.text
        assert sorted(slot for _, slot, _ in booked) == ["mon", "tue"]
        shown = HTTP.get(f"{url}/v1/sessions/two", headers=dana).json()
    assert sorted((d["decided_by"], d["call_id"]) for d in shown["decisions"]) == sorted(
        ("ray", call["id"]) for call in (first, second)
    )
    store.close()
