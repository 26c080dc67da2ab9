"""Generate ``docs/api.md``, the API reference, from agentkit's docstrings.

    python docs/gen_api.py           # rewrite docs/api.md
    python docs/gen_api.py --check   # exit 1 if docs/api.md is stale or a docstring is missing

The public surface is the ``__all__`` of the modules in :data:`MODULES`. Only the standard
library is used (``inspect`` and ``ast``): the page is plain Markdown that GitHub renders,
and ``tests/test_docs.py`` fails when it differs from what the docstrings say. Docstrings
are written in Google style with reST roles; this turns their sections into lists and
their roles and literal blocks into Markdown.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MODULES: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("agentkit", None),
    ("agentkit._agent", ("Prompt",)),
    (
        "agentkit._observe",
        (
            "RunObserver",
            "RunInfo",
            "ObserverFactory",
            "add_global_observer",
            "remove_global_observer",
        ),
    ),
    ("agentkit.tracing", ("Instrumentation", "uninstrument", "CAPTURE_CONTENT_ENV")),
    (
        "agentkit.testing",
        (
            "ScriptedServer",
            "Reply",
            "RecordedRequest",
            "always",
            "tool_then_answer",
            "echo",
            "load_script",
            "script_model",
            "ScriptError",
            "Handler",
            "ToolCallSpec",
            "ToolCallStyle",
        ),
    ),
    (
        "agentkit.sessions",
        (
            "SQLiteStore",
            "PostgresStore",
            "SessionInfo",
            "SessionRecord",
            "CallRecord",
            "Claim",
            "KeyTable",
            "KeyInfo",
            "NewKey",
        ),
    ),
    ("agentkit.tools", None),
    ("agentkit.mcp", None),
    ("agentkit.serve", None),
    (
        "agentkit.evals",
        (
            "Suite",
            "Scenario",
            "SimulatedUser",
            "called",
            "not_called",
            "output_matches",
            "output_schema",
            "judge",
            "Check",
            "Conversation",
            "CheckResult",
            "Report",
            "ScenarioReport",
            "Attempt",
            "Change",
            "pass_hat",
            "Backend",
            "LocalBackend",
            "RayBackend",
            "BatchBackend",
            "Polling",
            "RateLimit",
            "EvalError",
            "SuiteError",
            "SuiteStopped",
            "BatchError",
        ),
    ),
)
"""The public API in page order: each module with the names it contributes, in that order
(``None``: its whole ``__all__``, in source order). ``agentkit`` re-exports most names; the
others add what the top level does not (the prompt type, the testing kit, the built-in
tools). ``tests/test_docs.py`` checks that every ``__all__`` is covered."""

PAGE = Path(__file__).with_name("api.md")

# Sections of the top-level package, by the submodule that defines each name.
_SECTIONS = (
    ("The agent", ("_agent", "_result", "_context", "_calls")),
    ("Streamed events", ("_events",)),
    ("Tools", ("_tool", "_sources")),
    ("The client", ("_client", "_providers", "_wire", "_pricing")),
    ("Errors", ("_errors",)),
    ("Sessions", ("_store",)),
)

_HEADER = """\
# API reference

