"""The store contract, run against SQLiteStore and PostgresStore alike (store level)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

import pytest

from agentkit._blocking import off_loop
from agentkit.sessions import (
    SchemaVersionError,
    SessionBusyError,
    SessionCorruptError,
    SessionNotFoundError,
)

from ._support import StoreSpec, answer, assistant, calls, open_store, raw, run_child, user


def test_load_and_append(store: Any) -> None:
    claim = store.claim("cust-17", metadata={"owner": "k1"})
    assert claim.length == 0
    store.append(claim, [user("Where is order 1042?"), assistant("It shipped.")])
    store.append(claim, [user("Thanks")])
    assert claim.length == 3
    store.release(claim)
    record = store.load("cust-17")
    assert [m["content"] for m in record.messages] == [
        "Where is order 1042?",
        "It shipped.",
        "Thanks",
    ]
    assert record.status == "idle" and record.pending is None and record.calls == ()
    assert record.info.metadata == {"owner": "k1"}
    again = store.claim("cust-17", metadata={"owner": "someone else"})
    assert again.length == 3
    assert store.load(again).info.metadata == {"owner": "k1"}  # set once, at creation


def test_unknown_session_is_not_found(store: Any) -> None:
    with pytest.raises(SessionNotFoundError, match="no session 'nope'"):
        store.load("nope")
    assert store.delete("nope") is False


@pytest.mark.parametrize(
    "session_id",
    ["x" * 256, "'; DROP TABLE agentkit_sessions; --", 'a"b\\c%_?$1', "客户-17 🙂", " spaced "],
)
def test_session_ids_are_data(store: Any, session_id: str) -> None:
    claim = store.claim(session_id)
    store.append(claim, [user(session_id)])
    store.release(claim)
    assert store.load(session_id).messages == [user(session_id)]
    assert [s.session_id for s in store.list_sessions(prefix=session_id[:5])] == [session_id]
    assert store.delete(session_id) is True
    assert store.list_sessions() == []


@pytest.mark.parametrize("bad", ["x" * 257, "", "a\x00b", "cust-\udcff"])
def test_bad_session_ids_are_refused(store: Any, bad: str) -> None:
    with pytest.raises(ValueError) as claimed:
        store.claim(bad)
    with pytest.raises(ValueError) as loaded:
        store.load(bad)
    # a plain ValueError that says what is wrong, never a UnicodeEncodeError from a driver
    assert type(claimed.value) is ValueError and type(loaded.value) is ValueError


def test_list_by_prefix_and_recency(store: Any) -> None:
    for name in ["a-1", "a-2", "b-1", "a%"]:
        claim = store.claim(name)
        store.append(claim, [user(name)])
        store.release(claim)
    assert [s.session_id for s in store.list_sessions(prefix="a-")] == ["a-2", "a-1"]
    assert [s.session_id for s in store.list_sessions(prefix="a%")] == ["a%"]  # not a pattern
    assert len(store.list_sessions(limit=2)) == 2


def test_a_second_claim_is_busy_at_once(store: Any) -> None:
    first = store.claim("s")
    with pytest.raises(SessionBusyError, match="'s' is busy") as caught:
        store.claim("s")
    assert caught.value.session_id == "s"
    store.release(first)
    store.release(store.claim("s"))


def test_a_claim_waits_as_long_as_the_caller_chose(store: Any) -> None:
    first = store.claim("s")
    waiting = threading.Event()
    got: list[Any] = []

    def second() -> None:
        waiting.set()
        got.append(store.claim("s", wait=30))

    thread = threading.Thread(target=second)
    thread.start()
    waiting.wait()
    store.append(first, [user("first")])
    store.release(first)
    thread.join(30)
    assert got and got[0].length == 1
    with pytest.raises(SessionBusyError, match=r"waited 0\.05 s"):
        store.claim("s", wait=0.05)


def test_a_stale_claim_cannot_write(spec: StoreSpec) -> None:
    store = open_store(spec, lease=0.05)
    try:
        stale = store.claim("s")
        threading.Event().wait(0.1)  # the lease runs out
        fresh = store.claim("s")
        with pytest.raises(SessionBusyError, match="taken over"):
            store.append(stale, [user("late")])
        with pytest.raises(SessionBusyError):
            store.write_ahead(stale, "0:c", "refund", "{}", "d")
        store.append(fresh, [user("mine")])
        assert store.load("s").messages == [user("mine")]
    finally:
        store.close()


def test_threads_racing_for_one_session(store: Any) -> None:
    store.release(store.claim("s"))  # the session and schema exist; the race is the claim
    start = threading.Barrier(8)
    won: list[Any] = []
    busy: list[BaseException] = []

    def run(n: int) -> None:
        start.wait()
        try:
            claim = store.claim("s")
        except SessionBusyError as error:
            busy.append(error)
            return
        won.append(claim)
        store.append(claim, [user(f"run {n}"), assistant(f"answer {n}")])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1 and len(busy) == 7
    messages = store.load("s").messages
    assert len(messages) == 2 and messages[0]["content"][4:] == messages[1]["content"][7:]


def test_tasks_racing_for_one_session(store: Any) -> None:
    async def main() -> list[Any]:
        claim = await off_loop(store.claim, "s")
        await off_loop(store.release, claim)
        return await asyncio.gather(
            *(off_loop(store.claim, "s") for _ in range(5)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert sum(isinstance(o, SessionBusyError) for o in outcomes) == 4


def test_a_claim_held_by_another_process(spec: StoreSpec, store: Any) -> None:
    store.release(store.claim("s"))
    holder = run_child(
        spec,
        """
        import sys
        claim = store.claim("s")
        print("held", flush=True)
        sys.stdin.readline()
        store.append(claim, [{"role": "user", "content": "from the child"}])
        store.release(claim)
        """,
        stdin=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SessionBusyError):
        store.claim("s")
    holder.stdin.write("go\n")
    holder.stdin.flush()
    claim = store.claim("s", wait=30)
    assert holder.wait(30) == 0
    assert claim.length == 1


def test_a_crashed_process_does_not_lock_its_session(spec: StoreSpec, store: Any) -> None:
    done = run_child(spec, 'import os\nstore.claim("s")\nos._exit(9)')
    assert done.returncode == 9
    store.release(store.claim("s"))  # taken over at once: its holder is gone


def test_write_ahead_log(store: Any) -> None:
    claim = store.claim("s")
    store.append(claim, [user("refund 1042"), calls(("c1", "refund"), ("c2", "notify"))])
    store.write_ahead(claim, "1:c1", "refund", '{"order": 1042}', "d1")
    store.write_ahead(claim, "1:c2", "notify", "{}", "d2")
    store.record_result(claim, "1:c2", "sent")
    record = store.load("s")
    assert [(c.key, c.state, c.result) for c in record.calls] == [
        ("1:c1", "started", None),
        ("1:c2", "done", "sent"),
    ]
    assert record.calls[0].arguments == '{"order": 1042}' and record.calls[0].digest == "d1"
    store.append(
        claim, [answer("c1", "refund", "unknown"), answer("c2", "notify", "sent")], close_round=True
    )
    assert store.load("s").calls == ()


def test_pending_state(store: Any) -> None:
    claim = store.claim("s")
    state = {"calls": [{"id": "c1", "name": "refund", "arguments": "{}", "digest": "d"}]}
    store.append(claim, [user("refund"), calls(("c1", "refund"))], pending=state)
    record = store.load("s")
    assert record.status == "paused" and record.pending == state
    assert store.list_sessions()[0].status == "paused"
    store.append(claim, [answer("c1", "refund", "done"), assistant("Refunded.")], close_round=True)
    record = store.load("s")
    assert record.status == "idle" and record.pending is None and len(record.messages) == 4


def test_delete_removes_everything(store: Any, spec: StoreSpec) -> None:
    claim = store.claim("s")
    store.append(claim, [user("a"), calls(("c1", "f"))])
    store.write_ahead(claim, "1:c1", "f", "{}", "d")
    assert store.delete("s") is True
    for table in ("agentkit_sessions", "agentkit_messages", "agentkit_calls"):
        assert raw(spec, f"SELECT count(*) FROM {{p}}{table}") == [(0,)]
    with pytest.raises(SessionBusyError):  # the run that held it learns at its next write
        store.append(claim, [user("b")])


# -- corrupt rows -------------------------------------------------------------------------


def _two_sessions(store: Any) -> None:
    for name in ("bad", "good"):
        claim = store.claim(name)
        store.append(claim, [user("q"), calls(("c1", "f")), answer("c1", "f", "r"), assistant("a")])
        store.release(claim)


@pytest.mark.parametrize(
    ("row", "body", "problem"),
    [
        (1, "{not json", "is not JSON"),
        (2, "[1, 2]", "is a JSON list"),
        (0, '{"content": "no role"}', "has no valid role"),
        (2, '{"role": "tool", "tool_call_id": "other", "content": "x"}', "not open"),
        (2, '{"role": "user", "content": "x"}', "never answered"),
    ],
)
def test_a_corrupt_row_is_refused_by_name(
    store: Any, spec: StoreSpec, row: int, body: str, problem: str
) -> None:
    _two_sessions(store)
    raw(
        spec,
        "UPDATE {p}agentkit_messages SET body = ? WHERE session_id = ? AND seq = ?",
        (body, "bad", row),
    )
    with pytest.raises(SessionCorruptError, match=problem) as caught:
        store.load("bad")
    assert caught.value.session_id == "bad"
    assert "'bad'" in str(caught.value)
    assert caught.value.row == (1 if problem == "never answered" else row)
    assert len(store.load("good").messages) == 4  # the other session keeps working
    assert {s.session_id for s in store.list_sessions()} == {"bad", "good"}
    claim = store.claim("good")
    store.append(claim, [user("more")])  # appending never reads (or rewrites) old rows


def test_a_missing_row_is_refused(store: Any, spec: StoreSpec) -> None:
    _two_sessions(store)
    raw(spec, "DELETE FROM {p}agentkit_messages WHERE session_id = ? AND seq = 1", ("bad",))
    with pytest.raises(SessionCorruptError, match="message 1 is missing"):
        store.load("bad")
    raw(spec, "DELETE FROM {p}agentkit_messages WHERE session_id = ? AND seq >= 1", ("bad",))
    with pytest.raises(SessionCorruptError, match="should hold 4 messages and holds 1"):
        store.load("bad")


def test_a_corrupt_paused_state_is_refused(store: Any, spec: StoreSpec) -> None:
    _two_sessions(store)
    raw(spec, "UPDATE {p}agentkit_sessions SET status = 'paused', pending = '{' WHERE id = 'bad'")
    with pytest.raises(SessionCorruptError, match="paused state is not JSON") as caught:
        store.load("bad")
    assert caught.value.row == "paused state"
    assert store.load("good").status == "idle"


# -- schema versions ----------------------------------------------------------------------


def _version(spec: StoreSpec) -> int:
    return int(raw(spec, "SELECT version FROM {p}agentkit_schema")[0][0])


def _columns(spec: StoreSpec) -> set[str]:
    if spec.kind == "sqlite":
        return {row[1] for row in raw(spec, "PRAGMA table_info(agentkit_sessions)")}
    rows = raw(
        spec,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = 'agentkit_sessions'",
        (spec.schema,),
    )
    return {row[0] for row in rows}


def _at_v2(base: type, steps: list[str]) -> type:
    class V2(base):  # type: ignore[misc]
        schema_version: ClassVar[int] = 2
        migrations: ClassVar[dict[int, list[str]]] = {1: steps}

    return V2


def test_a_v1_database_is_upgraded_in_place(spec: StoreSpec, store: Any) -> None:
    claim = store.claim("old")
    store.append(claim, [user("from v1")])
    store.release(claim)
    store.close()
    assert _version(spec) == 1
    upgraded = open_store(
        spec,
        _at_v2(
            type(store),
            [
                "ALTER TABLE {p}agentkit_sessions ADD COLUMN title TEXT",
                "UPDATE {p}agentkit_sessions SET title = 'untitled'",
            ],
        ),
    )
    try:
        assert upgraded.load("old").messages == [user("from v1")]
        assert _version(spec) == 2 and "title" in _columns(spec)
        assert raw(spec, "SELECT title FROM {p}agentkit_sessions") == [("untitled",)]
    finally:
        upgraded.close()


def test_a_failed_upgrade_changes_nothing(spec: StoreSpec, store: Any) -> None:
    store.release(store.claim("old"))
    store.close()
    broken = open_store(
        spec,
        _at_v2(
            type(store),
            ["ALTER TABLE {p}agentkit_sessions ADD COLUMN title TEXT", "THIS IS NOT SQL"],
        ),
    )
    with pytest.raises(Exception, match="syntax"):
        broken.load("old")
    broken.close()
    assert _version(spec) == 1 and "title" not in _columns(spec)  # one transaction
    reopened = open_store(spec)
    assert reopened.load("old").info.length == 0
    reopened.close()


def test_a_database_from_a_newer_agentkit_is_refused(spec: StoreSpec, store: Any) -> None:
    store.release(store.claim("s"))
    store.close()
    raw(spec, "UPDATE {p}agentkit_schema SET version = 7")
    newer = open_store(spec)
    with pytest.raises(SchemaVersionError, match="schema version 7, written by a newer agentkit"):
        newer.load("s")
    newer.close()
    assert _version(spec) == 7


# SQLite's only: a PostgreSQL row lock held elsewhere is the same case as SQLite's lock
@pytest.mark.parametrize("spec", ["sqlite"], indirect=True)
def test_a_store_call_from_async_code_leaves_the_event_loop_running(
    store: Any, spec: StoreSpec
) -> None:
    import sqlite3

    claim = store.claim("s")
    blocker = sqlite3.connect(spec.where, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    released = threading.Event()

    async def main() -> int:
        ticks = 0
        write = asyncio.ensure_future(off_loop(store.append, claim, [user("x")]))
        while not write.done():
            await asyncio.sleep(0.005)
            ticks += 1
            if ticks == 20:  # the loop kept running while the write waited: let it through
                blocker.rollback()
                released.set()
        await write
        return ticks

    try:
        ticks = asyncio.run(main())
    finally:
        blocker.close()
    assert released.is_set() and ticks >= 20
    assert store.load("s").messages == [{"role": "user", "content": "x"}]
