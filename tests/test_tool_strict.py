"""@tool(strict=True): OpenAI's structured-outputs subset, checked on every supported type.

The rules (every property required, optional ones nullable, ``additionalProperties: false``
on every object, only keywords the subset accepts) are checked by ``assert_strict_subset``
on the schema of every case in ``TYPE_CASES``. Valid values, rewritten the way a strict
model writes them (every property present, null for "not given", mappings as key/value
lists), are accepted by the strict schema and by the tool, and arrive as the same Python
values as in non-strict mode.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import jsonschema
import pytest
from pydantic import BaseModel, Field
from test_tool_schema import (
    CASE_IDS,
    TYPE_CASES,
    Box,
    Case,
    Color,
    Node,
    Point,
    iter_schemas,
    make_tool,
    schema_accepts,
    tool_accepts,
)

from agentkit import ToolDefinitionError, tool
from agentkit._schema_compact import compact_json_schema
from agentkit._schema_strict import to_strict_json_schema

ALLOWED_KEYWORDS = {
    "type",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "anyOf",
    "enum",
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
ALLOWED_FORMATS = {
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
}


def assert_strict_subset(schema: dict[str, Any]) -> None:
    """Fail unless ``schema`` keeps every rule of OpenAI's strict structured outputs."""
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object", "the root is an object"
    for sub in iter_schemas(schema):
        unknown = set(sub) - ALLOWED_KEYWORDS
        assert not unknown, f"keywords outside the subset: {unknown} in {sub}"
        if sub.get("type") == "object" or "properties" in sub:
            assert sub["additionalProperties"] is False, sub
            assert sub["required"] == list(sub["properties"]), sub
        if "format" in sub:
            assert sub["format"] in ALLOWED_FORMATS, sub
        if "pattern" in sub:
            assert "(?=" not in sub["pattern"] and "(?!" not in sub["pattern"], sub
        if sub is not schema and not sub.keys() <= {"description"}:
            typed = {"type", "$ref", "anyOf", "enum"} & sub.keys()
            assert typed, f"a schema without a type: {sub}"
        if "$ref" in sub:
            assert set(sub) == {"$ref"}, f"$ref with siblings: {sub}"
        if isinstance(sub.get("type"), list):  # the short spelling of an optional scalar
            assert len(sub["type"]) == 2 and sub["type"][1] == "null", sub


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return root["$defs"][ref.rsplit("/", 1)[-1]] if ref else schema


