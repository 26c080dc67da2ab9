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

from ._app import CONVERSATION_HEADER, create_app
from ._identity import AuthSource, SharedKeys, StoredKeys, TrustedProxy
from ._oidc import OIDC
from ._request import Limits

__all__ = [
    "CONVERSATION_HEADER",
    "OIDC",
    "AuthSource",
    "Limits",
    "SharedKeys",
    "StoredKeys",
    "TrustedProxy",
    "create_app",
]
