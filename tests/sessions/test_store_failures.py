"""A store that cannot do its work says so, typed: damaged rows, a full disk, a read-only
file, a deleted file. Every failure is a ``SessionError`` that names the session and what
to do; never a raw ``TypeError``, ``KeyError`` or driver error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentkit import AgentKitError
from agentkit.sessions import SessionCorruptError, SessionError, SQLiteStore
from agentkit.testing import Reply, ScriptedServer

from ._bot import make_agent
from ._support import StoreSpec, answer, assistant, calls, raw, user


def _two_sessions(store: Any) -> None:
    for name in ("bad", "good"):
        claim = store.claim(name)
        store.append(claim, [user("q"), calls(("c1", "f")), answer("c1", "f", "r"), assistant("a")])
        store.release(claim)


# -- damaged rows ----------------------------------------------------------------------------


def test_a_bad_timestamp_spoils_one_session_not_the_listing(store: Any, spec: StoreSpec) -> None:
    _two_sessions(store)
    # SQLite keeps whatever it is given; PostgreSQL's double precision holds NaN.
    bad = "'yesterday'" if spec.kind == "sqlite" else "'NaN'::float8"
    raw(spec, f"UPDATE {{p}}agentkit_sessions SET updated_at = {bad} WHERE id = 'bad'")
    listed = {info.session_id: info for info in store.list_sessions()}
    assert set(listed) == {"bad", "good"}
    assert listed["bad"].updated_at == 0.0 and listed["good"].updated_at > 0
    with pytest.raises(SessionCorruptError, match="timestamp") as caught:
        store.load("bad")
    assert caught.value.session_id == "bad" and "'bad'" in str(caught.value)
    assert len(store.load("good").messages) == 4


def test_a_damaged_claim_row_is_repaired_or_refused_by_name(store: Any, spec: StoreSpec) -> None:
    _two_sessions(store)
    if spec.kind == "sqlite":  # SQLite keeps text in a REAL column
        raw(
            spec,
            "UPDATE {p}agentkit_sessions SET owner = 'x', lease_until = 'soon',"
            " owner_pid = 'pid' WHERE id = 'good'",
        )
        raw(spec, "UPDATE {p}agentkit_sessions SET length = 'four' WHERE id = 'bad'")
    else:
        raw(
            spec,
            "UPDATE {p}agentkit_sessions SET owner = 'x', lease_until = 'NaN'::float8"
            " WHERE id = 'good'",
        )
    claim = store.claim("good")  # a lease that is not a number holds nothing
    store.append(claim, [user("more")])
    store.release(claim)
    assert len(store.load("good").messages) == 5
    if spec.kind == "sqlite":
        with pytest.raises(SessionCorruptError, match="length") as caught:
            store.claim("bad")
        assert caught.value.session_id == "bad"


@pytest.mark.parametrize(
    "state",
    [
        {"calls": 5},
        {"calls": [{"name": "refund"}]},
        {"calls": ["c1"]},
        {"calls": [], "settled": ["c1"]},
        {"calls": [], "settled": {"c1": 7}},
        {"calls": [], "round": "two"},
    ],
)
def test_a_malformed_paused_state_is_refused_by_name(
    store: Any, spec: StoreSpec, state: dict[str, Any]
) -> None:
    _two_sessions(store)
    raw(
        spec,
        "UPDATE {p}agentkit_sessions SET status = 'paused', pending = ? WHERE id = 'bad'",
        (json.dumps(state),),
    )
    with pytest.raises(SessionCorruptError, match="paused state") as caught:
        store.load("bad")
    assert caught.value.session_id == "bad" and caught.value.row == "paused state"
    assert store.load("good").status == "idle"


def test_resuming_a_malformed_paused_state_is_a_session_error(
    store: Any, spec: StoreSpec, server: ScriptedServer
) -> None:
    claim = store.claim("s")
    store.append(claim, [user("refund 5"), calls(("c1", "refund"), arguments='{"order_id": 5}')])
    store.release(claim)
    raw(
        spec,
        "UPDATE {p}agentkit_sessions SET status = 'paused', pending = ? WHERE id = 's'",
        (json.dumps({"calls": [{"name": "refund"}]}),),
    )
    with make_agent(store, server.base_url) as desk, pytest.raises(SessionCorruptError) as caught:
        desk.resume("s", {"c1": True})
    assert caught.value.session_id == "s"
    assert server.requests == []  # nothing was sent, nothing ran


def test_a_malformed_call_record_is_refused_by_name(store: Any, spec: StoreSpec) -> None:
    claim = store.claim("s")
    store.append(claim, [user("pay"), calls(("c1", "pay"))])
    store.write_ahead(claim, "1:c1", "pay", "{}", "d")
    store.release(claim)
    column = "result = x'00ff'" if spec.kind == "sqlite" else "result = NULL, state = 'lost'"
    raw(spec, f"UPDATE {{p}}agentkit_calls SET {column} WHERE session_id = 's'")
    with pytest.raises(SessionCorruptError, match="call") as caught:
        store.load("s")
    assert caught.value.session_id == "s"


def test_tables_dropped_under_a_store_are_a_session_error(store: Any, spec: StoreSpec) -> None:
    claim = store.claim("s")
    store.append(claim, [user("hello")])
    raw(spec, "DROP TABLE {p}agentkit_messages")
    with pytest.raises(SessionError) as caught:
        store.append(claim, [user("lost")])
    assert type(caught.value) is SessionError and caught.value.session_id == "s"
    assert "agentkit_messages" in str(caught.value) or "gone" in str(caught.value)
    with pytest.raises(SessionError):
        store.load("s")


def test_text_a_database_cannot_hold_is_a_session_error(store: Any) -> None:
    claim = store.claim("s")
    store.append(claim, [user("hello")])
    writes: list[Callable[[], object]] = [
        lambda: store.append(claim, [user("report-\udcff.txt")]),
        lambda: store.append(claim, [], pending={"calls": [], "note": "\ud800"}),
        lambda: store.write_ahead(claim, "1:c1", "pay\ud800", "{}", "d"),
    ]
    for write in writes:
        with pytest.raises(SessionError, match="lone surrogate") as caught:
            write()
        assert caught.value.session_id == "s"
    store.append(claim, [user("still fine")])  # nothing half-written, the claim holds
    assert [m["content"] for m in store.load("s").messages] == ["hello", "still fine"]


# -- the file under a SQLite store --------------------------------------------------------


def _sqlite(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "sessions.db")
    claim = store.claim("s")
    store.append(claim, [user("hello")])
    store.release(claim)
    return store


def test_a_full_disk_is_a_session_error_that_says_so(tmp_path: Path) -> None:
    store = _sqlite(tmp_path)
    claim = store.claim("s")
    # SQLite's own SQLITE_FULL, as a full disk gives it: the file may not grow any more.
    pages = store._connection().execute("PRAGMA page_count").fetchone()[0]
    store._connection().execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(SessionError, match="is full") as caught:
        store.append(claim, [user("x" * 200_000)])
    error = caught.value
    assert type(error) is SessionError and error.session_id == "s"
    assert "'s'" in str(error) and "Free some space" in str(error)
    store._connection().execute(f"PRAGMA max_page_count = {pages * 1000}")
    store.append(claim, [user("after")])  # space again: the store goes on
    assert [m["content"] for m in store.load("s").messages] == ["hello", "after"]
    store.close()


def test_a_read_only_database_is_a_session_error_that_says_so(tmp_path: Path) -> None:
    store = _sqlite(tmp_path)
    claim = store.claim("s")
    store._connection().execute("PRAGMA query_only = 1")  # SQLITE_READONLY on every write
    with pytest.raises(SessionError, match="read-only") as caught:
        store.append(claim, [user("x")])
    assert caught.value.session_id == "s" and "writable" in str(caught.value)
    with pytest.raises(SessionError, match="read-only"):
        store.claim("t")
    store.close()


def test_a_deleted_database_file_is_refused_on_the_sync_path(tmp_path: Path) -> None:
    store = _sqlite(tmp_path)
    claim = store.claim("s")
    for name in ("sessions.db", "sessions.db-wal", "sessions.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(SessionError, match="deleted") as caught:
        store.append(claim, [user("into the void")])
    assert caught.value.session_id == "s" and "open a new SQLiteStore" in str(caught.value)
    with pytest.raises(SessionError, match="deleted"):
        store.list_sessions()
    assert not (tmp_path / "sessions.db").exists()  # not recreated empty
    store.close()


def test_a_replaced_database_file_is_refused(tmp_path: Path) -> None:
    store = _sqlite(tmp_path)
    (tmp_path / "sessions.db").rename(tmp_path / "moved.db")
    SQLiteStore(tmp_path / "sessions.db").list_sessions()  # another, empty store in its place
    with pytest.raises(SessionError, match="replaced"):
        store.load("s")
    store.close()


def test_a_deleted_database_file_is_refused_by_agent_runs(
    tmp_path: Path, server: ScriptedServer
) -> None:
    store = _sqlite(tmp_path)
    server.queue(Reply.text("one"), Reply.text("two"))
    with make_agent(store, server.base_url) as desk:
        assert desk.run("first", session="s").output == "one"
        (tmp_path / "sessions.db").unlink()
        with pytest.raises(SessionError, match="deleted") as sync_error:
            desk.run("second", session="s")
        with pytest.raises(SessionError, match="deleted") as async_error:
            asyncio.run(desk.run_async("third", session="s"))
    for caught in (sync_error, async_error):
        assert isinstance(caught.value, AgentKitError) and caught.value.session_id == "s"
    assert not (tmp_path / "sessions.db").exists()
    store.close()
