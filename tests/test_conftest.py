"""The shared fixtures' own promises (``tests/conftest.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
from conftest import _restore_ctrl_c, pytest_xdist_auto_num_workers


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT dispositions are POSIX")
def test_ctrl_c_gets_its_handler_back_when_the_suite_starts_with_sigint_ignored() -> None:
    # What `nohup pytest &` does: the process starts with SIGINT ignored, and every child
    # keeps that across exec. pytest_configure gives the handler back, for both.
    before = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _restore_ctrl_c()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        child = subprocess.run(
            [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"],
            capture_output=True,
            text=True,
        )
        assert "default_int_handler" in child.stdout  # the child can be Ctrl-C'd too
        fired = threading.Timer(0, signal.pthread_kill, (threading.get_ident(), signal.SIGINT))
        with pytest.raises(KeyboardInterrupt):
            fired.start()
            fired.join()
            threading.Event().wait(5)  # woken by the KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, before)


def test_n_auto_starts_two_workers_per_core_unless_told(
    monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    # the README's `pytest -n auto`: a worker waits about half its time, so two per core
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert pytest_xdist_auto_num_workers(pytestconfig) == min(2 * (cores or 1), 16)
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    assert pytest_xdist_auto_num_workers(pytestconfig) == 3
