"""``agentkit serve``: a bot as an OpenAI-compatible endpoint with a chat page."""

from __future__ import annotations

import argparse
import os
import socket
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import EXIT_OK, UsageError
from ._loading import load_agent

if TYPE_CHECKING:
    from ..serve._connections import ConnectionLimits

__all__ = ["serve_command"]


def serve_command(args: argparse.Namespace, err: TextIO) -> int:
    """Check the options and the agents, then serve until interrupted."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError(
            "agentkit serve needs Starlette and uvicorn", hint="pip install 'agentkit[serve]'"
        ) from None
    from ..serve._auth import is_loopback
    from ..serve._server import API_KEY_VARIABLE, keys_from, run

    keys = keys_from(args.api_key or ())
    options = _identity_options(args, keys)
    if not is_loopback(args.host) and not keys and not options.get("auth"):
        raise UsageError(
            f"--host {args.host} is reachable from other machines, and no API key is set",
            hint=f"give --api-key KEY (or set {API_KEY_VARIABLE}) so that only your clients "
            "get in; a long random key: python -c 'import secrets; print(secrets.token_hex(24))'",
        )
    if any(len(key) < 8 for key in keys):
        raise UsageError(
            "an API key must be at least 8 characters",
            hint="python -c 'import secrets; print(secrets.token_hex(24))' makes a good one",
        )
    targets = [_absolute(target) for target in args.targets]
    if options.get("deps"):
        options["deps"] = _absolute(options["deps"])
    loaded = dict(load_agent(target, option="") for target in targets)  # fail before binding
    names = list(loaded)
    if len(loaded) == len(targets):
        _check_identity(options, loaded)
    if len(set(names)) != len(names):
        raise UsageError("two agents have the same name; serve each name once")
    # Bound here and handed to uvicorn: --port 0 gets a port nobody can take in between,
    # and the line below names the port really listened on.
    listener = _bind(args.host, args.port)
    port = listener.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    err.write(
        f"agentkit: serving {', '.join(names)} on http://{shown}:{port}/v1 "
        f"(chat page: http://{shown}:{port}/; {args.workers} worker"
        f"{'s' if args.workers > 1 else ''}; Ctrl-C stops)\n"
    )
    err.flush()
    run(
        targets,
        host=args.host,
        port=port,
        listener=listener,
        workers=args.workers,
        api_keys=keys,
        allowed_hosts=args.allowed_host or (),
        connections=_connection_limits(args.head_timeout, args.max_connections),
        title=args.title or names[0],
        log_level="debug" if args.debug else "warning",
        options=options,
    )
    return EXIT_OK


def _identity_options(args: argparse.Namespace, keys: list[str]) -> dict[str, Any]:
    """The identity options, checked: each source has what it needs, and nothing more."""
    auth = args.auth
    if args.trust_proxy_header and auth in (None, "proxy"):
        auth = "proxy"
    elif args.trust_proxy_header:
        raise UsageError(f"--trust-proxy-header goes with --auth proxy, not --auth {auth}")
    if auth and keys:
        raise UsageError(
            f"--api-key (or {_key_variable()}) and --auth {auth} both say who may ask; give one",
            hint="with --auth keys, make keys with `agentkit keys add`",
        )
    from ..serve._auth import is_loopback

    options: dict[str, Any] = {"auth": auth}
    if auth == "oidc":
        if not args.oidc_issuer or not args.oidc_audience:
            raise UsageError(
                "--auth oidc needs --oidc-issuer URL and --oidc-audience AUD",
                hint="e.g. --oidc-issuer https://id.example.com/realms/clinic "
                "--oidc-audience clinic-desk",
            )
        options.update(
            oidc_issuer=args.oidc_issuer,
            oidc_audience=args.oidc_audience,
            oidc_jwks_url=args.oidc_jwks_url,
            oidc_id_claim=args.oidc_id_claim,
            oidc_roles_claim=args.oidc_roles_claim,
        )
    elif args.oidc_issuer or args.oidc_audience or args.oidc_jwks_url:
        raise UsageError("--oidc-issuer and --oidc-audience go with --auth oidc")
    if auth == "proxy":
        proxies = list(args.trusted_proxy or ())
        if not proxies:
            if not is_loopback(args.host):
                raise UsageError(
                    f"--host {args.host} is reachable from other machines, and no "
                    "--trusted-proxy says which of them is the proxy: anyone could send "
                    "the user header",
                    hint="add --trusted-proxy ADDR (the proxy's address or network), or "
                    "listen on 127.0.0.1 behind a proxy on this machine",
                )
            proxies = ["127.0.0.0/8", "::1"]
        options.update(
            proxy_header=args.trust_proxy_header or "X-Forwarded-User",
            trusted_proxies=proxies,
            proxy_roles_header=args.proxy_roles_header,
        )
        try:
            from ..serve._identity import TrustedProxy

            TrustedProxy(options["proxy_header"], proxies)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif args.trusted_proxy or args.proxy_roles_header:
        raise UsageError("--trusted-proxy goes with --auth proxy (or --trust-proxy-header)")
    options["reviewers"] = list(args.reviewers or ())
    options["deps"] = args.deps
    return options


def _key_variable() -> str:
    from ..serve._server import API_KEY_VARIABLE

    return API_KEY_VARIABLE


def _check_identity(options: dict[str, Any], agents: dict[str, Any]) -> None:
    """Build the app once here, so a bad --deps or a store-less --auth keys fails now."""
    from ..serve._app import create_app
    from ..serve._configure import app_options

    try:
        create_app(agents, **app_options(options, agents))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _absolute(target: str) -> str:
    # Worker processes load the file again; an absolute path finds it whatever their cwd.
    source, _, name = target.rpartition(":")
    if source.endswith(".py") or os.sep in source:
        return f"{os.path.abspath(source)}:{name}"
    return target


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``0``: any free port), or a usage error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        # Listening from now on: a client that read the port connects, and waits in the
        # backlog until the server accepts.
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        reason = "is in use" if exc.errno in (98, 48) else f"cannot be used ({exc.strerror})"
        raise UsageError(
            f"{host}:{port} {reason}", hint=f"choose another port, e.g. --port {port + 1}"
        ) from None
    listener.set_inheritable(True)  # the workers serve it too
    return listener


def _connection_limits(head_timeout: float, max_connections: int) -> ConnectionLimits:
    from ..serve._connections import ConnectionLimits

    try:
        return ConnectionLimits(head_timeout, max_connections)
    except ValueError as exc:
        raise UsageError(
            f"--head-timeout: {exc}", hint="give a number of seconds, e.g. 10"
        ) from None
