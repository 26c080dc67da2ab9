"""``import agentkit.evals`` loads no extra; Ray only with the ray backend."""

from __future__ import annotations

import ast
import subprocess
import sys

EXTRAS = ("ray", "mcp", "starlette", "uvicorn", "psycopg", "opentelemetry", "jwt")


def _loaded(code: str) -> list[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys\n{code}\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({EXTRAS!r})))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return list(ast.literal_eval(done.stdout))


def test_import_agentkit_evals_loads_no_extra() -> None:
    assert _loaded("import agentkit.evals") == []
    assert _loaded("from agentkit.evals import BatchBackend, Scenario, Suite, called") == []


def test_only_the_ray_backend_imports_ray() -> None:
    assert _loaded("from agentkit.evals import RayBackend\nRayBackend().check(None)") == ["ray"]
