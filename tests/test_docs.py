"""The docs tell the truth: their code runs, their tables match the code, their links resolve.

Every ```python block of the README and the user guides runs, page by page in one
namespace (as a reader would paste them in order), against `agentkit.testing`'s scripted
server standing in for DashScope: `AGENTKIT_BASE_URL` points at it, and the weather
tool at a closed local port. A block preceded by `<!-- no-run: reason -->` is skipped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agentkit import tool
from agentkit.cli._arguments import build_parser
from agentkit.cli._demo import _offline_weather
from agentkit.testing import RecordedRequest, Reply, ScriptedServer

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# The pages this suite keeps honest (other pages are checked by their owners' tests).
_RING_PAGES = ("sessions.md", "observability.md", "serve.md", "mcp.md", "multi-agent.md")
GUIDES = [
    *("getting-started.md", "tools.md", "agent-loop.md", "providers.md", "testing.md", "cli.md"),
    *_RING_PAGES,
]
PAGES = [REPO / "README.md", *(DOCS / name for name in GUIDES)]

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NO_RUN = re.compile(r"<!--\s*no-run:[^>]*-->\s*$")


def code_blocks(page: Path, language: str = "python") -> list[tuple[int, str, bool]]:
    """``(line, code, runs)`` for each fenced block in ``language``."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) != language:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, match.group(2), not _NO_RUN.search(before)))
    return blocks


# --- a model for the docs: calls a tool once (the one the user names, else the first), then
# answers ---------------------------------------------------------------------------------------


