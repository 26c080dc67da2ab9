"""Import time, from ``python -X importtime`` in fresh interpreters.

Two statements per package: the bare ``import <package>`` (what ``-X importtime`` shows as
the package's cumulative time) and what the two-round benchmark needs to import before it
can build its agent. agentkit re-exports lazily, so its bare import costs almost nothing and
the second statement is the honest comparison: the targets are held against both.

The figure is the sum of the cumulative microseconds of every top-level import the
statement triggers (lazy attribute imports show as top-level entries of their own), parsed
from stderr after a marker, so the interpreter's own start-up imports are left out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from .server import REPO_ROOT

_MARKER = "@@benchmark-start@@"


@dataclass(frozen=True)
class ImportCase:
    """A package and the two statements timed for it."""

    label: str
    module: str
    """The top-level module, for ``import <module>`` (and to check it is installed)."""
    usable: str
    """The statements the two-round benchmark runs before it can build its agent."""
    framework: bool = True
    """Whether it counts as a peer framework for the import target (the bare SDK does not)."""


CASES = (
    ImportCase("agentkit", "agentkit", "from agentkit import Agent, tool"),
    ImportCase("openai (SDK)", "openai", "from openai import OpenAI", framework=False),
    ImportCase(
        "openai-agents",
        "agents",
        "from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool",
    ),
    ImportCase(
        "pydantic-ai",
        "pydantic_ai",
        "from pydantic_ai import Agent; from pydantic_ai.models.openai import OpenAIChatModel;"
        " from pydantic_ai.providers.openai import OpenAIProvider",
    ),
    ImportCase(
        "langchain-openai",
        "langchain_openai",
        "from langchain_openai import ChatOpenAI; from langchain_core.tools import tool",
    ),
)


def installed(case: ImportCase) -> bool:
    """Whether ``case``'s package can be imported here."""
    import importlib.util

    return importlib.util.find_spec(case.module) is not None


def import_ms(statement: str) -> float:
    """Milliseconds ``statement`` spends importing, in a fresh interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = f"import sys; print({_MARKER!r}, file=sys.stderr, flush=True)\n{statement}"
    process = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(f"{statement!r} failed: {process.stderr.strip().splitlines()[-1]}")
    return parse_importtime(process.stderr) / 1000


def parse_importtime(stderr: str) -> int:
    """Sum of cumulative microseconds of the top-level imports after the marker line."""
    lines = stderr.splitlines()
    start = lines.index(_MARKER) + 1
    total = 0
    for line in lines[start:]:
        if not line.startswith("import time:"):
            continue
        _self, cumulative, name = line[len("import time:") :].split("|", 2)
        if cumulative.strip() == "cumulative":  # the header line
            continue
        if not name.startswith(" ") or name[1:2] == " ":
            continue  # indented: a nested import, already inside its parent's cumulative
        total += int(cumulative)
    return total


def measure(repeats: int) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    """Per package label, samples (ms) for ``"bare"`` and ``"usable"``, interleaved; and
    the packages left out, with the reason."""
    failed: dict[str, str] = {
        case.label: "skipped: not installed" for case in CASES if not installed(case)
    }
    samples: dict[str, dict[str, list[float]]] = {
        case.label: {"bare": [], "usable": []} for case in CASES if case.label not in failed
    }
    for _ in range(repeats):
        for case in CASES:
            if case.label in failed:
                continue
            try:
                bare = import_ms(f"import {case.module}")
                usable = import_ms(case.usable)
            except RuntimeError as error:
                failed[case.label] = f"failed: {error}"
                del samples[case.label]
                continue
            samples[case.label]["bare"].append(bare)
            samples[case.label]["usable"].append(usable)
    return samples, failed
