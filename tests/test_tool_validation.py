"""@tool: validating a model's argument JSON, the readable error, and calling the function.

The function is never called with invalid arguments: every test that feeds bad input
uses a spy that records calls and asserts it stayed empty.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import json
import pathlib
import re
import typing
import uuid
from typing import Annotated, Any, Literal

import pytest
import typing_extensions
from pydantic import BaseModel, ConfigDict, Field

from agentkit import RunContext, Tool, ToolArgumentsError, tool
from agentkit._wire import Usage


class Unit(enum.Enum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Item(BaseModel):
    name: str
    qty: Annotated[int, Field(ge=1)] = 1


@dataclasses.dataclass
class Window:
    start: datetime.datetime
    end: datetime.datetime


class Contact(typing_extensions.TypedDict):
    email: str


class StdContact(typing.TypedDict):
    email: str
    id: uuid.UUID


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


calls: list[dict[str, Any]] = []


def _spy(**kwargs: Any) -> dict[str, Any]:
    calls.append(kwargs)
    return kwargs


@tool
def book(
    room: str,
    when: datetime.datetime,
    day: datetime.date,
    at: datetime.time,
    booking_id: uuid.UUID,
    price: decimal.Decimal,
    folder: pathlib.Path,
    unit: Unit,
    priority: Priority,
    tags: set[str],
    size: tuple[int, int],
    items: list[Item],
    window: Window,
    contact: Contact,
    std_contact: StdContact,
    pet: Cat | Dog,
    note: str | None = None,
    seats: int = 2,
) -> dict[str, Any]:
    """Book a room.

    Args:
        room: The room name.
        seats: How many seats.
    """
    return _spy(**{k: v for k, v in locals().items()})


GOOD = {
    "room": "B2",
    "when": "2024-05-01T09:30:00+02:00",
    "day": "2024-05-01",
    "at": "09:30",
    "booking_id": "12345678-1234-5678-1234-567812345678",
    "price": "12.50",
    "folder": "bookings/2024",
    "unit": "c",
    "priority": 2,
    "tags": ["a", "b"],
    "size": [3, 4],
    "items": [{"name": "chair", "qty": 2}, {"name": "desk"}],
    "window": {"start": "2024-05-01T09:00:00Z", "end": "2024-05-01T10:00:00Z"},
    "contact": {"email": "a@b.c"},
    "std_contact": {"email": "a@b.c", "id": "12345678123456781234567812345678"},
    "pet": {"kind": "dog", "good": True},
}


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def test_values_are_coerced_into_the_annotated_types() -> None:
    kwargs = book.validate_json(json.dumps(GOOD))
    result = book.call(kwargs)
    assert result["when"] == datetime.datetime(
        2024, 5, 1, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert result["day"] == datetime.date(2024, 5, 1)
    assert result["at"] == datetime.time(9, 30)
    assert result["booking_id"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert result["price"] == decimal.Decimal("12.50")
    assert result["folder"] == pathlib.Path("bookings/2024")
    assert result["unit"] is Unit.CELSIUS
    assert result["priority"] is Priority.HIGH
    assert result["tags"] == {"a", "b"}
    assert result["size"] == (3, 4)
    assert result["items"] == [Item(name="chair", qty=2), Item(name="desk", qty=1)]
    assert isinstance(result["window"], Window)
    assert result["window"].end.hour == 10
    assert result["contact"] == {"email": "a@b.c"}
    assert result["std_contact"]["id"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert result["pet"] == Dog(kind="dog", good=True)
    assert result["note"] is None
    assert result["seats"] == 2
    assert len(calls) == 1


def test_left_out_arguments_are_left_out_so_python_defaults_apply() -> None:
    sentinel: list[int] = []

    @tool
    def f(a: int, b: list[int] = sentinel) -> list[int]:
        """F."""
        return b

    kwargs = f.validate_json('{"a": 1}')
    assert kwargs == {"a": 1}
    assert f.call(kwargs) is sentinel


def test_bytes_and_bytearray_input() -> None:
    assert book.validate_json(json.dumps(GOOD).encode())["room"] == "B2"
    assert book.validate_json(bytearray(json.dumps(GOOD).encode()))["room"] == "B2"


@pytest.mark.parametrize("text", ["", "   ", "\n", b"", b" \r\n"])
def test_empty_arguments_mean_no_arguments(text: str | bytes) -> None:
    @tool
    def now() -> str:
        """The time."""
        return "noon"

    assert now.validate_json(text) == {}
    assert now.call(now.validate_json(text)) == "noon"


def test_empty_arguments_for_a_tool_with_required_parameters_name_them() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        book.validate_json("")
    assert "room: required parameter is missing" in str(info.value)


def test_every_bad_field_is_named_with_expected_and_received() -> None:
    bad = {
        **GOOD,
        "room": 5,
        "seats": "3",
        "unit": "kelvin",
        "items": [{"name": "chair"}, {"name": "desk"}, {"qty": 0}],
        "surprise": True,
    }
    with pytest.raises(ToolArgumentsError) as info:
        book.validate_json(json.dumps(bad))
    message = str(info.value)
    assert message.startswith("Invalid arguments for tool `book` (6 problems):")
    assert "- room: Input should be a valid string; received 5" in message
    assert '- seats: Input should be a valid integer; received "3"' in message
    assert "- unit: Input should be 'c' or 'f'; received \"kelvin\"" in message
    assert "- items[2].name: required field is missing" in message
    assert "- items[2].qty: Input should be greater than or equal to 1; received 0" in message
    assert "- surprise: unknown parameter; this tool takes: room, when," in message
    assert message.endswith("Fix the arguments and call the tool again.")
    paths = [path for path, _ in info.value.errors]
    assert sorted(paths) == sorted(
        ["room", "seats", "unit", "items[2].name", "items[2].qty", "surprise"]
    )
    assert info.value.tool_name == "book"
    assert calls == []


def test_union_of_models_reports_the_closest_member() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        book.validate_json(json.dumps({**GOOD, "pet": {"kind": "cat"}}))
    assert info.value.errors == [("pet.lives", "required field is missing (as Cat)")]


def test_scalar_union_lists_every_alternative() -> None:
    @tool
    def f(code: int | str) -> None:
        """F."""

    with pytest.raises(ToolArgumentsError) as info:
        f.validate_json('{"code": 1.5}')
    assert info.value.errors == [
        ("code", "Input should be a valid integer or a valid string; received 1.5")
    ]


def test_nested_unknown_fields_are_refused() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        book.validate_json(json.dumps({**GOOD, "items": [{"name": "a", "colour": "red"}]}))
    assert info.value.errors == [
        ("items[0].colour", 'unknown field, not allowed here; received "red"')
    ]


def test_received_values_are_truncated() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        book.validate_json(json.dumps({**GOOD, "room": ["x" * 5000]}))
    message = str(info.value)
    assert len(message) < 400
    assert "…" in message


def test_many_problems_are_capped() -> None:
    @tool
    def f(values: list[int]) -> None:
        """F."""

    with pytest.raises(ToolArgumentsError) as info:
        f.validate_json(json.dumps({"values": ["x"] * 100}))
    message = str(info.value)
    assert "(100 problems)" in message
    assert "... and 80 more" in message
    assert len(info.value.errors) == 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"room": "B2",', "are not valid JSON"),
        ("{'room': 'B2'}", "are not valid JSON"),
        ("room=B2", "are not valid JSON"),
        ("[1, 2]", "must be a JSON object of its parameters (room, when,"),
        ('"B2"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ("42", "must be a JSON object"),
    ],
)
def test_not_json_and_not_an_object_get_clear_messages(text: str, expected: str) -> None:
    with pytest.raises(ToolArgumentsError) as info:
        book.validate_json(text)
    assert expected in str(info.value)
    assert "Received: " in str(info.value)
    assert calls == []


def test_numbers_are_not_read_from_strings_but_integral_floats_are_integers() -> None:
    @tool
    def f(n: int, level: Priority, pick: Literal[1, 2], ratio: float) -> tuple[Any, ...]:
        """F."""
        return n, level, pick, ratio

    result = f.call(f.validate_json('{"n": 3.0, "level": 2.0, "pick": 1.0, "ratio": 2}'))
    assert result == (3, Priority.HIGH, 1, 2.0)
    assert type(result[0]) is int
    assert type(result[3]) is float
    for bad in (
        '{"n": "3", "level": 1, "pick": 1, "ratio": 1}',
        '{"n": 3.5, "level": 1, "pick": 1, "ratio": 1}',
    ):
        with pytest.raises(ToolArgumentsError, match="n: Input should be a valid integer"):
            f.validate_json(bad)
    with pytest.raises(ToolArgumentsError, match="pick"):
        f.validate_json('{"n": 1, "level": 1, "pick": true, "ratio": 1}')
    with pytest.raises(ToolArgumentsError, match="ratio"):
        f.validate_json('{"n": 1, "level": 1, "pick": 1, "ratio": "1.5"}')


def test_integral_float_inside_nested_structures() -> None:
    @tool
    def f(items: list[Item], grid: dict[str, list[int]]) -> tuple[list[Item], dict[str, list[int]]]:
        """F."""
        return items, grid

    items, grid = f.call(
        f.validate_json('{"items": [{"name": "a", "qty": 2.0}], "grid": {"r": [1.0, 2]}}')
    )
    assert items == [Item(name="a", qty=2)]
    assert grid == {"r": [1, 2]}


def test_invalid_arguments_never_reach_the_function() -> None:
    for bad in ("", "{", "[]", '{"room": 1}', json.dumps({**GOOD, "seats": -0.5})):
        with pytest.raises(ToolArgumentsError):
            book.call(book.validate_json(bad))
    assert calls == []


# --- calling ---------------------------------------------------------------------------------


def test_sync_tool_is_still_the_function() -> None:
    def add(a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    add_tool = tool(add)
    assert add_tool(1, 2) == 3
    assert add_tool(a=1) == 2
    assert add_tool.__name__ == "add"
    assert add_tool.__doc__ == "Add two numbers."
    assert add_tool.__wrapped__ is add
    assert add_tool.function is add
    assert add_tool.is_async is False
    assert not inspect.iscoroutinefunction(add_tool)
    assert inspect.signature(add_tool) == inspect.signature(add)


def test_async_tool_stays_async() -> None:
    async def fetch(url: str) -> str:
        """Fetch a URL."""
        await asyncio.sleep(0)
        return url.upper()

    fetch_tool = tool(fetch)
    assert fetch_tool.is_async is True
    assert inspect.iscoroutinefunction(fetch_tool)
    coroutine = fetch_tool("a")
    assert inspect.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == "A"
    awaitable = fetch_tool.call(fetch_tool.validate_json('{"url": "b"}'))
    assert asyncio.run(awaitable) == "B"


def test_async_partial_and_async_callable_object_are_async() -> None:
    async def greet(greeting: str, name: str) -> str:
        """Greet."""
        return f"{greeting} {name}"

    class Greeter:
        """Greets."""

        __name__ = "greeter"

        async def __call__(self, name: str) -> str:
            return name

    assert tool(functools.partial(greet, "hi")).is_async
    assert tool(Greeter()).is_async


def test_context_is_passed_to_the_context_parameter() -> None:
    seen: list[RunContext[dict[str, str]]] = []

    @tool
    def whoami(ctx: RunContext[dict[str, str]], greeting: str) -> str:
        """Who am I."""
        seen.append(ctx)
        return f"{greeting}, {ctx.deps['user']} (turn {ctx.turn})"

    context = RunContext(deps={"user": "ann"}, usage=Usage(total_tokens=5), turn=2)
    assert whoami.call(whoami.validate_json('{"greeting": "hi"}'), context) == "hi, ann (turn 2)"
    assert seen == [context]


def test_context_default_fields() -> None:
    context: RunContext[None] = RunContext(deps=None)
    assert context.usage == Usage()
    assert context.messages == []
    assert context.turn == 0


def test_positional_only_parameters_are_passed_positionally() -> None:
    @tool
    def f(a: int, b: int = 2, /, *, c: int = 3) -> tuple[int, int, int]:
        """F."""
        return a, b, c

    assert f.call(f.validate_json('{"a": 1}')) == (1, 2, 3)
    assert f.call(f.validate_json('{"a": 1, "c": 9}')) == (1, 2, 9)
    assert f.call(f.validate_json('{"a": 1, "b": 5}')) == (1, 5, 3)


def test_field_default_is_the_python_default() -> None:
    @tool
    def f(a: int = Field(7, description="A number.")) -> int:
        """F."""
        return a

    assert f.parameters["properties"]["a"] == {
        "type": "integer",
        "default": 7,
        "description": "A number.",
    }
    assert f.call(f.validate_json("{}")) == 7


def test_validation_is_repeatable_and_independent() -> None:
    @tool
    def f(items: list[Item] = []) -> list[Item]:  # noqa: B006 (default never mutated)
        """F."""
        return items

    first = f.call(f.validate_json('{"items": [{"name": "a"}]}'))
    second = f.call(f.validate_json('{"items": [{"name": "b"}]}'))
    assert first == [Item(name="a")]
    assert second == [Item(name="b")]


def test_tool_class_can_be_built_directly() -> None:
    def f(a: int) -> int:
        """F."""
        return a

    t = Tool(f, name="direct", strict=True)
    assert t.name == "direct"
    assert t.strict is True
    assert repr(t) == "Tool(name='direct', strict=True)"


def test_a_broken_validator_of_a_user_type_becomes_an_arguments_error() -> None:
    from pydantic import field_validator

    class Order(BaseModel):
        number: int

        @field_validator("number")
        @classmethod
        def _lookup(cls, value: int) -> int:
            return {1: 1}[value]  # a KeyError is not a validation error for pydantic

    @tool
    def f(order: Order) -> Order:
        """F."""
        return order

    assert f.call(f.validate_json('{"order": {"number": 1}}')) == Order(number=1)
    with pytest.raises(ToolArgumentsError, match=r"could not be validated \(KeyError: 2\)"):
        f.validate_json('{"order": {"number": 2}}')


class Mail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(alias="from")


def test_fields_are_read_by_the_names_the_schema_shows() -> None:
    # the model also takes its Python field names; the schema shows the aliases, so the
    # validator takes those only (as it does for a parameter with an alias)
    @tool
    def send(mail: Mail, from_: Annotated[str, Field(alias="from")] = "me") -> str:
        return f"{mail.sender}|{from_}"

    assert set(send.parameters["properties"]) == {"mail", "from"}
    assert send.call(send.validate_json('{"mail": {"from": "a"}, "from": "b"}')) == "a|b"
    with pytest.raises(ToolArgumentsError, match=r"mail\.from: required field is missing"):
        send.validate_json('{"mail": {"sender": "a"}}')
    with pytest.raises(ToolArgumentsError, match="from_: unknown parameter"):
        send.validate_json('{"mail": {"from": "a"}, "from_": "b"}')


def test_repeated_items_of_a_set_are_named() -> None:
    @tool
    def tag(tags: set[str], ids: frozenset[int] | None = None) -> list[str]:
        return sorted(tags)

    with pytest.raises(ToolArgumentsError) as caught:
        tag.validate_json('{"tags": ["a", "b", "a"], "ids": [1, 1.0]}')
    message = str(caught.value)
    assert 'tags: Value error, Set should have unique items; "a" is repeated' in message
    assert "ids: Value error, Set should have unique items; 1 is repeated" in message
    assert tag.call(tag.validate_json('{"tags": ["b", "a"]}')) == ["a", "b"]


@tool
def wait_for(length: datetime.timedelta, extra: list[datetime.timedelta] | None = None) -> str:
    """Wait."""
    return "ok"


@pytest.mark.parametrize("text", ["P0D0D", "P3D3DT", "P1D2Y", "P1000000D", "PT", "P"])
def test_durations_the_schema_refuses_are_refused(text: str) -> None:
    # pydantic alone reads P0D0D as 0 and P3D3DT as 6 days; the schema's pattern refuses them
    pattern = re.compile(wait_for.validation_parameters["properties"]["length"]["pattern"])
    assert pattern.search(text) is None
    for arguments in ({"length": text}, {"length": "PT1H", "extra": [text]}):
        with pytest.raises(ToolArgumentsError) as info:
            wait_for.validate_json(json.dumps(arguments))
        message = str(info.value)
        assert "Input should be a valid duration" in message
        assert f'received "{text}"' in message
        assert [path for path, _ in info.value.errors] == [
            "length" if "extra" not in arguments else "extra[0]"
        ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1.5H", datetime.timedelta(hours=1.5)),
        ("P1DT2H", datetime.timedelta(days=1, hours=2)),
        ("P1DT", datetime.timedelta(days=1)),
        ("-P1W", datetime.timedelta(weeks=-1)),
        ("1 day, 01:30:00", datetime.timedelta(days=1, minutes=90)),
        ("01:30", datetime.timedelta(minutes=90)),
    ],
)
def test_usual_durations_are_read(text: str, expected: datetime.timedelta) -> None:
    assert wait_for.validate_json(json.dumps({"length": text, "extra": [text]})) == {
        "length": expected,
        "extra": [expected],
    }
    # numbers are not durations in strict JSON mode, as before
    with pytest.raises(ToolArgumentsError):
        wait_for.validate_json('{"length": 90}')


def test_the_compact_duration_schema_is_unchanged() -> None:
    assert wait_for.parameters["properties"]["length"] == {"format": "duration", "type": "string"}
