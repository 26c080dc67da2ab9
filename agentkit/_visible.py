"""Text from a model, a judge, a tool or a suite file made safe to show a person: the
characters that change what a terminal or a line shows, without showing themselves, are
written out as escapes (``\\x1b``, ``\\u202e``)."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["visible", "visible_json"]

# Controls: a terminal obeys an escape sequence (ESC, or the C1 CSI), so a model's text
# could move the cursor, clear the screen or retitle the window of whoever reads it; a
# newline or carriage return inside one line would forge another. Format characters
# (Unicode's Cf), line and paragraph separators and lone surrogates: a right-to-left
# override in a call's arguments shows a person something other than what runs (5000 as
# 0005), a zero-width space or a tag character hides text. tests/test_visible.py checks
# this list against the running Python's Unicode tables.
_FORMAT = (
    "\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f\ud800-\udfff"
)
_HIDDEN = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")
_HIDDEN_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT}]")  # keeps \t and \n
# JSON writes the C0 controls out itself, and its newlines and spaces between values are
# its own: only the rest is escaped in JSON text
_HIDDEN_IN_JSON = re.compile(f"[\x7f-\x9f{_FORMAT}]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JOINERS = "\u200c\u200d"


def visible(text: str, *, lines: bool = False) -> str:
    """``text`` with its control, invisible and direction-changing characters written out
    as Python writes them in a string (``\\x1b``, ``\\n``, ``\\u202e``), so that what a
    person reads is what was sent. A zero-width joiner or non-joiner between two letters
    or symbols outside ASCII is left as written: it joins an emoji sequence (a family) or
    the letters of a Persian, Arabic or Indic word. ``lines=True`` keeps newlines and
    tabs (an answer of several lines); otherwise the text is shown as one line."""
    pattern = _HIDDEN_IN_LINES if lines else _HIDDEN
    return pattern.sub(_written_out, text)


def visible_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``, which writes out only the C0
    controls) with the other characters :func:`visible` writes out as JSON escapes
    (``\\u009b``, ``\\u202e``, a surrogate pair above U+FFFF): the same data to a parser,
    nothing a terminal obeys or a reader cannot see. Such characters appear only inside
    JSON strings, where an escape means the character itself."""
    return _HIDDEN_IN_JSON.sub(_json_escape, text)


def _json_escape(found: re.Match[str]) -> str:
    char = found.group()
    if char in _JOINERS and _joins(found.string, found.start()):
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _written_out(found: re.Match[str]) -> str:
    char = found.group()
    if char in _JOINERS and _joins(found.string, found.start()):
        return char
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _joins(text: str, at: int) -> bool:
    """Whether the joiner at ``at`` stands between two characters it can join."""
    return 0 < at < len(text) - 1 and _joinable(text[at - 1]) and _joinable(text[at + 1])


def _joinable(char: str) -> bool:
    # letters and marks (a virama, an emoji's variation selector), emoji and their skin
    # tones; not ASCII, not digits or punctuation, where a joiner only hides itself
    category = unicodedata.category(char)
    return ord(char) > 0x7F and (category[0] in "LM" or category in ("So", "Sk"))
