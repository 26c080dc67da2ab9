"""What an agent owns while it runs: its clients, its tool threads and its tool sources.

One :class:`Runtime` per :class:`~agentkit.Agent`, shared by all of its runs (threads and
tasks): the sync client (made on first use), one async client per live event loop (closed
with that loop), the bounded pool of tool threads, and the tool sources asked for their
tools at the start of each run. It also remembers what a run learned about the provider (a
refusal of tools with ``stream=True``), so later runs skip the try. Nothing here decides
anything about a run.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from ._client import AsyncChatClient, ChatClient
from ._errors import ConfigurationError
from ._providers import Provider
from ._secrets import Secret
from ._sources import ToolSource
from ._threads import ToolThreads
from ._tool import Tool

__all__ = ["Runtime"]


class Runtime:
    """The clients, tool threads and tool sources of one agent (thread-safe)."""

    def __init__(
        self,
        *,
        provider: Provider,
        api_key: str | None,
        client: ChatClient | AsyncChatClient | None,
        sources: Sequence[ToolSource],
        parallel_limit: int,
    ) -> None:
        self.provider = provider
        self.sources = list(sources)
        self.parallel_limit = parallel_limit
        self.tools_with_stream = provider.tools_with_stream
        self.client_config: dict[str, Any] = {"provider": provider, "api_key": api_key}
        self._secret = Secret(api_key) if api_key else None
        self.given_client = client
        self._sync_client: ChatClient | None = client if isinstance(client, ChatClient) else None
        self._async_client: AsyncChatClient | None = (
            client if isinstance(client, AsyncChatClient) else None
        )
        # One async client (one connection pool) per live event loop, with the async
        # generator that closes it when that loop shuts down.
        self._loop_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncChatClient, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self.threads: ToolThreads | None = None
        self._lock = threading.Lock()

    # -- what runs are sent to ----------------------------------------------------------

    @property
    def provider_name(self) -> str:
        """The name of the provider requests go to."""
        given = self.given_client
        return self.provider.name if given is None else given.provider.name

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        given = self.given_client
        return str(self.provider.base_url) if given is None else given.base_url

    def scrub(self, text: str) -> str:
        """``text`` with the agent's API key masked in every form it could take (a client
        passed in keeps its key to itself: its own errors are masked already)."""
        secret = self._secret
        return text if secret is None else secret.scrub(text)

    def forget_stream(self) -> None:
        """A provider that refused tools with ``stream=True`` will refuse again: later runs
        skip the try."""
        self.tools_with_stream = False

    # -- clients ------------------------------------------------------------------------

    def client(self) -> ChatClient:
        """The sync client, made on first use."""
        client = self._sync_client
        if client is not None:
            return client
        if self.given_client is not None:
            raise ConfigurationError(
                "this agent was given an AsyncChatClient: use run_async/stream_async, or "
                "pass a ChatClient"
            )
        with self._lock:
            if self._sync_client is None:
                self._sync_client = ChatClient(**self.client_config)
            return self._sync_client

    async def client_async(self) -> AsyncChatClient:
        """The async client of the running event loop, made on first use there."""
        if self.given_client is not None:
            if self._async_client is None:
                raise ConfigurationError(
                    "this agent was given a ChatClient: use run/stream, or pass an AsyncChatClient"
                )
            return self._async_client
        # An httpx.AsyncClient's connections belong to one event loop: keep one client
        # (one connection pool, shared by every run) per live loop.
        running = asyncio.get_running_loop()
        entry = self._loop_clients.get(running)
        if entry is not None:
            return entry[0]
        with self._lock:
            entry = self._loop_clients.get(running)
            if entry is not None:
                return entry[0]
            client = AsyncChatClient(**self.client_config)
            closer = _close_with_the_loop(client, self._loop_clients, running)
            self._loop_clients[running] = (client, closer)
        # Started here, the closer is an async generator the loop knows: asyncio.run()
        # finalizes it on shutdown, so each `asyncio.run(agent.run_async(...))` leaves no
        # connection open even without `await agent.aclose()`. The agent holds it until
        # then, so it is never finalized (closing its client) while its loop still runs.
        await closer.__anext__()
        return client

    # -- tool threads and sources ---------------------------------------------------------

    def tool_threads(self) -> ToolThreads:
        """The agent's pool of tool threads, made on first use."""
        threads = self.threads
        if threads is not None:
            return threads
        with self._lock:
            if self.threads is None:
                self.threads = ToolThreads(self.parallel_limit)
            return self.threads

    def source_tools(self) -> list[Sequence[Tool[..., Any]]]:
        """Each source's tools for a run that is starting (may block)."""
        return [source.tools() for source in self.sources]

    async def source_tools_async(self) -> list[Sequence[Tool[..., Any]]]:
        """Each source's tools for a run that is starting, from async code."""
        return [await source.tools_async() for source in self.sources]

    # -- the lifecycle ------------------------------------------------------------------

    def close_own(self) -> None:
        """Close the sync client (unless it was given) and the tool threads."""
        with self._lock:
            client = self._sync_client if self.given_client is None else None
            self._sync_client = None if self.given_client is None else self._sync_client
            threads, self.threads = self.threads, None
        if client is not None:
            client.close()
        if threads is not None:
            threads.close()

    async def close_loop_client(self) -> None:
        """Close the async client made for the running event loop, if any."""
        running = asyncio.get_running_loop()
        with self._lock:
            entry = self._loop_clients.pop(running, None)
        if entry is not None:
            await entry[1].aclose()  # closes the async client


async def _close_with_the_loop(
    client: AsyncChatClient,
    clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any],
    loop: asyncio.AbstractEventLoop,
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        entry = clients.get(loop)
        if entry is not None and entry[0] is client:
            del clients[loop]
        del loop  # the generator's frame must not keep its loop alive
        await client.aclose()
