"""The API key: checked where it is given, and masked in anything that could show it.

:func:`checked_api_key` strips the whitespace a key read from a file or a terminal
brings along and refuses a key that cannot be an HTTP header value (a control character,
a non-ASCII character, an inner space), before anything is sent, with an error that does
not show the key. httpx would otherwise raise ``Illegal header value b'Bearer <key>\\n'``,
quoting it.

:class:`Secret` masks the key in text a server echoes back, in every escaped form it may
take on the way: as is, a bytes or str ``repr`` (``\\x..``), JSON (``\\/``, ``\\u00..``),
percent-encoding (``%2F``, double-encoded too) and HTML character references. It also
masks it in the request headers an httpx exception keeps, so no attribute of an error or
of its chained causes holds the live ``Authorization`` header.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import httpx

from ._errors import ConfigurationError

__all__ = ["MASK", "Secret", "checked_api_key", "checked_headers"]

MASK = "***"
"""What stands in for the key wherever it was."""


def _fault(text: str) -> tuple[int, str] | None:
    """The first character of ``text`` that cannot be in a key, and what it is."""
    for position, char in enumerate(text):
        if char == " ":
            return position, "a space"
        if char < " " or char == "\x7f":
            return position, f"a control character (U+{ord(char):04X})"
        if char > "\x7f":
            return position, f"a non-ASCII character (U+{ord(char):04X})"
    return None


def checked_api_key(key: object) -> str | None:
    """The key as it will be sent: surrounding whitespace stripped, ``None`` when empty.

    Raises:
        ConfigurationError: when the key is not a string, or holds a control character,
            a non-ASCII character or a space; the message says which and where, never
            the key itself.
    """
    if key is None:
        return None
    if not isinstance(key, str):
        raise ConfigurationError(f"the API key must be a string, got {type(key).__name__}")
    key = key.strip()
    if not key:
        return None
    fault = _fault(key)
    if fault is not None:
        position, what = fault
        raise ConfigurationError(
            f"the API key holds {what} at position {position + 1} of {len(key)}; an API key "
            "is printable ASCII: copy it again (the key is not shown here)"
        )
    return key


def checked_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Extra request headers, refused before sending when a value cannot be sent.

    Raises:
        ConfigurationError: naming the header (never its value) when a name or value is
            not a string or a value holds a control character.
    """
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigurationError("header names and values must be strings")
        if any((char < " " and char != "\t") or char == "\x7f" for char in value):
            raise ConfigurationError(
                f"the value of header {name!r} holds a control character (not shown here)"
            )
        out[name] = value
    return out


def _forms(char: str) -> str:
    """A regex matching ``char`` in any escaped form a server or a repr may give it."""
    code = ord(char)
    hex2 = f"{code:02x}"
    return (
        f"(?:{re.escape(char)}"
        f"|\\\\+{re.escape(char)}"  # \/ \' \\ and the like, escaped once or more
        f"|\\\\+x{hex2}"  # a bytes repr
        f"|\\\\+u00{hex2}"  # JSON
        f"|%(?:25)*{hex2}"  # percent-encoded, perhaps more than once
        f"|&#0*{code};|&#x0*{hex2};)"  # HTML
    )


@functools.lru_cache(maxsize=32)
def _pattern_of(value: str) -> re.Pattern[str]:
    # Compiling takes milliseconds: done on the first error to scrub, once per key.
    return re.compile("".join(_forms(char) for char in value), re.IGNORECASE)


class Secret:
    """One API key, to be masked wherever it could appear. Never shows it in a repr."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @property
    def _pattern(self) -> re.Pattern[str]:
        return _pattern_of(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    def shows_in(self, text: str) -> bool:
        """Whether ``text`` holds the key in any form."""
        return self._value in text or self._pattern.search(text) is not None

    def scrub(self, text: str) -> str:
        """``text`` with every form of the key replaced by ``***``."""
        return self._pattern.sub(MASK, text)

    def scrub_headers(self, headers: httpx.Headers) -> None:
        """Mask the key in each header value that holds it (a request an error kept)."""
        for name, value in list(headers.items()):
            if self.shows_in(value):
                headers[name] = self.scrub(value)
