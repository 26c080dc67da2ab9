"""The clinic desk's eval (examples/evals/clinic_suite.py) offline: the known pass^k of its
unreliable scripted model, locally and on the Batch API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit.evals import BatchBackend, Polling
from agentkit.testing import ScriptedServer

from .conftest import load


@pytest.fixture
def clinic_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    server = load("scripted_clinic").serve()
    monkeypatch.setenv("AGENTKIT_BASE_URL", server.base_url)
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors


async def _no_wait(seconds: float) -> None:
    return None


@pytest.mark.parametrize("backend", ["local", "batch"])
def test_the_clinic_desk_scores_its_known_pass_hat(
    clinic_model: ScriptedServer, tmp_path: Path, backend: str
) -> None:
    chosen = (
        BatchBackend(
            clinic_model.base_url, state=tmp_path / "state.json", polling=Polling(sleep=_no_wait)
        )
        if backend == "batch"
        else "local"
    )
    report = load("clinic_suite").suite.run(k=4, backend=chosen)
    expected = load("scripted_clinic").PASS_HAT
    assert report.curve == pytest.approx([expected[j] for j in range(1, 5)])
    (failure,) = report.scenarios[0].failures
    failed = [c.name for c in failure.checks if not c.passed]
    assert failed == ["called('list_free_slots')", "called('book_slot', slot_id=1)", "check 3"]
