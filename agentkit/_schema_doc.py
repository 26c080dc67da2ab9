"""A tool's description and its parameters' descriptions, read from the docstring.

docstring-parser reads Google, NumPy, reST and Epydoc styles; the style that recognises the
most sections wins. :func:`underlying` finds the plain function behind partials, bound
methods and decorators, whose docstring (and annotations) describe the tool.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from functools import partial
from typing import Any

import docstring_parser
import docstring_parser.epydoc
import docstring_parser.google
import docstring_parser.numpydoc
import docstring_parser.rest

__all__ = ["describe_function", "underlying"]


def underlying(function: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function behind partials, bound methods and decorators (for hints, docs)."""
    seen = 0
    while seen < 100:  # a cycle of __wrapped__ is a user bug; never loop forever
        seen += 1
        if isinstance(function, partial):
            function = function.func
        elif isinstance(function, types.MethodType):
            function = function.__func__
        elif hasattr(function, "__wrapped__"):
            function = function.__wrapped__
        else:
            break
    return function


def describe_function(function: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description and the per-parameter descriptions from a function's docstring.

    The description is the summary and the long description, without the parameter (or
    returns, raises, examples) sections. Google, NumPy, reST and Epydoc styles are
    recognised by docstring-parser.
    """
    doc = inspect.getdoc(_documented(function))
    if not doc:
        return "", {}
    # The parsers clean the text again, and cleaning takes the first line as the summary
    # line; a leading newline keeps the indentation of a docstring that opens with "Args:".
    parsed = _parse_docstring("\n" + doc)
    if parsed is None:
        return doc.strip(), {}
    params = {
        p.arg_name.lstrip("*"): p.description.strip()
        for p in parsed.params
        if p.description and p.description.strip()
    }
    return (parsed.description or "").strip(), params


def _documented(function: Callable[..., Any]) -> Any:
    """What carries the docstring: the function, or a callable object's ``__call__``
    (which documents the call's parameters) when it has a docstring of its own."""
    target = underlying(function)
    if not inspect.isroutine(target) and not isinstance(target, type) and callable(target):
        call = underlying(type(target).__call__)
        if inspect.isfunction(call) and call.__doc__:
            return call
    return target


# Google-style sections beyond docstring-parser's defaults (the names Sphinx's napoleon
# reads): keyword-only parameters documented under "Keyword Args:" get their descriptions,
# and notes, warnings and the like are sections, not part of the tool description (even
# when they come before "Args:").
_GOOGLE = docstring_parser.google.GoogleParser(
    sections=[
        *docstring_parser.google.DEFAULT_SECTIONS,
        *(
            docstring_parser.google.Section(
                title, "param", docstring_parser.google.SectionType.MULTIPLE
            )
            for title in (
                "Keyword Args",
                "Keyword Arguments",
                "Kwargs",
                "Other Args",
                "Other Arguments",
                "Other Parameters",
            )
        ),
        *(
            docstring_parser.google.Section(
                title, title.lower(), docstring_parser.google.SectionType.SINGULAR
            )
            for title in (
                "Attention",
                "Caution",
                "Danger",
                "Error",
                "Hint",
                "Important",
                "Note",
                "Notes",
                "References",
                "See Also",
                "Tip",
                "Todo",
                "Warning",
                "Warnings",
            )
        ),
    ]
)
_STYLES: tuple[Callable[[str], docstring_parser.Docstring], ...] = (
    docstring_parser.rest.parse,
    _GOOGLE.parse,
    docstring_parser.numpydoc.parse,
    docstring_parser.epydoc.parse,
)


def _parse_docstring(doc: str) -> docstring_parser.Docstring | None:
    """The docstring read in the style that recognises the most sections (as docstring-parser's
    own automatic choice does, with the wider Google sections)."""
    parsed: list[docstring_parser.Docstring] = []
    for parse in _STYLES:
        try:
            parsed.append(parse(doc))
        except docstring_parser.ParseError:
            continue
    return max(parsed, key=lambda result: len(result.meta), default=None)
