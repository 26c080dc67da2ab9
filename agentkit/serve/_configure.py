"""The identity options of ``agentkit serve`` as plain data, and the app they make.

The CLI checks the options and passes them to each worker process as JSON (workers are
separate processes that build their own app); each worker turns them into the identity
source, the reviewers and the deps function here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["app_options"]


def app_options(options: Mapping[str, Any], agents: Mapping[str, Any]) -> dict[str, Any]:
    """``create_app`` keywords (``auth``, ``deps``, ``reviewers``) from the CLI's options."""
    kwargs: dict[str, Any] = {}
    auth = options.get("auth")
    if auth == "keys":
        from ._identity import StoredKeys

        stores = [agent.store for agent in agents.values() if agent.store is not None]
        if not stores:
            raise ValueError("--auth keys keeps the keys in the agent's store; it has none")
        kwargs["auth"] = StoredKeys(stores[0])
    elif auth == "oidc":
        from ._oidc import OIDC

        kwargs["auth"] = OIDC(
            options["oidc_issuer"],
            options["oidc_audience"],
            jwks_url=options.get("oidc_jwks_url"),
            id_claim=options.get("oidc_id_claim") or "sub",
            roles_claim=options.get("oidc_roles_claim") or "roles",
        )
    elif auth == "proxy":
        from ._identity import TrustedProxy

        kwargs["auth"] = TrustedProxy(
            options["proxy_header"],
            options["trusted_proxies"],
            roles_header=options.get("proxy_roles_header"),
        )
    if options.get("reviewers"):
        kwargs["reviewers"] = set(options["reviewers"])
    if options.get("deps"):
        from ..cli._loading import load_function

        kwargs["deps"] = load_function(options["deps"], option="--deps")
    return kwargs
