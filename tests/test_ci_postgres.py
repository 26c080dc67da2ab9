"""``.ci/postgres.sh`` starts CI's PostgreSQL on another port when the one it picked is taken.

It finds a free port by binding one and letting go (PostgreSQL can neither be handed a bound
socket nor pick a port and report it), so another process may take the port before the
server binds it. The tests hand it a port they hold open as its first pick: no race, the
port is taken for sure. Each starts a throwaway server of its own, never the shared one.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _postgres import require_postgres_programs

SCRIPT = Path(__file__).parent.parent / ".ci" / "postgres.sh"
HANG_GUARD = 300  # initdb and up to five server starts, on a loaded machine


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that this test holds (listening) until it ends."""
    require_postgres_programs()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def _start(picks: str) -> subprocess.CompletedProcess[str]:
    """Source the script as .ci/run does, with ``pg_free_port`` answering ``picks`` first
    (one port a line), then a free port; start the server, connect to it, exit (which stops
    it). Prints the data folder and the DSN."""
    shell = f"""
set -euo pipefail
source {SCRIPT}
eval "real_$(declare -f pg_free_port)"
picks=$(mktemp)
printf '%s' "$PICKS" >"$picks"
pg_free_port() {{  # the next line of $picks while there is one, then a free port
    if [ -s "$picks" ]; then head -n 1 "$picks"; sed -i 1d "$picks"; else real_pg_free_port; fi
}}
if ! start_postgres; then echo "folder=$PG_DATA_DIR"; exit 3; fi
echo "folder=$PG_DATA_DIR"
echo "dsn=$AGENTKIT_TEST_POSTGRES"
python -c 'import os, psycopg; psycopg.connect(os.environ["AGENTKIT_TEST_POSTGRES"]).close()'
"""
    return subprocess.run(
        ["bash", "-c", shell],
        env={**os.environ, "PICKS": picks},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )


def _printed(name: str, stdout: str) -> str:
    found = re.search(rf"^{name}=(.*)$", stdout, re.M)
    assert found, stdout
    return found.group(1)


def test_a_port_taken_before_the_server_binds_it_is_replaced(taken_port: int) -> None:
    pytest.importorskip("psycopg")
    done = _start(f"{taken_port}\n")
    assert done.returncode == 0, done.stderr
    dsn = _printed("dsn", done.stdout)
    port = int(dsn.rsplit(":", 1)[1].split("/")[0])
    assert port != taken_port  # and the server took connections there (the script's last line)
    assert f"port {taken_port} was taken before the server bound it; trying another" in (
        done.stderr
    )
    assert not Path(_printed("folder", done.stdout)).exists()  # stopped and removed at exit


def test_it_gives_up_after_five_taken_ports_saying_why(taken_port: int) -> None:
    done = _start(f"{taken_port}\n" * 5)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("was taken before the server bound it; trying another") == 4
    assert (
        f"postgres: gave up after 5 tries: each free port picked (the last {taken_port}) was "
        "taken by another process before the server could bind it"
    ) in done.stderr
    assert not Path(_printed("folder", done.stdout)).exists()  # nothing left behind
