"""An outside review of the clinic desk served to patients and receptionists: each test is a
probe that broke, kept as its regression."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, Principal, RunContext, tool
from agentkit.cli import main
from agentkit.serve import StoredKeys, TrustedProxy, create_app
from agentkit.testing import Reply, ScriptedServer

from .conftest import HTTP, MODEL_KEY, sessions_or_skip, uvicorn_serving
from .test_serve_identities import (
    Clinic,
    ask,
    bearer,
    booked,
    clinic_for,
    decide,
    make_desk,
    reviewed_desk,
)

sessions = sessions_or_skip()


def test_a_slow_sync_deps_factory_does_not_stall_the_other_requests(
    model: ScriptedServer, tmp_path: Path
) -> None:
    """The clinic's ``clinic_for`` opens its SQLite file (waiting up to 30 s on another
    writer's lock). A sync factory was called on the event loop, so while one patient's
    factory waited, no other request of the worker was answered, not even /healthz."""
    store = sessions.SQLiteStore(tmp_path / "slow.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    erin = bearer(keys.add("erin", ["patient"]).key)
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()

    def clinic_waiting_on_a_lock(principal: Principal) -> Clinic:
        if principal.id == "dana":
            entered.set()
            release.wait(60)  # a bound on a hang: the test releases it
            returned.set()
        return Clinic(principal.id)

    app = create_app(
        {"desk": make_desk(model, store)}, auth=StoredKeys(store), deps=clinic_waiting_on_a_lock
    )
    model.queue(Reply.tool_calls(("whoami", {})), Reply.text("You are erin."))
    with uvicorn_serving(app) as url:
        slow = threading.Thread(target=ask, args=(url, "hi", "d1", dana))
        slow.start()
        try:
            assert entered.wait(60)
            assert HTTP.get(url + "/healthz").status_code == 200
            answer = ask(url, "who am I?", "e1", erin)
            assert answer.status_code == 200, answer.text
            assert not returned.is_set()  # answered while dana's factory still waits
            assert model.requests[1].messages[-1]["content"] == "patient erin"
        finally:
            model.queue(Reply.text("Hello dana."))
            release.set()
            slow.join(60)
    store.close()


def test_a_receptionist_cannot_approve_their_own_booking(
    model: ScriptedServer, tmp_path: Path
) -> None:
    """A receptionist who books for herself at the desk is the person who asked: with
    reviewers, the owner's own decision is a 403 whatever her roles. She approved her own
    booking (200, the slot booked); another receptionist must."""
    store = sessions.SQLiteStore(tmp_path / "own.db")
    keys = sessions.KeyTable(store)
    rita = bearer(keys.add("rita", ["receptionist", "patient"]).key)
    ray = bearer(keys.add("ray", ["receptionist"]).key)
    app = reviewed_desk(model, store)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "mon"})))
    with uvicorn_serving(app) as url:
        (call,) = ask(url, "book mon for me", "r1", rita).json()["agentkit"]["pending"]
        digests = {call["id"]: call["arguments_digest"]}
        own = decide(url, "r1", {call["id"]: True}, rita, digests)
        assert own.status_code == 403, own.text
        assert own.json()["error"]["code"] == "reviewer_required"
        assert booked == []
        shown = HTTP.get(f"{url}/v1/sessions/r1", headers=rita).json()
        assert shown["decisions"] == []  # nothing recorded: another reviewer may decide
        # her queue lists what she may decide: not her own booking; Ray's lists it
        queues = [HTTP.get(url + "/v1/approvals?agent=desk", headers=who) for who in (rita, ray)]
        assert [[i["conversation"] for i in q.json()["data"]] for q in queues] == [[], ["r1"]]
        model.queue(Reply.text("Booked."))
        other = decide(url, "r1", {call["id"]: True}, ray, digests)
        assert other.status_code == 200, other.text
        assert booked == [("rita", "mon", "rita")]
    store.close()


def test_one_patients_many_waiting_bookings_do_not_hide_the_others_from_the_queue(
    model: ScriptedServer, shared_store: Any
) -> None:
    """The queue showed the 200 longest-waiting conversations and said nothing of the rest:
    a patient who left 200 bookings waiting hid every later patient's booking from the
    receptionists. Each person now has at most a share of the queue, and the answer says
    when some were left out."""
    from agentkit.sessions._owners import Owners

    store = shared_store
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    rita = bearer(keys.add("rita", ["receptionist"]).key)
    desk = make_desk(model, store)
    erin = Principal("erin", frozenset({"patient"}))
    owners = Owners(store)
    model.respond_with(lambda request: Reply.tool_calls(("book", {"slot": "mon"})))
    for number in range(201):
        paused = desk.run("book mon", session=f"e{number}", deps=Clinic("erin"), principal=erin)
        assert paused.status == "paused"
        owners.claim(f"e{number}", "desk", erin)
    app = create_app(
        {"desk": desk}, auth=StoredKeys(store), deps=clinic_for, reviewers={"receptionist"}
    )
    with uvicorn_serving(app) as url:
        assert ask(url, "book mon", "d1", dana).json()["agentkit"]["pending"]
        queue = HTTP.get(url + "/v1/approvals?agent=desk", headers=rita).json()
    shown = [item["conversation"] for item in queue["data"]]
    assert "d1" in shown
    assert queue["has_more"] is True
    assert len(shown) == len(set(shown)) <= 200


@pytest.mark.parametrize(
    "auth",
    [
        {"api_keys": ["a-shared-key-0123456789"]},
        {},
        {"auth": TrustedProxy("X-Forwarded-User", ["127.0.0.1"])},
    ],
    ids=["shared-keys", "keyless", "proxy-without-roles"],
)
def test_reviewers_with_a_source_that_gives_no_roles_are_refused_when_the_app_is_made(
    model: ScriptedServer, tmp_path: Path, auth: dict[str, Any]
) -> None:
    """Shared keys, a keyless server and a proxy with no roles header sign in no one with
    a role. With reviewers set, the app started, every owner's decision was a 403 (a
    reviewer decides) and no one was a reviewer: every waiting booking waited forever."""
    store = sessions.SQLiteStore(tmp_path / "roles.db")
    with pytest.raises(ValueError, match="need people with roles"):
        create_app(
            {"desk": make_desk(model, store)}, deps=clinic_for, reviewers={"receptionist"}, **auth
        )
    roles = TrustedProxy("X-Forwarded-User", ["127.0.0.1"], roles_header="X-Forwarded-Groups")
    create_app(
        {"desk": make_desk(model, store)}, deps=clinic_for, reviewers={"receptionist"}, auth=roles
    )
    store.close()


def test_agentkit_serve_with_reviewers_and_a_shared_key_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    bot = tmp_path / "bot.py"
    bot.write_text(
        "from agentkit import Agent\n"
        "desk = Agent('scripted', [], base_url='http://127.0.0.1:9/v1', api_key='sk-x-1234')\n"
    )
    out, err = io.StringIO(), io.StringIO()
    argv = ["serve", f"{bot}:desk", "--port", "0", "--api-key", "a-shared-key-0123456789"]
    code = main([*argv, "--reviewers", "receptionist"], stdout=out, stderr=err)
    assert code == 2, err.getvalue()
    assert err.getvalue().startswith("agentkit: error: ")
    assert "need people with roles" in err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_a_booking_whose_arguments_repeat_a_key_is_sent_back_not_shown_for_approval(
    model: ScriptedServer, tmp_path: Path
) -> None:
    """``{"slot": "mon 9:00", "slot": "fri 17:00"}``: the queue showed the arguments as
    the model wrote them, a receptionist read Monday, and the approved tool booked Friday
    (the last value wins). The model is told to give each argument once; only a call with
    one value per key waits for a person."""
    store = sessions.SQLiteStore(tmp_path / "twice.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    rita = bearer(keys.add("rita", ["receptionist"]).key)
    app = reviewed_desk(model, store)
    booked.clear()
    model.queue(
        Reply.tool_calls(("book", '{"slot": "mon 9:00", "slot": "fri 17:00"}')),
        Reply.tool_calls(("book", {"slot": "mon 9:00"})),
    )
    with uvicorn_serving(app) as url:
        (call,) = ask(url, "book monday", "d1", dana).json()["agentkit"]["pending"]
        told = model.requests[1].messages[-1]
        assert told["role"] == "tool" and "'slot' is given twice" in told["content"]
        (waiting,) = HTTP.get(url + "/v1/approvals?agent=desk", headers=rita).json()["data"]
        assert [c["arguments"] for c in waiting["calls"]] == ['{"slot": "mon 9:00"}']
        model.queue(Reply.text("Booked Monday."))
        digests = {call["id"]: call["arguments_digest"]}
        assert decide(url, "d1", {call["id"]: True}, rita, digests).status_code == 200
    assert booked == [("dana", "mon 9:00", "dana")]
    store.close()


def _decide_at_once(
    urls: list[str], name: str, call_id: str, digests: dict[str, str], staff: list[dict[str, str]]
) -> list[int]:
    """Every receptionist decides the call at the same moment, each on ``urls[n % 2]``
    (the first half approving, the rest denying); their answers' statuses."""
    start = threading.Barrier(len(staff))
    answers: list[int] = []

    def go(url: str, who: dict[str, str], verdict: bool) -> None:
        start.wait()
        answers.append(decide(url, name, {call_id: verdict}, who, digests).status_code)

    threads = [
        threading.Thread(target=go, args=(urls[n % 2], who, n < len(staff) // 2))
        for n, who in enumerate(staff)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_receptionists_on_two_workers_deciding_one_booking_at_once_book_it_once(
    model: ScriptedServer, shared_store: Any
) -> None:
    """Four receptionists, two on each of two workers sharing one store (SQLite and
    PostgreSQL), decide the same booking at the same moment, some approving and some
    denying: one decision stands, it is the one that ran, and the slot is booked at most
    once."""
    store = shared_store
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    staff = [bearer(keys.add(f"rec{n}", ["receptionist"]).key) for n in range(4)]
    if isinstance(store, sessions.SQLiteStore):
        other: Any = sessions.SQLiteStore(store.path)
    else:
        dsn = os.environ["AGENTKIT_TEST_POSTGRES"]
        other = sessions.PostgresStore(dsn, schema=store.schema, pool_size=4)

    def worker(on: Any) -> Any:
        desk = make_desk(model, on)
        return create_app(
            {"desk": desk}, auth=StoredKeys(on), deps=clinic_for, reviewers={"receptionist"}
        )

    booked.clear()
    with uvicorn_serving(worker(store)) as first, uvicorn_serving(worker(other)) as second:
        for round_ in range(3):  # a race: several rounds, so a broken record shows
            name = f"race-{round_}"
            model.queue(Reply.tool_calls(("book", {"slot": name})), Reply.text("Booked."))
            (call,) = ask(first, "book", name, dana).json()["agentkit"]["pending"]
            digests = {call["id"]: call["arguments_digest"]}
            answers = _decide_at_once([first, second], name, call["id"], digests, staff)
            assert answers.count(200) == 1, answers
            assert set(answers) <= {200, 409}, answers
            shown = HTTP.get(f"{second}/v1/sessions/{name}", headers=dana).json()
            (decision,) = shown["decisions"]
            ran = [slot for _, slot, _ in booked if slot == name]
            assert decision["approved"] is bool(ran) and len(ran) <= 1
    other.close()


def test_a_decision_whose_worker_died_before_its_resume_does_not_lock_the_call_for_good(
    model: ScriptedServer, shared_store: Any
) -> None:
    """Rita's decision was recorded, then her worker died before its resume claimed the
    conversation (nothing ran, nothing could take the record back). Every other
    receptionist was told "already decided by someone else" (409) for good; only Rita
    could ever decide the booking. Once the store's lease has passed with nobody holding
    the conversation, the record no longer stands in the way; a fresh one still does."""
    from agentkit.sessions._owners import Owners

    store = shared_store
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    ray = bearer(keys.add("ray", ["receptionist"]).key)
    app = reviewed_desk(model, store)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "mon"})))
    with uvicorn_serving(app) as url:
        (call,) = ask(url, "book mon", "d1", dana).json()["agentkit"]["pending"]
        digests = {call["id"]: call["arguments_digest"]}
        # the dead worker's one act: the record (Access.decide), no resume after it
        assert Owners(store).record("d1", {call["id"]: True}, "rita") is not None
        fresh = decide(url, "d1", {call["id"]: True}, ray, digests)
        assert fresh.status_code == 409 and fresh.json()["error"]["code"] == "already_decided"
        # an hour later (the lease is 600 s): the pause and the record, moved back in time
        with store._transaction(write=True) as cursor:
            for table, column in (("sessions", "updated_at"), ("decisions", "decided_at")):
                store._run(
                    cursor,
                    f"UPDATE {{p}}agentkit_{table} SET {column} = {column} - 3600",
                    (),
                )
        model.queue(Reply.text("Booked."))
        later = decide(url, "d1", {call["id"]: True}, ray, digests)
        assert later.status_code == 200, later.text
        shown = HTTP.get(f"{url}/v1/sessions/d1", headers=dana).json()
    assert booked == [("dana", "mon", "dana")]
    assert [(d["decided_by"], d["approved"]) for d in shown["decisions"]] == [("ray", True)]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless chromium, as ``test_serve_page`` starts it (skipped without one)."""
    from .test_serve_page import ARGS, CHROMIUM, WAIT_MS, _browser_or_skip

    with _browser_or_skip()() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=WAIT_MS)
        try:
            yield browser
        finally:
            browser.close()


def queue_item_as_shown(
    model: ScriptedServer, chromium: Any, tmp_path: Path, arguments: str
) -> str:
    """The text of a patient's booking, asked with ``arguments``, in a receptionist's
    queue on the chat page."""
    from playwright.sync_api import expect

    from .test_serve_page import unhurried

    store = sessions.SQLiteStore(tmp_path / "queue.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    rita = keys.add("rita", ["receptionist"]).key
    model.queue(Reply.tool_calls(("book", arguments)))
    with uvicorn_serving(reviewed_desk(model, store)) as url:
        assert ask(url, "book", "d1", dana).json()["agentkit"]["pending"]
        page = unhurried(chromium.new_context().new_page())
        page.goto(url + "/")
        page.locator("#keybox.shown").wait_for()
        page.fill("#key", rita)
        page.click("#savekey")
        expect(page.locator("#agent")).to_have_value("desk")
        item = page.locator("#queue .item").filter(has_text="book(")
        item.wait_for()
        shown: str = item.inner_text()
        page.close()
    store.close()
    return shown


@pytest.mark.timeout(300)
def test_the_queue_writes_out_characters_that_would_disguise_what_is_approved(
    model: ScriptedServer, chromium: Any, tmp_path: Path
) -> None:
    """A right-to-left override in an argument reversed the rest of the queue's line:
    ``book({"slot": "<U+202E>00:90 noM"})`` read "Mon 09:00" on the page, though the tool
    got the reversed text. The page writes such characters out as ``\\u202e``."""
    shown = queue_item_as_shown(model, chromium, tmp_path, '{"slot": "\u202e00:90 noM\u200b"}')
    assert 'book({"slot": "\\u202e00:90 noM\\u200b"})' in shown
    assert "dana · d1" in shown
    assert "\u202e" not in shown and "\u200b" not in shown


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ


@pytest.mark.timeout(300)
def test_the_queue_shows_joined_emoji_and_persian_as_written_and_an_override_escaped(
    model: ScriptedServer, chromium: Any, tmp_path: Path
) -> None:
    """The page wrote every zero-width joiner and non-joiner out, so an emoji family read
    ``👨\\u200d👩\\u200d👧`` and a Persian word with a ZWNJ was broken in two; a joiner
    that joins two letters or emoji is now shown as written, a right-to-left override and
    a zero-width space beside it still as ``\\u202e`` and ``\\u200b``."""
    slot = f"{FAMILY} {PERSIAN} \u202e00:90 noM\u200b \x1b[2J"
    arguments = json.dumps({"slot": slot}, ensure_ascii=False)
    shown = queue_item_as_shown(model, chromium, tmp_path, arguments)
    # JSON writes the ESC out itself (\u001b); the page leaves that as the model wrote it
    assert f'book({{"slot": "{FAMILY} {PERSIAN} \\u202e00:90 noM\\u200b \\u001b[2J"}})' in shown
    assert "\u202e" not in shown and "\u200b" not in shown and "\x1b" not in shown


both_inside = threading.Barrier(2, timeout=60)


@tool
def who_is_here(ctx: RunContext[Clinic]) -> str:
    """Say which patient the desk is serving (two patients' calls meet here at once)."""
    both_inside.wait()
    return f"patient {ctx.deps.patient}, signed in as {ctx.principal.id if ctx.principal else ''}"


def test_two_patients_at_once_on_one_worker_each_get_their_own_deps(
    model: ScriptedServer, tmp_path: Path
) -> None:
    """Dana's and Erin's tool calls run at the same moment on one worker (a barrier holds
    each until the other is inside): each sees the deps made for its own principal."""

    def answer(request: Any) -> Reply:
        last = request.messages[-1]
        if last["role"] == "tool":
            return Reply.text(last["content"])
        return Reply.tool_calls(("who_is_here", {}))

    both_inside.reset()
    model.respond_with(answer)
    store = sessions.SQLiteStore(tmp_path / "two.db")
    keys = sessions.KeyTable(store)
    people = {name: bearer(keys.add(name, ["patient"]).key) for name in ("dana", "erin")}
    desk = Agent(
        "scripted", [who_is_here], "x", base_url=model.base_url, api_key=MODEL_KEY, store=store
    )
    app = create_app({"desk": desk}, auth=StoredKeys(store), deps=clinic_for)
    said: dict[str, str] = {}
    with uvicorn_serving(app) as url:

        def talk(name: str) -> None:
            reply = ask(url, "who am I?", f"{name}-1", people[name]).json()
            said[name] = reply["choices"][0]["message"]["content"]

        threads = [threading.Thread(target=talk, args=(name,)) for name in people]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert said == {
        "dana": "patient dana, signed in as dana",
        "erin": "patient erin, signed in as erin",
    }
    store.close()


def test_a_deps_factory_returning_none_is_named_in_the_log_and_reaches_no_model(
    model: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The log said the run's tools "declare a RunContext[T] ... and this run has none:
    pass it, e.g. agent.run(prompt, deps=...)", blaming a deps= the operator had given;
    a streamed request answered 200 and then an error event. It names the factory and
    the person, and every request is a plain 500 before anything streams."""

    def clinic_or_none(principal: Principal) -> Clinic | None:
        return None

    store = sessions.SQLiteStore(tmp_path / "none.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    app = create_app({"desk": make_desk(model, store)}, auth=StoredKeys(store), deps=clinic_or_none)
    body = {"model": "desk", "messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level("ERROR", logger="agentkit.serve"), uvicorn_serving(app) as url:
        for streamed in (False, True):
            answer = HTTP.post(
                url + "/v1/chat/completions",
                json={**body, "stream": streamed},
                headers={**dana, "X-Agentkit-Conversation": f"d-{streamed}"},
            )
            assert answer.status_code == 500, answer.text
            assert answer.json()["error"]["code"] == "internal_error"
    assert model.requests == []
    said = [record.getMessage() for record in caplog.records]
    assert any("the deps= factory clinic_or_none returned None for 'dana'" in s for s in said)
    store.close()
