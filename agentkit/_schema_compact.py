"""The schema a tool's model is sent, made from the full one: every request carries it, so it
leaves out what only restates the rest and writes the rest the short way.
"""

from __future__ import annotations

import copy
from typing import Any

from ._schema_formats import ANY_URL, DECIMAL_DIGITS, PATTERNS, POSITIVE_DECIMAL
from ._schema_walk import SCHEMA_KEYWORDS, SchemaTransformer, nodes

__all__ = ["compact_json_schema"]

# Patterns that only restate a format: the date and time forms, UUIDs, IP addresses, URLs
# of any scheme. A URL pattern naming its schemes says more than ``format: uri`` and stays.
_RESTATED_PATTERNS = frozenset({*PATTERNS.values(), ANY_URL})
# A decimal's string form with no digit bounds: its number form beside it says as much
# (the sign rule is the number form's minimum).
_NUMBER_PATTERNS = frozenset(
    f"^{sign}{digits}$"
    for sign in (r"\+?", "[+-]?")
    for digits in (DECIMAL_DIGITS, POSITIVE_DECIMAL)
)


def compact_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema the model is sent, made from the full one (a new object; ``schema`` is
    left alone).

    Every request carries the tool definitions, so this leaves out what says nothing the
    rest of the schema does not, and writes the rest the short way:

    * no ``pattern`` that only restates its ``format`` (the calendar-exact date regex
      beside ``format: date``), nor the number pattern of a decimal's string form beside
      its ``number`` form;
    * no ``"default": null`` (not being required says it), no OpenAPI ``discriminator``
      (each member's ``const`` tag says it);
    * a definition used once is written where it is used, not in ``$defs``;
    * a one-member ``anyOf`` is merged into its parent, and an optional scalar is
      ``{"type": ["string", "null"]}`` rather than an ``anyOf`` with null.

    Everything the full schema accepts, the compact one accepts; the validator still
    checks what was left out and explains a violation to the model.
    """
    defs = schema.get("$defs")
    inline: dict[str, Any] = {}
    if isinstance(defs, dict):
        counts: dict[str, int] = {}
        _count_refs(schema, counts)
        for name, sub in defs.items():
            own: dict[str, int] = {}
            _count_refs(sub, own)
            if counts.get(name) == 1 and not own.get(name):
                inline[name] = sub
    out = _Compactor(inline).node(schema, "parameters")
    kept = {name: sub for name, sub in out.pop("$defs", {}).items() if name not in inline}
    if kept:
        out["$defs"] = kept
    return out


_DEFS_PREFIX = "#/$defs/"


def _count_refs(schema: dict[str, Any], counts: dict[str, int]) -> None:
    for node in nodes(schema):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            name = ref[len(_DEFS_PREFIX) :]
            counts[name] = counts.get(name, 0) + 1


class _Compactor(SchemaTransformer):
    """One compaction; knows the definitions to write where they are used."""

    def __init__(self, inline: dict[str, Any]) -> None:
        self.inline = inline

    def node(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
        schema = self._inlined(schema)
        out = {
            key: value if key in SCHEMA_KEYWORDS else _copied(value)
            for key, value in schema.items()
            if not _says_nothing(key, value, schema)
        }
        self.children(out, where)
        if isinstance(out.get("anyOf"), list):
            _drop_decimal_pattern(out["anyOf"])
        out = _merged_single(out) or out
        return _merged_nullable(out) or out

    def leaf(self, value: Any) -> Any:
        return _copied(value)

    def _inlined(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith(_DEFS_PREFIX):
            return schema
        target = self.inline.get(ref[len(_DEFS_PREFIX) :])
        if target is None:
            return schema
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        if not rest:
            return target  # type: ignore[no-any-return]
        if "anyOf" in rest:  # not written by pydantic nor by strict mode; still valid
            return {**rest, "allOf": [target]}
        if rest.keys() & target.keys():
            # both describe (the parameter and its type): keep both, the type one level in
            return {**rest, "anyOf": [target]}
        return {**rest, **target}


def _says_nothing(key: str, value: Any, schema: dict[str, Any]) -> bool:
    """Whether the keyword only says what the rest of ``schema`` says already."""
    if key == "pattern":
        return "format" in schema and value in _RESTATED_PATTERNS
    return (key == "default" and value is None) or key == "discriminator"


def _copied(value: Any) -> Any:
    """A value the caller may change without changing the full schema (JSON: only lists
    and dicts are mutable)."""
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def _merged_single(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``{"description": ..., "anyOf": [{"type": ...}]}`` as one schema, when the two do
    not share a keyword (a lone reference stays in its ``anyOf``: strict mode wants no
    keywords beside a ``$ref``)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 1 or not isinstance(options[0], dict):
        return None
    member = options[0]
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if "$ref" in member or rest.keys() & member.keys():
        return None
    return {**rest, **member}


def _drop_decimal_pattern(options: list[Any]) -> None:
    """A decimal's string form, beside its number form, without the pattern that only
    says "a number" (in place; a pattern that also bounds the digits stays)."""
    if not any(isinstance(o, dict) and o.get("type") == "number" for o in options):
        return
    for option in options:
        if (
            isinstance(option, dict)
            and option.get("type") == "string"
            and option.get("pattern") in _NUMBER_PATTERNS
        ):
            del option["pattern"]


_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})


def _merged_nullable(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``{"anyOf": [{"type": "string", ...}, {"type": "null"}], ...}`` as the same schema
    written shorter, ``{"type": ["string", "null"], ...}``, or ``None`` when it is not
    of that shape.

    Only for a scalar type: its other keywords (``format``, ``minimum``...) do not apply
    to null, and an ``enum`` or ``const`` gains the null. Objects, arrays and references
    keep the ``anyOf`` (strict mode's consumers are least tested on nullable containers).
    """
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or options[1] != {"type": "null"}:
        return None
    member = options[0]
    # a member merged already (a nullable of a nullable) has a list for its type
    if not isinstance(member, dict) or not isinstance(member.get("type"), str):
        return None
    if member["type"] not in _SCALAR_TYPES:
        return None
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if rest.keys() & member.keys():
        return None  # both sides say the same thing differently; leave it as written
    merged = {**member, "type": [member["type"], "null"], **rest}
    if "const" in merged:
        merged["enum"] = [merged.pop("const")]
    if "enum" in merged and None not in merged["enum"]:
        merged["enum"] = [*merged["enum"], None]
    return merged