def as_strict_model_writes_it(root: dict[str, Any], schema: dict[str, Any], value: Any) -> Any:
    """A valid value rewritten in the strict shape: every property present, mappings as lists.

    This is what a model under strict structured outputs produces; it is written from the
    schema alone, independently of the tool's decoder, so the round trip checks both.
    """
    schema = _resolve(root, schema)
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            fields = _resolve(root, option).get("properties")
            if isinstance(value, dict) and fields is not None and not value.keys() <= fields.keys():
                continue  # a member without some of the value's fields: not the one meant
            candidate = as_strict_model_writes_it(root, option, value)
            if schema_accepts({**root, **_resolve(root, option)}, candidate):
                return candidate
        return value
    entry_keys = schema.get("items", {}).get("properties", {}).keys()
    if schema.get("type") == "array" and isinstance(value, dict) and entry_keys == {"key", "value"}:
        entry = schema["items"]["properties"]["value"]
        return [
            {"key": key, "value": as_strict_model_writes_it(root, entry, item)}
            for key, item in value.items()
        ]
    if isinstance(value, dict) and "properties" in schema:
        return {
            key: as_strict_model_writes_it(root, sub, value[key]) if key in value else None
            for key, sub in schema["properties"].items()
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [as_strict_model_writes_it(root, schema["items"], item) for item in value]
    if isinstance(value, list) and "prefixItems" in schema:
        return [
            as_strict_model_writes_it(root, sub, item)
            for sub, item in zip(schema["prefixItems"], value, strict=False)
        ]
    return value


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_strict_schema_keeps_the_subset_rules(case: Case) -> None:
    strict = make_tool(case.annotation, strict=True)
    assert_strict_subset(strict.parameters)
    assert_strict_subset(strict.validation_parameters)
    assert strict.to_openai()["function"]["strict"] is True


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_strict_values_validate_and_arrive_like_non_strict_ones(case: Case) -> None:
    loose = make_tool(case.annotation)
    strict = make_tool(case.annotation, strict=True)
    for value in case.valid:
        written = as_strict_model_writes_it(strict.parameters, strict.parameters, {"value": value})
        assert schema_accepts(strict.parameters, written), f"strict schema refuses {written!r}"
        expected = loose.call(loose.validate_json(json.dumps({"value": value})))
        assert strict.call(strict.validate_json(json.dumps(written))) == expected


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_strict_tool_still_refuses_invalid_values(case: Case) -> None:
    strict = make_tool(case.annotation, strict=True)
    for value in case.invalid:
        if schema_accepts(strict.validation_parameters, {"value": value}):
            continue  # valid in the strict shape ([] is an empty mapping there)
        assert not tool_accepts(strict, {"value": value}), f"strict tool accepts {value!r}"


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_strict_schema_never_refuses_what_the_tool_accepts_in_strict_shape(case: Case) -> None:
    strict = make_tool(case.annotation, strict=True)
    for value in case.valid + case.invalid:
        written = as_strict_model_writes_it(strict.parameters, strict.parameters, {"value": value})
        if tool_accepts(strict, written):
            assert schema_accepts(strict.parameters, written), written
            assert schema_accepts(strict.validation_parameters, written), written


# --- the individual rules ----------------------------------------------------------------------


def test_optional_parameters_become_required_and_nullable() -> None:
    @tool(strict=True)
    def f(
        city: str,
        days: Annotated[int, Field(description="Days ahead.")] = 3,
        note: str | None = "x",
        color: Color = Color.RED,
    ) -> tuple[str, int, str | None, Color]:
        """F."""
        return city, days, note, color

    props = f.validation_parameters["properties"]
    assert f.validation_parameters["required"] == ["city", "days", "note", "color"]
    assert props["city"] == {"type": "string"}
    assert props["days"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}],
        "description": "Days ahead.",
    }
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["color"] == {"anyOf": [{"$ref": "#/$defs/Color"}, {"type": "null"}]}
    assert "default" not in json.dumps(f.validation_parameters)
    # sent: the same, written short (nullable scalars, the enum in place)
    sent = f.parameters
    assert sent["required"] == ["city", "days", "note", "color"]
    assert sent["properties"]["days"] == {"type": ["integer", "null"], "description": "Days ahead."}
    assert sent["properties"]["note"] == {"type": ["string", "null"]}
    assert sent["properties"]["color"] == {
        "description": "A colour.",
        "enum": ["red", "green", None],
        "type": ["string", "null"],
    }
    assert "$defs" not in sent

    # null means "not given" (the default) unless the type itself accepts None
    args = '{"city": "a", "days": null, "note": null, "color": null}'
    assert f.call(f.validate_json(args)) == ("a", 3, None, Color.RED)
    args = '{"city": "a", "days": 5, "note": "n", "color": "green"}'
    assert f.call(f.validate_json(args)) == ("a", 5, "n", Color.GREEN)


def test_nested_optional_fields_are_nullable_and_null_means_default() -> None:
    class Line(BaseModel):
        sku: str
        qty: int = 1
        gift: bool | None = None

    @tool(strict=True)
    def f(lines: list[Line]) -> list[Line]:
        """F."""
        return lines

    line = f.validation_parameters["$defs"]["Line"]
    assert line["required"] == ["sku", "qty", "gift"]
    assert line["properties"]["qty"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    sent = f.parameters["properties"]["lines"]["items"]
    assert sent["required"] == ["sku", "qty", "gift"]
    assert sent["properties"]["qty"] == {"type": ["integer", "null"]}
    args = (
        '{"lines": [{"sku": "a", "qty": null, "gift": null}, {"sku": "b", "qty": 4, "gift": true}]}'
    )
    assert f.call(f.validate_json(args)) == [
        Line(sku="a", qty=1, gift=None),
        Line(sku="b", qty=4, gift=True),
    ]


def test_mapping_becomes_a_list_of_entries_and_back() -> None:
    @tool(strict=True)
    def f(stock: dict[str, int], boxes: dict[str, Box] | None = None) -> Any:
        """F."""
        return stock, boxes

    stock = f.parameters["properties"]["stock"]
    assert stock == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"key": {"type": "string"}, "value": {"type": "integer"}},
            "required": ["key", "value"],
            "additionalProperties": False,
        },
    }
    args = {
        "stock": [{"key": "apples", "value": 3}, {"key": "pears", "value": 0}],
        "boxes": [{"key": "big", "value": {"width": 2, "height": None}}],
    }
    assert schema_accepts(f.parameters, args)
    assert f.call(f.validate_json(json.dumps(args))) == (
        {"apples": 3, "pears": 0},
        {"big": Box(width=2, height=1.0)},
    )
    assert f.call(f.validate_json('{"stock": [], "boxes": null}')) == ({}, None)


