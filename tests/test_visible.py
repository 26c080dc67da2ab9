"""``agentkit._visible.visible``, what the CLI and the eval summary show of a model's, a
judge's or a tool's text: what could disguise it is written out, a joiner that joins an
emoji or a Persian word is not."""

from __future__ import annotations

import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from agentkit._visible import visible

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ
BURNING_HEART = "\u2764\ufe0f\u200d\U0001f525"  # a variation selector before the joiner
TECHNOLOGIST = "\U0001f469\U0001f3fd\u200d\U0001f4bb"  # a skin tone before the joiner
HINDI = "\u0915\u094d\u200d\u0937"  # a virama before the joiner


def test_a_joiner_that_joins_is_shown_as_written_and_an_override_is_not() -> None:
    """0b69d89 wrote every ZWJ and ZWNJ out: an emoji family read
    ``👨\\u200d👩\\u200d👧`` and a Persian word was broken in two in the approval views."""
    for text in (FAMILY, PERSIAN, BURNING_HEART, TECHNOLOGIST, HINDI):
        assert visible(text) == text
        assert visible(f'{{"note": "{text}"}}') == f'{{"note": "{text}"}}'
    argument = f'{{"slot": "{FAMILY} {PERSIAN} \u202e00:90 noM\u200b"}}'
    assert visible(argument) == f'{{"slot": "{FAMILY} {PERSIAN} \\u202e00:90 noM\\u200b"}}'


def test_a_joiner_that_joins_nothing_is_written_out() -> None:
    """Between ASCII letters or digits, beside a space, at either end, or two in a row, a
    joiner joins nothing a person would see: it only makes two texts that read the same."""
    for text, shown in (
        ("ad\u200dmin", "ad\\u200dmin"),
        ("10\u200c00", "10\\u200c00"),
        ("\u200d\U0001f468", "\\u200d\U0001f468"),
        ("\U0001f468\u200d", "\U0001f468\\u200d"),
        ("\U0001f468 \u200d\U0001f469", "\U0001f468 \\u200d\U0001f469"),
        ("\U0001f468\u200d\u200d\U0001f469", "\U0001f468\\u200d\\u200d\U0001f469"),
        ("\u0645\u200c\u202e\u0645", "\u0645\\u200c\\u202e\u0645"),
    ):
        assert visible(text) == shown


def test_every_control_and_format_character_is_written_out() -> None:
    """Against the running Python's Unicode tables: every control (Cc), format character
    (Cf: overrides, isolates, zero-width and tag characters), line and paragraph separator
    and lone surrogate is written out, each as an escape that names it."""
    missed = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            continue
        shown = visible(char)
        if char in shown or (f"{code:x}" not in shown and char not in "\n\r\t"):
            missed.append(f"U+{code:04X}")
        lines = visible(char, lines=True)
        if (char in lines) != (char in "\n\t"):
            missed.append(f"U+{code:04X} (lines)")
    assert missed == []


@given(st.text())
def test_what_is_shown_has_no_hidden_character_but_joining_joiners(text: str) -> None:
    shown = visible(text)
    for at, char in enumerate(shown):
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            assert char in "\u200c\u200d", (text, shown)
            assert 0 < at < len(shown) - 1 and not shown[at - 1].isascii()


@given(st.recursive(st.text() | st.integers(), lambda inner: st.lists(inner, max_size=3)))
def test_visible_json_is_the_same_data_and_hides_nothing(data: object) -> None:
    import json

    from agentkit._visible import visible_json

    for indent in (None, 2):
        text = json.dumps(data, ensure_ascii=False, indent=indent)
        shown = visible_json(text)
        assert json.loads(shown) == data
        for at, char in enumerate(shown):
            if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
                assert char in "\n" or (char in "\u200c\u200d" and not shown[at - 1].isascii())
