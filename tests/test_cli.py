"""The ``agentkit`` command, driven as a user drives it: in-process and as a subprocess.

Every chat test talks HTTP to ``agentkit.testing``'s scripted server on loopback; nothing
here reaches the internet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentkit.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``python -m agentkit.cli ARGS`` in a fresh process, with a clean provider environment."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DASHSCOPE_", "OPENAI_", "AGENTKIT_"))
    }
    environment.update(env or {})
    environment["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        cwd=REPO,
    )


TOOLS_FILE = '''
from typing import Literal

from agentkit import tool


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool(name="shout", strict=True)
def make_loud(text: str, mark: Literal["!", "?"] = "!") -> str:
    """Upper-case a text."""
    return text.upper() + mark


def not_a_tool() -> None:
    """Plain functions are not offered to the model."""
'''


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_tools.py"
    path.write_text(TOOLS_FILE, encoding="utf-8")
    return path


def json_blocks(text: str) -> dict[str, Any]:
    """The ``agentkit tools`` output: one ``# name`` header and one JSON object per tool."""
    found: dict[str, Any] = {}
    for block in text.strip().split("\n\n"):
        header, _, body = block.partition("\n")
        found[header.split()[1]] = json.loads(body)
    return found


# --- agentkit tools -------------------------------------------------------------------------


def test_tools_prints_what_the_builtin_tools_send(capsys: pytest.CaptureFixture[str]) -> None:
    from agentkit.tools import BUILTIN_TOOLS

    assert main(["tools"]) == 0
    shown = json_blocks(capsys.readouterr().out)
    assert shown == {t.name: t.to_openai() for t in BUILTIN_TOOLS}


def test_tools_loads_every_tool_of_a_file(
    tools_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tools", str(tools_file)]) == 0
    out = capsys.readouterr().out
    shown = json_blocks(out)
    assert list(shown) == ["add", "shout"]  # definition order; not_a_tool left out
    assert shown["add"]["function"]["parameters"]["required"] == ["a", "b"]
    assert shown["add"]["function"]["parameters"]["properties"]["a"]["description"] == (
        "The first number."
    )
    assert shown["shout"]["function"]["strict"] is True
    assert "# shout  (strict)" in out


def test_tools_loads_a_dotted_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--names", "agentkit.tools.clock"]) == 0
    assert capsys.readouterr().out == "get_current_time\n"


@pytest.mark.parametrize(
    ("source", "content", "expected"),
    [
        ("missing.py", None, "no such file"),
        ("no_such_module_anywhere", None, "no such file or module"),
        ("empty.py", "x = 1\n", "defines no tools"),
        ("broken.py", "raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("bad_tool.py", "from agentkit import tool\n@tool\ndef f(*args): pass\n", "*args"),
    ],
)
def test_tools_that_do_not_load_are_one_clear_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    content: str | None,
    expected: str,
) -> None:
    target = source
    if source.endswith(".py"):
        target = str(tmp_path / source)
        if content is not None:
            (tmp_path / source).write_text(content, encoding="utf-8")
    assert main(["tools", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentkit: error: --tools ")
    assert expected in err
    assert "Traceback" not in err


def test_two_tools_with_one_name_are_refused(
    tmp_path: Path, tools_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.py"
    other.write_text(
        textwrap.dedent(
            '''
            from agentkit import tool

            @tool
            def add(x: float) -> float:
                """Another add."""
                return x
            '''
        ),
        encoding="utf-8",
    )
    assert main(["tools", str(tools_file), str(other)]) == 2
    assert "two tools are named 'add'" in capsys.readouterr().err
