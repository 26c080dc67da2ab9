"""``@tool``s served to any MCP client: over stdio, over streamable HTTP, or as an ASGI app.

What a client sees is what a model sees: agentkit's own compact schemas. Arguments are
checked by agentkit's own validation, and the readable argument error goes back as an
``isError`` result, as does a tool's exception (``tool X failed: Kind: detail``) and a
timeout. MCP has no approval step agentkit could trust, so a ``requires_approval`` tool is
refused unless the operator allows it (``allow_approval=True``, ``--allow-approval``); the
listing says so in its description. A ``RunContext`` tool gets ``RunContext(deps=...)`` from
the ``deps`` factory (called once per call; ``context=`` is its old name, which warns).

HTTP binds 127.0.0.1 by default. Binding any other address needs a bearer token; a
request without it gets 401. Request bodies are bounded (1 MiB by default).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from .._context import RunContext
from .._deprecation import warn_deprecated
from .._errors import ConfigurationError, ToolArgumentsError, ToolRetry
from .._tool import Tool, render_tool_output, tool
from ._errors import missing_sdk

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolResult

__all__ = ["asgi_app", "build_server", "serve", "serve_http"]

DEFAULT_MAX_REQUEST_BYTES = 1 << 20
TOKEN_ENV = "AGENTKIT_MCP_TOKEN"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_REFUSED_NOTE = (
    "[Requires approval: this server refuses to run it (started without allow_approval).] "
)

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def _tools(tools: Iterable[Tool[..., Any] | Callable[..., Any]]) -> dict[str, Tool[..., Any]]:
    found: dict[str, Tool[..., Any]] = {}
    for item in tools:
        made = item if isinstance(item, Tool) else tool(item)
        if made.name in found:
            raise ConfigurationError(f"two tools are named {made.name!r}")
        found[made.name] = made
    if not found:
        raise ConfigurationError("no tools to serve")
    return found


def build_server(
    tools: Iterable[Tool[..., Any] | Callable[..., Any]],
    *,
    name: str = "agentkit",
    deps: Callable[[], Any] | None = None,
    allow_approval: bool = False,
    context: Callable[[], Any] | None = None,
) -> Server[Any]:
    """An MCP ``Server`` (the SDK's low-level one) that lists and calls ``tools``.

    Args:
        tools: ``@tool`` functions (or plain functions, wrapped with ``@tool``).
        name: the server name shown to clients.
        deps: called for each call of a tool that takes a ``RunContext`` (it may be
            async); its result becomes ``RunContext.deps`` (return a ``RunContext`` to pass
            one as it is).
        allow_approval: run ``requires_approval`` tools anyway (the operator approves
            every call in advance); by default they are listed but refused.
        context: the old name of ``deps`` (deprecated: it warns, and goes before 0.1.0).
    """
    deps = _deps_factory(deps, context, "build_server")
    try:
        import mcp.types as types
        from mcp.server.lowlevel import Server
    except ImportError:
        raise missing_sdk() from None

    served = _tools(tools)
    listing = types.ListToolsResult(
        tools=[_listed(item, allow_approval, types) for item in served.values()]
    )

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return listing

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await _call(served, params.name, params.arguments, deps, allow_approval)

    from .._version import __version__

    return Server(name, version=__version__, on_list_tools=list_tools, on_call_tool=call_tool)


def _listed(item: Tool[..., Any], allow_approval: bool, types: Any) -> Any:
    description = item.description
    if item.requires_approval and not allow_approval:
        description = _REFUSED_NOTE + description
    return types.Tool(name=item.name, description=description, input_schema=item.parameters)


def _result(text: str, *, error: bool = False) -> CallToolResult:
    import mcp.types as types

    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=error)


async def _call(
    served: Mapping[str, Tool[..., Any]],
    name: str,
    arguments: Mapping[str, Any] | None,
    make_deps: Callable[[], Any] | None,
    allow_approval: bool,
) -> CallToolResult:
    import anyio

    item = served.get(name)
    if item is None:
        return _result(f"Unknown tool {name!r}. Available tools: {', '.join(served)}.", error=True)
    if item.requires_approval and not allow_approval:
        return _result(
            f"The call to {name} was refused: it requires approval, and this MCP server was "
            "started without allow_approval. It was not run.",
            error=True,
        )
    try:
        kwargs = item.validate_json(json.dumps(dict(arguments or {})))
    except ToolArgumentsError as exc:
        return _result(str(exc), error=True)
    try:
        run_context = None
        if item.context_param is not None:
            deps = make_deps() if make_deps is not None else None
            if inspect.isawaitable(deps):
                deps = await deps
            run_context = deps if isinstance(deps, RunContext) else RunContext(deps=deps)
        with anyio.fail_after(item.timeout) if item.timeout is not None else _no_limit():
            if item.is_async:
                value = await item.call(kwargs, run_context)
            else:
                value = await anyio.to_thread.run_sync(
                    lambda: item.call(kwargs, run_context), abandon_on_cancel=True
                )
                if inspect.isawaitable(value):
                    value = await value
    except TimeoutError:
        return _result(f"tool {name} timed out after {item.timeout:g} s", error=True)
    except ToolRetry as exc:
        return _result(str(exc), error=True)
    except asyncio.CancelledError as exc:
        if _cancelled_from_outside():
            raise  # the client cancelled the request, or the server is shutting down
        # The tool's own (it raised one, or an inner await something else cancelled): a
        # failure of this call, as in an agent run; the server and other calls go on.
        return _failed(name, exc)
    except Exception as exc:
        return _failed(name, exc)
    text, problem = render_tool_output(name, value)
    return _result(text, error=problem is not None)


def _failed(name: str, exc: BaseException) -> CallToolResult:
    detail = str(exc)
    kind = type(exc).__name__
    text = f"tool {name} failed: {kind}: {detail}" if detail else f"tool {name} failed: {kind}"
    return _result(text, error=True)


def _cancelled_from_outside() -> bool:
    """Whether this request's task was cancelled (by a cancel scope or ``Task.cancel``),
    not only handed a ``CancelledError`` by the tool it ran."""
    import math

    import anyio

    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return True
    return anyio.current_effective_deadline() == -math.inf


class _no_limit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def asgi_app(
    tools: Iterable[Tool[..., Any] | Callable[..., Any]],
    *,
    token: str | None = None,
    path: str = "/mcp",
    host: str = "127.0.0.1",
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    name: str = "agentkit",
    deps: Callable[[], Any] | None = None,
    allow_approval: bool = False,
    context: Callable[[], Any] | None = None,
) -> ASGIApp:
    """An ASGI app serving ``tools`` over streamable HTTP at ``path``, to mount or run.

    With a ``token``, every request needs ``Authorization: Bearer <token>`` (else 401).
    ``host`` is the address it will be reached at: for a loopback one, requests naming
    another host are refused (DNS-rebinding protection). Bodies over ``max_request_bytes``
    are refused. The app's lifespan must run (uvicorn and Starlette mounts do that).
    ``deps`` makes each call's ``RunContext.deps`` (as in :func:`build_server`; ``context``
    is its old name, which warns).
    """
    deps = _deps_factory(deps, context, "asgi_app")
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        raise ConfigurationError("the token must be a string of at least 16 characters")
    server = build_server(tools, name=name, deps=deps, allow_approval=allow_approval)
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=path,
        host=host,
        max_request_body_size=max_request_bytes,
        stateless_http=False,
    )
    if token is not None:
        app = _BearerGate(app, token)
    return app


class _BearerGate:
    """Lets through only HTTP requests carrying the bearer token (compared in constant time).

    The scheme is case-insensitive (RFC 7235: ``bearer`` and ``BEARER`` are ``Bearer``); the
    token itself is compared exactly.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = token.encode()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http":
            given = b""
            for key, value in scope.get("headers", ()):
                if key == b"authorization":
                    given = value
                    break
            scheme, _, credentials = given.partition(b" ")
            # compare_digest on every path: the time taken says nothing about the token
            matches = hmac.compare_digest(credentials.lstrip(b" "), self._expected)
            if not (matches and scheme.lower() == b"bearer"):
                body = b'{"error": "unauthorized: send Authorization: Bearer <token>"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="agentkit-mcp"'),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self._app(scope, receive, send)


