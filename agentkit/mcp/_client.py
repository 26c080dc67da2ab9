"""``MCPStdio`` and ``MCPHttp``: an MCP server's tools in an agent's tool list.

Both are tool sources (:class:`agentkit._sources.ToolSource`). The first run connects and
lists the tools; later runs reuse the list until the server says it changed
(``notifications/tools/list_changed``, or a ``subscriptions/listen`` event on 2026-era
servers). Every connection lives on agentkit's private MCP event loop (see ``_runtime``),
owned by one task from connect to close, so sync and async runs share it safely.

Faults become typed errors: a server that cannot start or never answers the handshake
(:class:`MCPConnectionError`, :class:`MCPTimeoutError`), one that exits
(:class:`MCPServerExitedError`), one that answers garbage (:class:`MCPProtocolError`). Raised
while a run starts (connect, list), they end the run before the model is called; raised by a
call, they are fed back to the model as that call's failure. A server that exited is started
again once per run; the next exit is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import threading
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from .._errors import ConfigurationError
from .._sources import ToolSource
from . import _runtime
from ._errors import (
    MCPConnectionError,
    MCPError,
    MCPProtocolError,
    MCPServerExitedError,
    MCPTimeoutError,
    MCPToolError,
    missing_sdk,
)
from ._names import local_names
from ._tools import MCPTool, render_result

if TYPE_CHECKING:
    from mcp import Client

__all__ = ["MCPHttp", "MCPStdio"]

logger = logging.getLogger("agentkit.mcp")

_MAX_PAGES = 100  # a server whose tool list never ends cannot hang a run
_CALL_BACKSTOP = 300.0  # seconds: the longest wait for a call when no timeout applies
_CLOSE_WAIT = 8.0  # seconds: the SDK closes stdin, waits 2 s, then SIGTERM, 2 s, SIGKILL
_STDERR_TAIL = 600  # characters of a stdio server's stderr quoted in an error
# A description is sent with every request: a server's must not fill the model's context.
_MAX_DESCRIPTION = 4000
# Every listed tool is sent with every model request: a server listing thousands of tools (or
# one enormous schema) would fill the model's context and make each request megabytes.
DEFAULT_MAX_TOOLS = 1000
DEFAULT_MAX_SCHEMA_CHARS = 500_000

Approval = bool | Collection[str] | Callable[[str], bool]


def _require_sdk() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise missing_sdk() from None
    _quiet_sdk_tracebacks()


class _OneLine(logging.Filter):
    """Turns a log record's traceback into one line: a server that writes junk to stdout
    should cost a log line, not a traceback on the user's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {_describe(record.exc_info[1])}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_sdk_tracebacks() -> None:
    stdio = logging.getLogger("mcp.client.stdio")
    if not any(isinstance(f, _OneLine) for f in stdio.filters):
        stdio.addFilter(_OneLine())


