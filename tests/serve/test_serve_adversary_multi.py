"""An outside review of approvals over HTTP for a bot of several waiting calls: each test
is a probe that broke, kept as its regression."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers import wait_until

from agentkit import Agent, Principal
from agentkit.serve import RequestLimits, StoredKeys, create_app
from agentkit.testing import Reply, ScriptedServer

from .conftest import HTTP, MODEL_KEY, sessions_or_skip, uvicorn_serving
from .test_serve_identities import (
    Clinic,
    ask,
    bearer,
    book,
    booked,
    clinic_for,
    decide,
    make_desk,
    whoami,
)

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


def _reviewed(store: Any, desk: Agent[Any], **options: Any) -> Any:
    return create_app({"desk": desk}, auth=StoredKeys(store), reviewers={"receptionist"}, **options)


def _people(store: Any) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    rita, ray = (bearer(keys.add(name, ["receptionist"]).key) for name in ("rita", "ray"))
    return dana, rita, ray


def _shown(url: str, conversation: str, who: dict[str, str]) -> list[tuple[str, bool]]:
    shown = HTTP.get(f"{url}/v1/sessions/{conversation}", headers=who).json()
    return [(d["decided_by"], d["approved"]) for d in shown["decisions"]]


def _paused(
    url: str, prompt: str, conversation: str, who: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The one call waiting after ``prompt``, and the digests a decision on it sends."""
    (call,) = ask(url, prompt, conversation, who).json()["agentkit"]["pending"]
    return call, {call["id"]: call["arguments_digest"]}


def _another_decides(
    model: ScriptedServer,
    url: str,
    conversation: str,
    call: dict[str, Any],
    digests: dict[str, str],
    people: tuple[dict[str, str], dict[str, str], dict[str, str]],
    slot: str,
) -> None:
    """Ray decides the call rita's failed decision left: it runs once, and the record
    shows ray's decision alone."""
    dana, _, ray = people
    model.queue(Reply.text("Booked."))
    approved = decide(url, conversation, {call["id"]: True}, ray, digests)
    assert approved.status_code == 200, approved.text
    assert [booked_slot for _, booked_slot, _ in booked] == [slot]
    assert _shown(url, conversation, dana) == [("ray", True)]


def test_a_resume_refused_after_the_record_leaves_the_call_to_another_reviewer(
    model: ScriptedServer, shared_store: Any
) -> None:
    """The paused tool is gone from the agent that rita's decision reaches (the graph
    changed under the pause): her resume is refused and runs nothing. Ray, on a server whose
    agent still has the tool, decides the call: that must run. Rita's refused decision stood
    in the record, and ray was told "already decided by someone else" (409) until rita
    decided again."""
    people = dana, rita, _ = _people(shared_store)
    full = _reviewed(shared_store, make_desk(model, shared_store), deps=clinic_for)
    lost = Agent(
        "scripted", [whoami], base_url=model.base_url, api_key=MODEL_KEY, store=shared_store
    )
    changed = _reviewed(shared_store, lost, deps=clinic_for)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "mon"})))
    with uvicorn_serving(full) as url, uvicorn_serving(changed) as changed_url:
        call, digests = _paused(url, "book monday", "graph", dana)
        refused = decide(changed_url, "graph", {call["id"]: True}, rita, digests)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] != "already_decided"
        assert booked == []
        assert _shown(url, "graph", dana) == []  # the refused decision left no record
        _another_decides(model, url, "graph", call, digests, people, "mon")


def test_a_resume_that_finds_its_session_busy_leaves_the_call_to_another_reviewer(
    model: ScriptedServer, shared_store: Any
) -> None:
    """Another run holds the paused session (here the operator's own claim) when rita's
    decision resumes it: the resume gives up (busy) before running anything. Once the
    session is free, ray decides the call and it runs once; rita's record had locked ray
    out."""
    people = dana, rita, _ = _people(shared_store)
    app = _reviewed(shared_store, make_desk(model, shared_store), deps=clinic_for)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "tue"})))
    with uvicorn_serving(app) as url:
        call, digests = _paused(url, "book tuesday", "busy", dana)
        held = shared_store.claim("busy")
        try:
            busy = decide(url, "busy", {call["id"]: True}, rita, digests)
        finally:
            shared_store.release(held)
        assert busy.status_code == 409, busy.text
        assert busy.json()["error"]["code"] == "session_busy"
        assert booked == []
        _another_decides(model, url, "busy", call, digests, people, "tue")


def test_deps_that_fail_for_a_decision_leave_the_call_to_another_reviewer(
    model: ScriptedServer, shared_store: Any
) -> None:
    """The deployment's deps fail once, after rita's decision was recorded and before the
    resume: nothing ran, and ray may decide the call."""
    people = dana, rita, _ = _people(shared_store)
    failing = [False]

    def clinic_or_fail(principal: Principal) -> Clinic:
        if failing[0]:
            failing[0] = False
            raise RuntimeError("the clinic directory is down")
        return clinic_for(principal)

    app = _reviewed(shared_store, make_desk(model, shared_store), deps=clinic_or_fail)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "wed"})))
    with uvicorn_serving(app) as url:
        call, digests = _paused(url, "book wednesday", "deps", dana)
        failing[0] = True
        down = decide(url, "deps", {call["id"]: True}, rita, digests)
        assert down.status_code == 500, down.text
        assert booked == []
        _another_decides(model, url, "deps", call, digests, people, "wed")


