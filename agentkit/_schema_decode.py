"""Arguments written for a strict schema, turned back into the shape the validator reads."""

from __future__ import annotations

from typing import Any

__all__ = ["StrictDecoder"]


class StrictDecoder:
    """Turns arguments written for a strict schema back into what the validator reads.

    Strict mode changes two shapes (see ``_schema_strict.to_strict_json_schema``): an optional field
    of a nested model becomes required and nullable, and a mapping becomes a list of
    key/value entries. The argument object is walked along the strict schema; such nulls
    are deleted (so the model's default applies, as for an omitted field) and such lists
    become dicts again. In a union, the member whose shape matches the value is followed.
    """

    __slots__ = ("_defs", "_nulls", "_pairs", "_schema")

    def __init__(
        self, schema: dict[str, Any], nulls: dict[int, frozenset[str]], pairs: set[int]
    ) -> None:
        self._schema = schema
        self._defs: dict[str, Any] = schema.get("$defs", {})
        self._nulls = nulls
        self._pairs = frozenset(pairs)

    def needed(self, text: str | bytes | bytearray) -> bool:
        """Whether arguments in this JSON text may need decoding (a quick check)."""
        if self._pairs:
            return True  # even an empty list stands for a mapping
        if isinstance(text, str):
            return "null" in text
        return b"null" in text

    def decode(self, data: Any) -> Any:
        """``data`` (parsed JSON, changed in place where possible) in the validator's shape."""
        return self._walk(self._schema, data, 0)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._defs.get(ref.rsplit("/", 1)[-1], {})  # type: ignore[no-any-return]
        return schema

    def _walk(self, schema: dict[str, Any], value: Any, depth: int) -> Any:
        if depth > 500:  # deeper than any real argument object; validation will refuse it
            return value
        schema = self._resolve(schema)
        if "anyOf" in schema:
            chosen = self._choose(schema["anyOf"], value)
            return value if chosen is None else self._walk(chosen, value, depth + 1)
        if isinstance(value, dict) and "properties" in schema:
            for key in self._nulls.get(id(schema), ()):
                if key in value and value[key] is None:
                    del value[key]
            for key, sub in schema["properties"].items():
                if key in value:
                    value[key] = self._walk(sub, value[key], depth + 1)
        elif isinstance(value, list):
            if id(schema) in self._pairs:
                return self._mapping(schema, value, depth)
            prefix = schema.get("prefixItems")
            if prefix is not None:
                for index, sub in enumerate(prefix[: len(value)]):
                    value[index] = self._walk(sub, value[index], depth + 1)
            elif isinstance(schema.get("items"), dict):
                for index, item in enumerate(value):
                    value[index] = self._walk(schema["items"], item, depth + 1)
        return value

    def _mapping(self, schema: dict[str, Any], entries: list[Any], depth: int) -> Any:
        if not all(_is_entry(entry) for entry in entries):
            return entries  # not key/value entries: the validator explains what it wanted
        value_schema = schema["items"]["properties"]["value"]
        return {
            entry["key"]: self._walk(value_schema, entry["value"], depth + 1) for entry in entries
        }

    def _choose(self, options: list[Any], value: Any) -> dict[str, Any] | None:
        resolved = [self._resolve(option) for option in options if isinstance(option, dict)]
        if isinstance(value, dict):
            objects = [option for option in resolved if "properties" in option]
            keys = set(value)
            for option in objects:
                if set(option["properties"]) == keys:
                    return option
            return next((o for o in objects if keys <= set(o["properties"])), None)
        if isinstance(value, list):
            arrays = [option for option in resolved if option.get("type") == "array"]
            mappings = [option for option in arrays if id(option) in self._pairs]
            lists = [option for option in arrays if id(option) not in self._pairs]
            preferred = (
                mappings + lists if value and all(_is_entry(e) for e in value) else lists + mappings
            )
            return preferred[0] if preferred else None
        return None


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.keys() == {"key", "value"}
