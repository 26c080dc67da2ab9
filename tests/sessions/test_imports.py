"""The stores load only when asked for: ``import agentkit`` stays light."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_import_agentkit_loads_neither_psycopg_nor_the_stores() -> None:
    done = _run(
        "import sys, agentkit\n"
        "from agentkit import Agent, tool, SessionBusyError, Store\n"
        "assert 'psycopg' not in sys.modules, 'psycopg'\n"
        "assert 'agentkit.sessions' not in sys.modules, 'sessions'\n"
        "import agentkit.sessions\n"
        "assert 'psycopg' not in sys.modules, 'psycopg after sessions'\n"
    )
    assert done.returncode == 0, done.stderr


def test_postgres_store_without_psycopg_names_the_extra() -> None:
    done = _run(
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if not installed\n"
        "from agentkit import ConfigurationError\n"
        "from agentkit.sessions import PostgresStore\n"
        "try:\n"
        "    PostgresStore('postgresql://u:secret@127.0.0.1:1/db')\n"
        "except ConfigurationError as error:\n"
        "    print(error)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'agentkit[postgres]'" in done.stdout
    assert "secret" not in done.stdout


def test_a_postgres_server_that_is_not_there() -> None:
    done = _run(
        "from agentkit.sessions import PostgresStore, SessionError\n"
        "store = PostgresStore('postgresql://u:secret@127.0.0.1:1/db', connect_timeout=2)\n"
        "try:\n"
        "    store.load('s')\n"
        "except SessionError as error:\n"
        "    print(error)\n"
        "print(repr(store))\n"
    )
    if "pip install" in done.stderr:  # no psycopg here: covered by the test above
        return
    assert done.returncode == 0, done.stderr
    assert "cannot connect to PostgreSQL" in done.stdout and "secret" not in done.stdout
