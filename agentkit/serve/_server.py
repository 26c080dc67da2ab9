"""Running the app under uvicorn, with one worker or many.

Several workers are separate processes, so each one builds its own app: it loads the
agents again from the targets (``bot.py:desk``) passed to it in the environment.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ._connections import ConnectionLimits

__all__ = ["API_KEY_VARIABLE", "app_from_environment", "run"]

API_KEY_VARIABLE = "AGENTKIT_SERVE_API_KEY"
"""The environment variable with the accepted API keys (several: comma-separated)."""
_TARGETS_VARIABLE = "AGENTKIT_SERVE_TARGETS"
_TITLE_VARIABLE = "AGENTKIT_SERVE_TITLE"
_OPTIONS_VARIABLE = "AGENTKIT_SERVE_OPTIONS"
_HOSTS_VARIABLE = "AGENTKIT_SERVE_ALLOWED_HOSTS"


def keys_from(given: Sequence[str]) -> list[str]:
    """The keys given as options, else those in :data:`API_KEY_VARIABLE`."""
    if given:
        return [key.strip() for key in given if key.strip()]
    text = os.environ.get(API_KEY_VARIABLE, "")
    return [key.strip() for key in text.split(",") if key.strip()]


def _access_log() -> None:
    """The app's access log (one line per request with the principal, never a key or a
    token) on stdout, where uvicorn's own would be, at INFO whatever ``--debug`` says.
    uvicorn's own lines (which cannot name the principal) are filtered out."""
    from uvicorn.logging import AccessFormatter

    from ._accesslog import only_ours

    access = logging.getLogger("uvicorn.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.addFilter(only_ours)
        handler.setFormatter(
            AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s')
        )
        access.addHandler(handler)
    access.setLevel(logging.INFO)


def app_from_environment() -> Starlette:
    """The app of one worker process (uvicorn calls this factory in each)."""
    from ..cli._loading import load_agent
    from ._app import create_app
    from ._configure import app_options

    agents: dict[str, Any] = {}
    for target in os.environ[_TARGETS_VARIABLE].split("\n"):
        name, agent = load_agent(target)
        agents[name] = agent
    _access_log()
    options = json.loads(os.environ.get(_OPTIONS_VARIABLE) or "{}")
    identity = app_options(options, agents)
    hosts = [name for name in os.environ.get(_HOSTS_VARIABLE, "").split(",") if name]
    return create_app(
        agents,
        api_keys=() if "auth" in identity else keys_from(()),
        allowed_hosts=hosts,
        title=os.environ.get(_TITLE_VARIABLE, "agentkit"),
        access_log=True,
        **identity,
    )


def run(
    targets: Sequence[str],
    *,
    host: str,
    port: int,
    workers: int,
    api_keys: Sequence[str],
    title: str,
    allowed_hosts: Sequence[str] = (),
    connections: ConnectionLimits | None = None,
    log_level: str = "info",
    options: Mapping[str, Any] | None = None,
    listener: socket.socket | None = None,
) -> None:
    """Serve the agents named by ``targets`` until interrupted; ``options`` are the
    identity options (``auth``, ``reviewers``, ``deps``...) each worker applies.

    ``listener``, a socket already bound to ``host:port`` and listening, is served as is
    (so the caller knows the port before serving starts); without it uvicorn binds one.
    """
    import uvicorn

    from ._connections import (
        HEAD_TIMEOUT_VARIABLE,
        MAX_CONNECTIONS_VARIABLE,
        ConnectionLimits,
        GuardedH11,
    )

    # each worker's protocol reads its limits from the environment it inherits
    limits = connections or ConnectionLimits()
    os.environ[HEAD_TIMEOUT_VARIABLE] = str(limits.head_timeout)
    os.environ[MAX_CONNECTIONS_VARIABLE] = str(limits.max_connections)
    os.environ[_TARGETS_VARIABLE] = "\n".join(targets)
    os.environ[_TITLE_VARIABLE] = title
    os.environ[_HOSTS_VARIABLE] = ",".join(allowed_hosts)
    if api_keys:
        os.environ[API_KEY_VARIABLE] = ",".join(api_keys)
    os.environ[_OPTIONS_VARIABLE] = json.dumps(dict(options or {}))
    behind_proxy = (options or {}).get("auth") == "proxy"
    config = uvicorn.Config(
        "agentkit.serve._server:app_from_environment",
        factory=True,
        http=GuardedH11,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        lifespan="off",
        # A trusted proxy is recognised by the connection's own peer address, so uvicorn
        # must not replace it with what X-Forwarded-For claims.
        proxy_headers=not behind_proxy,
        timeout_graceful_shutdown=5,
        # the app logs each request itself, with the principal (see _accesslog)
        access_log=False,
    )
    if listener is None:
        listener = config.bind_socket()
    _serve(config, listener)


def _serve(config: Any, listener: socket.socket) -> None:
    # uvicorn.run() without its own binding: one worker serves the socket in this
    # process, more are uvicorn's supervised worker processes sharing it.
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            try:
                supervisor = Multiprocess(config, sockets=[listener])
            except TypeError:  # an older uvicorn, whose supervisor takes the worker's target
                supervisor = Multiprocess(
                    config,
                    target=server.run,  # type: ignore[call-arg]
                    sockets=[listener],
                )
            supervisor.run()
        else:
            server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    if config.workers == 1 and not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE, as uvicorn.run() exits
