"""Fixtures every test file shares. Helpers that are plain functions live in ``_helpers``.

``server`` is a scripted OpenAI-compatible server on a real loopback socket. It fails the
test at teardown when the script itself went wrong (a request after the script ran out, a
reply function that raised): such a test may pass for the wrong reason. A test that
provokes script errors on purpose marks itself ``@pytest.mark.script_errors``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from agentkit.testing import ScriptedServer

# Hypothesis in CI: the same examples on every run (a red CI run is reproducible, and a
# rare example cannot fail one run in fifty), no per-example deadline (a loaded machine is
# slow, not wrong), and the blob that replays a failure printed. Developers keep random
# examples, which find new bugs.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")

# Set in a developer's shell, these would point every client at their server.
_ENVIRONMENT = ("AGENTKIT_BASE_URL", "AGENTKIT_API_KEY", "DASHSCOPE_BASE_URL")


@pytest.fixture(autouse=True)
def _no_server_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in _ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist (the dev extra), absent without it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the README's command) starts two workers per core, at most 16.

    Most of a worker's time is waiting, not CPU: run timeouts and tool timeouts that must
    pass, processes starting, servers answering (PostgreSQL, Chromium, Ray, ``agentkit
    serve``). With one worker per core both cores idled about half the run; a second worker
    per core fills that time. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set.
    """
    del config
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if chosen.isdigit():
        return int(chosen)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(2 * (cores or 1), 16)


def pytest_configure(config: pytest.Config) -> None:
    _restore_ctrl_c()
    config.addinivalue_line(
        "markers", "script_errors: the test provokes scripted-server errors on purpose"
    )


def _restore_ctrl_c() -> None:
    """Let Ctrl-C interrupt again when the suite was started with SIGINT ignored.

    A shell starts a background job (``nohup pytest &``, many CI runners) with SIGINT
    ignored; Python then installs no ``KeyboardInterrupt`` handler, and every child the
    tests start inherits the ignored signal across exec, so each Ctrl-C test would fail.
    Python's own handler here is reset to the default on exec, and each child Python
    installs its handler again.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    """A scripted OpenAI-compatible server on loopback, stopped after the test."""
    with ScriptedServer() as scripted:
        yield scripted
        if request.node.get_closest_marker("script_errors") is None:
            assert not scripted.errors, f"the scripted server reported: {scripted.errors}"
