"""The evals' fixtures: the order desk's suite (examples/evals/desk_suite.py) against the
scripted model that is wrong in a known pattern (examples/evals/scripted_desk.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from agentkit.testing import ScriptedServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "evals"


def load(name: str) -> ModuleType:
    """``examples/evals/<name>.py`` as a module, imported once per test session."""
    found = sys.modules.get(f"evals_example_{name}")
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location(f"evals_example_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def desk_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """The scripted desk model on loopback; agents built without a base URL talk to it."""
    server = load("scripted_desk").serve()
    monkeypatch.setenv("AGENTKIT_BASE_URL", server.base_url)
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors


@pytest.fixture
def desk_suite() -> ModuleType:
    """The desk's suite module (its ``suite`` and factories)."""
    return load("desk_suite")
