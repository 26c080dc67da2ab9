"""``python -m tests.benchmarks.auth``: what authenticating one request costs, per source.

Each source's ``authenticate`` is called back to back in one event loop, as the app calls
it for every request: a shared key (a constant-time compare), a stored key (one indexed
read of the key table, in the store's worker thread; SQLite, and PostgreSQL when
``AGENTKIT_TEST_POSTGRES`` is set), an OIDC token (PyJWT's RS256 and ES256 verification
with the issuer's keys cached), and a trusted proxy's header. The sources are interleaved
round by round, so a busy moment of a shared machine falls on all of them alike; median
and minimum per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentkit.serve import OIDC, SharedKeys, StoredKeys, TrustedProxy
from agentkit.sessions import KeyTable, SQLiteStore

Check = Callable[[], Awaitable[Any]]
_SCHEMAS: list[tuple[str, str]] = []  # PostgreSQL schemas made here, dropped at the end


def _oidc(algorithm: str) -> tuple[OIDC, str]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    private: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    source = OIDC("https://id.example", "desk", algorithms=[algorithm])
    source._keys = {"k1": private.public_key()}  # the JWKS as fetched: cached keys
    source._fetched_at = time.monotonic()
    claims = {"iss": "https://id.example", "aud": "desk", "sub": "dana", "roles": ["patient"]}
    token = jwt.encode(
        {**claims, "exp": int(time.time()) + 3600}, private, algorithm, headers={"kid": "k1"}
    )
    return source, token


def _checks(folder: Path) -> dict[str, Check]:
    shared = SharedKeys(["a-long-shared-key-0123456789"])
    shared_headers = {"authorization": "Bearer a-long-shared-key-0123456789"}
    store = SQLiteStore(folder / "keys.db")
    table = KeyTable(store)
    for number in range(1000):  # a table of some size
        table.add(f"user{number}", ["patient"])
    stored = StoredKeys(table)
    key_headers = {"authorization": "Bearer " + table.add("dana", ["patient"]).key}
    rs, rs_token = _oidc("RS256")
    es, es_token = _oidc("ES256")
    proxy = TrustedProxy("X-Forwarded-User", ["127.0.0.1"], roles_header="X-Forwarded-Groups")
    proxy_headers = {"x-forwarded-user": "dana", "x-forwarded-groups": "patient"}
    checks: dict[str, Check] = {
        "shared key": lambda: shared.authenticate(shared_headers, "127.0.0.1"),
        "stored key (SQLite)": lambda: stored.authenticate(key_headers, "127.0.0.1"),
        "OIDC token, RS256": lambda: rs.authenticate(
            {"authorization": "Bearer " + rs_token}, "10.0.0.1"
        ),
        "OIDC token, ES256": lambda: es.authenticate(
            {"authorization": "Bearer " + es_token}, "10.0.0.1"
        ),
        "trusted proxy header": lambda: proxy.authenticate(proxy_headers, "127.0.0.1"),
    }
    dsn = os.environ.get("AGENTKIT_TEST_POSTGRES")
    if dsn:
        from agentkit.sessions import PostgresStore

        schema = "bench_keys_" + uuid.uuid4().hex[:8]
        _SCHEMAS.append((dsn, schema))
        pg = KeyTable(PostgresStore(dsn, schema=schema))
        pg_headers = {"authorization": "Bearer " + pg.add("dana", ["patient"]).key}
        pg_source = StoredKeys(pg)
        checks["stored key (PostgreSQL)"] = lambda: pg_source.authenticate(pg_headers, None)
    return checks


async def _measure(checks: dict[str, Check], rounds: int, batch: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in checks}
    for check in checks.values():  # warm up: first connections, first key parse
        for _ in range(20):
            await check()
    for _ in range(rounds):
        for name, check in checks.items():
            started = time.perf_counter()
            for _ in range(batch):
                await check()
            times[name].append((time.perf_counter() - started) / batch)
    return times


def main(argv: list[str] | None = None) -> None:
    """Print a Markdown table of the cost per request of each identity source."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds per source (30)")
    parser.add_argument("--batch", type=int, default=50, help="requests per round (50)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as folder:
            checks = _checks(Path(folder))
            times = asyncio.run(_measure(checks, args.rounds, args.batch))
    finally:
        for dsn, schema in _SCHEMAS:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print("| identity source | median per request | fastest round |")
    print("| --- | ---: | ---: |")
    for name, samples in times.items():
        median = statistics.median(samples) * 1e6
        print(f"| {name} | {median:,.0f} µs | {min(samples) * 1e6:,.0f} µs |")


if __name__ == "__main__":
    main()
