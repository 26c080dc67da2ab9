"""A JSON Schema rewritten into the subset OpenAI's strict mode (structured outputs) accepts."""

from __future__ import annotations

import re
from typing import Any

from pydantic_core import to_json

from ._errors import ToolDefinitionError
from ._schema_walk import SchemaTransformer

__all__ = ["StrictTransform", "to_strict_json_schema"]

# What OpenAI's structured outputs accept; anything else is removed in strict mode.
_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "anyOf",
        "enum",
        "const",
        "$ref",
        "$defs",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_LOOKAROUND = re.compile(r"(?<!\\)\(\?<?[=!]")


def to_strict_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in OpenAI's structured-outputs subset (``"strict": true``).

    * every object: all properties ``required``, ``additionalProperties: false``;
    * a property that was optional becomes a union with null (``anyOf`` with
      ``{"type": "null"}``) unless it already accepts null; a tool's validator reads that
      null as "not given" and applies the default;
    * ``oneOf`` becomes ``anyOf``; a one-item ``allOf`` is merged into its parent;
      ``const`` becomes a one-value ``enum``;
    * ``$ref`` with sibling keywords is wrapped as ``anyOf: [{"$ref": ...}]``;
    * a mapping with free-form keys (``dict[str, X]``) becomes a list of
      ``{"key": ..., "value": ...}`` objects, since strict mode wants every object's
      properties listed; a tool's validator turns the list back into a dict;
    * keywords outside the subset are dropped: ``default``, ``title``, ``minLength``,
      ``maxLength``, ``uniqueItems``, ``examples``, formats other than date-time, time,
      date, duration, email, hostname, ipv4, ipv6 and uuid, patterns with lookaround...
      The tool's validator still enforces dropped constraints and explains a violation,
      and the constraints among them are written into the description
      (``"The SKU. (minLength=3)"``) so that the model learns them too.

    Raises :class:`~agentkit._errors.ToolDefinitionError` for what strict mode cannot say:
    a value of any type (an unannotated parameter, ``Any``, a bare ``dict`` or ``list``) and
    an intersection (``allOf`` of several schemas).
    """
    return StrictTransform().node(schema, "parameters")


class StrictTransform(SchemaTransformer):
    """One strict conversion; remembers what it changed that a decoder must undo."""

    def __init__(self) -> None:
        # id(converted object schema) -> properties whose null means "use the default"
        self.null_defaults: dict[int, frozenset[str]] = {}
        # ids of the key/value list schemas that stand for mappings
        self.pairs: set[int] = set()
        # ids of the converted schemas whose description is only the notes of dropped
        # constraints (see _note_dropped_constraints)
        self.noted: set[int] = set()

    def node(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
        schema = dict(schema)
        if "oneOf" in schema:
            schema["anyOf"] = schema.pop("oneOf")
        all_of = schema.pop("allOf", None)
        if isinstance(all_of, list):
            if len(all_of) != 1 or not isinstance(all_of[0], dict):
                raise ToolDefinitionError(
                    f"Strict mode cannot express an intersection (allOf) at {where}."
                )
            schema = {**all_of[0], **schema}
        out = {key: value for key, value in schema.items() if _strict_keeps(key, value)}
        if _note_dropped_constraints(schema, out):
            self.noted.add(id(out))
        if "const" in out:
            out["enum"] = [out.pop("const")]

        is_object = out.get("type") == "object" or "properties" in out
        if is_object and _is_mapping(schema):
            self._mapping(schema, out, where)
        else:
            if is_object:
                _check_object(schema, where)
            else:
                out.pop("additionalProperties", None)
                out.pop("required", None)
            if "items" in out:
                items = out["items"]
                if not isinstance(items, dict) or not _has_type(items):
                    raise ToolDefinitionError(
                        f"Strict mode needs a type for the items of the array at {where}: use "
                        "list[X] with a concrete X, or strict=False."
                    )
            self.children(out, where)
            if is_object:
                self._close_object(schema, out)
        if "anyOf" in out:
            self._hoist_notes(out)
        if "$ref" in out and len(out) > 1:
            out["anyOf"] = [{"$ref": out.pop("$ref")}, *out.get("anyOf", [])]
        if not _has_type(out):
            raise ToolDefinitionError(
                f"Strict mode needs a type at {where}, but it accepts any JSON value (an "
                "unannotated parameter, or Any). Annotate it, or use strict=False."
            )
        return out

    def _close_object(self, schema: dict[str, Any], out: dict[str, Any]) -> None:
        """Every property required, the optional ones nullable (their null then means "use
        the default"), no other keys (changes ``out``, whose properties are converted)."""
        required = set(schema.get("required", ()))
        properties: dict[str, Any] = out["properties"]
        nulls: set[str] = set()
        for prop, converted in properties.items():
            if prop not in required and not _allows_null(converted):
                properties[prop] = _nullable(converted)
                nulls.add(prop)
        out["required"] = list(properties)
        out["additionalProperties"] = False
        if nulls:
            self.null_defaults[id(out)] = frozenset(nulls)

    def _mapping(self, schema: dict[str, Any], out: dict[str, Any], where: str) -> None:
        """``dict[str, X]`` as a list of ``{"key", "value"}`` objects (changes ``out``)."""
        value = schema.get("additionalProperties")
        names = schema.get("propertyNames")
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1:  # keys constrained by a pattern
            ((pattern, value),) = patterns.items()
            names = {"pattern": pattern}
        if not isinstance(value, dict) or not _has_type(value):
            raise ToolDefinitionError(
                f"Strict mode needs a type for the values of the mapping at {where}: use "
                "dict[str, X] with a concrete X, or strict=False."
            )
        key_schema: dict[str, Any] = {"type": "string"}
        if isinstance(names, dict) and names:  # the keys' own schema: an enum, a pattern
            names = names if _has_type(names) else {**key_schema, **names}
            key_schema = self.node(names, f"{where}{{}}")
        entry = {
            "type": "object",
            "properties": {
                "key": key_schema,
                "value": self.node(value, f"{where}[]"),
            },
            "required": ["key", "value"],
            "additionalProperties": False,
        }
        for key in ("properties", "required", "additionalProperties"):
            out.pop(key, None)
        self.children(out, where)  # what else the node holds (a union, definitions)
        out["type"] = "array"
        out["items"] = entry
        self.pairs.add(id(out))

    def _hoist_notes(self, out: dict[str, Any]) -> None:
        """The notes of a union's members, moved up beside the union's own description
        (``Optional[Path]``: "Where to save. (format=path)", where the model reads it)."""
        notes = []
        for member in out["anyOf"]:
            if id(member) in self.noted:
                notes.append(member.pop("description"))
                self.noted.discard(id(member))
        if notes:
            text = ", ".join(notes)
            description = out.get("description")
            out["description"] = f"{description} ({text})" if description else text
            if not description:
                self.noted.add(id(out))


def _is_mapping(schema: dict[str, Any]) -> bool:
    """Whether an object schema is a mapping with free-form keys: no named properties, and
    a schema for its values (or one key pattern)."""
    additional = schema.get("additionalProperties")
    patterns = schema.get("patternProperties")
    return not schema.get("properties") and (
        additional not in (None, False) or (isinstance(patterns, dict) and len(patterns) == 1)
    )


def _check_object(schema: dict[str, Any], where: str) -> None:
    if "properties" not in schema or schema.get("additionalProperties") not in (None, False):
        raise ToolDefinitionError(
            f"Strict mode cannot express an object with both named and free-form keys "
            f"at {where}. Use a model with named fields only, or strict=False."
        )


# Constraints strict mode drops that the validator still enforces: the description names
# them, so the model still learns them (pydantic-ai does the same).
_NOTED_CONSTRAINTS = (
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)


def _note_dropped_constraints(schema: dict[str, Any], out: dict[str, Any]) -> bool:
    """Append the constraints of ``schema`` that ``out`` lost to its description:
    ``"The SKU. (minLength=3, maxLength=12)"``. Whether the description is only notes."""
    notes = [
        f"{key}={value if isinstance(value, str) else to_json(value).decode()}"
        for key in _NOTED_CONSTRAINTS
        if key in schema and key not in out
        for value in [schema[key]]
    ]
    if not notes:
        return False
    text = ", ".join(notes)
    description = out.get("description")
    out["description"] = f"{description} ({text})" if description else text
    return not description


def _strict_keeps(key: str, value: Any) -> bool:
    if key not in _STRICT_KEYWORDS:
        return False
    if key == "format":
        return value in _STRICT_FORMATS
    if key == "pattern":
        return isinstance(value, str) and not _LOOKAROUND.search(value)
    return True


def _has_type(schema: dict[str, Any]) -> bool:
    return any(key in schema for key in ("type", "$ref", "anyOf", "enum", "const"))


def _allows_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "enum" in schema and "type" not in schema:
        return None in schema["enum"]
    return any(isinstance(item, dict) and _allows_null(item) for item in schema.get("anyOf", ()))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    description = schema.pop("description", None)
    out: dict[str, Any] = {"anyOf": [schema, {"type": "null"}]}
    if description is not None:
        out["description"] = description
    return out
