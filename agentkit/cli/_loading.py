"""Tools from a ``.py`` file or a module, and the ``agentkit tools`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from .._agent import Agent
    from .._tool import Tool

__all__ = ["builtin_tools", "list_tools", "load_agent", "load_function", "load_tools"]


def load_tools(sources: Sequence[str], *, option: str = "--tools") -> list[Tool[..., Any]]:
    """Every ``Tool`` defined at module level in each source, a ``.py`` path or a module.

    A module's tools come in definition order; a name defined twice is an error, because
    the model could not tell the two apart. ``option`` is how the user gave the sources,
    as error messages name it (``""`` for ``agentkit tools``' own arguments).
    """
    from .._tool import Tool

    found: dict[str, Tool[..., Any]] = {}
    for source in sources:
        given = f"{option} {source}".strip()
        try:
            module = _import_source(source, given)
        except UsageError:
            raise
        except Exception as exc:  # the user's module failed while importing
            raise UsageError(f"{given}: {type(exc).__name__}: {exc}") from exc
        tools = [value for value in vars(module).values() if isinstance(value, Tool)]
        if not tools:
            raise UsageError(f"{given}: defines no tools (decorate functions with @tool)")
        for found_tool in tools:
            other = found.get(found_tool.name)
            if other is not None and other is not found_tool:
                raise UsageError(f"two tools are named {found_tool.name!r}; rename one")
            found[found_tool.name] = found_tool
    return list(found.values())


def load_agent(target: str, *, option: str = "") -> tuple[str, Agent[Any]]:
    """The Agent named by ``FILE.py:NAME`` or ``MODULE:NAME``, with its name.

    ``option`` is how the user gave the target, as error messages name it.
    """
    from .._agent import Agent

    given = f"{option} {target}".strip()
    source, colon, name = target.rpartition(":")
    if not colon or not source or not name.isidentifier():
        raise UsageError(
            f"{given}: name the agent as FILE.py:NAME or MODULE:NAME, e.g. bot.py:desk"
        )
    try:
        module = _import_source(source, given)
    except UsageError:
        raise
    except Exception as exc:  # the user's module failed while importing
        raise UsageError(f"{given}: {type(exc).__name__}: {exc}") from exc
    found = getattr(module, name, None)
    if found is None:
        agents = [key for key, value in vars(module).items() if isinstance(value, Agent)]
        known = f" (it has {', '.join(agents)})" if agents else " (it defines no Agent)"
        raise UsageError(
            f"{given}: {source} has no {name!r}{known}",
            hint="name a module-level Agent, e.g. desk = Agent(...) in bot.py is bot.py:desk",
        )
    if not isinstance(found, Agent):
        raise UsageError(
            f"{given}: {name!r} is a {type(found).__name__}, not an agentkit Agent",
            hint="name a module-level Agent, e.g. desk = Agent(...) in bot.py is bot.py:desk",
        )
    return name, found


def load_function(target: str, *, option: str) -> Any:
    """The function named by ``FILE.py:NAME`` or ``MODULE:NAME`` (e.g. ``--deps``)."""
    given = f"{option} {target}".strip()
    source, colon, name = target.rpartition(":")
    if not colon or not source or not name.isidentifier():
        raise UsageError(
            f"{given}: name the function as FILE.py:NAME or MODULE:NAME, e.g. bot.py:clinic_for"
        )
    try:
        module = _import_source(source, given)
    except UsageError:
        raise
    except Exception as exc:  # the user's module failed while importing
        raise UsageError(f"{given}: {type(exc).__name__}: {exc}") from exc
    found = getattr(module, name, None)
    if not callable(found):
        raise UsageError(
            f"{given}: {source} has no function {name!r}",
            hint="define it at module level: def clinic_for(principal): ...",
        )
    return found


def _import_source(source: str, given: str) -> ModuleType:
    try:
        return _import_file_or_module(source, given)
    except SystemExit as exc:
        # A file that exits while imported (a script's sys.exit(main()) not under
        # `if __name__ == "__main__":`) ended the command with its code: `agentkit eval`
        # exited 0, a CI gate passed, and nothing had run.
        raise UsageError(
            f"{given}: the file exited while it was imported (SystemExit({exc.code!r}))",
            hint='put the part that runs it as a script under `if __name__ == "__main__":`',
        ) from None


def _import_file_or_module(source: str, given: str) -> ModuleType:
    import importlib
    import importlib.util

    if source.endswith(".py") or os.sep in source or "/" in source:
        path = os.path.abspath(source)
        if not os.path.isfile(path):
            raise UsageError(f"{given}: no such file")
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # like `python file.py`: its neighbours import
        name = f"_agentkit_tools_{len(sys.modules)}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"{given}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pydantic look their module up
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current folder are found
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name and source.startswith(exc.name):
            raise UsageError(f"{given}: no such file or module") from exc
        raise


def builtin_tools() -> list[Tool[..., Any]]:
    """The built-in weather and time tools (``agentkit.tools.BUILTIN_TOOLS``)."""
    import importlib

    # imported by name: agentkit.tools lives in tools/ (mapped at install), where mypy
    # checking agentkit/ cannot follow it
    builtin = importlib.import_module("agentkit.tools")
    return list(builtin.BUILTIN_TOOLS)


def list_tools(args: argparse.Namespace, out: TextIO) -> int:
    """``agentkit tools``: each tool's name and the JSON it sends, ``to_openai()``."""
    from .._visible import visible_json

    tools = load_tools(args.sources, option="") if args.sources else builtin_tools()
    for index, item in enumerate(tools):
        if args.names:
            out.write(f"{item.name}\n")
            continue
        if index:
            out.write("\n")
        flags = [
            flag
            for flag, on in (
                ("strict", item.strict),
                ("requires approval", item.requires_approval),
                ("async", item.is_async),
            )
            if on
        ]
        out.write(f"# {item.name}" + (f"  ({', '.join(flags)})" if flags else "") + "\n")
        # a description may come from elsewhere (a shared module): what a terminal would
        # obey or a reader not see is written as JSON escapes
        out.write(visible_json(json.dumps(item.to_openai(), indent=2, ensure_ascii=False)))
        out.write("\n")
    return EXIT_OK
