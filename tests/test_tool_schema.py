"""@tool: the JSON Schema derived from a signature, for every supported type.

``TYPE_CASES`` is the table of supported parameter types with JSON values the tool must
accept and refuse; the strict-mode and property tests reuse it. For every case the
schema is valid Draft 2020-12 and jsonschema's verdict on each value equals the tool's.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import ipaddress
import json
import pathlib
import typing
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, Optional, Union

import jsonschema
import pydantic
import pytest
import typing_extensions
from pydantic import BaseModel, Field

from agentkit import RunContext, Tool, ToolArgumentsError, ToolDefinitionError, tool
from agentkit._schema_compact import compact_json_schema

# --- the types (module level, so string annotations resolve) ----------------------------


class Color(enum.Enum):
    """A colour."""

    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(BaseModel):
    """A point on the plane."""

    x: int
    y: int = 0


@dataclasses.dataclass
class Box:
    width: float
    height: float = 1.0


class Movie(typing_extensions.TypedDict):
    title: str
    year: typing_extensions.NotRequired[int]


class StdMovie(typing.TypedDict, total=False):
    """A movie, as a typing.TypedDict (pydantic alone refuses these on Python 3.11)."""

    title: typing.Required[str]
    year: int


class StdTree(typing.TypedDict):
    name: str
    kids: list[StdTree]


class Size(enum.Enum):
    SMALL = 1
    LARGE = "large"


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"] = "dog"
    good: bool = True


@dataclasses.dataclass
class Shelf:
    """A dataclass holding a typing.TypedDict (pydantic alone refuses it on Python 3.11)."""

    label: str
    movie: StdMovie


class Node(BaseModel):
    value: int
    children: list[Node] = []


class Outer(BaseModel):
    point: Point
    boxes: list[Box] = []
    tags: dict[str, Level] = {}


UUID1 = "12345678-1234-5678-1234-567812345678"


@dataclasses.dataclass(frozen=True)
class Case:
    """A parameter type, JSON values it must accept and refuse, and a check on the result."""

    id: str
    annotation: Any
    valid: list[Any]
    invalid: list[Any]
    check: Callable[[Any], bool] = lambda value: True


TYPE_CASES: list[Case] = [
    Case("str", str, ["a", "", "ü"], [1, None, True, ["a"]], lambda v: isinstance(v, str)),
    Case(
        "int",
        int,
        [0, -5, 10**20, 3.0],
        ["3", 1.5, True, None],
        lambda v: type(v) is int,
    ),
    Case("float", float, [1.5, 2, -0.0], ["1.5", True, None], lambda v: type(v) is float),
    Case("bool", bool, [True, False], [0, 1, "true", None], lambda v: type(v) is bool),
    Case("None", None, [None], [0, "", False, []], lambda v: v is None),
    Case("Optional[int]", Optional[int], [None, 3], ["x", 1.5], lambda v: v in (None, 3)),  # noqa: UP045
    Case("int | None", int | None, [None, 3], ["x", 1.5, []]),
    Case("Union[int, str]", Union[int, str], [1, "a"], [1.5, None, []]),  # noqa: UP007
    Case("Literal[str]", Literal["a", "b"], ["a", "b"], ["c", 1, None]),
    Case("Literal[int]", Literal[1, 2], [1, 2.0], [3, "1", True]),
    Case("Literal[True]", Literal[True], [True], [False, 1, "true"]),
    Case("Enum", Color, ["red", "green"], ["RED", "blue", 1], lambda v: isinstance(v, Color)),
    Case("IntEnum", Level, [1, 2], [3, "1", "LOW", True], lambda v: isinstance(v, Level)),
    Case("Enum of mixed values", Size, [1, "large"], [True, "1", "LARGE"], lambda v: v in Size),
    Case("list[int]", list[int], [[], [1, 2]], [[1, "a"], "1", None, {}]),
    Case(
        "set[str]", set[str], [["a", "b"], []], [[1], "a", ["a", "a"]], lambda v: isinstance(v, set)
    ),
    Case(
        "frozenset[int]",
        frozenset[int],
        [[1, 2], []],
        [[1, 1], [1, 1.0], ["1"]],
        lambda v: isinstance(v, frozenset),
    ),
    Case(
        "tuple[int, str]",
        tuple[int, str],
        [[1, "a"]],
        [[1], [1, "a", 2], ["a", 1]],
        lambda v: v == (1, "a"),
    ),
    Case("tuple[int, ...]", tuple[int, ...], [[], [1, 2, 3]], [["a"], [1.5], 1]),
    Case("dict[str, int]", dict[str, int], [{}, {"a": 1}], [{"a": "x"}, [], None]),
    Case(
        "dict[int, str]",
        dict[int, str],
        [{}, {"1": "a", "-2": "b"}],
        [{"one": "a"}, {"1.5": "a"}, {"1": 1}],
        lambda v: all(type(k) is int for k in v),
    ),
    Case(
        "dict[Color, int]",
        dict[Color, int],
        [{}, {"red": 1}],
        [{"blue": 1}, {"RED": 1}],
        lambda v: all(isinstance(k, Color) for k in v),
    ),
    Case(
        "dict[pattern, int]",
        dict[Annotated[str, Field(pattern="^[a-z]+$")], int],
        [{}, {"ab": 1}],
        [{"AB": 1}, {"a1": 1}, {"ab": "1"}],
    ),
    Case(
        "datetime",
        datetime.datetime,
        ["2024-01-02T10:00:00Z", "2024-01-02 10:00", "2024-01-02T10:00:00.5+05:30"],
        ["tomorrow", 1700000000, "2024-01-02", None],
        lambda v: isinstance(v, datetime.datetime),
    ),
    Case(
        "date",
        datetime.date,
        ["2024-01-02"],
        ["2024-01-02T00:00:00", "02/01/2024", 20240102],
        lambda v: v == datetime.date(2024, 1, 2),
    ),
    Case(
        "time",
        datetime.time,
        ["10:00", "10:00:00.5Z"],
        ["25", 3600, "ten"],
        lambda v: isinstance(v, datetime.time),
    ),
    Case(
        "UUID", uuid.UUID, [UUID1], ["not-a-uuid", 123, UUID1[:-1]], lambda v: v == uuid.UUID(UUID1)
    ),
    Case(
        "Decimal",
        decimal.Decimal,
        ["1.5", 1.5, 2, "-0.25"],
        ["abc", True, None, []],
        lambda v: isinstance(v, decimal.Decimal),
    ),
    Case("Path", pathlib.Path, ["a/b.txt"], [1, None], lambda v: v == pathlib.Path("a/b.txt")),
    Case(
        "timedelta",
        datetime.timedelta,
        ["PT1H", "P1DT2H30M", "PT0.5S", "PT1.5H", "-P1D", "1 day, 01:00:00", "01:30:00"],
        ["an hour", "P", "PT", 3600, "PT1H1D", "P0.5DT1H", "01:75"],
        lambda v: isinstance(v, datetime.timedelta),
    ),
    Case(
        "HttpUrl",
        pydantic.HttpUrl,
        ["https://example.com/a?b=c", "http://localhost:8080"],
        ["example.com", "ftp://example.com", "https://", "https://a b.com", 5],
        lambda v: isinstance(v, pydantic.HttpUrl),
    ),
    Case(
        "AnyUrl",
        pydantic.AnyUrl,
        ["mailto:a@example.com", "file:///tmp/x", "https://example.com"],
        ["example", "", 5],
    ),
    Case(
        "IPv4Address",
        ipaddress.IPv4Address,
        ["10.0.0.1", "255.255.255.255"],
        ["256.0.0.1", "10.0.0", "01.2.3.4", "::1"],
        lambda v: isinstance(v, ipaddress.IPv4Address),
    ),
    Case(
        "IPv6Address",
        ipaddress.IPv6Address,
        ["::1", "fe80::1", "2001:db8::ff00:42:8329"],
        ["10.0.0.1", "::g", "host"],
        lambda v: isinstance(v, ipaddress.IPv6Address),
    ),
    Case(
        "BaseModel",
        Point,
        [{"x": 1}, {"x": 1, "y": 2}],
        [{"y": 1}, {"x": "1"}, {"x": 1, "z": 0}, [1, 2]],
        lambda v: isinstance(v, Point),
    ),
    Case(
        "dataclass",
        Box,
        [{"width": 1.5}, {"width": 1, "height": 2}],
        [{"height": 1.0}, {"width": "1"}, {"width": 1, "depth": 1}],
        lambda v: isinstance(v, Box),
    ),
    Case(
        "TypedDict",
        Movie,
        [{"title": "x"}, {"title": "x", "year": 1999}],
        [{"year": 1999}, {"title": "x", "extra": 1}, {"title": 5}],
        lambda v: isinstance(v, dict),
    ),
    Case(
        "typing.TypedDict",
        StdMovie,
        [{"title": "x"}, {"title": "x", "year": 1999}],
        [{"year": 1999}, {"title": "x", "extra": 1}],
        lambda v: isinstance(v, dict),
    ),
    Case(
        "recursive typing.TypedDict",
        StdTree,
        [{"name": "a", "kids": []}, {"name": "a", "kids": [{"name": "b", "kids": []}]}],
        [{"name": "a"}, {"name": "a", "kids": [{"name": 1, "kids": []}]}],
    ),
    Case(
        "recursive model",
        Node,
        [{"value": 1}, {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}],
        [{"value": 1, "children": [{"value": "x"}]}, {"children": []}],
        lambda v: isinstance(v, Node),
    ),
    Case(
        "nested models",
        Outer,
        [{"point": {"x": 1}}, {"point": {"x": 1}, "boxes": [{"width": 2}], "tags": {"a": 1}}],
        [{"point": {"x": 1}, "boxes": [{"height": 2}]}, {"point": {"x": 1}, "tags": {"a": 5}}],
        lambda v: isinstance(v, Outer),
    ),
    Case("Annotated ge/le", Annotated[int, Field(ge=0, le=10)], [0, 10], [-1, 11]),
    Case(
        "Annotated str constraints",
        Annotated[str, Field(min_length=2, max_length=3, pattern="^[a-z]+$")],
        ["ab", "abc"],
        ["a", "abcd", "AB"],
    ),
    Case("Annotated list length", Annotated[list[int], Field(min_length=1)], [[1]], [[]]),
    Case("Annotated gt", Annotated[float, Field(gt=0)], [0.5, 1], [0, -1]),
    Case(
        "discriminated union, tags with defaults",
        Annotated[Union[Cat, Dog], Field(discriminator="kind")],  # noqa: UP007
        [{"kind": "cat"}, {"kind": "dog", "good": False}],
        [{"lives": 3}, {"good": True}, {"kind": "cow"}],
        lambda v: isinstance(v, Cat | Dog),
    ),
    Case(
        "dataclass with a typing.TypedDict field",
        Shelf,
        [
            {"label": "a", "movie": {"title": "x"}},
            {"label": "a", "movie": {"title": "x", "year": 1}},
        ],
        [{"label": "a", "movie": {}}, {"label": "a", "movie": {"title": "x", "rating": 5}}],
        lambda v: type(v) is Shelf,
    ),
]

CASE_IDS = [case.id for case in TYPE_CASES]


def make_tool(annotation: Any, *, strict: bool = False) -> Tool[..., Any]:
    """A one-parameter tool ``check(value: annotation)`` that returns what it receives."""

    def check(value: Any) -> Any:
        return value

    check.__annotations__ = {"value": annotation, "return": Any}
    return tool(check, strict=strict)


def tool_accepts(t: Tool[..., Any], arguments: Any) -> bool:
    import json

    try:
        t.validate_json(json.dumps(arguments))
    except ToolArgumentsError:
        return False
    return True


def schema_accepts(schema: dict[str, Any], arguments: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(arguments)


def iter_schemas(schema: Any) -> typing.Iterator[dict[str, Any]]:
    """Every subschema (every dict in a schema position), depth first."""
    if isinstance(schema, dict):
        yield schema
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    yield from iter_schemas(sub)
            elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
                for sub in value:
                    yield from iter_schemas(sub)
            elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
                yield from iter_schemas(value)


# --- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_schema_is_valid_draft_2020_12_without_titles(case: Case) -> None:
    t = make_tool(case.annotation)
    jsonschema.Draft202012Validator.check_schema(t.parameters)
    assert t.parameters["type"] == "object"
    assert t.parameters["required"] == ["value"]
    assert t.parameters["additionalProperties"] is False
    assert all("title" not in sub for sub in iter_schemas(t.parameters))


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_schema_and_validator_agree_on_labelled_values(case: Case) -> None:
    t = make_tool(case.annotation)
    full = t.validation_parameters
    for value in case.valid:
        arguments = {"value": value}
        assert schema_accepts(full, arguments), f"schema refuses valid {value!r}"
        assert schema_accepts(t.parameters, arguments), f"sent schema refuses valid {value!r}"
        assert tool_accepts(t, arguments), f"tool refuses valid {value!r}"
    for value in case.invalid:
        arguments = {"value": value}
        assert not schema_accepts(full, arguments), f"schema accepts invalid {value!r}"
        assert not tool_accepts(t, arguments), f"tool accepts invalid {value!r}"


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_the_sent_schema_is_the_full_one_compacted(case: Case) -> None:
    t = make_tool(case.annotation)
    jsonschema.Draft202012Validator.check_schema(t.validation_parameters)
    assert t.parameters == compact_json_schema(t.validation_parameters)
    assert len(json.dumps(t.parameters)) <= len(json.dumps(t.validation_parameters))


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_valid_values_arrive_as_the_annotated_python_type(case: Case) -> None:
    import json

    t = make_tool(case.annotation)
    for value in case.valid:
        result = t.call(t.validate_json(json.dumps({"value": value})))
        assert case.check(result), f"{value!r} arrived as {result!r}"


@pytest.mark.parametrize("case", TYPE_CASES, ids=CASE_IDS)
def test_unknown_arguments_are_refused_by_schema_and_tool(case: Case) -> None:
    t = make_tool(case.annotation)
    arguments = {"value": case.valid[0], "surprise": 1}
    assert not schema_accepts(t.parameters, arguments)
    assert not tool_accepts(t, arguments)


# --- specific shapes ------------------------------------------------------------------------


def test_simple_types_map_to_their_json_types() -> None:
    @tool
    def f(s: str, i: int, x: float, b: bool, n: None) -> None:
        """Simple."""

    props = f.parameters["properties"]
    assert props == {
        "s": {"type": "string"},
        "i": {"type": "integer"},
        "x": {"type": "number"},
        "b": {"type": "boolean"},
        "n": {"type": "null"},
    }
    assert f.parameters["required"] == ["s", "i", "x", "b", "n"]


def test_optional_union_literal_and_enums() -> None:
    @tool
    def f(
        a: Optional[int],  # noqa: UP045
        b: str | None,
        c: Union[int, str],  # noqa: UP007
        d: Literal["x", "y"],
        e: Color,
        g: Level,
    ) -> None:
        """Unions."""

    full = f.validation_parameters
    props = full["properties"]
    assert props["a"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["b"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["c"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert props["d"] == {"enum": ["x", "y"], "type": "string"}
    assert props["e"] == {"$ref": "#/$defs/Color"}
    assert full["$defs"]["Color"]["enum"] == ["red", "green"]
    assert full["$defs"]["Level"]["enum"] == [1, 2]
    assert full["$defs"]["Level"]["type"] == "integer"
    # sent: the short spelling of an optional scalar, each enum where it is used
    sent = f.parameters["properties"]
    assert sent["a"] == {"type": ["integer", "null"]}
    assert sent["b"] == {"type": ["string", "null"]}
    assert sent["c"] == props["c"] and sent["d"] == props["d"]
    assert sent["e"] == full["$defs"]["Color"]
    assert sent["g"] == full["$defs"]["Level"]
    assert "$defs" not in f.parameters


def test_collections() -> None:
    @tool
    def f(
        a: list[int], b: set[str], c: tuple[int, str], d: tuple[float, ...], e: dict[str, bool]
    ) -> None:
        """Collections."""

    props = f.parameters["properties"]
    assert props["a"] == {"type": "array", "items": {"type": "integer"}}
    assert props["b"] == {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    assert props["c"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert props["d"] == {"type": "array", "items": {"type": "number"}}
    assert props["e"] == {"type": "object", "additionalProperties": {"type": "boolean"}}


def test_string_formats_carry_a_checked_pattern_that_is_never_sent() -> None:
    @tool
    def f(
        a: datetime.datetime,
        b: datetime.date,
        c: datetime.time,
        d: uuid.UUID,
        e: decimal.Decimal,
        g: pathlib.Path,
    ) -> None:
        """Formats."""

    props = f.validation_parameters["properties"]
    assert props["a"]["format"] == "date-time"
    assert props["b"]["format"] == "date"
    assert props["c"]["format"] == "time"
    assert props["d"]["format"] == "uuid"
    assert all("pattern" in props[name] for name in "abcd")
    assert props["e"]["anyOf"][0] == {"type": "number"}
    assert "pattern" in props["e"]["anyOf"][1]
    assert props["g"] == {"type": "string", "format": "path"}
    # the model is sent the format, not a calendar regex that restates it
    sent = f.parameters["properties"]
    for name, form in zip("abcd", ("date-time", "date", "time", "uuid"), strict=True):
        assert sent[name] == {"type": "string", "format": form}, name
    assert sent["e"] == {"anyOf": [{"type": "number"}, {"type": "string"}]}
    assert sent["g"] == props["g"]


def test_models_dataclasses_and_typeddicts_become_defs_with_descriptions() -> None:
    @tool
    def f(p: Point, b: Box, m: Movie, s: StdMovie) -> None:
        """Structured."""

    defs = f.validation_parameters["$defs"]
    assert f.validation_parameters["properties"]["p"] == {"$ref": "#/$defs/Point"}
    assert defs["Point"]["description"] == "A point on the plane."
    assert defs["Point"]["properties"]["y"] == {"type": "integer", "default": 0}
    assert defs["Point"]["required"] == ["x"]
    assert defs["Box"]["required"] == ["width"]
    assert defs["Movie"]["required"] == ["title"]
    assert defs["StdMovie"]["required"] == ["title"]
    assert set(defs["StdMovie"]["properties"]) == {"title", "year"}
    for name in ("Point", "Box", "Movie", "StdMovie"):
        assert defs[name]["additionalProperties"] is False
    # each is used once: the model is sent it in place
    assert "$defs" not in f.parameters
    for prop, name in (("p", "Point"), ("b", "Box"), ("m", "Movie"), ("s", "StdMovie")):
        assert f.parameters["properties"][prop] == compact_json_schema(defs[name]), prop


def test_recursive_model_uses_a_self_reference() -> None:
    @tool
    def f(tree: Node) -> Node:
        """Recursive."""
        return tree

    node = f.parameters["$defs"]["Node"]
    assert node["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    deep: dict[str, Any] = {"value": 0}
    for i in range(1, 30):
        deep = {"value": i, "children": [deep]}
    import json

    assert f.call(f.validate_json(json.dumps({"tree": deep}))).value == 29


def test_annotated_constraints_become_keywords() -> None:
    @tool
    def f(
        a: Annotated[int, Field(ge=1, le=7)],
        b: Annotated[float, Field(gt=0, lt=1, multiple_of=0.25)],
        c: Annotated[str, Field(min_length=1, max_length=5, pattern=r"^[a-z]+$")],
        d: Annotated[list[int], Field(min_length=1, max_length=3)],
    ) -> None:
        """Constraints."""

    props = f.parameters["properties"]
    assert props["a"] == {"type": "integer", "minimum": 1, "maximum": 7}
    assert props["b"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "exclusiveMaximum": 1,
        "multipleOf": 0.25,
    }
    assert props["c"] == {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"}
    assert props["d"] == {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 1,
        "maxItems": 3,
    }


def test_defaults_make_parameters_optional_and_are_shown() -> None:
    @tool
    def f(
        city: str,
        days: int = 3,
        unit: Literal["c", "f"] = "c",
        color: Color = Color.GREEN,
        when: datetime.date = datetime.date(2024, 1, 2),
        note: str | None = None,
        opaque: object = object(),
    ) -> None:
        """Defaults."""

    props = f.parameters["properties"]
    assert f.parameters["required"] == ["city"]
    assert props["days"]["default"] == 3
    assert props["unit"]["default"] == "c"
    assert props["color"]["default"] == "green"
    assert props["when"]["default"] == "2024-01-02"
    assert "default" not in props["opaque"]
    # a null default says nothing that not being required does not: it is not sent
    assert f.validation_parameters["properties"]["note"]["default"] is None
    assert props["note"] == {"type": ["string", "null"]}


def test_keyword_only_and_positional_only_parameters() -> None:
    @tool
    def f(a: int, /, b: int, *, c: int, d: int = 4) -> tuple[int, int, int, int]:
        """Kinds."""
        return a, b, c, d

    assert list(f.parameters["properties"]) == ["a", "b", "c", "d"]
    assert f.parameters["required"] == ["a", "b", "c"]
    assert f.call(f.validate_json('{"a": 1, "b": 2, "c": 3}')) == (1, 2, 3, 4)


def test_unannotated_parameter_accepts_any_json_value() -> None:
    @tool
    def f(anything, count: int = 0):  # type: ignore[no-untyped-def]
        """Loose."""
        return anything

    assert f.parameters["properties"]["anything"] == {}
    for value in (1, "x", None, [1, {"a": []}], {"k": 1.5}):
        import json

        assert f.call(f.validate_json(json.dumps({"anything": value}))) == value


def test_string_annotations_are_resolved() -> None:
    # this module uses postponed annotations: every annotation here is a string
    def f(a: int, b: list[Point]) -> str:
        """Forward references."""
        return ""

    t = tool(f)
    assert t.parameters["properties"]["a"] == {"type": "integer"}
    assert t.validation_parameters["properties"]["b"]["items"] == {"$ref": "#/$defs/Point"}


def test_unresolvable_annotation_is_a_definition_error() -> None:
    def f(a: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        """Broken."""

    with pytest.raises(ToolDefinitionError, match="NoSuchType"):
        tool(f)


def test_parameter_names_pydantic_reserves_still_work() -> None:
    @tool
    def f(_private: int, json: str, model_config: bool = False) -> tuple[int, str, bool]:
        """Awkward names."""
        return _private, json, model_config

    assert list(f.parameters["properties"]) == ["_private", "json", "model_config"]
    kwargs = f.validate_json('{"_private": 1, "json": "x", "model_config": true}')
    assert f.call(kwargs) == (1, "x", True)


# --- context ---------------------------------------------------------------------------------


def test_run_context_parameter_is_left_out_of_the_schema() -> None:
    @tool
    def plain(ctx: RunContext, city: str) -> str:  # type: ignore[type-arg]
        """Plain."""
        return city

    @tool
    def generic(city: str, context: RunContext[dict[str, int]]) -> int:
        """Generic."""
        return context.deps[city]

    @tool
    def none(city: str) -> str:
        """None."""
        return city

    assert plain.context_param == "ctx"
    assert generic.context_param == "context"
    assert none.context_param is None
    assert list(plain.parameters["properties"]) == ["city"]
    assert list(generic.parameters["properties"]) == ["city"]
    assert generic.call({"city": "a"}, RunContext(deps={"a": 7})) == 7


def test_two_context_parameters_are_refused() -> None:
    def f(a: RunContext[int], b: RunContext[int]) -> None:
        """Two."""

    with pytest.raises(ToolDefinitionError, match="two RunContext"):
        tool(f)


def test_context_named_in_schema_would_be_refused_as_unknown() -> None:
    @tool
    def f(ctx: RunContext[int], city: str) -> str:
        """Ctx."""
        return city

    with pytest.raises(ToolArgumentsError, match="ctx"):
        f.validate_json('{"city": "a", "ctx": 1}')


# --- names and signatures ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["get_weather", "a", "A-b_9", "x" * 64])
def test_valid_names(name: str) -> None:
    def f() -> None:
        """F."""

    assert tool(name=name)(f).name == name


@pytest.mark.parametrize("name", ["", "has space", "dot.name", "x" * 65, "名字", "a/b"])
def test_invalid_names_fail_at_decoration(name: str) -> None:
    def f() -> None:
        """F."""

    with pytest.raises(ToolDefinitionError, match="1 to 64 letters, digits"):
        tool(name=name)(f)


def test_lambda_needs_a_name() -> None:
    with pytest.raises(ToolDefinitionError, match="<lambda>"):
        tool(lambda x: x)
    assert tool(name="identity")(lambda x: x).name == "identity"


@pytest.mark.parametrize("signature", ["*args", "**kwargs", "a: int, *rest: int"])
def test_star_parameters_fail_at_decoration(signature: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def f({signature}):\n    'Star.'\n", namespace)
    with pytest.raises(ToolDefinitionError, match=r"takes \*"):
        tool(namespace["f"])


def test_method_defined_in_a_class_body_points_to_the_bound_method() -> None:
    class Service:
        def lookup(self, key: str) -> str:
            """Look up a key."""
            return key.upper()

    with pytest.raises(ToolDefinitionError, match="bound method"):
        tool(Service.lookup)
    bound = tool(Service().lookup)
    assert bound.name == "lookup"
    assert bound.description == "Look up a key."
    assert list(bound.parameters["properties"]) == ["key"]
    assert bound.call(bound.validate_json('{"key": "a"}')) == "A"


def test_functools_partial_is_a_tool_of_the_remaining_parameters() -> None:
    import functools

    def greet(greeting: str, name: str) -> str:
        """Greet someone."""
        return f"{greeting}, {name}"

    hello = tool(functools.partial(greet, "Hello"))
    assert hello.name == "greet"
    assert hello.description == "Greet someone."
    assert list(hello.parameters["properties"]) == ["name"]
    assert hello.call(hello.validate_json('{"name": "Ann"}')) == "Hello, Ann"


def test_no_parameters_gives_an_empty_object() -> None:
    @tool
    def now() -> str:
        """The time."""
        return "noon"

    assert now.parameters == {"type": "object", "properties": {}, "additionalProperties": False}
    assert now.validate_json("") == {}
    assert now.validate_json("{}") == {}


# --- to_openai ----------------------------------------------------------------------------------


def test_to_openai_shape() -> None:
    @tool
    def get_weather(city: str) -> str:
        """Get the weather."""
        return city

    assert get_weather.to_openai() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather.",
            "parameters": get_weather.parameters,
        },
    }

    strict = tool(strict=True)(get_weather.function)
    assert strict.to_openai()["function"]["strict"] is True


def test_decorator_options() -> None:
    @tool(name="lookup", description="Find things.", requires_approval=True, timeout=2)
    def f(q: str) -> str:
        """Ignored docstring."""
        return q

    assert (f.name, f.description, f.requires_approval, f.timeout, f.strict) == (
        "lookup",
        "Find things.",
        True,
        2.0,
        False,
    )
    assert f.to_openai()["function"]["description"] == "Find things."


@pytest.mark.parametrize("timeout", [0, -1, "5", True])
def test_bad_timeout_is_a_definition_error(timeout: Any) -> None:
    def f() -> None:
        """F."""

    with pytest.raises(ToolDefinitionError, match="timeout"):
        tool(timeout=timeout)(f)


def test_schema_is_derived_once_at_decoration() -> None:
    @tool
    def f(a: int) -> int:
        """F."""
        return a

    first = f.parameters
    f.validate_json('{"a": 1}')
    assert f.parameters is first
    assert f.to_openai()["function"]["parameters"] is first


def test_importing_the_tool_module_does_not_import_jsonschema() -> None:
    import subprocess
    import sys

    code = (
        "import sys, agentkit._tool, agentkit._schema; "
        "from agentkit import tool\n"
        "@tool\ndef f(a: int) -> int:\n    'F.'\n    return a\n"
        "f.validate_json('{\"a\": 1}')\n"
        "print('jsonschema' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _uses_point(p: Point) -> Point:
    """Module-level function whose (string) annotation names the module's Point."""
    return p