def serve(
    tools: Iterable[Tool[..., Any] | Callable[..., Any]],
    *,
    name: str = "agentkit",
    deps: Callable[[], Any] | None = None,
    allow_approval: bool = False,
    context: Callable[[], Any] | None = None,
) -> None:
    """Serve ``tools`` over this process's stdin and stdout until the client disconnects.

    While serving, stray writes to stdout (a tool's ``print``) go to stderr instead of
    corrupting the protocol. ``deps`` makes each call's ``RunContext.deps`` (as in
    :func:`build_server`; ``context`` is its old name, which warns).
    """
    deps = _deps_factory(deps, context, "serve")
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_server(tools, name=name, deps=deps, allow_approval=allow_approval)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def serve_http(
    tools: Iterable[Tool[..., Any] | Callable[..., Any]],
    *,
    host: str = "127.0.0.1",
    port: int = 8931,
    token: str | None = None,
    path: str = "/mcp",
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    name: str = "agentkit",
    deps: Callable[[], Any] | None = None,
    allow_approval: bool = False,
    context: Callable[[], Any] | None = None,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Serve ``tools`` over streamable HTTP with uvicorn until interrupted.

    A ``host`` other than loopback requires a ``token`` (``ConfigurationError`` otherwise).
    ``on_ready`` is called with the endpoint URL once the socket listens. ``deps`` makes
    each call's ``RunContext.deps`` (as in :func:`build_server`; ``context`` is its old name,
    which warns).
    """
    deps = _deps_factory(deps, context, "serve_http")
    check_binding(host, token)
    try:
        import uvicorn
    except ImportError:
        raise missing_sdk() from None
    app = asgi_app(
        tools,
        token=token,
        path=path,
        host=host,
        max_request_bytes=max_request_bytes,
        name=name,
        deps=deps,
        allow_approval=allow_approval,
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        startup = server.startup

        async def announce(sockets: Any = None) -> None:
            await startup(sockets)
            bound = server.servers[0].sockets[0].getsockname() if server.servers else (host, port)
            shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
            on_ready(f"http://{shown}:{bound[1]}{path}")

        server.startup = announce  # type: ignore[method-assign]
    server.run()


def _deps_factory(
    deps: Callable[[], Any] | None, context: Callable[[], Any] | None, where: str
) -> Callable[[], Any] | None:
    """The deps factory given as ``deps=``, or as its old name ``context=`` (which warns)."""
    if context is None:
        return deps
    if deps is not None:
        raise ConfigurationError("pass deps= (context= is its old name), not both")
    warn_deprecated(
        f"agentkit.mcp.{where}(context=) is renamed deps= (the name a run and agentkit.serve "
        "use); the old name goes before 0.1.0"
    )
    return context


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a bearer token."""
    if host not in _LOOPBACK and not token:
        raise ConfigurationError(
            f"serving MCP on {host} (beyond this machine) needs a bearer token: pass --token "
            f"or set {TOKEN_ENV}"
        )
