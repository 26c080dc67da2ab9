"""A stream its caller drops unclosed (no ``with``, no ``close()``) frees its connection at once.

Each scenario (``tests/_dropped_streams.py``) runs in a child process with the garbage
collector off from its start, so what it leaves behind stays out of this worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _dropped_streams import SCENARIOS

HERE = Path(__file__).parent


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_dropped_stream_frees_what_it_held(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    child = subprocess.run(
        [sys.executable, str(HERE / "_dropped_streams.py"), name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard: a passing scenario takes about a second
        check=False,
    )
    assert (child.returncode, child.stdout.strip()) == (0, "ok"), child.stderr
