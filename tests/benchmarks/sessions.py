"""``python -m tests.benchmarks.sessions``: what a session store costs.

Measured for each store (SQLite in a temporary file; PostgreSQL when
``AGENTKIT_TEST_POSTGRES`` names a server, as ``.ci/run`` sets it):

- load, and append, of a 1,000-message conversation;
- one append (a user message and an answer) to a 10-message and to a 10,000-message
  session: append-only writes cost the same at any length;
- 1,000 conversations at once (``asyncio.gather`` of claim, load, append, release);
- with ``--agent``: a two-round run (tool call, answer) against the scripted server, with
  and without a session.

Prints Markdown tables (paste-ready for docs/sessions.md). ``--quick`` takes fewer samples.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agentkit.sessions import SQLiteStore


def _messages(count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in range(count // 2):
        out.append({"role": "user", "content": f"question {n}: where is order {1000 + n}?"})
        out.append({"role": "assistant", "content": f"Order {1000 + n} shipped on day {n}."})
    return out


@contextmanager
def _stores() -> Iterator[list[tuple[str, Callable[[], Any]]]]:
    folder = tempfile.TemporaryDirectory()
    made: list[tuple[str, Callable[[], Any]]] = [
        ("SQLite", lambda: SQLiteStore(os.path.join(folder.name, f"{secrets.token_hex(4)}.db")))
    ]
    schemas: list[str] = []
    dsn = os.environ.get("AGENTKIT_TEST_POSTGRES")
    if dsn:
        from agentkit.sessions import PostgresStore

        def postgres() -> Any:
            schema = "bench_" + secrets.token_hex(4)
            schemas.append(schema)
            return PostgresStore(dsn, schema=schema, pool_size=20)

        made.append(("PostgreSQL", postgres))
    try:
        yield made
    finally:
        folder.cleanup()
        if dsn and schemas:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                for schema in schemas:
                    connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def conversation_1000(make: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median seconds to append 1,000 messages in one write, and to load them back."""
    store = make()
    messages = _messages(1000)
    appends, loads = [], []
    try:
        for n in range(repeats):
            claim = store.claim(f"long-{n}")
            started = time.perf_counter()
            store.append(claim, messages)
            appends.append(time.perf_counter() - started)
            store.release(claim)
            started = time.perf_counter()
            record = store.load(f"long-{n}")
            loads.append(time.perf_counter() - started)
            assert len(record.messages) == 1000
    finally:
        store.close()
    return statistics.median(appends), statistics.median(loads)


def append_by_length(make: Callable[[], Any], repeats: int) -> dict[int, float]:
    """Median seconds of one two-message append to sessions of 10 and of 10,000 messages."""
    store = make()
    try:
        claims = {}
        for length in (10, 10_000):
            claim = store.claim(f"len-{length}")
            for start in range(0, length, 1000):
                store.append(claim, _messages(min(1000, length - start)))
            claims[length] = claim
        pair = _messages(2)
        samples: dict[int, list[float]] = {10: [], 10_000: []}
        for _ in range(repeats):  # interleaved, so a slow spell hits both alike
            for length, claim in claims.items():
                started = time.perf_counter()
                store.append(claim, pair)
                samples[length].append(time.perf_counter() - started)
        return {length: statistics.median(s) for length, s in samples.items()}
    finally:
        store.close()


def concurrent_conversations(make: Callable[[], Any], count: int) -> tuple[float, int]:
    """Wall seconds for ``count`` conversations at once (claim, load, append, release)."""
    store = make()

    async def one(n: int) -> None:
        claim = await asyncio.to_thread(store.claim, f"conv-{n}", wait=60)
        record = await asyncio.to_thread(store.load, claim)
        await asyncio.to_thread(
            store.append,
            claim,
            [
                *record.messages[:0],
                {"role": "user", "content": f"hello {n}"},
                {"role": "assistant", "content": f"hi {n}"},
            ],
        )
        await asyncio.to_thread(store.release, claim)

    async def main() -> list[Any]:
        return await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)

    try:
        store.release(store.claim("warm-up"))
        started = time.perf_counter()
        outcomes = asyncio.run(main())
        wall = time.perf_counter() - started
        errors = sum(isinstance(o, BaseException) for o in outcomes)
        assert len(store.list_sessions(limit=count + 10)) == count + 1
        return wall, errors
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--agent", action="store_true", help="also the two-round agent run")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 9
    append_repeats = 50 if args.quick else 300
    with _stores() as stores:
        print("| store | append 1,000 messages | load 1,000 messages |")
        print("|---|---|---|")
        for name, make in stores:
            append, load = conversation_1000(make, repeats)
            print(f"| {name} | {_ms(append)} | {_ms(load)} |")
        print()
        print(
            "| store | one append, 10-message session | one append, 10,000-message session |"
            " ratio |"
        )
        print("|---|---|---|---|")
        for name, make in stores:
            by_length = append_by_length(make, append_repeats)
            ratio = by_length[10_000] / by_length[10]
            print(f"| {name} | {_ms(by_length[10])} | {_ms(by_length[10_000])} | {ratio:.2f}x |")
        print()
        print("| store | 1,000 conversations at once (wall) | per conversation | errors |")
        print("|---|---|---|---|")
        for name, make in stores:
            wall, errors = concurrent_conversations(make, 1000)
            print(f"| {name} | {wall:.2f} s | {_ms(wall / 1000)} | {errors} |")
        if args.agent:
            from .sessions_agent import agent_cost  # type: ignore[import-not-found,unused-ignore]

            print()
            agent_cost(stores, repeats=20 if args.quick else 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
