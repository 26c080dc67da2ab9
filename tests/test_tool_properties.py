"""Hypothesis properties of @tool over generated signatures.

(a) For a generated signature (random parameter names, kinds, types from the supported
    set, defaults), both schemas are valid Draft 2020-12, and jsonschema's verdict with
    the full schema (``validation_parameters``) on generated argument objects (valid
    values, arbitrary JSON, left-out and unknown parameters) equals the tool's own
    validation. The compact schema the model is sent (``parameters``) accepts every
    object the tool accepts. Accepted objects reach the function.
(b) Argument objects generated from the full schema (hypothesis-jsonschema) validate,
    fit the sent schema and reach the function, in non-strict and strict mode.

Arbitrary strings are drawn from letters, plus, for the date, time and duration kinds,
strings of the right shape with arbitrary digits (2023-02-29, 24:00, 01:75...), which the
schema's patterns must judge exactly as the validator does.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import keyword
import pathlib
import uuid
from typing import Annotated, Any, Literal, Optional, Union

import jsonschema
import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from pydantic import Field
from test_tool_schema import Box, Color, Level, Movie, Point, StdMovie

from agentkit import Tool, ToolArgumentsError, tool

LETTERS = "abcxyz "
MILLION_YEARS = datetime.timedelta(days=365 * 999_999)
_text = st.text(alphabet=LETTERS, max_size=5)

# Any JSON value, with strings drawn from letters only (see the module docstring).
any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


# Strings shaped like dates, times and durations, with arbitrary digits: most name no real
# date or time, some do.
_DIGITS_DATE = r"[0-9]{4}-[0-1][0-9]-[0-3][0-9]"
_DIGITS_TIME = r"[0-2][0-9]:[0-6][0-9](:[0-6][0-9](\.[0-9]{1,3})?)?(Z|[+-][0-2][0-9]:[0-6][0-9])?"
date_like = st.from_regex(_DIGITS_DATE, fullmatch=True)
time_like = st.from_regex(_DIGITS_TIME, fullmatch=True)
datetime_like = st.from_regex(f"{_DIGITS_DATE}[T ]{_DIGITS_TIME}", fullmatch=True)
duration_like = st.from_regex(
    r"[+-]?(P([0-9]{1,2}[YMWD]){0,2}(T([0-9]{1,2}(\.[0-9])?[HMS]){0,2})?"
    r"|[0-9]{1,2}( ?d| days?)?(, ?[0-9]{1,3}:[0-9]{2}(:[0-9]{2})?)?"
    r"|[0-9]{1,3}:[0-9]{2}(:[0-9]{2})?)",
    fullmatch=True,
)


class Size(enum.Enum):
    SMALL = 1
    LARGE = "large"


@dataclasses.dataclass(frozen=True)
class Kind:
    """A supported parameter type with a strategy for valid JSON values of it."""

    name: str
    annotation: Any
    valid: st.SearchStrategy[Any]
    anything: st.SearchStrategy[Any] = any_json
    # strict mode drops some constraints (minLength...) that the validator still enforces
    strict_exact: bool = True


def _decimal_text(d: decimal.Decimal) -> str:
    return format(d, "f")


KINDS = [
    Kind("str", str, _text),
    Kind("int", int, st.integers()),
    Kind("float", float, st.floats(allow_nan=False, allow_infinity=False) | st.integers()),
    Kind("bool", bool, st.booleans()),
    Kind("None", None, st.none()),
    Kind("Optional[int]", Optional[int], st.none() | st.integers()),  # noqa: UP045
    Kind("int | str", Union[int, str], st.integers() | _text),  # noqa: UP007
    Kind("Literal[str]", Literal["a", "b"], st.sampled_from(["a", "b"])),
    Kind("Literal[int]", Literal[1, 2], st.sampled_from([1, 2])),
    Kind("Enum", Color, st.sampled_from(["red", "green"])),
    Kind("IntEnum", Level, st.sampled_from([1, 2])),
    Kind("list[int]", list[int], st.lists(st.integers(), max_size=3)),
    # strict mode cannot say uniqueItems (the validator still refuses repeats)
    Kind("set[str]", set[str], st.lists(_text, max_size=3, unique=True), strict_exact=False),
    Kind(
        "frozenset[int]",
        frozenset[int],
        st.lists(st.integers(-3, 3), max_size=3, unique=True),
        strict_exact=False,
    ),
    Kind("tuple[int, str]", tuple[int, str], st.tuples(st.integers(), _text).map(list)),
    Kind(
        "tuple[float, ...]",
        tuple[float, ...],
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    ),
    Kind("dict[str, int]", dict[str, int], st.dictionaries(_text, st.integers(), max_size=3)),
    Kind(
        "datetime",
        datetime.datetime,
        st.datetimes().map(datetime.datetime.isoformat),
        any_json | datetime_like,
    ),
    Kind("date", datetime.date, st.dates().map(datetime.date.isoformat), any_json | date_like),
    Kind("time", datetime.time, st.times().map(datetime.time.isoformat), any_json | time_like),
    Kind(
        "timedelta",
        datetime.timedelta,
        # within a million years either way: the schema's duration pattern takes at most
        # six digits per unit, so that what it describes cannot overflow a timedelta
        st.timedeltas(min_value=-MILLION_YEARS, max_value=MILLION_YEARS).map(
            lambda d: json.loads(pydantic_core.to_json(d))
        ),
        any_json | duration_like,
    ),
    Kind("mixed Enum", Size, st.sampled_from([1, "large"])),
    Kind("Literal[True]", Literal[True], st.just(True)),
    Kind(
        "dict[int, str]", dict[int, str], st.dictionaries(st.integers().map(str), _text, max_size=3)
    ),
    Kind("UUID", uuid.UUID, st.uuids().map(str)),
    Kind(
        "Decimal",
        decimal.Decimal,
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(_decimal_text)
        | st.integers(),
    ),
    Kind("Path", pathlib.Path, _text),
    Kind(
        "model",
        Point,
        st.fixed_dictionaries({"x": st.integers()}, optional={"y": st.integers()}),
    ),
    Kind(
        "dataclass",
        Box,
        st.fixed_dictionaries(
            {"width": st.floats(allow_nan=False, allow_infinity=False)},
            optional={"height": st.integers()},
        ),
    ),
    Kind(
        "TypedDict",
        Movie,
        st.fixed_dictionaries({"title": _text}, optional={"year": st.integers()}),
    ),
    Kind(
        "typing.TypedDict",
        StdMovie,
        st.fixed_dictionaries({"title": _text}, optional={"year": st.integers()}),
    ),
    Kind("ge/le", Annotated[int, Field(ge=0, le=10)], st.integers(0, 10)),
    Kind(
        "min/max length",
        Annotated[str, Field(min_length=2, max_length=4)],
        st.text(alphabet=LETTERS, min_size=2, max_size=4),
        strict_exact=False,
    ),
    Kind("unannotated", None, any_json),  # "None" here is replaced by no annotation
]
UNANNOTATED = KINDS[-1]

_names = st.from_regex(r"\A[a-z][a-z0-9_]{0,11}\Z").filter(
    lambda name: not keyword.iskeyword(name) and name not in ("self", "cls")
)


@dataclasses.dataclass
class Param:
    name: str
    kind: Kind
    has_default: bool
    default: Any
    keyword_only: bool


@st.composite
def signatures(draw: st.DrawFn, kinds: list[Kind] = KINDS) -> list[Param]:
    names = draw(st.lists(_names, min_size=0, max_size=6, unique=True))
    params: list[Param] = []
    seen_default = False
    keyword_only = False
    for name in names:
        kind = draw(st.sampled_from(kinds))
        has_default = draw(st.booleans())
        keyword_only = keyword_only or draw(st.integers(0, 4)) == 0
        if not has_default and seen_default and not keyword_only:
            keyword_only = True  # a required positional parameter cannot follow a default
        seen_default = seen_default or has_default
        default = draw(kind.valid) if has_default else None
        params.append(Param(name, kind, has_default, default, keyword_only))
    return params


def build_tool(params: list[Param], *, strict: bool = False) -> Tool[..., Any]:
    """A tool whose function returns the keyword arguments it received."""
    parts: list[str] = []
    star_written = False
    namespace: dict[str, Any] = {}
    for index, param in enumerate(params):
        if param.keyword_only and not star_written:
            parts.append("*")
            star_written = True
        default = f"=_d{index}" if param.has_default else ""
        namespace[f"_d{index}"] = param.default
        parts.append(f"{param.name}{default}")
    body = "{" + ", ".join(f"{p.name!r}: {p.name}" for p in params) + "}"
    source = f"def generated({', '.join(parts)}):\n    'A generated tool.'\n    return {body}\n"
    exec(source, namespace)
    function = namespace["generated"]
    function.__annotations__ = {
        p.name: p.kind.annotation for p in params if p.kind is not UNANNOTATED
    }
    made: Tool[..., Any] = tool(function, strict=strict)
    return made


@st.composite
def argument_objects(draw: st.DrawFn, params: list[Param]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for param in params:
        choice = draw(st.sampled_from(["valid", "valid", "anything", "omit"]))
        if choice == "valid":
            arguments[param.name] = draw(param.kind.valid)
        elif choice == "anything":
            arguments[param.name] = draw(param.kind.anything)
    if draw(st.integers(0, 5)) == 0:
        extra = draw(_names.filter(lambda name: name not in arguments))
        if all(extra != p.name for p in params):
            arguments[extra] = draw(any_json)
    return arguments


def _verdict(t: Tool[..., Any], arguments: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return t.validate_json(json.dumps(arguments))
    except ToolArgumentsError:
        return None


# 60 signatures of up to six parameters each (about 200 parameters over the 36 kinds, so
# every kind several times over) and five argument objects per signature: drawing a
# signature is what costs, so each one is checked with several objects.
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


@pytest.mark.timeout(300)  # minutes on a loaded machine
@SETTINGS
@given(st.data())
def test_schema_is_draft_2020_12_and_agrees_with_the_validator(data: st.DataObject) -> None:
    params = data.draw(signatures())
    t = build_tool(params)
    jsonschema.Draft202012Validator.check_schema(t.validation_parameters)
    jsonschema.Draft202012Validator.check_schema(t.parameters)
    validator = jsonschema.Draft202012Validator(t.validation_parameters)
    sent = jsonschema.Draft202012Validator(t.parameters)
    required = [p.name for p in params if not p.has_default]
    assert t.parameters.get("required", []) == required
    assert t.validation_parameters.get("required", []) == required
    for _ in range(5):
        arguments = data.draw(argument_objects(params))
        kwargs = _verdict(t, arguments)
        assert validator.is_valid(arguments) == (kwargs is not None), arguments
        # the compact schema the model is sent never refuses what the tool accepts
        assert kwargs is None or sent.is_valid(arguments), arguments
        if kwargs is not None:
            received = t.call(kwargs)
            assert set(kwargs) == set(arguments)
            for param in params:
                if param.name not in arguments and param.has_default:
                    assert received[param.name] is param.default


def _draft7_view(schema: Any) -> Any:
    """The schema with ``prefixItems`` spelled as draft 7's array ``items``.

    hypothesis-jsonschema reads draft 7 and skips ``prefixItems``; the meaning is the same.
    """
    if isinstance(schema, dict):
        out = {key: _draft7_view(value) for key, value in schema.items()}
        if "prefixItems" in out:
            out["items"] = out.pop("prefixItems")
            out["additionalItems"] = False
        return out
    if isinstance(schema, list):
        return [_draft7_view(item) for item in schema]
    return schema


def _check_generated_arguments(t: Tool[..., Any], data: st.DataObject) -> None:
    # from the full schema: the sent one leaves the string forms to their format
    arguments = data.draw(from_schema(_draft7_view(t.validation_parameters)))
    assert jsonschema.Draft202012Validator(t.parameters).is_valid(arguments), arguments
    kwargs = t.validate_json(json.dumps(arguments))  # raises if the schema lied
    received = t.call(kwargs)
    assert set(received) >= set(kwargs)
    for name, value in kwargs.items():
        assert received[name] is value


@pytest.mark.timeout(300)  # minutes on a loaded machine
@SETTINGS
@given(st.data())
def test_objects_generated_from_the_schema_validate_and_reach_the_function(
    data: st.DataObject,
) -> None:
    params = data.draw(signatures())
    _check_generated_arguments(build_tool(params), data)


STRICT_KINDS = [kind for kind in KINDS if kind.strict_exact and kind is not UNANNOTATED]


@pytest.mark.timeout(300)  # minutes on a loaded machine
@SETTINGS
@given(st.data())
def test_objects_generated_from_the_strict_schema_validate_and_reach_the_function(
    data: st.DataObject,
) -> None:
    params = data.draw(signatures(STRICT_KINDS))
    t = build_tool(params, strict=True)
    schema = t.parameters
    assert schema.get("required", []) == [p.name for p in params]
    _check_generated_arguments(t, data)