def test_local_classes_resolve_but_never_shadow_the_functions_own_names() -> None:
    class Local(BaseModel):
        flag: bool

    def uses_local(item: Local) -> bool:
        """F."""
        return item.flag

    assert tool(uses_local).call({"item": Local(flag=True)}) is True
    assert "Local" in tool(uses_local).validation_parameters["$defs"]

    Point = int  # a local of the caller that must not replace the module's Point
    assert Point is int
    assert tool(_uses_point).validation_parameters["properties"]["p"] == {"$ref": "#/$defs/Point"}


def _make_tool(function: Callable[..., Any]) -> Tool[..., Any]:
    return tool(function)


def test_local_classes_resolve_when_a_helper_makes_the_tool() -> None:
    # the annotation is a string (this module uses postponed annotations) naming a class
    # local to this test; the tool is made one frame further in
    class Crate(BaseModel):
        size: int

    def pack(crate: Crate) -> int:
        return crate.size

    made = _make_tool(pack)
    assert "Crate" in made.validation_parameters["$defs"]
    assert made.call(made.validate_json('{"crate": {"size": 3}}')) == 3


# --- the compact schema the model is sent -------------------------------------------------


def test_a_definition_used_twice_or_recursive_stays_in_defs() -> None:
    @tool
    def f(a: Point, b: list[Point], tree: Node, color: Color = Color.RED) -> None:
        """Shared."""

    sent = f.parameters
    assert set(sent["$defs"]) == {"Point", "Node"}  # Color is used once: in place
    assert sent["properties"]["a"] == {"$ref": "#/$defs/Point"}
    assert sent["properties"]["b"]["items"] == {"$ref": "#/$defs/Point"}
    assert sent["properties"]["tree"] == {"$ref": "#/$defs/Node"}
    assert sent["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert sent["properties"]["color"] == {
        "default": "red",
        "description": "A colour.",
        "enum": ["red", "green"],
        "type": "string",
    }
    arguments = {"a": {"x": 1}, "b": [{"x": 2, "y": 3}], "tree": {"value": 1, "children": []}}
    assert schema_accepts(sent, arguments)
    assert not schema_accepts(sent, {**arguments, "color": "blue"})