class _MCPSource(ToolSource):
    """What MCPStdio and MCPHttp share: the tool list, the connection, calls, faults."""

    label: str

    def __init__(
        self,
        *,
        prefix: str | None,
        requires_approval: Approval,
        timeout: float | None,
        connect_timeout: float,
        list_timeout: float,
        max_tools: int = DEFAULT_MAX_TOOLS,
        max_schema_chars: int = DEFAULT_MAX_SCHEMA_CHARS,
    ) -> None:
        _require_sdk()
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise ConfigurationError("prefix must be a non-empty string, e.g. prefix='crm'")
        for option, value in (
            ("timeout", timeout),
            ("connect_timeout", connect_timeout),
            ("list_timeout", list_timeout),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ConfigurationError(f"{option} must be a positive number of seconds")
        for option, count in (("max_tools", max_tools), ("max_schema_chars", max_schema_chars)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigurationError(f"{option} must be a positive whole number")
        if isinstance(requires_approval, str):
            requires_approval = {requires_approval}
        self.max_tools = max_tools
        self.max_schema_chars = max_schema_chars
        self.prefix = prefix
        self.requires_approval = requires_approval
        self.timeout = float(timeout) if timeout is not None else None
        self.connect_timeout = float(connect_timeout)
        self.list_timeout = float(list_timeout)
        # The state below is touched only on the MCP loop.
        self._connection: _Connection | None = None
        self._tools: list[MCPTool] | None = None
        # The tool list is stale when a change was announced after the last listing began.
        self._changes = 0
        self._listed_at = 0
        self._restarts_left = 1
        self._lock: asyncio.Lock | None = None
        _runtime.on_exit(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"

    @property
    def _stale(self) -> bool:
        return self._changes != self._listed_at

    def changed(self) -> None:
        """Mark the tool list stale, so the next run lists the tools again (done when the
        server says they changed)."""
        self._changes += 1

    # -- ToolSource ----------------------------------------------------------------------

    def tools(self) -> Sequence[MCPTool]:
        """Connect if needed and return the server's tools (cached until they change)."""
        return _runtime.call_sync(self._tools_for_run())

    async def tools_async(self) -> Sequence[MCPTool]:
        """The same from async code; the connection stays on agentkit's MCP loop."""
        return await _runtime.call_async(self._tools_for_run())

    def open(self) -> None:
        """Connect and list the tools now."""
        _runtime.call_sync(self._listed())

    async def aopen(self) -> None:
        """Connect and list the tools now, from async code."""
        await _runtime.call_async(self._listed())

    def close(self) -> None:
        """Close the connection: the server process ends, sockets close (idempotent)."""
        if self._connection is not None:
            _runtime.call_sync(self._close())

    async def aclose(self) -> None:
        """Close the connection, from async code."""
        if self._connection is not None:
            await _runtime.call_async(self._close())

    # -- how a subclass connects ---------------------------------------------------------

    async def _enter(self, stack: contextlib.AsyncExitStack, connection: _Connection) -> Client:
        raise NotImplementedError

    def _client(self, transport: Any, connection: _Connection) -> Client:
        from mcp import Client, Implementation

        from .._version import __version__

        return Client(
            transport,
            read_timeout_seconds=self.list_timeout,
            cache=None,  # the tool list is cached here, and refreshed on list_changed
            message_handler=connection.on_message,
            client_info=Implementation(name="agentkit", version=__version__),
        )

    # -- on the MCP loop -----------------------------------------------------------------

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _tools_for_run(self) -> list[MCPTool]:
        async with self._guard():
            connection = self._connection
            if connection is not None and not connection.alive:
                # it ended between runs: this run starts it afresh, with its restart unused
                self._connection = None
                self.changed()
                await connection.close()
            self._restarts_left = 1  # a run may restart a crashed server once
        return await self._listed()

    async def _listed(self) -> list[MCPTool]:
        async with self._guard():
            connection = await self._connected()
            if self._tools is not None and not self._stale:
                return self._tools
            listing = self._changes
            listed: list[Any] = []
            # One bound for the whole listing: every page, and checking every schema.
            stop = threading.Event()
            try:
                async with asyncio.timeout(self.list_timeout):
                    await self._list_pages(connection, listed)
                    # jsonschema's check of a schema takes milliseconds: off the MCP loop
                    # (other servers' calls go on), and abandoned at the deadline.
                    tools = await asyncio.to_thread(self._build, listed, stop)
            except TimeoutError:
                counted = f" ({len(listed)} tools listed so far)" if listed else ""
                raise MCPTimeoutError(
                    f"{self.label} did not list its tools within {self.list_timeout:g} s"
                    f"{counted}; raise list_timeout= if it is slow but sound",
                    server=self.label,
                ) from None
            except MCPError:
                raise
            except Exception as exc:
                raise self._error(exc, connection, "listing the tools") from None
            finally:
                stop.set()
            self._tools = tools
            self._listed_at = listing
            return self._tools

    async def _list_pages(self, connection: _Connection, listed: list[Any]) -> None:
        client = connection.live()
        cursor: str | None = None
        chars = 0
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            chars += sum(_definition_chars(item) for item in page.tools)
            self._check_size(len(listed), chars)
            cursor = page.next_cursor
            if not cursor:
                return
        raise MCPProtocolError(
            f"{self.label} listed more than {_MAX_PAGES} pages of tools", server=self.label
        )

    async def _connected(self) -> _Connection:
        """The live connection, made (or remade, once per run after an exit) if needed."""
        connection = self._connection
        if connection is not None and connection.alive:
            return connection
        if connection is not None:
            why = connection.ending()
            await connection.close()
            self._connection = None
            if self._restarts_left <= 0:
                raise MCPServerExitedError(
                    f"{self.label} stopped ({why}) and was already restarted once in this run",
                    server=self.label,
                )
            self._restarts_left -= 1
            self.changed()  # a new server may list other tools
            logger.warning("restarting MCP server %s: %s", self.label, why)
        connection = _Connection(self)
        await connection.open(self.connect_timeout)
        self._connection = connection
        return connection

    async def _call(self, tool: MCPTool, arguments: dict[str, Any]) -> str:
        async with self._guard():
            connection = await self._connected()
        client = connection.live()
        timeout = self.timeout if self.timeout is not None else _CALL_BACKSTOP
        try:
            result = await client.call_tool(
                tool.remote_name, arguments, read_timeout_seconds=timeout
            )
        except Exception as exc:
            raise self._error(exc, connection, f"calling {tool.remote_name}") from None
        try:
            return render_result(result, tool.remote_name, self.label)
        except MCPError:
            raise
        except Exception as exc:
            raise MCPProtocolError(
                f"{self.label} answered {tool.remote_name} with a result that cannot be read "
                f"({type(exc).__name__})",
                server=self.label,
            ) from None

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    def _check_size(self, count: int, chars: int) -> None:
        if count > self.max_tools:
            raise MCPProtocolError(
                f"{self.label} lists more than {self.max_tools} tools (max_tools): every "
                "tool is sent with every model request. Serve fewer, or raise max_tools=",
                server=self.label,
            )
        if chars > self.max_schema_chars:
            raise MCPProtocolError(
                f"{self.label} lists tools whose definitions take more than "
                f"{self.max_schema_chars:,} characters of JSON (max_schema_chars), sent with "
                "every model request. Serve fewer or smaller tools, or raise max_schema_chars=",
                server=self.label,
            )

    def _build(self, listed: list[Any], stop: threading.Event | None = None) -> list[MCPTool]:
        names = [item.name for item in listed]
        twice = sorted(name for name, seen in Counter(names).items() if seen > 1)
        if twice:
            raise MCPProtocolError(
                f"{self.label} lists more than one tool named {', '.join(map(repr, twice))}",
                server=self.label,
            )
        local = local_names(names, self.prefix)
        tools: list[MCPTool] = []
        for item in listed:
            if stop is not None and stop.is_set():  # the listing's time ran out
                return tools
            schema = item.input_schema
            if not isinstance(schema, dict) or schema.get("type", "object") != "object":
                logger.warning(
                    "MCP server %s: tool %r skipped: its input schema is not an object",
                    self.label,
                    item.name,
                )
                continue
            name = local[item.name]
            annotations = (
                item.annotations.model_dump(by_alias=True, exclude_none=True)
                if item.annotations
                else {}
            )
            try:
                tools.append(
                    MCPTool(
                        name=name,
                        remote_name=item.name,
                        description=_cut(item.description or item.title or "", _MAX_DESCRIPTION),
                        parameters={"type": "object", **schema},
                        server=self.label,
                        caller=self._caller,
                        requires_approval=self._needs_approval(item.name, name),
                        side_effects=annotations.get("readOnlyHint") is not True,
                        idempotent=annotations.get("idempotentHint") is True,
                        timeout=self.timeout,
                        annotations=annotations,
                    )
                )
            except Exception as exc:  # a schema jsonschema rejects
                logger.warning(
                    "MCP server %s: tool %r skipped: invalid input schema (%s)",
                    self.label,
                    item.name,
                    exc,
                )
        self._warn_unknown_approvals(names)
        return tools

    def _needs_approval(self, remote: str, local: str) -> bool:
        rule = self.requires_approval
        if isinstance(rule, bool):
            return rule
        if callable(rule):
            return bool(rule(remote))
        return remote in rule or local in rule

    def _warn_unknown_approvals(self, names: list[str]) -> None:
        rule = self.requires_approval
        if isinstance(rule, bool) or callable(rule):
            return
        known = set(names) | set(local_names(names, self.prefix).values())
        for name in sorted(set(rule) - known):
            logger.warning(
                "MCP server %s has no tool %r (named in requires_approval)", self.label, name
            )

    async def _caller(self, tool: MCPTool, arguments: dict[str, Any]) -> str:
        return await _runtime.call_async(self._call(tool, arguments))

    def _error(self, exc: BaseException, connection: _Connection, doing: str) -> MCPError:
        """The typed error for what went wrong while ``doing`` something with the server."""
        exc = _leaf(exc)
        from mcp import MCPError as SDKError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT
        from pydantic import ValidationError

        label = self.label
        status = connection.http_status
        if status is not None and not isinstance(exc, TimeoutError):
            connection.broken = True
            hint = {
                401: " (unauthorized: check the Authorization header)",
                403: " (forbidden: check the Authorization header)",
                404: " (not found: check the URL's path, usually /mcp)",
            }.get(status, "")
            return MCPConnectionError(
                f"{label} answered HTTP {status} while {doing}{hint}", server=label
            )
        if (isinstance(exc, SDKError) and exc.code == REQUEST_TIMEOUT) or isinstance(
            exc, TimeoutError
        ):
            return MCPTimeoutError(f"{label} did not answer in time while {doing}", server=label)
        if (isinstance(exc, SDKError) and exc.code == CONNECTION_CLOSED) or _is_closed(exc):
            connection.broken = True
            tail = connection.stderr_tail()
            said = f"; its last output: {tail}" if tail else ""
            return MCPServerExitedError(
                f"{label} closed the connection while {doing}{said}", server=label
            )
        if isinstance(exc, SDKError):
            return MCPToolError(
                f"{label} refused {doing}: {exc.message} (error {exc.code})", server=label
            )
        if isinstance(exc, ValidationError | ValueError):
            return MCPProtocolError(
                f"{label} sent an answer that is not valid MCP while {doing}", server=label
            )
        connection.broken = True  # a transport that failed is not trusted again
        detail = self._scrub(_describe(exc))
        return MCPConnectionError(f"{label} failed while {doing}: {detail}", server=label)

    def _scrub(self, text: str) -> str:
        """``text`` without anything of the source's that may be secret (an HTTP source's
        full URL: its query string or user info may hold a key)."""
        return text


class MCPStdio(_MCPSource):
    """An MCP server started as a child process, spoken to over its stdin and stdout.

    ``MCPStdio("mcp-server-time", ["--local-timezone", "Asia/Shanghai"], prefix="clock")``

    Args:
        command: the program to start (looked up on ``PATH``).
        args: its arguments.
        env: environment variables for the server, over a minimal default (``PATH``,
            ``HOME``...); the parent's environment is *not* inherited, so pass the keys it
            needs.
        cwd: its working directory.
        prefix: joined to every tool name with ``_`` (``clock_get_current_time``), to keep
            names unique across servers and ``@tool``s.
        requires_approval: ``True`` (every tool), a set of tool names, or a function of the
            server's tool name: those calls go through the agent's ``approve`` callback.
        timeout: seconds a call may take (default: the agent's ``tool_timeout``).
        connect_timeout: seconds to start the server and finish the handshake (default 30).
        list_timeout: seconds to list the tools, every page and the check of every schema
            (default 30).
        max_tools: tools the server may list (default 1000); more is refused
            (``MCPProtocolError``): each is sent with every model request.
        max_schema_chars: characters of JSON the listed tools' names, descriptions and
            input schemas may take together (default 500,000); more is refused.
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        prefix: str | None = None,
        requires_approval: Approval = False,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
        list_timeout: float = 30.0,
        max_tools: int = DEFAULT_MAX_TOOLS,
        max_schema_chars: int = DEFAULT_MAX_SCHEMA_CHARS,
    ) -> None:
        if not isinstance(command, str) or not command:
            raise ConfigurationError("command must be the program to start, e.g. 'mcp-server-time'")
        if isinstance(args, str):
            raise ConfigurationError("args must be a list of arguments, e.g. ['--port', '1']")
        self.command = command
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.label = _cut(shlex.join([command, *self.args]), 80)
        super().__init__(
            prefix=prefix,
            requires_approval=requires_approval,
            timeout=timeout,
            connect_timeout=connect_timeout,
            list_timeout=list_timeout,
            max_tools=max_tools,
            max_schema_chars=max_schema_chars,
        )

    async def _enter(self, stack: contextlib.AsyncExitStack, connection: _Connection) -> Client:
        from mcp import StdioServerParameters, stdio_client

        parameters = StdioServerParameters(
            command=self.command, args=self.args, env=self.env, cwd=self.cwd
        )
        errlog = connection.capture_stderr()
        transport = stdio_client(parameters, errlog=errlog)
        try:
            return await stack.enter_async_context(self._client(transport, connection))
        finally:
            connection.spawned()


class MCPHttp(_MCPSource):
    """An MCP server reached over streamable HTTP.

    ``MCPHttp("http://127.0.0.1:8931/mcp", headers={"Authorization": "Bearer ..."})``

    Args:
        url: the server's MCP endpoint.
        headers: sent with every request (an ``Authorization`` token...); never shown in
            errors, logs or ``repr``.
        prefix, requires_approval, timeout, connect_timeout, list_timeout, max_tools,
            max_schema_chars: as for :class:`MCPStdio`.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        prefix: str | None = None,
        requires_approval: Approval = False,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
        list_timeout: float = 30.0,
        max_tools: int = DEFAULT_MAX_TOOLS,
        max_schema_chars: int = DEFAULT_MAX_SCHEMA_CHARS,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError("url must be an http:// or https:// URL of the MCP endpoint")
        self.url = url
        self._headers = dict(headers or {})
        self.label = _cut(_public_url(url), 80)
        super().__init__(
            prefix=prefix,
            requires_approval=requires_approval,
            timeout=timeout,
            connect_timeout=connect_timeout,
            list_timeout=list_timeout,
            max_tools=max_tools,
            max_schema_chars=max_schema_chars,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self.url, self.label) if self.url != self.label else text

    async def _enter(self, stack: contextlib.AsyncExitStack, connection: _Connection) -> Client:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx2.Timeout(self.connect_timeout, read=_CALL_BACKSTOP)
        http = httpx2.AsyncClient(
            headers=self._headers,
            timeout=timeout,
            event_hooks={"response": [connection.note_response]},
        )
        await stack.enter_async_context(http)
        transport = streamable_http_client(self.url, http_client=http)
        return await stack.enter_async_context(self._client(transport, connection))


class _Connection:
    """One session with a server, owned from connect to close by one task on the MCP loop."""

    def __init__(self, source: _MCPSource) -> None:
        self.source = source
        self.client: Client | None = None
        self.broken = False
        self._why: BaseException | None = None
        self._closing = asyncio.Event()
        self._finished = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None
        self._stderr: _StderrTail | None = None
        self.http_status: int | None = None  # the last HTTP error status the server answered

    @property
    def alive(self) -> bool:
        """Connected, and neither closed nor seen to fail (a server that exited is seen as
        soon as its output ends, before a call finds out)."""
        client = self.client
        return (
            client is not None
            and not self.broken
            and not self._finished.is_set()
            and not _transport_closed(client)
        )

    def live(self) -> Client:
        """The SDK client; raises ``MCPServerExitedError`` when the connection is gone."""
        client = self.client
        if client is None:
            raise MCPServerExitedError(
                f"{self.source.label} is not connected ({self.ending()})", server=self.source.label
            )
        return client

    def ending(self) -> str:
        """Why the connection ended, in a few words."""
        if self._why is not None:
            return self.source._scrub(_describe(_leaf(self._why)))
        return "the connection closed"

    async def open(self, timeout: float) -> None:
        """Start the owner task and wait for the handshake (at most ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._owner = loop.create_task(self._own(ready), name=f"agentkit-mcp {self.source.label}")
        label = self.source.label
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(ready)
        except TimeoutError:
            await self.close()
            raise MCPTimeoutError(
                f"{label} did not finish the MCP handshake within {timeout:g} s", server=label
            ) from None
        except MCPError:
            await self.close()
            raise
        except asyncio.CancelledError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            tail = self.stderr_tail()
            said = f"; its last output: {tail}" if tail else ""
            error = self.source._error(exc, self, "connecting")
            if not isinstance(error, MCPConnectionError):  # an error answer to the handshake
                reason = error.message.removeprefix(label).strip()
                error = MCPConnectionError(
                    f"{label} could not be connected: {reason}", server=label
                )
            if said and said not in error.message:
                error.message += said
            raise error from None

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await self.source._enter(stack, self)
                self.client = client
                ready.set_result(None)
                await self._serve(client)
        except BaseException as exc:
            self._why = exc
            if not ready.done():
                if isinstance(exc, asyncio.CancelledError):
                    ready.cancel()
                else:
                    ready.set_exception(exc)
        finally:
            self.client = None
            self._finished.set()
            self._keep_stderr()

    async def _serve(self, client: Client) -> None:
        """Wait for close; meanwhile follow tool-list changes on a 2026-era connection."""
        from mcp.types.version import MODERN_PROTOCOL_VERSIONS

        capability = client.server_capabilities.tools
        if not (capability and capability.list_changed) or (
            client.protocol_version not in MODERN_PROTOCOL_VERSIONS
        ):
            await self._closing.wait()
            return
        import anyio

        async with anyio.create_task_group() as group:
            group.start_soon(self._listen, client)
            await self._closing.wait()
            group.cancel_scope.cancel()

    async def _listen(self, client: Client) -> None:
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    self.source.changed()
        except Exception as exc:  # the list is then refreshed on the next restart only
            logger.info("MCP server %s: no tool-list updates (%s)", self.source.label, exc)

    async def note_response(self, response: Any) -> None:
        """httpx2's response hook: remember the status of the last MCP request (a POST) if
        it was an HTTP error, to name it in errors (a JSON-RPC error comes with a 200)."""
        if response.request.method == "POST":
            self.http_status = response.status_code if response.status_code >= 400 else None

    async def on_message(self, message: Any) -> None:
        """The SDK's handler of server notifications (and transport errors)."""
        from mcp.types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification):
            self.source.changed()
        elif isinstance(message, Exception):
            logger.debug("MCP server %s: %s", self.source.label, _describe(message))

    async def close(self) -> None:
        """End the owner task, which closes the session and ends the process or sockets."""
        self._closing.set()
        owner = self._owner
        if owner is None or owner.done():
            self._keep_stderr()
            return
        # Connected, the owner closes the session itself; still in the handshake, it is
        # cancelled (the SDK then ends the process or the sockets all the same).
        done: set[asyncio.Task[None]] = set()
        if self.client is not None:
            done, _ = await asyncio.wait({owner}, timeout=_CLOSE_WAIT)
        if not done:
            owner.cancel()
            await asyncio.wait({owner}, timeout=_CLOSE_WAIT)

    def capture_stderr(self) -> TextIO:
        """The write end of a pipe for the server's stderr; only its end is kept, to quote
        when the server fails (closed by the owner task as the connection ends)."""
        self._stderr = _StderrTail(asyncio.get_running_loop())
        return self._stderr.writer

    def spawned(self) -> None:
        """The server process holds its stderr now: let go of this side's write end, so
        that the pipe ends when the server does."""
        if self._stderr is not None:
            self._stderr.writer.close()

    def stderr_tail(self) -> str:
        """The end of what the server wrote to stderr, on one line."""
        return "" if self._stderr is None else self._stderr.text()

    def _keep_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()


class _StderrTail:
    """A child's stderr read as it comes (on the MCP loop), of which only the last few
    kilobytes are kept: a chatty server costs no memory or disk beyond that, and is never
    blocked on a full pipe."""

    _KEEP = _STDERR_TAIL * 4  # bytes: UTF-8 takes up to 4 per character

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        read, write = os.pipe()
        self._loop = loop
        self._read: int | None = read
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._pumped = False
        self.writer = cast(TextIO, open(write, "w", encoding="utf-8"))  # noqa: SIM115
        try:
            os.set_blocking(read, False)
            loop.add_reader(read, self._drain)
        except (NotImplementedError, OSError):  # a proactor loop (Windows): a thread reads
            os.set_blocking(read, True)
            self._pumped = True
            threading.Thread(target=self._pump, name="agentkit-mcp-stderr", daemon=True).start()

    def _keep(self, chunk: bytes) -> None:
        with self._lock:
            self._tail += chunk
            if len(self._tail) > self._KEEP:
                del self._tail[: -self._KEEP]

    def _drain(self) -> None:
        while self._read is not None and not self._pumped:
            try:
                chunk = os.read(self._read, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:  # every write end is closed: the server is gone
                self._stop()
                return
            self._keep(chunk)

    def _pump(self) -> None:
        read = self._read
        if read is None:
            return
        with contextlib.closing(os.fdopen(read, "rb", buffering=0)) as pipe:
            while chunk := pipe.read(65536):  # until every write end is closed
                self._keep(chunk)

    def _stop(self) -> None:
        if self._read is not None and not self._pumped:
            self._loop.remove_reader(self._read)
            os.close(self._read)
            self._read = None

    def text(self) -> str:
        """The last characters written (after reading what is waiting), on one line."""
        self._drain()
        with self._lock:
            text = self._tail.decode("utf-8", errors="replace")[-_STDERR_TAIL:]
        return " ".join(text.split())

    def close(self) -> None:
        """Read what is left, and close both ends (the tail stays readable)."""
        self.writer.close()
        self._drain()
        self._stop()


def _transport_closed(client: Client) -> bool:
    """Whether the SDK saw the server's output end (its dispatcher closed at EOF).

    The SDK keeps this private; read defensively, it only ever saves a failing call.
    """
    session = getattr(client, "_session", None)
    dispatcher = getattr(session, "_dispatcher", None)
    return getattr(dispatcher, "_closed", False) is True


def _definition_chars(item: Any) -> int:
    """About what one listed tool adds to every model request, in characters."""
    try:
        schema = len(json.dumps(item.input_schema, ensure_ascii=False, default=str))
    except (TypeError, ValueError):  # a schema JSON cannot hold: refused when it is built
        schema = 0
    return len(item.name or "") + min(len(item.description or ""), _MAX_DESCRIPTION) + schema


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _is_closed(exc: BaseException) -> bool:
    import anyio

    return isinstance(
        exc,
        anyio.ClosedResourceError
        | anyio.BrokenResourceError
        | anyio.EndOfStream
        | BrokenPipeError
        | ConnectionResetError
        | EOFError,
    )


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return _cut(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, 300)


def _public_url(url: str) -> str:
    """The URL without credentials or a query string (they may hold secrets)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
