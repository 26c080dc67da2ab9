"""An outside reviewer's attacks on the served endpoint's identities, ownership and guards:
each test is a break found by probing a real server on loopback, kept as its regression."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from agentkit import Agent, tool
from agentkit.serve import StoredKeys, TrustedProxy, create_app
from agentkit.testing import Reply, ScriptedServer, echo

from .conftest import MODEL_KEY, sessions_or_skip, uvicorn_serving
from .test_serve_identities import ask, bearer, booked, clinic_for, decide, make_desk

sessions = sessions_or_skip()


def test_a_proxy_header_sent_twice_is_refused(model: ScriptedServer, tmp_path: Path) -> None:
    model.respond_with(echo())
    store = sessions.SQLiteStore(tmp_path / "twice.db")
    trusted = TrustedProxy("X-Forwarded-User", ["127.0.0.1"], roles_header="X-Forwarded-Groups")
    app = create_app({"desk": make_desk(model, store)}, auth=trusted, deps=clinic_for)
    with uvicorn_serving(app) as url:
        host, port = url.removeprefix("http://").split(":")
        for extra in (
            b"X-Forwarded-User: rita\r\nX-Forwarded-User: dana\r\n",
            b"X-Forwarded-User: dana\r\nX-Forwarded-Groups: receptionist\r\n"
            b"X-Forwarded-Groups: patient\r\n",
        ):
            with socket.create_connection((host, int(port))) as raw:
                raw.sendall(
                    b"GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + extra
                    + b"Connection: close\r\n\r\n"
                )
                answer = b""
                while chunk := raw.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 401"), answer
    store.close()


def _race(
    url: str, name: str, call_id: str, digests: dict[str, str], reviewers: list[dict[str, str]]
) -> list[int]:
    """Every reviewer decides the call at once (alternately approving and denying)."""
    start = threading.Barrier(len(reviewers))
    answers: list[int] = []

    def go(headers: dict[str, str], verdict: bool) -> None:
        start.wait()
        answers.append(decide(url, name, {call_id: verdict}, headers, digests).status_code)

    threads = [threading.Thread(target=go, args=(h, n % 2 == 0)) for n, h in enumerate(reviewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_two_reviewers_deciding_one_call_at_once_run_it_once_and_record_one_decision(
    model: ScriptedServer, tmp_path: Path
) -> None:
    store = sessions.SQLiteStore(tmp_path / "race.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana", ["patient"]).key)
    reviewers = [bearer(keys.add(f"rev{n}", ["receptionist"]).key) for n in range(4)]
    app = create_app(
        {"desk": make_desk(model, store)},
        auth=StoredKeys(store),
        deps=clinic_for,
        reviewers={"receptionist"},
    )
    booked.clear()
    with uvicorn_serving(app) as url:
        for round_ in range(5):  # a race: several rounds, so a broken record shows
            name = f"race-{round_}"
            model.queue(Reply.tool_calls(("book", {"slot": name})), Reply.text("Booked."))
            (call,) = ask(url, "book", name, dana).json()["agentkit"]["pending"]
            digests = {call["id"]: call["arguments_digest"]}
            answers = _race(url, name, call["id"], digests, reviewers)
            shown = httpx.get(f"{url}/v1/sessions/{name}", headers=dana).json()
            ran = [slot for _, slot, _ in booked if slot == name]
            assert answers.count(200) == 1, answers
            # the record names one decision, and it is the one that ran (or was refused)
            (decision,) = shown["decisions"]
            assert decision["approved"] is bool(ran) and len(ran) <= 1
    store.close()


entered = threading.Event()
release = threading.Event()


@tool(requires_approval=True)
def refund(order: int) -> str:
    """Refund an order (waits, in this test, until the test lets it finish).

    Args:
        order: the order number.
    """
    entered.set()
    release.wait(30)
    return f"refunded {order}"


def test_a_decision_arriving_while_another_runs_is_refused_and_not_recorded(
    model: ScriptedServer, tmp_path: Path
) -> None:
    store = sessions.SQLiteStore(tmp_path / "late.db")
    keys = sessions.KeyTable(store)
    dana = bearer(keys.add("dana").key)
    rita, ray = (bearer(keys.add(name, ["receptionist"]).key) for name in ("rita", "ray"))
    desk = Agent("scripted", [refund], base_url=model.base_url, api_key=MODEL_KEY, store=store)
    app = create_app({"desk": desk}, auth=StoredKeys(store), reviewers={"receptionist"})
    entered.clear()
    release.clear()
    model.queue(Reply.tool_calls(("refund", {"order": 5})), Reply.text("Refunded."))
    with uvicorn_serving(app) as url:
        (call,) = ask(url, "refund 5", "late", dana).json()["agentkit"]["pending"]
        digests = {call["id"]: call["arguments_digest"]}
        first: list[httpx.Response] = []
        approving = threading.Thread(
            target=lambda: first.append(decide(url, "late", {call["id"]: True}, rita, digests))
        )
        approving.start()
        assert entered.wait(30)  # rita's approval is running the refund now
        late = decide(url, "late", {call["id"]: "no refunds today"}, ray, digests)
        release.set()
        approving.join()
        shown = httpx.get(url + "/v1/sessions/late", headers=dana).json()
    assert first[0].status_code == 200, first[0].text
    assert late.status_code == 409
    assert late.json()["error"]["code"] in {"already_decided", "session_busy"}
    assert [(d["decided_by"], d["approved"]) for d in shown["decisions"]] == [("rita", True)]
    store.close()


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(request)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    return answer


def test_a_host_that_only_starts_like_a_loopback_name_is_refused() -> None:
    desk = Agent("m", [], base_url="http://127.0.0.1:9", api_key="k")
    with uvicorn_serving(create_app({"desk": desk})) as url:
        for host in (b"[::1].evil.com", b"[::1]evil:80", b"127.0.0.1:80@evil.com"):
            answer = _raw(
                url, b"GET /v1/models HTTP/1.1\r\nConnection: close\r\nHost: " + host + b"\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 421"), (host, answer)
        for host in (b"[::1]:8000", b"127.0.0.1:8000", b"LOCALHOST", b"localhost:"):
            answer = _raw(
                url, b"GET /v1/models HTTP/1.1\r\nConnection: close\r\nHost: " + host + b"\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 200"), (host, answer)


def test_an_origin_or_content_type_sent_twice_is_refused(model: ScriptedServer) -> None:
    desk = Agent("scripted", [], base_url=model.base_url, api_key=MODEL_KEY)
    body = b'{"model": "desk", "messages": [{"role": "user", "content": "hi"}]}'
    with uvicorn_serving(create_app({"desk": desk})) as url:
        for twice in (
            b"Origin: http://evil.example\r\nOrigin: " + url.encode() + b"\r\n"
            b"Content-Type: application/json\r\n",
            b"Content-Type: text/plain\r\nContent-Type: application/json\r\n",
        ):
            answer = _raw(
                url,
                b"POST /v1/chat/completions HTTP/1.1\r\nConnection: close\r\nHost: 127.0.0.1\r\n"
                + twice
                + b"Content-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body,
            )
            assert answer.startswith(b"HTTP/1.1 400"), answer
            assert b"duplicate_header" in answer
    assert model.requests == []


def test_a_fetch_for_a_forged_key_id_does_not_stall_tokens_with_a_known_key(
    model: ScriptedServer, tmp_path: Path
) -> None:
    from agentkit.serve import OIDC

    from .test_serve_identities import Issuer

    model.respond_with(echo())
    issuer = Issuer()
    issuer.new_key("k1")
    issuer.new_key("attacker", publish=False)
    store = sessions.SQLiteStore(tmp_path / "slow.db")
    auth = OIDC(issuer.url, "clinic-desk", min_refetch=0.0, timeout=30.0)
    app = create_app({"desk": make_desk(model, store)}, auth=auth, deps=clinic_for)
    with uvicorn_serving(app) as url:
        good = issuer.token("k1")
        assert ask(url, "hi", "fast", bearer(good)).status_code == 200  # keys fetched
        issuer.hold = threading.Event()
        forged: list[int] = []
        forging = threading.Thread(
            target=lambda: forged.append(
                ask(url, "hi", "x", bearer(issuer.token("nope", signer="attacker"))).status_code
            )
        )
        forging.start()
        assert issuer.held.wait(30)  # the refetch for the forged kid hangs at the issuer
        answered = ask(url, "hi", "fast", bearer(good)).status_code  # not behind it
        issuer.hold.set()
        forging.join()
    issuer.close()
    store.close()
    assert answered == 200 and forged == [401]
    assert issuer.released  # the good token was answered while the issuer still held


@pytest.mark.timeout(60)
def test_the_pages_markdown_pattern_stays_linear_on_hostile_text() -> None:
    """The page's inline pattern (JavaScript, run here by Python's backtracking engine) on
    text a model or tool may send: a long run of "[" with no link in it took quadratic time
    (100,000 of them: 11 s in node's V8, minutes here), which the hang guard catches."""
    import re
    from importlib.resources import files

    page = files("agentkit.serve").joinpath("page.html").read_text()
    found = re.search(r"const pattern = /(.+)/g;", page)
    assert found is not None
    pattern = re.compile(found.group(1))
    for text in (
        "[" * 300_000 + "](http://x",
        "[a](http://x" * 20_000,
        "[a](http://" + "a" * 100_000,
    ):
        assert sum(1 for _ in pattern.finditer(text)) <= 20_000
    link = pattern.search("see [the docs](https://example.com/a_b) now")
    assert link is not None and link.group(3, 4) == ("the docs", "https://example.com/a_b")
