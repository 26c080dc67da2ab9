"""Where a request comes from: loopback or not (identities are in ``_identity``)."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]

_LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host in _LOOPBACK_NAMES or host.lower() == "localhost":
        return True  # the names every local request uses, without parsing an address
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