def test_recursive_models_keep_their_references() -> None:
    strict = make_tool(Node, strict=True)
    node = strict.parameters["$defs"]["Node"]
    assert node["properties"]["children"] == {
        "anyOf": [{"type": "array", "items": {"$ref": "#/$defs/Node"}}, {"type": "null"}]
    }
    args = {"value": {"value": 1, "children": [{"value": 2, "children": None}]}}
    assert schema_accepts(strict.parameters, args)
    result = strict.call(strict.validate_json(json.dumps(args)))
    assert result == Node(value=1, children=[Node(value=2)])


def test_unsupported_keywords_are_dropped_and_still_enforced() -> None:
    @tool(strict=True)
    def f(
        code: Annotated[str, Field(min_length=2, max_length=4, pattern="^[A-Z]+$")],
        tags: set[str],
        n: Annotated[int, Field(ge=1, le=5)],
    ) -> None:
        """F."""

    props = f.parameters["properties"]
    # the description tells the model what the subset cannot say
    assert props["code"] == {
        "type": "string",
        "pattern": "^[A-Z]+$",
        "description": "minLength=2, maxLength=4",
    }
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "uniqueItems=true",
    }
    assert props["n"] == {"type": "integer", "minimum": 1, "maximum": 5}
    with pytest.raises(Exception, match="at least 2 characters"):
        f.validate_json('{"code": "A", "tags": [], "n": 1}')


def test_formats_outside_the_subset_are_dropped() -> None:
    import decimal
    import pathlib

    @tool(strict=True)
    def f(path: pathlib.Path, amount: decimal.Decimal) -> None:
        """F."""

    props = f.parameters["properties"]
    assert props["path"] == {"type": "string", "description": "format=path"}
    # the decimal pattern has no lookaround, so it stays in the full schema; the model is
    # sent the number form beside a plain string
    full = f.validation_parameters["properties"]
    assert full["amount"]["anyOf"][1]["pattern"] == (
        r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,18})?$"
    )
    assert props["amount"] == {"anyOf": [{"type": "number"}, {"type": "string"}]}


def test_patterns_with_lookaround_are_dropped() -> None:
    schema = {
        "type": "object",
        "properties": {"word": {"type": "string", "pattern": "^(?!bad)[a-z]+$"}},
        "required": ["word"],
    }
    assert to_strict_json_schema(schema)["properties"]["word"] == {
        "type": "string",
        "description": "pattern=^(?!bad)[a-z]+$",
    }


def test_model_and_point_descriptions_survive() -> None:
    @tool(strict=True)
    def f(p: Annotated[Point, Field(description="Where.")]) -> None:
        """F."""

    assert f.validation_parameters["properties"]["p"] == {
        "anyOf": [{"$ref": "#/$defs/Point"}],
        "description": "Where.",
    }
    point = f.validation_parameters["$defs"]["Point"]
    assert point["description"] == "A point on the plane."
    # used once, the model is sent it in place, both descriptions kept
    assert f.parameters["properties"]["p"] == {
        "anyOf": [compact_json_schema(point)],
        "description": "Where.",
    }


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (Any, "accepts any JSON value"),
        (list, "needs a type for the items"),
        (dict, "needs a type for the values"),
        (dict[str, Any], "needs a type for the values"),
    ],
)
def test_what_strict_mode_cannot_say_is_a_definition_error(annotation: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        make_tool(annotation, strict=True)
    make_tool(annotation)  # fine without strict


def test_to_strict_json_schema_leaves_its_input_alone() -> None:
    loose = make_tool(Point).parameters
    before = json.dumps(loose, sort_keys=True)
    strict = to_strict_json_schema(loose)
    assert json.dumps(loose, sort_keys=True) == before
    assert_strict_subset(strict)


def test_non_strict_tool_has_no_strict_flag() -> None:
    loose = make_tool(int)
    assert "strict" not in loose.to_openai()["function"]