def test_a_store_that_fails_as_the_resume_loads_leaves_the_call_to_another_reviewer(
    model: ScriptedServer, shared_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails (503 store_unavailable) as rita's resume loads the paused session:
    nothing ran, so once the store is back ray may decide the call, and it runs once."""
    people = dana, rita, _ = _people(shared_store)
    app = _reviewed(shared_store, make_desk(model, shared_store), deps=clinic_for)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "thu"})))
    loads = shared_store.load
    down = [False]

    def load_or_fail(session: Any) -> Any:
        if down[0] and not isinstance(session, str):  # the resume's load, under its claim
            down[0] = False
            raise sessions.SessionError("the database went away", session_id="store")
        return loads(session)

    monkeypatch.setattr(shared_store, "load", load_or_fail)
    with uvicorn_serving(app) as url:
        call, digests = _paused(url, "book thursday", "store", dana)
        down[0] = True
        failed = decide(url, "store", {call["id"]: True}, rita, digests)
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == "store_unavailable"
        assert booked == []
        _another_decides(model, url, "store", call, digests, people, "thu")


def test_a_resume_out_of_time_before_any_call_leaves_the_call_to_another_reviewer(
    model: ScriptedServer, shared_store: Any
) -> None:
    """Rita's resume waits for its session (another run holds it) until the request's
    run_timeout ends it (504): nothing ran, and ray may decide the call once the session is
    free."""
    people = dana, rita, _ = _people(shared_store)
    desk = Agent(
        "scripted",
        [whoami, book],
        base_url=model.base_url,
        api_key=MODEL_KEY,
        store=shared_store,
        session_wait=60.0,
    )
    short = _reviewed(
        shared_store, desk, deps=clinic_for, request_limits=RequestLimits(run_timeout=0.5)
    )
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "fri"})))
    # Only the decision that must time out goes to the app with the short run_timeout: a
    # whole run within 0.5 s is not a given on a loaded machine.
    calm = _reviewed(shared_store, desk, deps=clinic_for)
    with uvicorn_serving(short) as url, uvicorn_serving(calm) as calm_url:
        call, digests = _paused(calm_url, "book friday", "late", dana)
        held = shared_store.claim("late")
        try:
            timed_out = decide(url, "late", {call["id"]: True}, rita, digests)
        finally:
            shared_store.release(held)
        assert timed_out.status_code == 504, timed_out.text
        assert booked == []
        _another_decides(model, calm_url, "late", call, digests, people, "fri")


def test_a_streamed_decision_refused_after_the_record_leaves_the_call_to_another_reviewer(
    model: ScriptedServer, shared_store: Any
) -> None:
    """As the whole-answer case, with ``"stream": true``: the refusal arrives as an error
    event, and the call stays decidable."""
    people = dana, rita, _ = _people(shared_store)
    full = _reviewed(shared_store, make_desk(model, shared_store), deps=clinic_for)
    lost = Agent(
        "scripted", [whoami], base_url=model.base_url, api_key=MODEL_KEY, store=shared_store
    )
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "sat"})))
    with (
        uvicorn_serving(full) as url,
        uvicorn_serving(_reviewed(shared_store, lost, deps=clinic_for)) as other,
    ):
        call, digests = _paused(url, "book saturday", "sse", dana)
        body = {"model": "desk", "decisions": {call["id"]: True}, "digests": digests}
        refused = HTTP.post(
            f"{other}/v1/sessions/sse/approvals",
            json={**body, "stream": True},
            headers=rita,
            timeout=60,
        )
        assert '"error"' in refused.text and "[DONE]" not in refused.text, refused.text
        assert booked == []
        _another_decides(model, url, "sse", call, digests, people, "sat")


def test_a_reviewer_who_leaves_before_any_call_ran_leaves_the_call_to_another(
    model: ScriptedServer, shared_store: Any
) -> None:
    """Rita's resume waits for its busy session and rita's client gives up: the run is
    cancelled before anything ran, and her decision leaves the record."""
    people = dana, rita, _ = _people(shared_store)
    desk = Agent(
        "scripted",
        [whoami, book],
        base_url=model.base_url,
        api_key=MODEL_KEY,
        store=shared_store,
        session_wait=60.0,
    )
    app = _reviewed(shared_store, desk, deps=clinic_for)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "sun"})))
    with uvicorn_serving(app) as url:
        call, digests = _paused(url, "book sunday", "left", dana)
        body = {"model": "desk", "decisions": {call["id"]: True}, "digests": digests}
        held = shared_store.claim("left")
        try:
            with pytest.raises(httpx.ReadTimeout):
                HTTP.post(f"{url}/v1/sessions/left/approvals", json=body, headers=rita, timeout=1)
            wait_until(lambda: _shown(url, "left", dana) == [])
        finally:
            shared_store.release(held)
        assert booked == []
        _another_decides(model, url, "left", call, digests, people, "sun")