def example_value(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A small value that fits ``schema`` (enough for the docs' tools)."""
    if "$ref" in schema:
        return example_value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"] or schema["anyOf"]
        return example_value(options[0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):  # an optional scalar: ["integer", "null"]
        kind = kind[0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example_value(properties[name], defs) for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return int(schema.get("minimum", 1042))
    if kind == "number":
        return float(schema.get("minimum", 21.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "teapot"


def docs_model(request: RecordedRequest) -> Reply:
    body = request.json()
    tools = {t["function"]["name"]: t["function"] for t in body.get("tools") or []}
    messages = request.messages
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    results = [m["content"] for m in messages[last_user + 1 :] if m["role"] == "tool"]
    if "final_result" in tools and (results or len(tools) == 1):
        schema = tools["final_result"]["parameters"]
        return Reply.tool_calls(("final_result", example_value(schema, schema.get("$defs", {}))))
    ordinary = [name for name in tools if name != "final_result"]
    if ordinary and not results:
        said = str(messages[last_user].get("content", "")).lower()
        named = [name for name in ordinary if name.split("_")[0] in said] or ordinary
        schema = tools[named[0]]["parameters"]
        arguments = example_value(schema, schema.get("$defs", {}))
        return Reply.tool_calls((named[0], arguments))
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        return Reply.text(json.dumps(example_value(schema, schema.get("$defs", {}))))
    if results:
        return Reply.text(f"Here is what I found: {results[-1]}")
    return Reply.text("Hello! How can I help?")


@pytest.fixture
def docs_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    with _offline_weather(), ScriptedServer(handler=docs_model) as server:
        monkeypatch.setenv("AGENTKIT_BASE_URL", server.base_url)
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-docs-test")
        yield server
        assert not server.errors


def run_page(page: Path) -> dict[str, Any]:
    """Run the page's blocks in order in one namespace; return the namespace.

    What a reader starts in another terminal first, the test starts here, each on a port
    bound for it (``_STARTED_FIRST``): serve.md's ``agentkit serve bot.py:desk`` and the CRM
    that mcp.md's client connects to.
    """
    module = ModuleType(f"docs_{page.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module  # dataclasses and pydantic look their module up
    try:
        with contextlib.ExitStack() as servers:
            for line, code, runs in code_blocks(page):
                if not runs:
                    continue
                for address, serving in _STARTED_FIRST.items():
                    if address in code:
                        url = servers.enter_context(serving(module.__dict__))
                        code = code.replace(address, url)
                compiled = compile(code, f"{page.name}:{line}", "exec")
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compiled, module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


@contextlib.contextmanager
def _served_desk(namespace: dict[str, Any]) -> Iterator[str]:
    """``agentkit serve bot.py:desk`` of the page's ``desk`` (the same app, on uvicorn)."""
    from serve.conftest import uvicorn_serving

    from agentkit.serve import create_app

    with uvicorn_serving(create_app({"desk": namespace["desk"]})) as url:
        yield url


@tool
def find_contact(name: str) -> str:
    """Find a customer's contact record."""
    return f"{name}: London office"


@tool
def delete_contact(name: str) -> str:
    """Delete a customer's contact record."""
    return f"{name}: deleted"


@contextlib.contextmanager
def _crm(namespace: dict[str, Any]) -> Iterator[str]:
    """The CRM's MCP server mcp.md connects to, with the token the page reads."""
    from _mcp_support import uvicorn_serving

    from agentkit.mcp import asgi_app

    app = asgi_app([find_contact, delete_contact], token=_TOKENS["CRM_TOKEN"])
    with uvicorn_serving(app) as url:
        yield url


_STARTED_FIRST = {"http://127.0.0.1:8000": _served_desk, "http://127.0.0.1:8931": _crm}
_TOKENS = {"CRM_TOKEN": "crm-token-for-the-docs-0123", "MCP_TOKEN": "mcp-token-for-the-docs-0123"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_code_blocks_run(
    page: Path, docs_server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the files a page writes (sessions.md's desk.db) go there
    for variable, value in _TOKENS.items():  # the secrets pages read from the environment
        monkeypatch.setenv(variable, value)
    run_page(page)
    if page.name in ("README.md", "getting-started.md", "agent-loop.md"):
        # their bots talk to DashScope by default: here, to the stand-in
        assert docs_server.requests, "the page never ran a bot"


def test_skipped_blocks_say_why() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for marker in re.findall(r"<!--\s*no-run:([^>]*)-->", text):
            assert marker.strip(), f"{page.name}: a no-run marker without a reason"


def test_the_readme_quick_start_is_the_two_commands() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1]
    first_block = _FENCE.search(quick_start)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(2).splitlines()]
    assert commands == [
        "pip install -e . && agentkit demo",
        'pip install -e ".[dev]" && python -m pytest -n auto',
    ]


def test_the_readme_example_is_short() -> None:
    (_, code, _), *_ = code_blocks(REPO / "README.md")
    assert len([line for line in code.splitlines() if line.strip()]) <= 15


# --- tools.md's type table ------------------------------------------------------------------


def type_table() -> list[tuple[str, str]]:
    text = (DOCS / "tools.md").read_text(encoding="utf-8")
    table = text.split("<!-- type-table -->", 1)[1].split("<!-- /type-table -->", 1)[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        annotation, schema = (cell.strip() for cell in line.strip("|").split(" | ", 1))
        rows.append((annotation.replace("\\|", "|"), schema.replace("\\|", "|")))
    return rows


def _matches(expected: Any, actual: Any) -> bool:
    """``expected`` with ``...`` left out: every key it names must match."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


@pytest.mark.parametrize(("annotation", "schema"), type_table(), ids=lambda text: text[:40])
def test_the_type_table_is_what_tool_produces(
    annotation: str, schema: str, docs_server: ScriptedServer
) -> None:
    namespace = run_page(DOCS / "tools.md")
    # "`A` or `B`": two spellings of one type; "`Color` (an `Enum`)": the first span only
    spans = [re.findall(r"`([^`]+)`", part)[0] for part in annotation.split(" or ") if "`" in part]
    schemas = [span for span in re.findall(r"`([^`]+)`", schema) if span.startswith("{")]
    partial = "..." in schemas[0]
    expected = json.loads(schemas[0].replace(", ...", ""))
    for written in spans or [None]:

        def function(x):  # type: ignore[no-untyped-def]  # an unannotated row too
            return x

        if written is not None:
            function.__annotations__ = {"x": eval(written, namespace)}  # the doc's own text
        made = tool(function)
        actual = made.parameters["properties"]["x"]
        assert _matches(expected, actual) if partial else expected == actual, (written, actual)
        if len(schemas) > 1:  # the definition shown for a $ref
            defined = made.parameters["$defs"][actual["$ref"].rsplit("/", 1)[-1]]
            assert json.loads(schemas[1]) == defined


# --- cli.md covers every option -------------------------------------------------------------


def test_cli_page_documents_every_chat_option() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    chat = parser._subparsers._group_actions[0].choices["chat"]  # type: ignore[union-attr,index]
    for action in chat._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"`{option}" in text or f"{option}`" in text, option


# --- links ------------------------------------------------------------------------------------


def _anchor(title: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower().replace("`", ""))
    return slug.replace(" ", "-")


# The ring's pages are being written as their features land: their links are their owners'.
_LINKED = [page for page in PAGES if page.name not in _RING_PAGES]


@pytest.mark.parametrize("page", [*_LINKED, DOCS / "api.md"], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            titles = re.findall(r"^#+ (.*)$", _FENCE.sub("", resolved.read_text("utf-8")), re.M)
            assert anchor in {_anchor(t) for t in titles}, f"{page.name}: no anchor {target}"


# --- the API reference ------------------------------------------------------------------------


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_name_has_a_docstring() -> None:
    assert _generator().missing_docstrings() == []


def test_the_api_reference_is_current() -> None:
    committed = (DOCS / "api.md").read_text(encoding="utf-8")
    assert committed == _generator().generate(), "docs/api.md is stale: run python docs/gen_api.py"


def test_the_api_reference_covers_the_public_surface() -> None:
    page = (DOCS / "api.md").read_text(encoding="utf-8")
    for module_name, _ in _generator().MODULES:
        if module_name in ("agentkit._agent", "agentkit._loop"):
            continue  # their other names are internal to the drivers and the core
        module = importlib.import_module(module_name)
        missing = [name for name in module.__all__ if f"`{name}`" not in page]
        assert not missing, f"{module_name}: not in docs/api.md: {missing}"


def test_the_generator_writes_nothing_when_asked_for_help() -> None:
    said: list[str] = []
    before = (DOCS / "api.md").stat().st_mtime_ns
    assert _generator().main(["--help"], write=said.append) == 0
    assert _generator().main(["--chek"], write=said.append) == 2
    assert said == ["usage: python docs/gen_api.py [--check]"] * 2
    assert (DOCS / "api.md").stat().st_mtime_ns == before


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r"^(?:python -m )?pytest\b.*$", ci, re.MULTILINE)
    assert commands, "no pytest command in .ci/run"
    for command in commands:
        base = command.split(" -")[0].strip()  # options such as -q aside
        assert f"&& {base}" in readme, f".ci/run runs {base!r}; the README does not"


# --- testing.md's worked example: a scripted model for serve, chat and a test suite -----------

_FILE = re.compile(r"<!--\s*file:\s*(\S+)\s*-->")


def page_files(page: Path) -> dict[str, str]:
    """The blocks a page names as files (``<!-- file: NAME -->`` just above the fence)."""
    text = page.read_text(encoding="utf-8")
    files = {}
    for match in _FENCE.finditer(text):
        above = text[: match.start()].rstrip("\n").rsplit("\n", 2)[-2:]
        named = [found.group(1) for line in above if (found := _FILE.search(line))]
        if named:
            files[named[-1]] = match.group(2)
    return files


@contextlib.contextmanager
def scripted_process(script: Path) -> Iterator[str]:
    """``python -m agentkit.testing --script SCRIPT`` as the page runs it; yields its URL."""
    import subprocess

    command = [sys.executable, "-m", "agentkit.testing", "--script", str(script)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            yield process.stdout.readline().strip()  # it binds port 0 and says which
        finally:
            process.terminate()
            process.wait()


def test_the_worked_scripted_model_drives_chat_serve_and_a_test_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = page_files(DOCS / "testing.md")
    assert set(files) == {"desk.py", "desk_script.json", "test_desk.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with scripted_process(tmp_path / "desk_script.json") as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        monkeypatch.setenv("AGENTKIT_BASE_URL", base_url)

        # agentkit chat --agent desk.py:desk "Please cancel order 43"
        from agentkit.cli import main

        out, err = io.StringIO(), io.StringIO()
        argv = ["chat", "--agent", "desk.py:desk", "--no-stream", "Please cancel order 43"]
        assert main(argv, stdin=io.StringIO(), stdout=out, stderr=err) == 0, err.getvalue()
        assert out.getvalue().strip() == "Order 43 is cancelled."  # the script's third round

        # agentkit serve desk.py:desk, and the page's curl
        _served_answer_is(tmp_path, "Where is order 42?", "Order 42 has shipped.")

        # python -m pytest test_desk.py: the page's tests, on the bot as the page wrote it
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "desk", raising=False)
        namespace: dict[str, Any] = {"__name__": "test_desk"}
        exec(compile(files["test_desk.py"], "test_desk.py", "exec"), namespace)
        tests = [value for name, value in namespace.items() if name.startswith("test_")]
        assert len(tests) == 2
        for test in tests:
            test()
        sys.modules.pop("desk", None)


def _served_answer_is(folder: Path, question: str, answer: str) -> None:
    pytest.importorskip("starlette")
    import httpx
    from serve.conftest import uvicorn_serving

    from agentkit.cli._loading import load_agent
    from agentkit.serve import create_app

    name, agent = load_agent(f"{folder / 'desk.py'}:desk")
    with uvicorn_serving(create_app({name: agent})) as url:
        body = {"model": "desk", "messages": [{"role": "user", "content": question}]}
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).json()
    assert reply["choices"][0]["message"]["content"] == answer
