"""Tool names: an MCP server's names made valid agentkit names, unique per server.

agentkit (and OpenAI-compatible APIs) accept 1 to 64 letters, digits, ``_`` and ``-``. MCP
allows up to 128 characters and more punctuation (``.``, ``/``...). A prefix is joined with
``_``. A character outside the set becomes ``_``; a name still too long, or one that two
server names map to, is cut and ends with 8 hex digits of a hash of the original, so the
mapping is stable from one run to the next. Each tool remembers its server's name, which is
what the call sends.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_NAME", "local_names", "valid_name"]

MAX_NAME = 64
_VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid agentkit tool name as it is."""
    return _VALID.match(name) is not None


def _hashed(name: str, original: str) -> str:
    digest = hashlib.sha256(original.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def local_names(remote: list[str], prefix: str | None) -> dict[str, str]:
    """The agentkit name for each server name (``{server_name: local_name}``).

    Names that are valid as they are keep them; a mapped name that would collide with
    one of those (or with another mapped name) gets the hash ending.
    """
    joined = {original: f"{prefix}_{original}" if prefix else original for original in remote}
    out = {original: name for original, name in joined.items() if valid_name(name)}
    taken = set(out.values())
    for original, name in joined.items():
        if original in out:
            continue
        mapped = _INVALID_CHARS.sub("_", name)
        if not mapped or len(mapped) > MAX_NAME or mapped in taken:
            mapped = _hashed(mapped, original)
        taken.add(mapped)
        out[original] = mapped
    return {original: out[original] for original in remote}
