"""What a user gets from a clone and from a wheel, checked by doing it.

The checkout a user makes with ``git clone`` is a folder named ``agentkit``. Installed
editable and used from the folder that holds it, that folder is an implicit namespace
package on ``sys.path`` that beats any import hook: the install must be a plain path entry
in which ``agentkit`` is a regular package (``agentkit/tools`` is a symlink to the top-level
``tools/``). These tests clone the repository into such a folder, install it editable into
a fresh venv and run a script, ``python -m agentkit.cli`` and mypy from the parent folder;
then they build the wheel and read what it installs.

Offline and quick: the fresh venv borrows the running environment's installed
distributions (pip, setuptools, pydantic, ...) through a ``.pth`` line, and pip installs
with ``--no-deps --no-build-isolation --no-index``. It is some 20 s of subprocesses in one
worker, beside the rest of the suite, so it runs in every run (the README's command skips
nothing); ``-m "not install"`` leaves it out of a quick one.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# In every run: the README's command skips nothing (about 20 s in one worker, beside the
# rest); `-m "not install"` leaves them out of a quick run.
pytestmark = [pytest.mark.install, pytest.mark.timeout(240)]

SCRIPT = """\
from agentkit import Agent, tool
from agentkit.tools import get_current_time

import agentkit

assert Agent.__name__ == "Agent" and callable(tool)
assert get_current_time.name == "get_current_time"
print(agentkit.__file__)
"""


@dataclass(frozen=True)
class Install:
    """A clone named ``agentkit`` inside ``home``, installed editable into ``python``."""

    home: Path
    clone: Path
    python: Path


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` with a plain environment; fail with its output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def clone_worktree(destination: Path) -> None:
    """``git clone`` the repository, then lay the uncommitted edits of tracked files on top
    (a developer's run tests what is on disk; in CI there are none)."""
    if not (REPO / ".git").exists():
        if os.environ.get("CI"):
            pytest.fail("CI runs from a git checkout: the clone test cannot be skipped there")
        pytest.skip("not a git checkout")
    run("git", "clone", "--quiet", REPO, destination, cwd=REPO)
    changed = run("git", "diff", "HEAD", "--name-only", "--no-renames", cwd=REPO).stdout.split()
    for name in changed:
        source, target = REPO / name, destination / name
        if source.is_symlink() or not source.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def require_setuptools() -> None:
    """The offline install builds with the running environment's setuptools (the dev extra
    brings a recent one); an older venv skips here rather than failing obscurely."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    if int(version.split(".")[0]) < 68:
        message = f"setuptools {version} is too old: pip install -e '.[dev]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    require_setuptools()
    home = tmp_path_factory.mktemp("home")
    clone = home / "agentkit"
    clone_worktree(clone)
    venv = home / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=home)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = run(python, "-c", where, cwd=home)
    # Sorted after the editable install's own .pth, so the clone comes first on sys.path.
    borrowed = Path(purelib.stdout.strip()) / "zzz-borrowed-from-the-test-venv.pth"
    borrowed.write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    run(
        python,
        *("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--editable", clone),
        cwd=home,
    )
    yield Install(home, clone, python)


def test_a_script_beside_the_clone_imports_the_clone(install: Install) -> None:
    (install.home / "bot.py").write_text(SCRIPT, encoding="utf-8")
    printed = run(install.python, "bot.py", cwd=install.home).stdout.strip()
    assert Path(printed) == install.clone / "agentkit" / "__init__.py"


def test_python_dash_m_agentkit_cli_runs_beside_the_clone(install: Install) -> None:
    shown = run(install.python, "-m", "agentkit.cli", "--version", cwd=install.home)
    assert "0.1.0" in shown.stdout + shown.stderr


def test_python_dash_c_beside_the_clone(install: Install) -> None:
    run(install.python, "-c", SCRIPT, cwd=install.home)


def test_mypy_resolves_agentkit_tools_in_the_editable_install(install: Install) -> None:
    (install.home / "typed_bot.py").write_text(
        "from agentkit.tools.clock import get_current_time\nreveal_type(get_current_time)\n",
        encoding="utf-8",
    )
    checked = run(
        sys.executable,
        *("-m", "mypy", "--strict", "--no-incremental", "--python-executable", install.python),
        "typed_bot.py",
        cwd=install.home,
    )
    assert "agentkit._tool.Tool[" in checked.stdout, checked.stdout


def test_the_wheel_installs_every_module_under_agentkit(install: Install) -> None:
    dist = install.home / "dist"
    run(
        install.python,
        *("-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--wheel-dir", dist, install.clone),
        cwd=install.home,
    )
    (wheel,) = dist.glob("agentkit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    shipped = {name for name in names if ".dist-info/" not in name}
    package = {  # rglob does not enter the agentkit/tools symlink
        f"agentkit/{path.relative_to(install.clone / 'agentkit').as_posix()}"
        for path in (install.clone / "agentkit").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    tools = {f"agentkit/tools/{path.name}" for path in (install.clone / "tools").glob("*.py")}
    assert "agentkit/tools/__init__.py" in tools and not package & tools
    data = {"agentkit/py.typed", "agentkit/serve/page.html"}  # the chat page ships too
    assert shipped == package | tools | data
    assert "agentkit = agentkit.cli:main" in scripts
