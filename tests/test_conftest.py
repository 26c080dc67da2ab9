"""The shared fixtures' own promises (``tests/conftest.py``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT dispositions are POSIX")
def test_ctrl_c_tests_pass_when_the_suite_starts_with_sigint_ignored() -> None:
    # What `nohup pytest &` does: the job starts with SIGINT ignored, which the child
    # keeps across exec. A Ctrl-C test then needs the conftest to give the handler back.
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    test = "tests/test_agent_cancel.py::test_ctrl_c_during_a_sync_stream_closes_it"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", test],
        cwd=_ROOT,
        preexec_fn=ignore_sigint,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
