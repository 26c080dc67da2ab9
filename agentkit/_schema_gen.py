"""A tool's argument model to its full JSON Schema: pydantic's generator, saying everything
the validator checks that JSON Schema can say, then tidied (no titles, unknown fields
refused on every object).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, PydanticJsonSchemaWarning
from pydantic_core import core_schema

from ._errors import ToolDefinitionError
from ._schema_formats import (
    ANY_URL,
    HOST_SCHEMES,
    INTEGER_KEY_PATTERN,
    PATTERNS,
    URL_WITH_HOST,
    decimal_pattern,
)
from ._schema_walk import nodes

__all__ = ["json_schema"]

_FORMATS_FROM_METADATA = frozenset({"ipv4", "ipv6", "ipvanyaddress"})


class _SchemaGenerator(GenerateJsonSchema):
    """pydantic's generator, saying everything the validator checks that it can say.

    * patterns for the date, time, duration, UUID, URL, IP address and decimal string forms;
    * integer-keyed mappings name the key form (``propertyNames``);
    * a discriminated union requires the tag in each member, as the validator does even
      when the member's model gives the tag a default.
    """

    def _with_pattern(self, schema: JsonSchemaValue) -> JsonSchemaValue:
        pattern = PATTERNS.get(schema.get("format", ""))
        if pattern is not None and "pattern" not in schema:
            schema["pattern"] = pattern
        return schema

    def date_schema(self, schema: core_schema.DateSchema) -> JsonSchemaValue:
        return self._with_pattern(super().date_schema(schema))

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        return self._with_pattern(super().datetime_schema(schema))

    def time_schema(self, schema: core_schema.TimeSchema) -> JsonSchemaValue:
        return self._with_pattern(super().time_schema(schema))

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> JsonSchemaValue:
        return self._with_pattern(super().timedelta_schema(schema))

    def uuid_schema(self, schema: core_schema.UuidSchema) -> JsonSchemaValue:
        return self._with_pattern(super().uuid_schema(schema))

    def url_schema(self, schema: core_schema.UrlSchema) -> JsonSchemaValue:
        json_schema = super().url_schema(schema)
        schemes = schema.get("allowed_schemes")
        if not schemes:
            json_schema.setdefault("pattern", ANY_URL)
        else:
            names = "|".join(re.escape(name) for name in schemes)
            rest = URL_WITH_HOST if set(schemes) <= HOST_SCHEMES else ":\\S+$"
            json_schema.setdefault("pattern", f"^({names}){rest}")
        return json_schema

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        keys = schema.get("keys_schema", {})
        if keys.get("type") == "int" and "propertyNames" not in json_schema:
            json_schema["propertyNames"] = {"pattern": INTEGER_KEY_PATTERN}
        return json_schema

    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        json_schema = super().tagged_union_schema(schema)
        tag = json_schema.get("discriminator", {}).get("propertyName")
        if isinstance(tag, str):
            for member in json_schema.get("oneOf", ()):
                required = member.setdefault("required", [])
                if tag not in required:
                    required.append(tag)
        return json_schema

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        # pydantic's pattern uses a lookahead, which strict mode cannot keep, and puts the
        # constraints on the number form only (pydantic 2.14 drops the pattern altogether);
        # this one has no lookaround and carries what a pattern can say of the constraints
        # to the string form too
        json_schema = super().decimal_schema(schema)
        for option in json_schema.get("anyOf", ()):
            if option.get("type") == "string":
                option["pattern"] = decimal_pattern(schema)
        return json_schema


def json_schema(model: type[BaseModel], display: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            # a default that is not JSON-serialisable is left out of the schema, by design
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
            schema = model.model_json_schema(mode="validation", schema_generator=_SchemaGenerator)
    except Exception as exc:
        raise ToolDefinitionError(
            f"Cannot describe the parameters of {display} as JSON Schema: {exc}"
        ) from exc
    _tidy(schema)
    # the top level in reading order: what the object is, then the definitions it uses
    order = ("type", "description", "properties", "required", "additionalProperties")
    tidy = {key: schema.pop(key) for key in order if key in schema}
    tidy.setdefault("properties", {})
    tidy.update(schema)
    return tidy


def _tidy(schema: dict[str, Any]) -> None:
    """Drop titles; forbid unknown fields on every object with named fields, and keys
    outside the pattern of a mapping with constrained keys (in place)."""
    for node in nodes(schema):
        node.pop("title", None)
        if "properties" in node and not isinstance(node.get("additionalProperties"), dict):
            # the validator refuses unknown fields everywhere (extra="forbid" at validation)
            node["additionalProperties"] = False
        elif "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        if node.get("format") in _FORMATS_FROM_METADATA and "pattern" not in node:
            # types whose schema pydantic writes without a generator method (ipaddress)
            node["pattern"] = PATTERNS[node["format"]]
