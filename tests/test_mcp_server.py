"""`@tool`s served over MCP, checked by the official SDK's client (stdio and streamable HTTP)
and by agentkit's own MCP client: agentkit serving agentkit."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from _mcp_support import KEY, agent_for, tool_messages, uvicorn_serving

from agentkit import ConfigurationError, tool
from agentkit.cli import main
from agentkit.mcp import MCPConnectionError, MCPHttp, MCPStdio, asgi_app, build_server
from agentkit.testing import Reply, ScriptedServer

SHOP = str(Path(__file__).parent / "data" / "mcp_shop_tools.py")
TOKEN = "test-token-0123456789abcdef"


def _shop() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mcp_shop_tools", SHOP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mcp_shop_tools"] = module
    spec.loader.exec_module(module)
    return module


shop = _shop()
SHOP_TOOLS = [shop.add, shop.shout, shop.delete_contact, shop.whose, shop.broken, shop.sleepy]


def _serve_args(*extra: str) -> list[str]:
    return ["-m", "agentkit.cli", "mcp", "serve", SHOP, "--deps", "make_deps", *extra]


async def _sdk_session(server: Any, check: Any) -> Any:
    from mcp import Client

    async with Client(server, cache=None, read_timeout_seconds=20) as client:
        return await check(client)


async def _exercise(client: Any) -> dict[str, Any]:
    listed = {t.name: t for t in (await client.list_tools()).tools}
    out: dict[str, Any] = {"listed": listed}
    for name, arguments in [
        ("add", {"a": 2, "b": 3}),
        ("add", {"a": "2"}),
        ("add", {"a": 1, "c": 1}),
        ("shout", {"text": "hi"}),
        ("delete_contact", {"contact_id": 4}),
        ("whose", {}),
        ("broken", {}),
        ("sleepy", {}),
        ("nope", {}),
    ]:
        result = await client.call_tool(name, arguments)
        text = "\n".join(block.text for block in result.content)
        out[f"{name} {json.dumps(arguments)}"] = (result.is_error, text)
    return out


def _check_exercise(out: dict[str, Any], *, approval_allowed: bool = False) -> None:
    listed = out["listed"]
    assert set(listed) == {"add", "shout", "delete_contact", "whose", "broken", "sleepy"}
    # agentkit's own compact schema, exactly what a model would see
    assert listed["add"].input_schema == shop.add.parameters
    assert "whose" in listed and listed["whose"].input_schema == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    refused_note = "Requires approval" in listed["delete_contact"].description
    assert refused_note is not approval_allowed
    assert out['add {"a": 2, "b": 3}'] == (False, "5")
    error, text = out['add {"a": "2"}']
    assert error and text.startswith("Invalid arguments for tool `add` (1 problem):")
    assert '- a: Input should be a valid integer; received "2"' in text
    error, text = out['add {"a": 1, "c": 1}']
    assert error and "- c: unknown parameter; this tool takes: a, b" in text
    assert out['shout {"text": "hi"}'] == (False, "HI")
    error, text = out['delete_contact {"contact_id": 4}']
    if approval_allowed:
        assert (error, text) == (False, "deleted 4")
    else:
        assert error and "requires approval" in text and "was not run" in text
    assert out["whose {}"] == (False, "asked by the operator")
    assert out["broken {}"] == (True, "tool broken failed: ValueError: the database is down")
    assert out["sleepy {}"] == (True, "tool sleepy timed out after 0.2 s")
    error, text = out["nope {}"]
    assert error and text.startswith("Unknown tool 'nope'")


def test_the_sdk_client_over_stdio() -> None:
    from mcp import StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=_serve_args())
    out = asyncio.run(_sdk_session(params, _exercise))
    _check_exercise(out)


def test_the_sdk_client_over_stdio_with_approval_allowed() -> None:
    from mcp import StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=_serve_args("--allow-approval"))
    out = asyncio.run(_sdk_session(params, _exercise))
    _check_exercise(out, approval_allowed=True)


CANCEL_TOOLS = str(Path(__file__).parent / "data" / "mcp_cancel_tools.py")


async def _cancellations(client: Any) -> dict[str, Any]:
    async def call(name: str, arguments: dict[str, Any]) -> tuple[bool, str]:
        result = await client.call_tool(name, arguments)
        return bool(result.is_error), "\n".join(block.text for block in result.content)

    out: dict[str, Any] = {}
    # a call in flight on the same connection while each of the others fails
    out["slow"], out["cancels"], out["thread"], out["inner"] = await asyncio.gather(
        call("slow_echo", {"text": "still here"}),
        call("cancels", {}),
        call("cancels_in_a_thread", {}),
        call("inner_cancelled", {}),
    )
    out["after"] = await call("slow_echo", {"text": "and after"})
    return out


def _check_cancellations(out: dict[str, Any]) -> None:
    assert out["slow"] == (False, "still here")
    assert out["after"] == (False, "and after")
    for key, name in [("cancels", "cancels"), ("thread", "cancels_in_a_thread")]:
        assert out[key] == (True, f"tool {name} failed: CancelledError"), out[key]
    error, text = out["inner"]
    assert error and text.startswith("tool inner_cancelled failed: CancelledError")


def test_a_served_tools_own_cancellation_is_a_tool_error_and_the_server_goes_on() -> None:
    from mcp import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "agentkit.cli", "mcp", "serve", CANCEL_TOOLS]
    )
    _check_cancellations(asyncio.run(_sdk_session(params, _cancellations)))


def test_a_served_tools_own_cancellation_over_http_is_a_tool_error() -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    spec = importlib.util.spec_from_file_location("mcp_cancel_tools", CANCEL_TOOLS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    served = [module.cancels, module.cancels_in_a_thread, module.inner_cancelled, module.slow_echo]
    with uvicorn_serving(asgi_app(served)) as base:

        async def main() -> dict[str, Any]:
            async with httpx2.AsyncClient(timeout=20) as http:
                transport = streamable_http_client(f"{base}/mcp", http_client=http)
                return await _sdk_session(transport, _cancellations)  # type: ignore[no-any-return]

        out = asyncio.run(main())
    _check_cancellations(out)


def test_the_sdk_client_over_http_with_a_token() -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    app = asgi_app(SHOP_TOOLS, token=TOKEN, deps=shop.make_deps)
    with uvicorn_serving(app) as base:

        async def main() -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient(headers=headers, timeout=20) as http:
                transport = streamable_http_client(f"{base}/mcp", http_client=http)
                return await _sdk_session(transport, _exercise)  # type: ignore[no-any-return]

        out = asyncio.run(main())
    _check_exercise(out)


def test_http_refuses_requests_without_the_token_and_bounds_the_body() -> None:
    app = asgi_app(SHOP_TOOLS, token=TOKEN, max_request_bytes=10_000)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    with uvicorn_serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        missing = http.post("/mcp", json=hello, headers=accept)
        wrong = http.post("/mcp", json=hello, headers={**accept, "Authorization": "Bearer x"})
        auth = {**accept, "Authorization": f"Bearer {TOKEN}"}
        big = http.post("/mcp", content=b"[" + b" " * 20_000 + b"]", headers=auth)
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert big.status_code == 413


def test_the_bearer_scheme_is_case_insensitive_and_the_token_is_not() -> None:
    app = asgi_app(SHOP_TOOLS, token=TOKEN)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    sent = {
        "bearer": f"bearer {TOKEN}",
        "BEARER": f"BEARER {TOKEN}",
        "two spaces": f"Bearer  {TOKEN}",
        "token upper-cased": f"Bearer {TOKEN.upper()}",
        "Basic": f"Basic {TOKEN}",
        "no token": "Bearer",
        "token only": TOKEN,
        "Bearers": f"Bearers {TOKEN}",
    }
    with uvicorn_serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        status = {
            name: http.post(
                "/mcp", json=hello, headers={**accept, "Authorization": value}
            ).status_code
            for name, value in sent.items()
        }
    let_in = {name for name, code in status.items() if code != 401}
    assert let_in == {"bearer", "BEARER", "two spaces"}, status


def test_binding_beyond_loopback_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    from agentkit.mcp import serve_http

    with pytest.raises(ConfigurationError, match="needs a bearer token"):
        serve_http(SHOP_TOOLS, host="0.0.0.0", port=0)
    code = main(["mcp", "serve", SHOP, "--http", "--host", "0.0.0.0"])
    assert code == 2
    assert "needs a bearer token" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="at least 16"):
        asgi_app(SHOP_TOOLS, token="short")


def test_agentkit_serving_agentkit_over_stdio(server: ScriptedServer) -> None:
    source = MCPStdio(sys.executable, _serve_args(), prefix="shop")
    server.queue(
        Reply.tool_calls(
            ("shop_add", {"a": 40, "b": 2}),
            ("shop_add", {"a": "x"}),
            ("shop_delete_contact", {"contact_id": 1}),
        ),
        Reply.text("done"),
    )
    with agent_for(server, [source]) as agent:
        result = agent.run("go")
    added, invalid, refused = tool_messages(result.messages)
    assert added == "42"
    # checked by the client against the served schema, before the call
    assert invalid.startswith("Invalid arguments for tool `shop_add`")
    assert refused.startswith("tool shop_delete_contact failed: MCPToolError:")
    assert "requires approval" in refused


def test_agentkit_serving_agentkit_over_http(server: ScriptedServer) -> None:
    app = asgi_app(SHOP_TOOLS, token=TOKEN, deps=shop.make_deps)
    with uvicorn_serving(app) as base:
        good = MCPHttp(f"{base}/mcp", headers={"Authorization": f"Bearer {TOKEN}"})
        server.queue(Reply.tool_calls(("shout", {"text": "hey"}), ("whose", {})), Reply.text("ok"))

        async def main() -> list[str]:
            async with agent_for(server, [good]) as agent:
                return tool_messages((await agent.run_async("go")).messages)

        assert asyncio.run(main()) == ["HEY", "asked by the operator"]
        bad = MCPHttp(f"{base}/mcp", headers={"Authorization": "Bearer wrong"}, connect_timeout=5)
        with pytest.raises(MCPConnectionError, match="answered HTTP 401") as caught:
            bad.tools()
        bad.close()
    assert "wrong" not in str(caught.value) and KEY not in str(caught.value)


def test_a_server_needs_tools_with_distinct_names() -> None:
    @tool(name="add")
    def other(a: int) -> int:
        """Another add."""
        return a

    with pytest.raises(ConfigurationError, match="two tools are named 'add'"):
        build_server([shop.add, other])
    with pytest.raises(ConfigurationError, match="no tools"):
        build_server([])


def test_the_cli_serves_http_until_interrupted() -> None:
    import signal
    import subprocess

    command = [sys.executable, *_serve_args("--http", "--port", "0", "--token", TOKEN)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "bearer token required" in line, line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        source = MCPHttp(url, headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            shout = next(t for t in source.tools() if t.name == "shout")
            assert asyncio.run(shout.call({"text": "cli"})) == "CLI"
        finally:
            source.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 130  # the CLI's "interrupted"
        rest = process.stderr.read()
        assert "interrupted" in rest and "Traceback" not in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_context_is_the_old_name_of_deps_and_warns_once() -> None:
    with pytest.warns(DeprecationWarning, match=r"mcp.build_server\(context=\) is renamed deps="):
        server = build_server(SHOP_TOOLS, context=lambda: "an older caller")

    async def whose(client: Any) -> str:
        result = await client.call_tool("whose", {})
        return "\n".join(block.text for block in result.content)

    assert asyncio.run(_sdk_session(server, whose)) == "asked by an older caller"
    with pytest.warns(DeprecationWarning, match=r"mcp.asgi_app\(context=\)") as caught:
        asgi_app(SHOP_TOOLS, context=shop.make_deps)
    assert len(caught) == 1 and caught[0].filename == __file__  # the caller's line, once
    from agentkit.mcp import serve, serve_http

    for made in (build_server, asgi_app, serve, serve_http):  # refused before serving
        with pytest.raises(ConfigurationError, match=r"pass deps= \(context= is its old name\)"):
            made(SHOP_TOOLS, deps=shop.make_deps, context=shop.make_deps)


def test_the_cli_takes_deps_and_context_is_its_old_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # beyond loopback with no token: refused after the deps were found, before serving
    assert (
        main(["mcp", "serve", SHOP, "--context", "make_deps", "--host", "0.0.0.0", "--http"]) == 2
    )
    err = capsys.readouterr().err
    assert "agentkit: warning: --context is renamed --deps" in err
    assert "needs a bearer token" in err
    assert main(["mcp", "serve", SHOP, "--deps", "make_deps", "--context", "make_deps"]) == 2
    assert "pass --deps (--context is its old name), not both" in capsys.readouterr().err
    assert main(["mcp", "serve", SHOP, "--deps", "nope"]) == 2
    assert "--deps nope: no such function in" in capsys.readouterr().err
    assert main(["mcp", "serve", SHOP, "--context", "nope"]) == 2
    assert "--context nope: no such function in" in capsys.readouterr().err
