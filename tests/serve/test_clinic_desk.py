"""examples/clinic_desk.py end to end, as its operator runs it: keys made with `agentkit
keys`, served by `agentkit serve --auth keys --reviewers receptionist --deps ...` (a real
process; on SQLite, and on PostgreSQL with two workers), patients and a receptionist over
HTTP, and a decision from the command line."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit.cli import main
from agentkit.testing import Reply, ScriptedServer

from ._serving import serving
from .conftest import sessions_or_skip

sessions_or_skip()

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic_desk.py"
DESK = f"{EXAMPLE}:desk"
DEPS = f"{EXAMPLE}:clinic_for"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(""), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@dataclass
class Clinic:
    url: str
    db: Path
    keys: dict[str, dict[str, str]]

    def ask(self, who: str, text: str, conversation: str) -> httpx.Response:
        return httpx.post(
            self.url + "/v1/chat/completions",
            json={"model": "desk", "messages": [{"role": "user", "content": text}]},
            headers={**self.keys[who], "X-Agentkit-Conversation": conversation},
            timeout=60,
        )

    def decide(self, who: str, conversation: str, call: dict[str, Any]) -> httpx.Response:
        digests = {call["id"]: call["arguments_digest"]}
        decided = {"decisions": {call["id"]: True}, "digests": digests}
        return httpx.post(
            f"{self.url}/v1/sessions/{conversation}/approvals",
            json={"model": "desk", **decided},
            headers=self.keys[who],
            timeout=60,
        )

    def get(self, who: str, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.keys[who], timeout=30)

    def booked(self) -> dict[int, str | None]:
        with sqlite3.connect(self.db) as db:
            return dict(db.execute("SELECT id, patient FROM slots"))


def _environment(
    monkeypatch: pytest.MonkeyPatch, model: ScriptedServer, store: str, db: Path
) -> dict[str, str]:
    env = {
        "CLINIC_STORE": store,
        "CLINIC_DB": str(db),
        "CLINIC_SCHEMA": "clinic_" + uuid.uuid4().hex[:10],
        "CLINIC_MODEL": "scripted",
        "AGENTKIT_BASE_URL": model.base_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AGENTKIT_SERVE_API_KEY", raising=False)
    return env


def _serve(env: dict[str, str], workers: int) -> Iterator[str]:
    argv = [
        DESK, "--workers", str(workers), "--auth", "keys", "--reviewers", "receptionist",
        "--deps", DEPS,
    ]  # fmt: skip
    with serving(argv, {**os.environ, **env}) as url:
        yield url


def _keys() -> dict[str, dict[str, str]]:
    keys = {}
    for user, role in (("dana", "patient"), ("erin", "patient"), ("rita", "receptionist")):
        code, out, err = cli("keys", "add", "--agent", DESK, "--user", user, "--role", role)
        assert code == 0, err
        keys[user] = {"Authorization": f"Bearer {out.splitlines()[-1]}"}
    return keys


def _store_url(tmp_path: Path, backend: str) -> str:
    if backend == "sqlite":
        return str(tmp_path / "clinic.db")
    dsn = os.environ.get("AGENTKIT_TEST_POSTGRES")
    if not dsn:
        pytest.skip("set AGENTKIT_TEST_POSTGRES to run the PostgreSQL clinic")
    pytest.importorskip("psycopg")
    return dsn


@pytest.fixture(params=[("sqlite", 1), ("postgres", 2)], ids=["sqlite", "postgres-2-workers"])
def clinic(
    request: pytest.FixtureRequest,
    model: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Clinic]:
    backend, workers = request.param
    db = tmp_path / "slots.db"
    env = _environment(monkeypatch, model, _store_url(tmp_path, backend), db)
    keys = _keys()
    for url in _serve(env, workers):
        yield Clinic(url, db, keys)


def _paused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    extension: dict[str, Any] = response.json()["agentkit"]
    assert extension["status"] == "paused"
    return extension


@pytest.mark.timeout(300)  # worker processes start slowly on a loaded machine
def test_a_patient_books_and_only_a_receptionist_approves(
    model: ScriptedServer, clinic: Clinic
) -> None:
    model.queue(
        Reply.tool_calls(("list_free_slots", {})),
        Reply.tool_calls(("book_slot", {"slot_id": 3})),
        Reply.text("Your booking for Tuesday 14:00 is confirmed."),
    )
    paused = _paused(clinic.ask("dana", "I need an appointment on Tuesday", "dana-visit"))
    (call,) = paused["pending"]
    assert call["name"] == "book_slot" and json.loads(call["arguments"]) == {"slot_id": 3}
    assert clinic.booked()[3] is None  # nothing booked while it waits

    # the patient cannot approve their own booking
    own = clinic.decide("dana", "dana-visit", call)
    assert own.status_code == 403 and own.json()["error"]["code"] == "reviewer_required"
    # another patient cannot see, continue or decide it: 404, nothing written
    requests_before = len(model.requests)
    for response in (
        clinic.get("erin", "/v1/sessions/dana-visit"),
        clinic.ask("erin", "cancel that", "dana-visit"),
        clinic.decide("erin", "dana-visit", call),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "conversation_not_found"
    assert len(model.requests) == requests_before
    assert clinic.get("erin", "/v1/approvals?agent=desk").status_code == 403
    assert clinic.get("dana", "/v1/sessions/dana-visit").json()["status"] == "paused"

    # the receptionist sees the queue and approves
    (waiting,) = clinic.get("rita", "/v1/approvals?agent=desk").json()["data"]
    assert waiting["conversation"] == "dana-visit" and waiting["owner"] == "dana"
    done = clinic.decide("rita", "dana-visit", call)
    assert done.status_code == 200, done.text
    assert "confirmed" in done.json()["choices"][0]["message"]["content"]
    assert clinic.booked()[3] == "dana"  # booked for the patient who asked
    shown = clinic.get("dana", "/v1/sessions/dana-visit").json()
    (decision,) = shown["decisions"]
    assert decision["decided_by"] == "rita" and decision["approved"] is True
    assert clinic.get("rita", "/v1/approvals?agent=desk").json()["data"] == []

    # a revoked key is refused at once, by whichever worker answers
    _, listed, _ = cli("keys", "list", "--agent", DESK, "--json")
    (erin,) = [row for row in json.loads(listed) if row["user"] == "erin"]
    assert cli("keys", "revoke", erin["id"], "--agent", DESK)[0] == 0
    for _ in range(4):
        assert clinic.get("erin", "/v1/me").status_code == 401


@pytest.mark.timeout(300)
def test_a_receptionist_approves_from_the_command_line(
    model: ScriptedServer, clinic: Clinic
) -> None:
    model.queue(
        Reply.tool_calls(("book_slot", {"slot_id": 4})),
        Reply.text("Booked for Wednesday."),
    )
    (call,) = _paused(clinic.ask("erin", "Book slot 4 please", "erin-visit"))["pending"]
    code, out, err = cli(
        "sessions", "approve", "erin-visit", call["id"], "--agent", DESK, "--deps", DEPS
    )
    assert code == 0, err
    assert "Booked for Wednesday." in out
    assert clinic.booked()[4] == "erin"
    (decision,) = clinic.get("erin", "/v1/sessions/erin-visit").json()["decisions"]
    assert decision["decided_by"].startswith("cli")


def test_the_desk_at_the_terminal_pauses_a_booking_for_a_receptionist(
    model: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import runpy

    _environment(monkeypatch, model, str(tmp_path / "t.db"), tmp_path / "slots.db")
    module = runpy.run_path(str(EXAMPLE))
    model.queue(Reply.tool_calls(("book_slot", {"slot_id": 2})))
    assert (
        module["main"](["--user", "erin", "--base-url", model.base_url, "Book", "slot", "2"]) == 0
    )
    shown = capsys.readouterr().out
    assert 'waiting for a receptionist: book_slot({"slot_id": 2})' in shown
    model.queue(Reply.tool_calls(("find_patient", {"name": "a"})), Reply.text("Found you."))
    assert module["main"](["--user", "erin", "--base-url", model.base_url, "Who", "am", "I"]) == 0
    assert "Found you." in capsys.readouterr().out
    # a patient finds only themselves, though the name matches both patients
    assert model.requests[-1].messages[-1]["content"] == "erin: Erin Okafor"
