"""Serve agents as an OpenAI-compatible Chat Completions endpoint, with a chat page.

Needs the ``serve`` extra (``pip install 'agentkit[serve]'``: Starlette and uvicorn);
``import agentkit`` does not load it, and neither does importing this package: Starlette
loads when :func:`create_app` is called. ::

    from agentkit.serve import create_app

    app = create_app({"order-desk": desk}, api_keys=["a-long-random-key"])
    # uvicorn module:app   (or: agentkit serve bot.py:desk)

Any OpenAI client can then talk to the bot: ``model`` names the agent, the agent's tools
run on the server, and the answer streams back as ``content`` deltas. See docs/serve.md.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .._deprecation import AgentKitDeprecationWarning
from ._app import CONVERSATION_HEADER, create_app
from ._identity import AuthSource, SharedKeys, StoredKeys, TrustedProxy
from ._oidc import OIDC
from ._request import RequestLimits

__all__ = [
    "CONVERSATION_HEADER",
    "OIDC",
    "AuthSource",
    "RequestLimits",
    "SharedKeys",
    "StoredKeys",
    "TrustedProxy",
    "create_app",
]


# Hidden from type checkers, so that only the new name is valid to them.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "Limits":
            warnings.warn(
                "agentkit.serve.Limits is renamed RequestLimits (create_app(request_limits=...)); "
                "the old name will be removed",
                AgentKitDeprecationWarning,
                stacklevel=2,
            )
            return RequestLimits
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