Generated from the docstrings by `python docs/gen_api.py`; `tests/test_docs.py` fails when
this page and the code disagree. Every name here is importable from the module its section
names; anything else is private and may change. For a guided tour, start with
[getting started](getting-started.md).
"""

_SECTION_TITLE = re.compile(
    r"^(Args|Arguments|Parameters|Attributes|Returns|Yields|Raises|Fault fields[^:]*):\s*$"
)
_ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|exc|obj):`(~?)([^`]+)`")
_SIGNATURE_WIDTH = 88


# --- finding the public names ---------------------------------------------------------------


def public_names(module_name: str) -> list[str]:
    """The names a module contributes to the reference, in ``__all__`` order."""
    chosen = dict(MODULES)[module_name]
    if chosen is not None:
        return list(chosen)
    module = importlib.import_module(module_name)
    return list(getattr(module, "__all__", ()))


def _defining_module(module_name: str, name: str) -> tuple[Any, str]:
    """The object and the module whose source defines it (for variables' docstrings)."""
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return obj, obj.__module__
    table = getattr(module, "_exports", None)
    exports = table() if callable(table) else {}
    if name in exports:  # re-exported lazily by agentkit
        return obj, f"{module_name}.{exports[name]}"
    from agentkit import Tool

    if isinstance(obj, Tool):  # a Tool object knows its function's module
        return obj, obj.__module__
    return obj, module_name


def _own_doc(obj: Any) -> str | None:
    """The object's own docstring (not one inherited, not a dataclass's generated one)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        generated = obj.__name__ + "("
        if doc and "__dataclass_fields__" in obj.__dict__ and doc.startswith(generated):
            return None
    elif isinstance(obj, property):
        doc = obj.fget.__doc__ if obj.fget else None
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _variable_doc(module_name: str, name: str) -> str | None:
    """A module variable's docstring: the string literal right after its assignment."""
    found = _variable(module_name, name)
    return found[1] if found else None


def _variable_source(module_name: str, name: str) -> str | None:
    """``name = value`` as written, when the value is short enough to read at a glance."""
    found = _variable(module_name, name)
    if found is None or found[0] is None:
        return None
    return found[0] if len(found[0]) <= _SIGNATURE_WIDTH else None


def _variable(module_name: str, name: str) -> tuple[str | None, str | None] | None:
    """The assignment's source and its docstring, following relative re-exports."""
    try:
        tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    except (OSError, TypeError):
        return None
    for statement in tree.body:  # re-exported: follow `from .where import name`
        if (
            isinstance(statement, ast.ImportFrom)
            and statement.level == 1
            and any(alias.name == name and alias.asname is None for alias in statement.names)
        ):
            package = module_name if _is_package(module_name) else module_name.rpartition(".")[0]
            return _variable(f"{package}.{statement.module}", name)
    for statement, following in itertools.pairwise(tree.body):
        targets: list[ast.expr] = []
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
            continue
        value = statement.value
        source = None
        if value is not None:
            written = ast.unparse(value)
            if (
                isinstance(value, ast.Constant)
                and isinstance(value.value, str)
                and (
                    isinstance(statement, ast.AnnAssign)  # a string alias: show the type it names
                )
            ):
                written = value.value
            source = f"{name} = {written}"
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            return source, inspect.cleandoc(following.value.value)
        return source, None
    return None


def _is_package(module_name: str) -> bool:
    return hasattr(importlib.import_module(module_name), "__path__")


def _is_documented_value(obj: Any) -> bool:
    """Values (constants, type aliases, tool lists) get their docstring from the source."""
    from agentkit import Tool

    return not (inspect.isclass(obj) or inspect.isroutine(obj) or isinstance(obj, Tool))


def _members(cls: type) -> Iterator[tuple[str, Any, str]]:
    """Public methods and properties a class defines itself, in definition order, with
    their kind: ``"property"``, ``"classmethod"``, ``"staticmethod"`` or ``"method"``."""
    for name, value in cls.__dict__.items():
        if name.startswith("_") or name in ("model_config",):
            continue
        if isinstance(value, property):
            yield name, value, "property"
        elif isinstance(value, staticmethod | classmethod):
            yield name, value.__func__, type(value).__name__
        elif inspect.isfunction(value):
            yield name, value, "method"


# --- rendering ------------------------------------------------------------------------------


class _Raw(str):
    """An annotation kept as written (``from __future__ import annotations`` makes them
    strings; their ``repr`` would add quotes)."""

    def __repr__(self) -> str:
        return str(self)


def _signature(obj: Any, name: str, *, drop_self: bool = False) -> str | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [
        p.replace(annotation=_Raw(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    if drop_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    returns = signature.return_annotation
    if isinstance(returns, str):
        returns = _Raw(returns)
    signature = signature.replace(parameters=params, return_annotation=returns)
    text = re.sub(r" at 0x[0-9a-f]+", "", f"{name}{signature}")  # reprs differ per run
    if len(text) <= _SIGNATURE_WIDTH:
        return text
    # one parameter per line, as a formatter would lay it out
    parts = [str(p) for p in signature.parameters.values()]
    for index, param in enumerate(signature.parameters.values()):
        if param.kind is param.KEYWORD_ONLY and (
            index == 0
            or list(signature.parameters.values())[index - 1].kind is not param.KEYWORD_ONLY
        ):
            parts.insert(parts.index(str(param)), "*")
            break
    tail = str(signature)[str(signature).rfind(")") + 1 :]
    body = "".join(f"    {part},\n" for part in parts)
    return re.sub(r" at 0x[0-9a-f]+", "", f"{name}(\n{body}){tail}")


def markdown(doc: str) -> str:
    """A Google-style docstring with reST roles and ``::`` blocks, as Markdown."""
    doc = _ROLE.sub(
        lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", doc
    )
    doc = re.sub(r"``([^`]+)``", r"`\1`", doc)
    lines = doc.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        title = _SECTION_TITLE.match(line)
        if title:
            out += [f"**{title.group(1)}:**", ""]
            index += 1
            entries: list[str] = []
            while index < len(lines) and (not lines[index].strip() or lines[index][:1] == " "):
                text = lines[index]
                if not text.strip():
                    index += 1
                    continue
                stripped = text.strip()
                if entries and (_indent(text) > 4 or stripped.startswith("- ")):
                    entries[-1] += " " + stripped
                else:
                    entries.append(stripped)
                index += 1
            out += [f"- {_entry(entry)}" for entry in entries] + [""]
            continue
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            intro = line.rstrip()[:-1].rstrip()
            if intro.endswith(":"):
                intro = intro[:-1] + ":"
            if intro.strip():
                out.append(intro if intro.endswith(":") else intro + ":")
            index += 1
            block: list[str] = []
            while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > 0):
                block.append(lines[index])
                index += 1
            while block and not block[-1].strip():
                block.pop()
            code = inspect.cleandoc("\n".join(block))
            out += ["", "```python", *code.splitlines(), "```", ""]
            continue
        out.append(line)
        index += 1
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _entry(text: str) -> str:
    """``name: what`` (or ``name (type): what``) as ``**`name`**: what``."""
    match = re.match(r"^([\w.*, ]+?)(?: \(([^)]*)\))?: (.*)$", text)
    if not match or len(match.group(1)) > 200:
        return text
    names, kind, rest = match.groups()
    shown = ", ".join(f"`{n.strip()}`" for n in names.split(","))
    return f"{shown}{f' ({kind})' if kind else ''}: {rest}"


def _render_object(name: str, obj: Any, owner: str, level: str) -> list[str]:
    lines = [f"{level} `{name}`", ""]
    if _is_documented_value(obj):
        source = _variable_source(owner, name)
        if source:
            lines += ["```python", source, "```", ""]
        lines += [markdown(_variable_doc(owner, name) or ""), ""]
        return lines
    is_class = inspect.isclass(obj)
    if is_class and issubclass(obj, BaseException):
        bases = ", ".join(base.__name__ for base in obj.__bases__)
        lines += ["```python", f"class {name}({bases})", "```", ""]
    else:
        signature = _signature(obj, name)
        if signature:
            lines += ["```python", f"{'class ' if is_class else ''}{signature}", "```", ""]
    lines += [markdown(_own_doc(obj) or ""), ""]
    if is_class and not issubclass(obj, BaseException):
        for member_name, member, kind in _members(obj):
            lines += _render_member(name, member_name, member, kind, level + "#")
    return lines


def _render_member(owner: str, name: str, member: Any, kind: str, level: str) -> list[str]:
    doc = markdown(_own_doc(member) or "")
    if kind == "property":
        return [f"{level} `{owner}.{name}` (property)", "", doc, ""]
    signature = _signature(member, name, drop_self=kind != "staticmethod") or name
    prefix = "async def" if inspect.iscoroutinefunction(member) else "def"
    decorator = [f"@{kind}"] if kind != "method" else []
    return [
        f"{level} `{owner}.{name}`",
        "",
        "```python",
        *decorator,
        f"{prefix} {signature}",
        "```",
        "",
        doc,
        "",
    ]


def _indented(text: str) -> list[str]:
    return [f"  {line}" if line else "" for line in text.splitlines()]


def generate() -> str:
    """The whole reference page as Markdown."""
    out = [_HEADER]
    seen: set[int] = set()
    for module_name, _ in MODULES:
        module = importlib.import_module(module_name)
        entries = []
        for name in public_names(module_name):
            obj, owner = _defining_module(module_name, name)
            if not _is_documented_value(obj) and id(obj) in seen:
                continue  # documented where the top level re-exports it
            seen.add(id(obj))
            entries.append((name, obj, owner))
        if not entries:
            continue  # everything it offers is re-exported above
        out += [f"## `{module_name}`", ""]
        summary = inspect.cleandoc(module.__doc__ or "").split("\n\n", 1)[0]
        if summary:
            out += [markdown(summary), ""]
        if module_name == "agentkit":
            out += _render_package(entries)
        else:
            if dict(MODULES)[module_name] is None:
                entries = _ordered(entries)
            for name, obj, owner in entries:
                out += _render_object(name, obj, owner, "###")
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def _render_package(entries: list[tuple[str, Any, str]]) -> list[str]:
    grouped: dict[str, list[tuple[str, Any, str]]] = {}
    for entry in entries:
        grouped.setdefault(entry[2].rsplit(".", 1)[-1], []).append(entry)
    out: list[str] = []
    placed: set[str] = set()
    for title, submodules in _SECTIONS:
        section = [entry for sub in submodules for entry in _ordered(grouped.get(sub, []))]
        if section:
            out += [f"### {title}", ""]
        for name, obj, owner in section:
            out += _render_object(name, obj, owner, "####")
            placed.add(name)
    rest = [entry for group in grouped.values() for entry in group if entry[0] not in placed]
    if rest:
        out += ["### Other", ""]
        for name, obj, owner in rest:
            out += _render_object(name, obj, owner, "####")
    return out


def _ordered(entries: list[tuple[str, Any, str]]) -> list[tuple[str, Any, str]]:
    """Source order (by defining module, then line), so a class comes before its
    subclasses and events in the order a run yields them; values come last."""

    def key(entry: tuple[str, Any, str]) -> tuple[int, str, int]:
        _, obj, owner = entry
        if _is_documented_value(obj):
            return (1, "", 0)
        try:
            return (0, owner, inspect.getsourcelines(obj)[1])
        except (OSError, TypeError):
            return (1, "", 0)

    return sorted(entries, key=key)


def missing_docstrings() -> list[str]:
    """Public names (and public methods of public classes) without a docstring."""
    missing: list[str] = []
    for module_name, _ in MODULES:
        for name in public_names(module_name):
            obj, owner = _defining_module(module_name, name)
            qualified = f"{module_name}.{name}"
            if _is_documented_value(obj):
                if not _variable_doc(owner, name):
                    missing.append(qualified)
                continue
            if not _own_doc(obj):
                missing.append(qualified)
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                missing += [
                    f"{qualified}.{member_name}"
                    for member_name, member, _ in _members(obj)
                    if not _own_doc(member)
                ]
    return sorted(set(missing))


def main(argv: list[str] | None = None, write: Callable[[str], object] = print) -> int:
    """Write the page, or with ``--check`` report whether it is current."""
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--check"]):  # --help included: say how, write nothing
        write("usage: python docs/gen_api.py [--check]")
        return 0 if argv in (["-h"], ["--help"]) else 2
    page = generate()
    if "--check" in argv:
        problems = [f"no docstring: {name}" for name in missing_docstrings()]
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            problems.append(f"{PAGE.name} is stale: run python docs/gen_api.py")
        for problem in problems:
            write(problem)
        return 1 if problems else 0
    PAGE.write_text(page, encoding="utf-8")
    write(f"wrote {PAGE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
