"""The public surface of ``agentkit``: one export table, lazy, complete for type checkers.

The table is the ``if TYPE_CHECKING:`` block of ``agentkit/__init__.py``. mypy reads it as
imports; at run time ``agentkit._exports()`` reads the same lines from the compiled code.
"""

from __future__ import annotations

import ast
import compileall
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agentkit

INIT = Path(agentkit.__file__)

# What users write in their bots: nothing here may need a private module.
USER_FACING = {
    "Agent",
    "AgentEvent",
    "Approver",
    "ModelRoundFinished",
    "PlannedCall",
    "ReasoningDelta",
    "RunFinished",
    "RunResult",
    "TextDelta",
    "ToolCallArgumentsDelta",
    "ToolCallStarted",
    "ToolResult",
    "tool",
}


def typed_imports() -> dict[str, tuple[str, str | None]]:
    """name -> (submodule, alias) as the ``if TYPE_CHECKING:`` block writes them."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    found: dict[str, tuple[str, str | None]] = {}
    for statement in block.body:
        assert isinstance(statement, ast.ImportFrom) and statement.level == 1, ast.unparse(
            statement
        )
        for alias in statement.names:
            found[alias.name] = (str(statement.module), alias.asname)
    return found


def test_the_table_read_at_run_time_is_the_typed_imports() -> None:
    assert agentkit._exports() == {name: module for name, (module, _) in typed_imports().items()}


def test_every_export_is_written_name_as_name_so_type_checkers_re_export_it() -> None:
    # mypy --strict re-exports an import only in this form (no implicit re-export).
    bare = [name for name, (_, alias) in typed_imports().items() if alias != name]
    assert not bare, f"write `from .module import {bare[0]} as {bare[0]}`"


def test_every_export_resolves_to_the_object_its_module_defines() -> None:
    for name, module in agentkit._exports().items():
        defined = getattr(importlib.import_module(f"agentkit.{module}"), name)
        assert getattr(agentkit, name) is defined, name


def test_all_and_dir_list_the_table() -> None:
    everything = getattr(agentkit, "__all__")  # noqa: B009  (derived at run time, unseen by mypy)
    assert everything == sorted(agentkit._exports())
    assert set(everything) <= set(dir(agentkit))
    assert set(everything) >= USER_FACING


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Nonexistent"):
        agentkit.Nonexistent  # type: ignore[attr-defined]  # noqa: B018


def run_python(code: str, *path: Path) -> str:
    env_path = [str(folder) for folder in path]
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = {env_path!r}\n{code}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_agentkit_loads_no_submodule() -> None:
    loaded = run_python(
        "import agentkit\nprint(sorted(m for m in sys.modules if m.startswith('agentkit')))"
    )
    assert loaded == "['agentkit']"


def test_star_import_gives_every_export() -> None:
    names = run_python(
        "from agentkit import *\nimport agentkit\n"
        "print(all(name in globals() for name in agentkit.__all__))"
    )
    assert names == "True"


def test_the_table_works_without_source_files(tmp_path: Path) -> None:
    # A frozen or bytecode-only install ships no .py files: the table is read from code.
    copy = tmp_path / "agentkit"
    shutil.copytree(INIT.parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert compileall.compile_dir(copy, legacy=True, quiet=1)
    for source in copy.rglob("*.py"):
        source.unlink()
    printed = run_python(
        "import agentkit\nprint(agentkit.__file__.endswith('.pyc'), agentkit.TextDelta('x'))",
        tmp_path,
    )
    assert printed == "True TextDelta(text='x')"
