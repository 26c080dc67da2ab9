"""Who is asking: bearer API keys, and the owner a conversation is filed under.

A conversation's stored id starts with a digest of the key that created it, so another
key names another conversation: it can neither read nor continue one it does not own,
and no extra table or lookup is needed for that.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping

from ._errors import ServeError

__all__ = ["Keys", "is_loopback", "stored_id"]

_ANONYMOUS = "local"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Keys:
    """The accepted API keys (none: only loopback clients are served, anonymously)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [key.encode() for key in keys if key]
        for key in self._keys:
            if len(key) < 8:
                raise ValueError("an API key must be at least 8 characters")

    @property
    def required(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self._keys)

    def owner(self, headers: Mapping[str, str], client_host: str | None) -> str:
        """The owner of this request's conversations; a 401 for a missing or wrong key."""
        if not self._keys:
            # Defence in depth: the CLI refuses to listen beyond loopback without keys.
            if client_host is not None and not is_loopback(client_host):
                raise ServeError(
                    401,
                    "this server has no API keys, so it answers loopback clients only",
                    type="invalid_request_error",
                    code="invalid_api_key",
                )
            return _ANONYMOUS
        scheme, _, given = headers.get("authorization", "").partition(" ")
        token = given.strip().encode()
        if scheme.lower() != "bearer" or not token:
            raise ServeError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # compare with every key, so timing tells nothing about which one nearly matched
        matched = [key for key in self._keys if hmac.compare_digest(key, token)]
        if not matched:
            raise ServeError(
                401,
                "Incorrect API key provided.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return "k" + hashlib.sha256(matched[0]).hexdigest()[:16]


def stored_id(owner: str, agent: str, conversation: str) -> str:
    """The id a conversation is stored under: owner, agent and the client's name for it."""
    return f"{owner}/{agent}/{conversation}"