def test_compaction_reads_keywords_only_where_they_are_keywords() -> None:
    # parameters named like the keywords compaction drops are parameters, not keywords
    @tool
    def f(
        pattern: str,
        default: int | None = None,
        discriminator: datetime.date | None = None,
        format: str = "date",
    ) -> None:
        """Keyword-like names."""

    props = f.parameters["properties"]
    assert list(props) == ["pattern", "default", "discriminator", "format"]
    assert props["pattern"] == {"type": "string"}
    assert props["default"] == {"type": ["integer", "null"]}
    assert props["discriminator"] == {"type": ["string", "null"], "format": "date"}
    assert props["format"] == {"default": "date", "type": "string"}


def test_a_pattern_of_your_own_is_sent() -> None:
    @tool
    def f(
        code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")],
        url: pydantic.HttpUrl,
        when: Annotated[datetime.datetime, Field(description="When.")],
    ) -> None:
        """Own patterns."""

    props = f.parameters["properties"]
    assert props["code"]["pattern"] == "^[A-Z]{3}$"
    # a URL pattern naming its schemes says more than format: uri
    assert props["url"]["pattern"].startswith("^(http|https)")
    assert props["when"] == {"description": "When.", "format": "date-time", "type": "string"}


def test_compact_json_schema_leaves_its_input_alone() -> None:
    full = make_tool(Optional[Color]).validation_parameters  # noqa: UP045
    before = json.dumps(full, sort_keys=True)
    compact = compact_json_schema(full)
    assert json.dumps(full, sort_keys=True) == before
    assert compact["properties"]["value"] == {
        "description": "A colour.",
        "enum": ["red", "green", None],
        "type": ["string", "null"],
    }
    compact["properties"]["value"]["enum"].append("blue")
    assert json.dumps(full, sort_keys=True) == before
