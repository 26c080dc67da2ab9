"""Identities on the served endpoint: keys with users and roles kept in the store, OIDC
tokens checked against a local JWKS endpoint, a trusted proxy's header; conversations owned
by the person who started them; reviewers who decide; deps made per person."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from _helpers import refused_port

from agentkit import Agent, PlannedCall, Principal, RunContext, RunObserver, tool
from agentkit.serve import OIDC, StoredKeys, TrustedProxy, create_app
from agentkit.testing import Reply, ScriptedServer, echo

from .conftest import HTTP, MODEL_KEY, sessions_or_skip, uvicorn_serving

sessions = sessions_or_skip()


@dataclass
class Clinic:
    """What a tool of the clinic desk gets: the signed-in patient."""

    patient: str


booked: list[tuple[str, str, str | None]] = []


@tool
def whoami(ctx: RunContext[Clinic]) -> str:
    """Say which patient is signed in."""
    return f"patient {ctx.deps.patient}"


@tool(requires_approval=True)
def book(ctx: RunContext[Clinic], slot: str) -> str:
    """Book a slot for the signed-in patient.

    Args:
        slot: the slot, e.g. "Mon 9:00".
    """
    booked.append((ctx.deps.patient, slot, ctx.principal.id if ctx.principal else None))
    return f"booked {slot} for {ctx.deps.patient}"


def clinic_for(principal: Principal) -> Clinic:
    return Clinic(principal.id)


async def clinic_for_async(principal: Principal) -> Clinic:
    await asyncio.sleep(0)
    return Clinic(principal.id)


def make_desk(model: ScriptedServer, store: Any) -> Agent[str]:
    return Agent(
        "scripted",
        [whoami, book],
        "You run the clinic desk.",
        base_url=model.base_url,
        api_key=MODEL_KEY,
        store=store,
    )


def reviewed_desk(model: ScriptedServer, store: Any) -> Any:
    """The desk served with the store's keys, a clinic per person, and receptionists as
    the reviewers of its bookings."""
    return create_app(
        {"desk": make_desk(model, store)},
        auth=StoredKeys(store),
        deps=clinic_for,
        reviewers={"receptionist"},
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ask(url: str, text: str, conversation: str, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "desk", "messages": [{"role": "user", "content": text}]}
    return HTTP.post(
        url + "/v1/chat/completions",
        json=body,
        headers={**headers, "X-Agentkit-Conversation": conversation},
        timeout=60,
    )


def decide(
    url: str,
    conversation: str,
    decisions: dict[str, Any],
    headers: dict[str, str],
    digests: dict[str, str] | None = None,
) -> httpx.Response:
    digests = digests or {call_id: "shown-digest" for call_id in decisions}
    return HTTP.post(
        f"{url}/v1/sessions/{conversation}/approvals",
        json={"model": "desk", "decisions": decisions, "digests": digests},
        headers=headers,
        timeout=60,
    )


def session_rows(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT id, length FROM agentkit_sessions ORDER BY id"))


@dataclass
class Clinicians:
    url: str
    store_path: Path
    dana: dict[str, str]
    erin: dict[str, str]
    rita: dict[str, str]
    keys: Any


@pytest.fixture
def clinic(model: ScriptedServer, tmp_path: Path) -> Iterator[Clinicians]:
    """The clinic desk with stored keys: two patients and a receptionist who reviews."""
    path = tmp_path / "clinic.db"
    store = sessions.SQLiteStore(path)
    keys = sessions.KeyTable(store)
    dana = keys.add("dana", ["patient"]).key
    erin = keys.add("erin", ["patient"]).key
    rita = keys.add("rita", ["receptionist"]).key
    app = reviewed_desk(model, store)
    booked.clear()
    with uvicorn_serving(app) as url:
        yield Clinicians(url, path, bearer(dana), bearer(erin), bearer(rita), keys)
    store.close()


def test_a_stored_key_signs_its_user_in_and_only_its_digest_is_kept(
    model: ScriptedServer, clinic: Clinicians
) -> None:
    model.queue(Reply.tool_calls(("whoami", {})), Reply.text("You are dana."))
    answer = ask(clinic.url, "who am I?", "d1", clinic.dana)
    assert answer.status_code == 200
    assert model.requests[1].messages[-1]["content"] == "patient dana"
    me = HTTP.get(clinic.url + "/v1/me", headers=clinic.rita).json()
    assert me == {"id": "rita", "roles": ["receptionist"], "reviewer": True, "owner_decides": False}
    stored = clinic.store_path.read_bytes()
    key = clinic.dana["Authorization"].split()[1]
    assert key.encode() not in stored  # hashed keys only
    wal = clinic.store_path.with_name(clinic.store_path.name + "-wal")
    assert not wal.exists() or key.encode() not in wal.read_bytes()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer ak_not-a-real-key-000000000000000000000000000"},
        {"Authorization": "Bearer short"},
        {"Authorization": "Basic ZGFuYTpwdw=="},
    ],
)
def test_a_missing_or_unknown_key_is_a_401(
    model: ScriptedServer, clinic: Clinicians, headers: dict[str, str]
) -> None:
    response = ask(clinic.url, "hi", "x", headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    for given in headers.values():
        assert given.split()[-1] not in response.text  # the credential is never echoed
    assert model.requests == []


def test_a_revoked_key_is_refused_at_once_by_every_worker(
    model: ScriptedServer, clinic: Clinicians, tmp_path: Path
) -> None:
    model.respond_with(echo())
    # a second worker: its own app and store object on the same file
    other_store = sessions.SQLiteStore(clinic.store_path)
    other = create_app(
        {"desk": make_desk(model, other_store)}, auth=StoredKeys(other_store), deps=clinic_for
    )
    with uvicorn_serving(other) as second:
        assert ask(second, "hi", "e1", clinic.erin).status_code == 200
        (erin,) = [k for k in clinic.keys.list() if k.principal == "erin"]
        assert clinic.keys.revoke(erin.id)
        for url in (clinic.url, second):
            refused = ask(url, "again", "e1", clinic.erin)
            assert refused.status_code == 401
    assert [k.revoked_at is not None for k in clinic.keys.list()] == [False, True, False]
    other_store.close()


def test_another_persons_conversation_is_a_404_and_nothing_is_written(
    model: ScriptedServer, clinic: Clinicians
) -> None:
    model.respond_with(echo())
    assert ask(clinic.url, "my private note", "dana-1", clinic.dana).status_code == 200
    before = session_rows(clinic.store_path)
    calls = len(model.requests)
    attempts = [
        ask(clinic.url, "let me in", "dana-1", clinic.erin),
        HTTP.get(clinic.url + "/v1/sessions/dana-1", headers=clinic.erin),
        decide(clinic.url, "dana-1", {"call_1": True}, clinic.erin),
    ]
    for response in attempts:
        assert response.status_code == 404, response.text
        assert response.json()["error"] == {
            "message": "no such conversation",
            "type": "invalid_request_error",
            "param": None,
            "code": "conversation_not_found",
        }
    assert session_rows(clinic.store_path) == before
    assert len(model.requests) == calls


def test_deciding_an_unknown_conversation_is_a_404_that_writes_nothing(
    clinic: Clinicians,
) -> None:
    for who in (clinic.dana, clinic.rita):
        response = decide(clinic.url, "never-was", {"call_1": True}, who)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "conversation_not_found"
    assert session_rows(clinic.store_path) == []
    with sqlite3.connect(clinic.store_path) as db:
        assert db.execute("SELECT count(*) FROM agentkit_decisions").fetchone() == (0,)


def test_a_patient_cannot_decide_their_own_booking_and_a_receptionist_can(
    model: ScriptedServer, clinic: Clinicians
) -> None:
    model.queue(Reply.tool_calls(("book", {"slot": "Mon 9:00"})), Reply.text("Booked."))
    paused = ask(clinic.url, "Book Monday 9:00", "dana-2", clinic.dana).json()["agentkit"]
    assert paused["status"] == "paused" and paused["conversation"] == "dana-2"
    call_id = paused["pending"][0]["id"]
    digests = {call_id: paused["pending"][0]["arguments_digest"]}

    own = decide(clinic.url, "dana-2", {call_id: True}, clinic.dana, digests)
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "reviewer_required"
    assert booked == []

    # the patient never sees the queue; the receptionist does
    assert HTTP.get(clinic.url + "/v1/approvals?agent=desk", headers=clinic.dana).status_code == 403
    queue = HTTP.get(clinic.url + "/v1/approvals?agent=desk", headers=clinic.rita).json()
    (waiting,) = queue["data"]
    assert waiting["conversation"] == "dana-2" and waiting["owner"] == "dana"
    assert waiting["calls"][0]["name"] == "book"
    assert waiting["calls"][0]["arguments_digest"] == digests[call_id]
    assert json.loads(waiting["calls"][0]["arguments"]) == {"slot": "Mon 9:00"}
    assert waiting["waiting_since"] <= time.time()

    before = time.time()
    done = decide(clinic.url, "dana-2", {call_id: True}, clinic.rita, digests)
    assert done.status_code == 200, done.text
    assert "Booked." in done.text
    # the tool ran for the patient who asked (their deps), not for the receptionist
    assert booked == [("dana", "Mon 9:00", "dana")]
    shown = HTTP.get(clinic.url + "/v1/sessions/dana-2", headers=clinic.dana).json()
    (decision,) = shown["decisions"]
    assert decision["decided_by"] == "rita" and decision["approved"] is True
    assert decision["call_id"] == call_id and decision["decided_at"] >= before - 1
    assert shown["owner"] == "dana" and shown["status"] == "done"
    queue = HTTP.get(clinic.url + "/v1/approvals?agent=desk", headers=clinic.rita).json()
    assert queue["data"] == []


class Decisions(RunObserver):
    """Records each approval an observer is told of: the call, granted, who and when."""

    seen: ClassVar[list[tuple[str, bool, str | None, str | None]]] = []

    def approval(self, call: PlannedCall, granted: bool) -> None:
        self.seen.append((call.call_id, granted, call.decided_by, call.decided_at))


@pytest.mark.parametrize("streamed", [False, True])
def test_the_reviewers_decision_reaches_the_observers_with_who_and_when(
    model: ScriptedServer, tmp_path: Path, streamed: bool
) -> None:
    store = sessions.SQLiteStore(tmp_path / "clinic.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    rita_key = keys.add("rita", ["receptionist"]).key
    desk = Agent(
        "scripted",
        [whoami, book],
        base_url=model.base_url,
        api_key=MODEL_KEY,
        store=store,
        observers=[lambda info: Decisions()],
    )
    app = create_app(
        {"desk": desk}, auth=StoredKeys(store), deps=clinic_for, reviewers={"receptionist"}
    )
    Decisions.seen.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "Tue 10:00"})), Reply.text("Booked."))
    with uvicorn_serving(app) as url:
        paused = ask(url, "Book Tuesday 10:00", "dana-9", dana).json()["agentkit"]
        call_id = paused["pending"][0]["id"]
        digests = {call_id: paused["pending"][0]["arguments_digest"]}
        body = {"model": "desk", "decisions": {call_id: True}, "digests": digests}
        done = HTTP.post(
            f"{url}/v1/sessions/dana-9/approvals",
            json={**body, "stream": streamed},
            headers=bearer(rita_key),
            timeout=60,
        )
        assert done.status_code == 200, done.text
        assert "Booked." in done.text
    store.close()
    ((decided, granted, by, at),) = Decisions.seen
    assert (decided, granted, by) == (call_id, True, "rita")
    assert at is not None and datetime.fromisoformat(at).tzinfo is not None
    assert rita_key not in repr(Decisions.seen)


def test_without_reviewers_the_owner_decides(model: ScriptedServer, tmp_path: Path) -> None:
    store = sessions.SQLiteStore(tmp_path / "own.db")
    keys = sessions.KeyTable(store)
    dana, erin = bearer(keys.add("dana").key), bearer(keys.add("erin").key)
    app = create_app({"desk": make_desk(model, store)}, auth=StoredKeys(store), deps=clinic_for)
    booked.clear()
    model.queue(Reply.tool_calls(("book", {"slot": "Tue"})), Reply.text("Booked."))
    with uvicorn_serving(app) as url:
        (call,) = ask(url, "book", "c", dana).json()["agentkit"]["pending"]
        digests = {call["id"]: call["arguments_digest"]}
        assert decide(url, "c", {call["id"]: True}, erin, digests).status_code == 404
        stale = decide(url, "c", {call["id"]: True}, dana, {call["id"]: "another-digest"})
        assert stale.status_code == 409 and booked == []
        assert HTTP.get(url + "/v1/sessions/c", headers=dana).json()["decisions"] == []
        assert decide(url, "c", {call["id"]: True}, dana, digests).status_code == 200
        assert HTTP.get(url + "/v1/approvals?agent=desk", headers=dana).status_code == 403
    assert booked == [("dana", "Tue", "dana")]
    store.close()


def test_an_async_deps_factory_and_a_non_optional_runcontext_work_served(
    model: ScriptedServer, tmp_path: Path
) -> None:
    store = sessions.SQLiteStore(tmp_path / "a.db")
    dana = bearer(sessions.KeyTable(store).add("dana").key)
    app = create_app(
        {"desk": make_desk(model, store)}, auth=StoredKeys(store), deps=clinic_for_async
    )
    model.queue(Reply.tool_calls(("whoami", {})), Reply.text("ok"))
    with uvicorn_serving(app) as url:
        assert ask(url, "who?", "w", dana).status_code == 200
    assert model.requests[1].messages[-1]["content"] == "patient dana"
    store.close()


def test_a_session_made_in_python_is_the_same_conversation_over_http(
    model: ScriptedServer, tmp_path: Path
) -> None:
    store = sessions.SQLiteStore(tmp_path / "py.db")
    desk = Agent("scripted", [], base_url=model.base_url, api_key=MODEL_KEY, store=store)
    model.respond_with(echo())
    desk.run("from python", session="shared-1")
    with uvicorn_serving(create_app({"desk": desk})) as url:
        shown = HTTP.get(url + "/v1/sessions/shared-1").json()
        assert [m["content"] for m in shown["messages"]][:1] == ["from python"]
        assert ask(url, "from http", "shared-1", {}).status_code == 200
    again = desk.run("python again", session="shared-1")
    texts = [m["content"] for m in again.messages if m["role"] == "user"]
    assert texts == ["from python", "from http", "python again"]
    store.close()


def test_a_session_nobody_owns_is_not_open_to_signed_in_people(
    model: ScriptedServer, tmp_path: Path
) -> None:
    store = sessions.SQLiteStore(tmp_path / "py.db")
    desk = make_desk(model, store)
    model.respond_with(echo())
    desk.run("operator's own", session="ops-1", deps=Clinic("ops"))
    dana = bearer(sessions.KeyTable(store).add("dana").key)
    app = create_app({"desk": desk}, auth=StoredKeys(store), deps=clinic_for)
    with uvicorn_serving(app) as url:
        assert ask(url, "mine now?", "ops-1", dana).status_code == 404
        assert HTTP.get(url + "/v1/sessions/ops-1", headers=dana).status_code == 404
    store.close()


# -- OIDC --------------------------------------------------------------------------------


class Issuer:
    """A local OIDC issuer: a discovery document and a JWKS on loopback, keys made here."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.hold: threading.Event | None = None
        self.held = threading.Event()
        self.released = True  # False when a held fetch gave up waiting for the test
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    issuer.fetches += 1
                    if issuer.hold is not None:  # a slow issuer: answers when the test says
                        issuer.held.set()
                        issuer.released = issuer.hold.wait(30)
                    body = {"keys": [issuer.jwk(kid) for kid in issuer.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def new_key(self, kid: str, publish: bool = True) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        import jwt

        data: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key())
        )
        return {**data, "kid": kid, "use": "sig", "alg": "RS256"}

    def token(self, kid: str = "k1", signer: str | None = None, **claims: Any) -> str:
        import jwt

        body = {
            "iss": self.url,
            "aud": "clinic-desk",
            "sub": "dana",
            "exp": int(time.time()) + 300,
            "roles": ["patient"],
            **claims,
        }
        return jwt.encode(body, self.keys[signer or kid], algorithm="RS256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    made = Issuer()
    made.new_key("k1")
    yield made
    made.close()


@pytest.fixture
def oidc_desk(model: ScriptedServer, issuer: Issuer, tmp_path: Path) -> Iterator[str]:
    store = sessions.SQLiteStore(tmp_path / "oidc.db")
    auth = OIDC(issuer.url, "clinic-desk", min_refetch=0.0)
    app = create_app({"desk": make_desk(model, store)}, auth=auth, deps=clinic_for)
    with uvicorn_serving(app) as url:
        yield url
    store.close()


def _b64(data: dict[str, Any]) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_signs_its_subject_in_with_its_roles(
    model: ScriptedServer, issuer: Issuer, oidc_desk: str
) -> None:
    model.queue(Reply.tool_calls(("whoami", {})), Reply.text("ok"))
    token = issuer.token(sub="dana", roles=["patient"])
    assert ask(oidc_desk, "who?", "t1", bearer(token)).status_code == 200
    assert model.requests[1].messages[-1]["content"] == "patient dana"
    me = HTTP.get(oidc_desk + "/v1/me", headers=bearer(token)).json()
    assert me == {"id": "dana", "roles": ["patient"], "reviewer": False, "owner_decides": True}


def forged_tokens(issuer: Issuer) -> dict[str, str]:
    issuer.new_key("attacker", publish=False)
    good = issuer.token()
    header, payload, _ = good.split(".")
    return {
        "expired": issuer.token(exp=int(time.time()) - 3600),
        "wrong audience": issuer.token(aud="another-app"),
        "wrong issuer": issuer.token(iss="https://evil.example"),
        "wrong key": issuer.token(signer="attacker"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{payload}.",
        "alg HS256 with the public key": _hs256_confusion(issuer, payload),
        "tampered payload": f"{header}.{_b64({'sub': 'rita', 'roles': ['receptionist']})}."
        + good.split(".")[2],
        "unknown key id": issuer.token(kid="attacker"),
        "no exp": _without_exp(issuer),
        "not a jwt": "not-a-token",
    }


def _hs256_confusion(issuer: Issuer, payload: str) -> str:
    import hashlib
    import hmac
    from base64 import urlsafe_b64encode

    from cryptography.hazmat.primitives import serialization

    public = (
        issuer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": "k1"})
    mac = hmac.new(public, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _without_exp(issuer: Issuer) -> str:
    import jwt

    body = {"iss": issuer.url, "aud": "clinic-desk", "sub": "dana"}
    return jwt.encode(body, issuer.keys["k1"], algorithm="RS256", headers={"kid": "k1"})


def test_every_bad_token_is_a_401_and_reaches_no_model(
    model: ScriptedServer, issuer: Issuer, oidc_desk: str
) -> None:
    for name, token in forged_tokens(issuer).items():
        response = ask(oidc_desk, "hi", "t2", bearer(token))
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "invalid_token", name
        assert token not in response.text, name
    assert model.requests == []


def test_a_rotated_key_is_taken_at_once_and_a_retired_one_refused(
    model: ScriptedServer, issuer: Issuer, tmp_path: Path
) -> None:
    model.respond_with(echo())
    store = sessions.SQLiteStore(tmp_path / "rot.db")
    auth = OIDC(issuer.url, "clinic-desk", min_refetch=0.0, jwks_ttl=3600)
    app = create_app({"desk": make_desk(model, store)}, auth=auth, deps=clinic_for)
    with uvicorn_serving(app) as url:
        old = issuer.token("k1")
        assert ask(url, "hi", "r1", bearer(old)).status_code == 200
        issuer.new_key("k2")  # the issuer rotates: the new key is published ...
        issuer.published.remove("k1")  # ... and the old one retired
        assert ask(url, "hi", "r1", bearer(issuer.token("k2"))).status_code == 200
        assert ask(url, "hi", "r1", bearer(old)).status_code == 401
    assert issuer.fetches == 3  # the first use, the new kid, the retired kid: one each
    store.close()


def test_unknown_key_ids_do_not_make_the_server_hammer_the_issuer(
    model: ScriptedServer, issuer: Issuer, tmp_path: Path
) -> None:
    store = sessions.SQLiteStore(tmp_path / "kid.db")
    auth = OIDC(issuer.url, "clinic-desk")  # min_refetch: 10 s
    app = create_app({"desk": make_desk(model, store)}, auth=auth, deps=clinic_for)
    issuer.new_key("attacker", publish=False)
    with uvicorn_serving(app) as url:
        for number in range(5):
            forged = issuer.token(kid=f"kid-{number}", signer="attacker")
            assert ask(url, "hi", "k", bearer(forged)).status_code == 401
    assert issuer.fetches == 1
    assert model.requests == []
    store.close()


def test_an_unreachable_issuer_is_a_503_not_a_hang(model: ScriptedServer, tmp_path: Path) -> None:
    auth = OIDC(f"http://127.0.0.1:{refused_port()}", "clinic-desk", timeout=2.0)
    store = sessions.SQLiteStore(tmp_path / "down.db")
    app = create_app({"desk": make_desk(model, store)}, auth=auth, deps=clinic_for)
    with uvicorn_serving(app) as url:
        issuer = Issuer()
        issuer.new_key("k1")
        response = ask(url, "hi", "d", bearer(issuer.token()))
        issuer.close()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "identity_provider_unavailable"
    store.close()


def test_oidc_refuses_symmetric_algorithms_when_made() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        OIDC("https://id.example", "app", algorithms=["HS256"])
    with pytest.raises(ValueError, match="asymmetric"):
        OIDC("https://id.example", "app", algorithms=["none"])


# -- a trusted proxy ---------------------------------------------------------------------


def test_a_proxy_header_is_believed_only_from_the_proxy(
    model: ScriptedServer, tmp_path: Path
) -> None:
    model.queue(Reply.tool_calls(("whoami", {})), Reply.text("ok"))
    store = sessions.SQLiteStore(tmp_path / "proxy.db")
    trusted = TrustedProxy("X-Forwarded-User", ["127.0.0.1"], roles_header="X-Forwarded-Groups")
    elsewhere = TrustedProxy("X-Forwarded-User", ["10.9.8.7/32"])
    desk = make_desk(model, store)
    with uvicorn_serving(create_app({"desk": desk}, auth=trusted, deps=clinic_for)) as url:
        named = {"X-Forwarded-User": "dana", "X-Forwarded-Groups": "patient, vip"}
        assert ask(url, "who?", "p1", named).status_code == 200
        me = HTTP.get(url + "/v1/me", headers=named).json()
        assert me["id"] == "dana" and me["roles"] == ["patient", "vip"]
        nobody = ask(url, "who?", "p2", {})
        assert nobody.status_code == 401 and nobody.json()["error"]["code"] == "no_user"
    with uvicorn_serving(create_app({"desk": desk}, auth=elsewhere, deps=clinic_for)) as url:
        direct = ask(url, "who?", "p3", {"X-Forwarded-User": "rita"})
        assert direct.status_code == 401
        assert direct.json()["error"]["code"] == "untrusted_client"
    assert model.requests[1].messages[-1]["content"] == "patient dana"
    assert len(model.requests) == 2
    store.close()


def test_a_proxy_needs_addresses_and_a_header() -> None:
    with pytest.raises(ValueError, match="addresses"):
        TrustedProxy("X-Forwarded-User", [])
    with pytest.raises(ValueError, match="address or a network"):
        TrustedProxy("X-Forwarded-User", ["proxy.example"])
    with pytest.raises(ValueError, match="header"):
        TrustedProxy("X-User: evil", ["127.0.0.1"])
    with pytest.raises(ValueError, match="api_keys or auth"):
        create_app(
            {"desk": Agent("m", [], base_url="http://127.0.0.1:9", api_key="k")},
            api_keys=["a-long-key-123"],
            auth=TrustedProxy("X-U", ["127.0.0.1"]),
        )


def test_tools_that_need_deps_without_a_factory_are_refused_when_the_app_is_made(
    model: ScriptedServer, tmp_path: Path
) -> None:
    store = sessions.SQLiteStore(tmp_path / "n.db")
    with pytest.raises(ValueError, match=r"whoami.*deps=factory"):
        create_app({"desk": make_desk(model, store)})
    store.close()


def test_the_access_log_names_the_principal_and_never_the_key(
    model: ScriptedServer, tmp_path: Path
) -> None:
    import logging

    class Kept(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    store = sessions.SQLiteStore(tmp_path / "log.db")
    key = sessions.KeyTable(store).add("dana", ["patient"]).key
    app = create_app(
        {"desk": make_desk(model, store)}, auth=StoredKeys(store), deps=clinic_for, access_log=True
    )
    model.respond_with(echo())
    access = logging.getLogger("uvicorn.access")
    kept = Kept()
    with uvicorn_serving(app) as url:
        level = access.level  # uvicorn set it when it started; agentkit serve sets INFO
        access.setLevel(logging.INFO)
        access.addHandler(kept)
        try:
            assert ask(url, "hi", "log-1", bearer(key)).status_code == 200
            assert HTTP.get(url + "/v1/me", headers=bearer("ak_wrong-key")).status_code == 401
            for _ in range(50):  # a request's line is written as its handler ends
                if any("GET /v1/me" in line and " - - " in line for line in kept.lines):
                    break
                HTTP.get(url + "/healthz")
        finally:
            access.removeHandler(kept)
            access.setLevel(level)
    lines = kept.lines
    assert any(" dana - " in line and "POST /v1/chat/completions" in line for line in lines)
    assert any(" - - " in line and "GET /v1/me" in line and line.endswith(" 401") for line in lines)
    assert all(key not in line and "ak_wrong" not in line for line in lines)
    store.close()


def test_with_shared_keys_deciding_an_unknown_conversation_is_a_404_that_writes_nothing(
    model: ScriptedServer, tmp_path: Path
) -> None:
    path = tmp_path / "shared.db"
    store = sessions.SQLiteStore(path)
    desk = Agent("scripted", [], base_url=model.base_url, api_key=MODEL_KEY, store=store)
    app = create_app({"desk": desk}, api_keys=["shared-key-0123456789"])
    with uvicorn_serving(app) as url:
        response = decide(url, "nobody-here", {"call_1": True}, bearer("shared-key-0123456789"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "conversation_not_found"
    assert error["message"] == "no such conversation"  # no id, no key digest
    assert session_rows(path) == []
    store.close()


def test_people_racing_for_one_new_conversation_name_leave_it_to_exactly_one(
    model: ScriptedServer, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = sessions.SQLiteStore(tmp_path / "race.db")
    keys = sessions.KeyTable(store)
    people = {f"p{n}": bearer(keys.add(f"p{n}").key) for n in range(8)}
    model.respond_with(echo())
    app = create_app({"desk": make_desk(model, store)}, auth=StoredKeys(store), deps=clinic_for)
    with uvicorn_serving(app) as url, ThreadPoolExecutor(len(people)) as pool:
        answers = list(
            pool.map(lambda headers: ask(url, "mine", "contested", headers), people.values())
        )
        codes = sorted(response.status_code for response in answers)
        winner = next(who for who, r in zip(people, answers, strict=True) if r.status_code == 200)
        shown = HTTP.get(url + "/v1/sessions/contested", headers=people[winner]).json()
    assert codes.count(200) == 1, codes
    assert set(codes) - {200} <= {404, 409}  # another's (404), or the winner still runs (409)
    assert shown["owner"] == winner
    assert [m["content"] for m in shown["messages"]] == ["mine", "mine"]
    store.close()


RESERVED_IDS = ["cli:root", "CLI:root", " cli:rita", "key:1a2b3c4d", "Key:ABCD1234", "local", "cli"]


def test_an_identity_source_may_not_name_someone_with_an_id_agentkit_gives(
    model: ScriptedServer, issuer: Issuer, oidc_desk: str, tmp_path: Path
) -> None:
    """A token's ``sub`` or a proxy's user ``cli:root`` decided as ``cli:root``: in the
    audit of decisions it read as made at the command line (``agentkit sessions
    approve``), ``key:1a2b3c4d`` as made with a shared key, and ``local`` was the keyless
    server's person, owner of its conversations. Such an id is refused with a 401
    (``reserved_identity``) before any run; a name that only starts alike is not."""
    for identity in RESERVED_IDS:
        response = ask(oidc_desk, "hi", "r1", bearer(issuer.token(sub=identity)))
        assert response.status_code == 401, identity
        assert response.json()["error"]["code"] == "reserved_identity", identity
    store = sessions.SQLiteStore(tmp_path / "proxy.db")
    proxy = TrustedProxy("X-Forwarded-User", ["127.0.0.1"], roles_header="X-Forwarded-Groups")
    app = create_app({"desk": make_desk(model, store)}, auth=proxy, deps=clinic_for)
    with uvicorn_serving(app) as url:
        for identity in [i.strip() for i in RESERVED_IDS]:  # a header's value is stripped
            named = {"X-Forwarded-User": identity, "X-Forwarded-Groups": "receptionist"}
            response = ask(url, "hi", "r2", named)
            assert response.status_code == 401, identity
            assert response.json()["error"]["code"] == "reserved_identity", identity
            assert HTTP.get(url + "/v1/me", headers=named).status_code == 401
        model.queue(Reply.text("ok"))
        alike = {"X-Forwarded-User": "client:cli", "X-Forwarded-Groups": "patient"}
        assert ask(url, "hi", "r3", alike).status_code == 200
    assert len(model.requests) == 1
    store.close()


def test_a_key_cannot_be_made_for_an_id_agentkit_gives(tmp_path: Path) -> None:
    from agentkit import ConfigurationError

    store = sessions.SQLiteStore(tmp_path / "keys.db")
    keys = sessions.KeyTable(store)
    for identity in ("cli:root", "key:1a2b3c4d", "local", "LOCAL"):
        with pytest.raises(ConfigurationError, match="an id agentkit gives on its own"):
            keys.add(identity, ["receptionist"])
    assert keys.list() == []
    assert keys.add("clinic:dana", ["patient"]).info.principal == "clinic:dana"
    store.close()
