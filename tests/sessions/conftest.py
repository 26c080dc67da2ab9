"""The contract suite's fixtures: every test runs against each store.

PostgreSQL comes from ``AGENTKIT_TEST_POSTGRES`` (a DSN; ``.ci/run`` starts a throwaway
server and sets it). Without it the PostgreSQL cases skip, unless ``CI=true``: in CI a
missing server is a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit.sessions import SQLiteStore

from ._support import StoreSpec, open_store

STORES = ["sqlite", "postgres"]


def postgres_dsn() -> str:
    """The test server's DSN, or skip (fail in CI) when there is none."""
    dsn = os.environ.get("AGENTKIT_TEST_POSTGRES", "")
    if not dsn:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and no PostgreSQL: AGENTKIT_TEST_POSTGRES is not set")
        pytest.skip("no PostgreSQL (set AGENTKIT_TEST_POSTGRES to a DSN)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and psycopg is missing: pip install 'agentkit[postgres]'")
        pytest.skip("psycopg is not installed")
    return dsn


@pytest.fixture(params=STORES)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSpec]:
    """Where a fresh, empty store lives: a new SQLite file or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield StoreSpec("sqlite", str(tmp_path / "sessions.db"))
        return
    dsn = postgres_dsn()
    schema = "t_" + secrets.token_hex(6)
    yield StoreSpec("postgres", dsn, schema)
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def store(spec: StoreSpec) -> Iterator[SQLiteStore]:
    """A store opened on ``spec``, closed after the test."""
    opened = open_store(spec)
    yield opened
    opened.close()
