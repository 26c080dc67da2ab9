"""An outside reviewer's attacks on the served endpoint's identities, ownership and guards:
each test is a break found by probing a real server on loopback, kept as its regression."""

from __future__ import annotations

import socket
from pathlib import Path

from agentkit.serve import TrustedProxy, create_app
from agentkit.testing import ScriptedServer, echo

from .conftest import sessions_or_skip, uvicorn_serving
from .test_serve_identities import clinic_for, make_desk

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
