"""What a wheel installs: every package of the source tree, under the names users import.

pyproject lists the packages by hand (``tools/`` is installed as ``agentkit.tools``), so a
new subpackage that nobody adds to the list works in the editable install and the tests,
and is missing from every wheel. These checks read pyproject.toml with tomllib; they build
no wheel, so they stay fast.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def setuptools_config() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as file:
        config: dict[str, Any] = tomllib.load(file)["tool"]["setuptools"]
    return config


def packages_in(folder: Path, name: str) -> set[str]:
    """``name`` and the dotted names of its subpackages: folders with an ``__init__.py``."""
    return {
        ".".join([name, *init.parent.relative_to(folder).parts])
        for init in folder.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def source_folder(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools looks for ``package``: the longest mapped prefix, else the repo."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return REPO / package_dir[prefix] / Path(*parts[cut:])
    return REPO / Path(*parts)


def test_agentkit_tools_is_the_tools_folder() -> None:
    assert setuptools_config()["package-dir"]["agentkit.tools"] == "tools"


def test_every_package_folder_is_in_the_wheel() -> None:
    listed = set(setuptools_config()["packages"])
    on_disk = packages_in(REPO / "agentkit", "agentkit") | packages_in(
        REPO / "tools", "agentkit.tools"
    )
    missing = sorted(on_disk - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_is_a_package_where_setuptools_looks() -> None:
    config = setuptools_config()
    package_dir = config.get("package-dir", {})
    for package in config["packages"]:
        folder = source_folder(package, package_dir)
        assert (folder / "__init__.py").is_file(), f"{package}: no {folder}/__init__.py"


def test_the_wheel_installs_one_top_level_package() -> None:
    assert {package.split(".")[0] for package in setuptools_config()["packages"]} == {"agentkit"}


def test_the_type_marker_ships() -> None:
    assert "py.typed" in setuptools_config()["package-data"]["agentkit"]
    assert (REPO / "agentkit" / "py.typed").is_file()


def test_the_console_script_is_the_cli() -> None:
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    assert project["scripts"] == {"agentkit": "agentkit.cli:main"}
    from agentkit.cli import main

    assert callable(main)


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r"^(?:python -m )?pytest\b.*$", ci, re.MULTILINE)
    assert commands, "no pytest command in .ci/run"
    for command in commands:
        base = command.split(" -")[0].strip()  # options such as -q aside
        assert f"&& {base}" in readme, f".ci/run runs {base!r}; the README does not"
