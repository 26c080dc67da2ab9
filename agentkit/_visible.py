"""Text from a model, a judge, a tool or a suite file made safe to show a person: the
characters that change what a terminal or a line shows, without showing themselves, are
written out as escapes (``\\x1b``, ``\\u202e``)."""

from __future__ import annotations

import re

__all__ = ["visible"]

# Controls: a terminal obeys an escape sequence (ESC, or the C1 CSI), so a model's text
# could move the cursor, clear the screen or retitle the window of whoever reads it; a
# newline or carriage return inside one line would forge another. Invisible and
# direction-changing characters: a right-to-left override in a call's arguments shows a
# person something other than what runs (5000 as 0005).
_FORMAT = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_HIDDEN = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")
_HIDDEN_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT}]")  # keeps \t and \n
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str, *, lines: bool = False) -> str:
    """``text`` with its control, invisible and direction-changing characters written out
    as Python writes them in a string (``\\x1b``, ``\\n``, ``\\u202e``), so that what a
    person reads is what was sent. ``lines=True`` keeps newlines and tabs (an answer of
    several lines); otherwise the text is shown as one line."""
    pattern = _HIDDEN_IN_LINES if lines else _HIDDEN
    return pattern.sub(_written_out, text)


def _written_out(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
