"""@tool against a corpus of realistic functions with hand-labelled argument objects.

Every entry is a function as people write tools (docstrings in every style, every supported
type, defaults of every kind, methods, async functions, context parameters...) with what its
tool must say (name, description, each property's description, ``required``, shown
defaults) and argument objects labelled valid or invalid by hand. For every entry:

* the schema is valid Draft 2020-12, has no ``title`` noise, refuses unknown fields on
  every object, and lists exactly the parameters without defaults as ``required``;
* jsonschema (Draft 2020-12, formats not asserted, as most consumers run it) accepts every
  valid object and refuses every invalid one, and so does ``tool.validate_json``;
* ``to_openai()`` has the Chat Completions shape;
* the tool is still the function: called directly it gives what the function gives (sync
  stays sync, async stays async), and ``call(validate_json(...))`` gives the labelled result;
* the strict variant keeps OpenAI's subset, accepts the valid objects as a strict model
  writes them (arriving as the same Python values) and still refuses the invalid ones.

Some entries come from a module written under ``from __future__ import annotations`` (every
annotation a string, forward references included); it is compiled from ``FUTURE_SOURCE``.
"""

# The corpus is functions as people write tools, mutable and call defaults included.
# ruff: noqa: B006, B008

import asyncio
import dataclasses
import datetime
import enum
import functools
import inspect
import ipaddress
import json
import sys
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import annotated_types
import jsonschema
import pytest
import typing_extensions
from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PositiveInt,
    StringConstraints,
)
from test_tool_schema import iter_schemas
from test_tool_strict import ALLOWED_FORMATS, as_strict_model_writes_it, assert_strict_subset

from agentkit import RunContext, Tool, ToolArgumentsError, ToolDefinitionError, tool

MISSING: Any = object()

# --- the types the corpus uses -----------------------------------------------------------


class Unit(enum.Enum):
    """A temperature unit."""

    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Priority(enum.IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


class Size(enum.Enum):
    SMALL = 1
    LARGE = "large"


class Address(BaseModel):
    """A postal address."""

    street: str = Field(description="Street and house number.")
    city: str
    postcode: Annotated[str, Field(pattern=r"^[0-9]{6}$")]
    country: str = "CN"


class LineItem(BaseModel):
    sku: str = Field(min_length=3, max_length=12)
    quantity: int = Field(ge=1, description="How many units.")
    unit_price: Decimal | None = None


class Order(BaseModel):
    """An order to place."""

    items: list[LineItem] = Field(min_length=1)
    ship_to: Address
    gift: bool = False
    notes: list[str] = Field(default_factory=list)


class Category(BaseModel):
    """A category and its subcategories."""

    name: str
    children: list["Category"] = []


class Employee(BaseModel):
    name: str
    team: Optional["Team"] = None


class Team(BaseModel):
    title: str = Field(description="The team's name.")
    members: list[Employee] = []


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    indoor: bool = True


class Dog(BaseModel):
    kind: Literal["dog"] = "dog"
    breed: str


class Parrot(BaseModel):
    kind: Literal["parrot"]
    words: list[str] = []


class Mail(BaseModel):
    """A message, with a field whose JSON name is a Python keyword."""

    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)


@dataclasses.dataclass
class Reminder:
    """A reminder to send."""

    text: str
    at: datetime.datetime
    channels: list[Channel] = dataclasses.field(default_factory=lambda: [Channel.EMAIL])
    repeat: int = 0


@dataclasses.dataclass(frozen=True)
class Window:
    start: datetime.time
    end: datetime.time


class Contact(typing.TypedDict, total=False):
    """A contact card."""

    name: typing.Required[str]
    email: str
    phone: str


class Preferences(typing_extensions.TypedDict):
    theme: Literal["light", "dark"]
    font_size: typing_extensions.NotRequired[int]


class Outline(typing.TypedDict):
    heading: str
    sections: list["Outline"]


class Options(typing_extensions.TypedDict, total=False):
    verbose: bool
    depth: typing_extensions.Required[int]


class Deps:
    """What the corpus' context tools receive."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting


UUID = "8f14e45f-ceea-467f-a0e6-0c2a4b1e7a11"

# --- the entries ------------------------------------------------------------------------


@dataclasses.dataclass
class Entry:
    """A function's tool, what it must say, and labelled argument objects."""

    tool: Tool[..., Any]
    description: str
    properties: dict[str, str | None]  # in schema order; None: no description
    required: list[str]
    valid: list[dict[str, Any]]
    invalid: list[dict[str, Any]]
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    # (argument object, what the function returns for it)
    calls: list[tuple[dict[str, Any], Any]] = dataclasses.field(default_factory=list)
    # (args, kwargs, what the function returns): the tool called directly, as the function
    direct: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = dataclasses.field(
        default_factory=list
    )
    context: Any = None
    # the strict variant: "ok", or "refused" (strict mode cannot express the types)
    strict: str = "ok"
    strict_tool: Tool[..., Any] | None = None  # built beside the function when needed
    name: str | None = None  # the expected name when not the function's __name__


CORPUS: dict[str, Entry] = {}


def entry(entry_id: str, **fields: Any) -> None:
    assert entry_id not in CORPUS, entry_id
    CORPUS[entry_id] = Entry(**fields)


# 1. Google style: summary, long description, types and multi-line text in Args,
#    Returns/Raises sections left out of the description.
@tool
def get_weather(city: str, days: int = 1, unit: Unit = Unit.CELSIUS) -> str:
    """Get the weather forecast for a city.

    Asks the forecast service and answers with one sentence
    per day.

    Args:
        city (str): The city name in English,
            e.g. "Hangzhou" or "San Francisco".
        days (int, optional): How many days ahead, 1 to 7. Defaults to 1.
        unit: The temperature unit.

    Returns:
        str: One sentence per day.

    Raises:
        ValueError: If the city is unknown.
    """
    return f"{city}:{days}:{unit.value}"


entry(
    "google",
    tool=get_weather,
    description=(
        "Get the weather forecast for a city.\n\n"
        "Asks the forecast service and answers with one sentence\nper day."
    ),
    properties={
        "city": 'The city name in English,\ne.g. "Hangzhou" or "San Francisco".',
        "days": "How many days ahead, 1 to 7. Defaults to 1.",
        "unit": "The temperature unit.",
    },
    required=["city"],
    defaults={"days": 1, "unit": "celsius"},
    valid=[
        {"city": "Hangzhou"},
        {"city": "Paris", "days": 3},
        {"city": "Oslo", "days": 7, "unit": "fahrenheit"},
        {"city": "", "days": 2.0},
    ],
    invalid=[
        {},
        {"days": 3},
        {"city": "Paris", "days": "3"},
        {"city": "Paris", "unit": "kelvin"},
        {"city": "Paris", "unit": "CELSIUS"},
        {"city": "Paris", "country": "FR"},
        {"city": None},
        {"city": "Paris", "days": 1.5},
        {"city": "Paris", "days": True},
    ],
    calls=[
        ({"city": "Paris"}, "Paris:1:celsius"),
        ({"city": "Oslo", "days": 2.0}, "Oslo:2:celsius"),
    ],
    direct=[(("Rome",), {"days": 4}, "Rome:4:celsius")],
)


# 2. No docstring at all.
@tool
def add_numbers(a: int, b: int) -> int:
    return a + b


entry(
    "no-docstring",
    tool=add_numbers,
    description="",
    properties={"a": None, "b": None},
    required=["a", "b"],
    valid=[{"a": 1, "b": 2}, {"a": -5, "b": 0}, {"a": 10**20, "b": 3.0}],
    invalid=[
        {"a": 1},
        {"a": "1", "b": 2},
        {"a": 1.5, "b": 2},
        {"a": True, "b": 1},
        {"a": 1, "b": None},
    ],
    calls=[({"a": 1, "b": 2}, 3), ({"a": 2.0, "b": 3}, 5)],
    direct=[((1, 2), {}, 3)],
)


# 3. NumPy style with types and "optional"; floats take integers.
@tool
def scale(value: float, factor: float = 2.0) -> float:
    """Multiply a value by a factor.

    Parameters
    ----------
    value : float
        The value to scale.
    factor : float, optional
        The factor to apply; may be
        negative.

    Returns
    -------
    float
        The scaled value.
    """
    return value * factor


entry(
    "numpy-float",
    tool=scale,
    description="Multiply a value by a factor.",
    properties={"value": "The value to scale.", "factor": "The factor to apply; may be\nnegative."},
    required=["value"],
    defaults={"factor": 2.0},
    valid=[
        {"value": 1},
        {"value": 1.5, "factor": -2},
        {"value": -0.0, "factor": 10**20},
        {"value": 3},
    ],
    invalid=[{"value": "1.5"}, {"value": True}, {"value": None}, {"factor": 2.0}, {"value": [1.0]}],
    calls=[({"value": 3}, 6.0), ({"value": 1.5, "factor": 2}, 3.0)],
    direct=[((2.0,), {"factor": 0.5}, 1.0)],
)


# 4. reST style with :type: lines (the types stay out of the descriptions).
@tool
def set_notifications(enabled: bool, quiet_hours: bool = False) -> str:
    """Turn notifications on or off.

    :param enabled: Whether notifications are sent at all.
    :type enabled: bool
    :param quiet_hours: Mute them at night.
    :type quiet_hours: bool
    :returns: The new setting.
    :rtype: str
    """
    return f"{enabled}/{quiet_hours}"


entry(
    "rest-bool",
    tool=set_notifications,
    description="Turn notifications on or off.",
    properties={
        "enabled": "Whether notifications are sent at all.",
        "quiet_hours": "Mute them at night.",
    },
    required=["enabled"],
    defaults={"quiet_hours": False},
    valid=[{"enabled": True}, {"enabled": False, "quiet_hours": True}, {"enabled": False}],
    invalid=[{"enabled": 1}, {"enabled": "true"}, {"enabled": 0}, {"enabled": None}, {}],
    calls=[({"enabled": True}, "True/False")],
    direct=[((False,), {}, "False/False")],
)


# 5. Epydoc style.
@tool
def repeat_text(text: str, times: int = 2) -> str:
    """Repeat a text.

    @param text: The text to repeat.
    @type text: str
    @param times: How often.
    @type times: int
    @return: The repeated text.
    """
    return text * times


entry(
    "epydoc",
    tool=repeat_text,
    description="Repeat a text.",
    properties={"text": "The text to repeat.", "times": "How often."},
    required=["text"],
    defaults={"times": 2},
    valid=[{"text": "ab"}, {"text": "", "times": 0}, {"text": "ü", "times": 3}],
    invalid=[{"text": 1}, {"text": ["a"]}, {"text": "a", "times": "2"}, {"times": 2}],
    calls=[({"text": "ab"}, "abab")],
    direct=[(("x",), {"times": 3}, "xxx")],
)


# 6. No parameters.
@tool
def ping() -> str:
    """Check that the service answers."""
    return "pong"


entry(
    "no-parameters",
    tool=ping,
    description="Check that the service answers.",
    properties={},
    required=[],
    valid=[{}],
    invalid=[{"x": 1}, {"": None}, {"ping": True}],
    calls=[({}, "pong")],
    direct=[((), {}, "pong")],
)


# 7. X | None without a default: required, and null is a value.
@tool
def assign_ticket(ticket: int, assignee: str | None, priority: Priority = Priority.NORMAL) -> str:
    """Assign a ticket.

    Args:
        ticket: The ticket number.
        assignee: Who takes it; null leaves it unassigned.
        priority: How urgent it is.
    """
    return f"{ticket}:{assignee}:{priority.name}"


entry(
    "optional-required",
    tool=assign_ticket,
    description="Assign a ticket.",
    properties={
        "ticket": "The ticket number.",
        "assignee": "Who takes it; null leaves it unassigned.",
        "priority": "How urgent it is.",
    },
    required=["ticket", "assignee"],
    defaults={"priority": 2},
    valid=[
        {"ticket": 1, "assignee": None},
        {"ticket": 2, "assignee": "ann", "priority": 3},
        {"ticket": 3, "assignee": "bo", "priority": 1},
    ],
    invalid=[
        {"ticket": 1},
        {"ticket": 1, "assignee": None, "priority": 4},
        {"ticket": 1, "assignee": None, "priority": "HIGH"},
        {"ticket": 1, "assignee": None, "priority": True},
        {"ticket": 1, "assignee": 5},
    ],
    calls=[
        ({"ticket": 1, "assignee": None}, "1:None:NORMAL"),
        ({"ticket": 2, "assignee": "a", "priority": 3}, "2:a:HIGH"),
    ],
    direct=[((7, "x"), {}, "7:x:NORMAL")],
)


# 8. Optional[X] = None and X | None = None, and an optional with a non-None default.
@tool
def find_user(
    user_id: int | None = None, email: str | None = None, role: str | None = "member"
) -> str:
    """Find a user by id or e-mail.

    Args:
        user_id: The numeric id.
        email: The e-mail address.
        role: Only users with this role; null for any role.
    """
    return f"{user_id}|{email}|{role}"


entry(
    "optional-defaults",
    tool=find_user,
    description="Find a user by id or e-mail.",
    properties={
        "user_id": "The numeric id.",
        "email": "The e-mail address.",
        "role": "Only users with this role; null for any role.",
    },
    required=[],
    defaults={"user_id": None, "email": None, "role": "member"},
    valid=[
        {},
        {"user_id": None},
        {"user_id": 5, "email": "a@b.c"},
        {"role": None},
        {"email": None, "role": "admin"},
    ],
    invalid=[{"user_id": "5"}, {"user_id": True}, {"email": 5}, {"role": 1}, {"name": "x"}],
    calls=[
        ({}, "None|None|member"),
        ({"role": None}, "None|None|None"),
        ({"user_id": 4}, "4|None|member"),
    ],
    direct=[((), {"email": "e"}, "None|e|member")],
)


# 9. int | str, and a union of a list and a literal.
@tool
def lookup(key: int | str, ids: Union[list[int], Literal["all"]] = "all") -> str:  # noqa: UP007
    """Look up a record.

    Args:
        key: The numeric id or the slug.
        ids: The ids to include, or "all".
    """
    return f"{type(key).__name__}:{ids}"


entry(
    "scalar-unions",
    tool=lookup,
    description="Look up a record.",
    properties={"key": "The numeric id or the slug.", "ids": 'The ids to include, or "all".'},
    required=["key"],
    defaults={"ids": "all"},
    valid=[
        {"key": 1},
        {"key": "abc"},
        {"key": "1", "ids": [1, 2]},
        {"key": 0, "ids": []},
        {"key": 2.0},
    ],
    invalid=[
        {"key": 1.5},
        {"key": None},
        {"key": True},
        {"key": []},
        {"key": 1, "ids": "some"},
        {"key": 1, "ids": ["1"]},
    ],
    calls=[
        ({"key": 1}, "int:all"),
        ({"key": "1"}, "str:all"),
        ({"key": 2.0, "ids": [3]}, "int:[3]"),
    ],
    direct=[(("k",), {}, "str:all")],
)


# 10. Literal of strings with a default; Literal of integers; Literal of mixed types.
@tool
def configure(
    mode: Literal["fast", "slow", "auto"] = "auto",
    level: Literal[1, 2, 3] = 1,
    answer: Literal["yes", 0, False, None] = None,
) -> str:
    """Configure the engine.

    Args:
        mode: The speed mode.
        level: The compression level.
        answer: A yes, a zero, false or null.
    """
    return f"{mode}:{level}:{answer!r}"


entry(
    "literals",
    tool=configure,
    description="Configure the engine.",
    properties={
        "mode": "The speed mode.",
        "level": "The compression level.",
        "answer": "A yes, a zero, false or null.",
    },
    required=[],
    defaults={"mode": "auto", "level": 1, "answer": None},
    valid=[
        {},
        {"mode": "fast", "level": 3},
        {"answer": "yes"},
        {"answer": 0},
        {"answer": False},
        {"answer": None},
        {"level": 2.0},
    ],
    invalid=[
        {"mode": "FAST"},
        {"mode": 1},
        {"level": 4},
        {"level": "1"},
        {"level": True},
        {"answer": "no"},
        {"answer": True},
        {"answer": 1},
        {"answer": "0"},
    ],
    calls=[({}, "auto:1:None"), ({"answer": False}, "auto:1:False"), ({"answer": 0}, "auto:1:0")],
    direct=[((), {"mode": "slow"}, "slow:1:None")],
)


# 11. Enum, IntEnum, StrEnum and an Enum of mixed value types.
@tool
def send_alert(
    unit: Unit, priority: Priority, channel: Channel = Channel.SMS, size: Size = Size.SMALL
) -> str:
    """Send an alert."""
    return f"{unit.name}:{priority.name}:{channel.name}:{size.name}"


entry(
    "enums",
    tool=send_alert,
    description="Send an alert.",
    properties={"unit": None, "priority": None, "channel": None, "size": None},
    required=["unit", "priority"],
    defaults={"channel": "sms", "size": 1},
    valid=[
        {"unit": "celsius", "priority": 1},
        {"unit": "fahrenheit", "priority": 3, "channel": "push", "size": "large"},
        {"unit": "celsius", "priority": 2, "size": 1},
    ],
    invalid=[
        {"unit": "CELSIUS", "priority": 1},
        {"unit": "celsius", "priority": 4},
        {"unit": "celsius", "priority": "1"},
        {"unit": "celsius", "priority": True},
        {"unit": "celsius", "priority": 1, "channel": "EMAIL"},
        {"unit": "celsius", "priority": 1, "size": "small"},
        {"unit": "celsius", "priority": 1, "size": True},
    ],
    calls=[
        ({"unit": "celsius", "priority": 3}, "CELSIUS:HIGH:SMS:SMALL"),
        ({"unit": "celsius", "priority": 1, "size": "large"}, "CELSIUS:LOW:SMS:LARGE"),
    ],
    direct=[((Unit.FAHRENHEIT, Priority.LOW), {}, "FAHRENHEIT:LOW:SMS:SMALL")],
)


# 12. set and frozenset: unique items.
@tool
def tag_items(tags: set[str], exclude: frozenset[int] = frozenset()) -> list[str]:
    """Tag the items.

    Args:
        tags: The tags to add; each once.
        exclude: Item ids to leave untagged.
    """
    return sorted(tags) + [str(i) for i in sorted(exclude)]


entry(
    "sets",
    tool=tag_items,
    description="Tag the items.",
    properties={"tags": "The tags to add; each once.", "exclude": "Item ids to leave untagged."},
    required=["tags"],
    defaults={"exclude": []},
    valid=[{"tags": []}, {"tags": ["a", "b"]}, {"tags": ["x"], "exclude": [1, 2]}],
    invalid=[
        {"tags": "a"},
        {"tags": [1]},
        {"tags": ["a", "a"]},
        {"tags": ["a"], "exclude": [1, 1]},
        {"tags": None},
    ],
    calls=[({"tags": ["b", "a"]}, ["a", "b"]), ({"tags": [], "exclude": [2, 1]}, ["1", "2"])],
    direct=[(({"z"},), {}, ["z"])],
)


# 13. Tuples, fixed and variadic, also inside a list.
@tool
def draw_path(
    start: tuple[float, float], steps: tuple[int, ...] = (), labels: list[tuple[str, int]] = []
) -> str:
    """Draw a path.

    Args:
        start: The (x, y) start point.
        steps: Step lengths.
        labels: (text, step) pairs.
    """
    return f"{start}|{steps}|{labels}"


entry(
    "tuples",
    tool=draw_path,
    description="Draw a path.",
    properties={
        "start": "The (x, y) start point.",
        "steps": "Step lengths.",
        "labels": "(text, step) pairs.",
    },
    required=["start"],
    defaults={"steps": [], "labels": []},
    valid=[
        {"start": [0, 0]},
        {"start": [1.5, -2], "steps": [1, 2, 3]},
        {"start": [0, 1], "labels": [["a", 1], ["b", 2]]},
    ],
    invalid=[
        {"start": [0]},
        {"start": [0, 1, 2]},
        {"start": ["0", 1]},
        {"start": {"x": 0, "y": 1}},
        {"start": [0, 0], "steps": [1.5]},
        {"start": [0, 0], "labels": [["a"]]},
        {"start": [0, 0], "labels": [[1, "a"]]},
    ],
    calls=[
        ({"start": [1, 2], "steps": [3]}, "(1.0, 2.0)|(3,)|[]"),
        ({"start": [0, 0], "labels": [["a", 1]]}, "(0.0, 0.0)|()|[('a', 1)]"),
    ],
    direct=[(((1.0, 2.0),), {}, "(1.0, 2.0)|()|[]")],
)


# 14. Mappings: dict[str, X] with scalar, list and model values.
@tool
def update_inventory(stock: dict[str, int], aliases: dict[str, list[str]] | None = None) -> int:
    """Update stock levels.

    Args:
        stock: Units in stock per SKU.
        aliases: Other names per SKU.
    """
    return sum(stock.values()) + len(aliases or {})


entry(
    "mappings",
    tool=update_inventory,
    description="Update stock levels.",
    properties={"stock": "Units in stock per SKU.", "aliases": "Other names per SKU."},
    required=["stock"],
    defaults={"aliases": None},
    valid=[
        {"stock": {}},
        {"stock": {"a-1": 5, "b-2": 0}},
        {"stock": {"x": 1}, "aliases": {"x": ["ex"]}},
        {"stock": {}, "aliases": None},
    ],
    invalid=[
        {"stock": {"a": "5"}},
        {"stock": {"a": 1.5}},
        {"stock": [["a", 1]]},
        {"stock": {}, "aliases": {"x": "ex"}},
        {"stock": None},
    ],
    calls=[({"stock": {"a": 2, "b": 3}}, 5), ({"stock": {}, "aliases": {"a": []}}, 1)],
    direct=[(({"a": 1},), {}, 1)],
)


# 15. datetime, date, time, timedelta.
@tool
def schedule_meeting(
    starts: datetime.datetime,
    day: datetime.date,
    reminder_at: datetime.time | None = None,
    length: datetime.timedelta = datetime.timedelta(minutes=30),
) -> str:
    """Schedule a meeting.

    Args:
        starts: When it starts, ISO 8601.
        day: The day, YYYY-MM-DD.
        reminder_at: When to remind, HH:MM.
        length: How long it lasts.
    """
    return f"{starts.isoformat()}|{day.isoformat()}|{reminder_at}|{length.total_seconds()}"


entry(
    "datetimes",
    tool=schedule_meeting,
    description="Schedule a meeting.",
    properties={
        "starts": "When it starts, ISO 8601.",
        "day": "The day, YYYY-MM-DD.",
        "reminder_at": "When to remind, HH:MM.",
        "length": "How long it lasts.",
    },
    required=["starts", "day"],
    defaults={"reminder_at": None, "length": "PT30M"},
    valid=[
        {"starts": "2024-05-01T09:30:00Z", "day": "2024-05-01"},
        {"starts": "2024-05-01T09:30:00+08:00", "day": "2024-02-29", "reminder_at": "09:00"},
        {
            "starts": "2024-12-31T23:59:59.500Z",
            "day": "2000-02-29",
            "reminder_at": "23:59:59",
            "length": "PT1H",
        },
        {"starts": "2024-05-01T09:30:00", "day": "2024-05-01", "length": "P1DT2H"},
    ],
    invalid=[
        {"starts": "tomorrow", "day": "2024-05-01"},
        {"starts": "2024-05-01", "day": "2024-05-01"},
        {"starts": 1714555800, "day": "2024-05-01"},
        {"starts": "2024-13-01T09:30:00Z", "day": "2024-05-01"},
        {"starts": "2024-05-01T25:00:00Z", "day": "2024-05-01"},
        {"starts": "2024-05-01T09:30:00Z", "day": "2023-02-29"},
        {"starts": "2024-05-01T09:30:00Z", "day": "2024-04-31"},
        {"starts": "2024-05-01T09:30:00Z", "day": "01/05/2024"},
        {"starts": "2024-05-01T09:30:00Z", "day": "2024-05-01", "reminder_at": "9am"},
        {"starts": "2024-05-01T09:30:00Z", "day": "2024-05-01", "reminder_at": "24:00"},
        {"starts": "2024-05-01T09:30:00Z", "day": "2024-05-01", "length": "half an hour"},
        {"starts": "2024-05-01T09:30:00Z", "day": "2024-05-01", "length": 1800},
    ],
    calls=[
        (
            {"starts": "2024-05-01T09:30:00Z", "day": "2024-05-01"},
            "2024-05-01T09:30:00+00:00|2024-05-01|None|1800.0",
        ),
        (
            {
                "starts": "2024-05-01T09:30:00",
                "day": "2024-02-29",
                "reminder_at": "08:15",
                "length": "PT1H",
            },
            "2024-05-01T09:30:00|2024-02-29|08:15:00|3600.0",
        ),
    ],
    direct=[
        (
            (datetime.datetime(2024, 1, 1), datetime.date(2024, 1, 2)),
            {},
            "2024-01-01T00:00:00|2024-01-02|None|1800.0",
        )
    ],
)


# 16. UUID, Decimal, Path, bytes.
@tool
def refund(
    order_id: uuid.UUID,
    amount: Decimal,
    receipt: Path = Path("receipts/latest.pdf"),
    memo: bytes = b"",
) -> str:
    """Refund an order.

    Args:
        order_id: The order's UUID.
        amount: How much to refund.
        receipt: Where to store the receipt.
        memo: A note for the bank.
    """
    return f"{order_id.hex[:8]}|{amount!r}|{receipt.as_posix()}|{memo!r}"


entry(
    "uuid-decimal-path-bytes",
    tool=refund,
    description="Refund an order.",
    properties={
        "order_id": "The order's UUID.",
        "amount": "How much to refund.",
        "receipt": "Where to store the receipt.",
        "memo": "A note for the bank.",
    },
    required=["order_id", "amount"],
    defaults={"receipt": "receipts/latest.pdf", "memo": ""},
    valid=[
        {"order_id": UUID, "amount": "12.50"},
        {"order_id": UUID.upper(), "amount": 12.5, "receipt": "a/b.pdf"},
        {"order_id": UUID, "amount": 3, "memo": "thanks"},
        {"order_id": UUID, "amount": "-0.01"},
        {"order_id": UUID, "amount": "1e3"},
    ],
    invalid=[
        {"order_id": "not-a-uuid", "amount": 1},
        {"order_id": UUID[:-1], "amount": 1},
        {"order_id": 12345, "amount": 1},
        {"order_id": UUID, "amount": "twelve"},
        {"order_id": UUID, "amount": True},
        {"order_id": UUID, "amount": None},
        {"order_id": UUID, "amount": "1,5"},
        {"order_id": UUID, "amount": 1, "receipt": 5},
        {"order_id": UUID, "amount": 1, "memo": [1, 2]},
    ],
    calls=[
        (
            {"order_id": UUID, "amount": "12.50"},
            "8f14e45f|Decimal('12.50')|receipts/latest.pdf|b''",
        ),
        (
            {"order_id": UUID, "amount": 3, "memo": "hi", "receipt": "x.pdf"},
            "8f14e45f|Decimal('3')|x.pdf|b'hi'",
        ),
    ],
    direct=[
        ((uuid.UUID(UUID), Decimal("1.0")), {}, "8f14e45f|Decimal('1.0')|receipts/latest.pdf|b''")
    ],
)


# 17. Annotated numeric constraints: ge, le, gt, lt, multiple_of, annotated_types.
@tool
def set_volume(
    level: Annotated[int, Field(ge=0, le=100)],
    balance: Annotated[float, Field(gt=-1, lt=1)] = 0.0,
    step: Annotated[int, Field(multiple_of=5)] = 5,
    fade: Annotated[float, annotated_types.Interval(ge=0, le=10), Field(multiple_of=0.5)] = 0,
) -> str:
    """Set the volume.

    Args:
        level: Percent, 0 to 100.
        balance: Left (-1) to right (1), exclusive.
        step: Change in steps of five.
        fade: Seconds to fade, in halves.
    """
    return f"{level}|{balance}|{step}|{fade}"


entry(
    "numeric-constraints",
    tool=set_volume,
    description="Set the volume.",
    properties={
        "level": "Percent, 0 to 100.",
        "balance": "Left (-1) to right (1), exclusive.",
        "step": "Change in steps of five.",
        "fade": "Seconds to fade, in halves.",
    },
    required=["level"],
    defaults={"balance": 0.0, "step": 5, "fade": 0},
    valid=[
        {"level": 0},
        {"level": 100, "balance": 0.99},
        {"level": 50, "step": 15, "fade": 2.5},
        {"level": 1, "balance": -0.5, "fade": 10},
    ],
    invalid=[
        {"level": -1},
        {"level": 101},
        {"level": 50.5},
        {"level": True},
        {"level": 1, "balance": 1},
        {"level": 1, "balance": -1},
        {"level": 1, "step": 7},
        {"level": 1, "fade": 0.3},
        {"level": 1, "fade": 10.5},
    ],
    calls=[({"level": 5}, "5|0.0|5|0"), ({"level": 5, "step": 10, "fade": 1}, "5|0.0|10|1.0")],
    direct=[((3,), {"balance": 0.5}, "3|0.5|5|0")],
)


# 18. Annotated string and list constraints.
@tool
def create_account(
    username: Annotated[str, Field(min_length=3, max_length=16, pattern=r"^[a-z][a-z0-9_]*$")],
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "CN",
    emails: Annotated[list[str], Field(min_length=1, max_length=3)] = ["me@example.com"],
    pin: Annotated[str, annotated_types.Len(4, 4)] | None = None,
) -> str:
    """Create an account.

    Args:
        username: Lowercase letters, digits and underscores.
        country: ISO 3166 two-letter code.
        emails: One to three addresses.
        pin: Four characters, if any.
    """
    return f"{username}|{country}|{len(emails)}|{pin}"


entry(
    "string-constraints",
    tool=create_account,
    description="Create an account.",
    properties={
        "username": "Lowercase letters, digits and underscores.",
        "country": "ISO 3166 two-letter code.",
        "emails": "One to three addresses.",
        "pin": "Four characters, if any.",
    },
    required=["username"],
    defaults={"country": "CN", "emails": ["me@example.com"], "pin": None},
    valid=[
        {"username": "ann"},
        {"username": "bob_2", "country": "DE", "emails": ["a", "b", "c"]},
        {"username": "a" * 16, "pin": "1234"},
    ],
    invalid=[
        {"username": "ab"},
        {"username": "a" * 17},
        {"username": "Ann"},
        {"username": "1ann"},
        {"username": "ann", "country": "de"},
        {"username": "ann", "country": "DEU"},
        {"username": "ann", "emails": []},
        {"username": "ann", "emails": ["a", "b", "c", "d"]},
        {"username": "ann", "pin": "123"},
    ],
    calls=[
        ({"username": "ann"}, "ann|CN|1|None"),
        ({"username": "bob", "pin": "0000"}, "bob|CN|1|0000"),
    ],
    direct=[(("cy",), {}, "cy|CN|1|None")],
)


# 19. Nested pydantic models, with constraints, descriptions and default factories.
@tool
def place_order(order: Order, express: bool = False) -> str:
    """Place an order.

    Args:
        order: What to ship and where.
        express: Ship by express.
    """
    total = sum(item.quantity for item in order.items)
    return f"{total}|{order.ship_to.city}|{order.ship_to.country}|{order.notes}|{express}"


ORDER: dict[str, Any] = {
    "items": [{"sku": "abc", "quantity": 2}],
    "ship_to": {"street": "1 West Lake Rd", "city": "Hangzhou", "postcode": "310000"},
}
entry(
    "nested-models",
    tool=place_order,
    description="Place an order.",
    properties={"order": "What to ship and where.", "express": "Ship by express."},
    required=["order"],
    defaults={"express": False},
    valid=[
        {"order": ORDER},
        {"order": {**ORDER, "gift": True, "notes": ["ring twice"]}, "express": True},
        {
            "order": {
                "items": [
                    {"sku": "abcd", "quantity": 1, "unit_price": "9.99"},
                    {"sku": "xyz", "quantity": 3, "unit_price": None},
                ],
                "ship_to": {**ORDER["ship_to"], "country": "FR"},
            }
        },
    ],
    invalid=[
        {"order": {**ORDER, "items": []}},
        {"order": {**ORDER, "items": [{"sku": "ab", "quantity": 1}]}},
        {"order": {**ORDER, "items": [{"sku": "abc", "quantity": 0}]}},
        {"order": {**ORDER, "items": [{"sku": "abc"}]}},
        {"order": {**ORDER, "ship_to": {"street": "x", "city": "y", "postcode": "31000"}}},
        {"order": {**ORDER, "ship_to": {"city": "y", "postcode": "310000"}}},
        {"order": {**ORDER, "coupon": "X"}},
        {"order": {**ORDER, "items": [{"sku": "abc", "quantity": 1, "color": "red"}]}},
        {"order": "abc"},
    ],
    calls=[({"order": ORDER}, "2|Hangzhou|CN|[]|False")],
    direct=[((Order.model_validate(ORDER),), {"express": True}, "2|Hangzhou|CN|[]|True")],
)


# 20. A recursive model.
@tool
def build_tree(root: Category, max_depth: int = 5) -> int:
    """Store a category tree.

    Args:
        root: The top category.
        max_depth: Refuse deeper trees.
    """

    def count(node: Category) -> int:
        return 1 + sum(count(child) for child in node.children)

    return count(root)


entry(
    "recursive-model",
    tool=build_tree,
    description="Store a category tree.",
    properties={"root": "The top category.", "max_depth": "Refuse deeper trees."},
    required=["root"],
    defaults={"max_depth": 5},
    valid=[
        {"root": {"name": "a"}},
        {"root": {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}},
        {"root": {"name": "a", "children": []}},
    ],
    invalid=[
        {"root": {}},
        {"root": {"name": "a", "children": [{"title": "b"}]}},
        {"root": {"name": "a", "children": [{"name": 1}]}},
        {"root": {"name": "a", "children": {"name": "b"}}},
    ],
    calls=[
        (
            {
                "root": {
                    "name": "a",
                    "children": [{"name": "b", "children": [{"name": "c"}]}, {"name": "d"}],
                }
            },
            4,
        )
    ],
    direct=[((Category(name="x"),), {}, 1)],
)


# 21. Mutually recursive models; a model field named "title".
@tool
def org_chart(team: Team) -> list[str]:
    """Record a team and the teams of its members."""
    return [m.name + ":" + (m.team.title if m.team else "-") for m in team.members]


entry(
    "mutual-recursion",
    tool=org_chart,
    description="Record a team and the teams of its members.",
    properties={"team": None},
    required=["team"],
    valid=[
        {"team": {"title": "core"}},
        {"team": {"title": "core", "members": [{"name": "ann", "team": {"title": "infra"}}]}},
        {"team": {"title": "x", "members": [{"name": "b", "team": None}]}},
    ],
    invalid=[
        {"team": {}},
        {"team": {"title": 1}},
        {"team": {"title": "x", "members": [{"team": None}]}},
        {"team": {"title": "x", "members": [{"name": "b", "team": {"members": []}}]}},
    ],
    calls=[
        (
            {
                "team": {
                    "title": "core",
                    "members": [{"name": "ann", "team": {"title": "infra"}}, {"name": "bo"}],
                }
            },
            ["ann:infra", "bo:-"],
        )
    ],
    direct=[((Team(title="t"),), {}, [])],
)


# 22. A discriminated union of models (tags with defaults) and a plain union of models.
@tool
def adopt(
    pet: Annotated[Cat | Dog | Parrot, Field(discriminator="kind")], backup: Cat | Dog | None = None
) -> str:
    """Adopt a pet.

    Args:
        pet: The pet; "kind" says which.
        backup: A second choice.
    """
    return f"{type(pet).__name__}|{type(backup).__name__}"


entry(
    "model-unions",
    tool=adopt,
    description="Adopt a pet.",
    properties={"pet": 'The pet; "kind" says which.', "backup": "A second choice."},
    required=["pet"],
    defaults={"backup": None},
    valid=[
        {"pet": {"kind": "cat"}},
        {"pet": {"kind": "dog", "breed": "corgi"}},
        {"pet": {"kind": "parrot", "words": ["hi"]}, "backup": {"breed": "pug"}},
        {"pet": {"kind": "cat", "indoor": False}, "backup": {"indoor": True}},
        {"pet": {"kind": "dog", "breed": "x"}, "backup": None},
    ],
    invalid=[
        {"pet": {"indoor": False}},
        {"pet": {"breed": "corgi"}},
        {"pet": {"kind": "cow"}},
        {"pet": {"kind": "dog"}},
        {"pet": {"kind": "cat", "breed": "x"}},
        {"pet": {"kind": "cat"}, "backup": {"kind": "parrot"}},
        {"pet": {"kind": "cat"}, "backup": {"breed": 5}},
    ],
    calls=[
        ({"pet": {"kind": "dog", "breed": "x"}}, "Dog|NoneType"),
        ({"pet": {"kind": "cat"}, "backup": {"breed": "p"}}, "Cat|Dog"),
    ],
    direct=[((Cat(),), {}, "Cat|NoneType")],
)


# 23. A dataclass with default_factory, a frozen dataclass.
@tool
def set_reminder(reminder: Reminder, quiet: Window | None = None) -> str:
    """Set a reminder.

    Args:
        reminder: What to send and when.
        quiet: Do not send in this window.
    """
    channels = [c.value for c in reminder.channels]
    return f"{reminder.text}|{channels}|{reminder.repeat}|{quiet.start if quiet else None}"


entry(
    "dataclasses",
    tool=set_reminder,
    description="Set a reminder.",
    properties={"reminder": "What to send and when.", "quiet": "Do not send in this window."},
    required=["reminder"],
    defaults={"quiet": None},
    valid=[
        {"reminder": {"text": "call", "at": "2024-05-01T08:00:00Z"}},
        {
            "reminder": {
                "text": "call",
                "at": "2024-05-01T08:00:00Z",
                "channels": ["sms", "push"],
                "repeat": 2,
            }
        },
        {
            "reminder": {"text": "x", "at": "2024-05-01T08:00:00Z"},
            "quiet": {"start": "22:00", "end": "07:00"},
        },
    ],
    invalid=[
        {"reminder": {"text": "call"}},
        {"reminder": {"text": "call", "at": "soon"}},
        {"reminder": {"text": "call", "at": "2024-05-01T08:00:00Z", "channels": ["fax"]}},
        {"reminder": {"text": "call", "at": "2024-05-01T08:00:00Z", "snooze": 5}},
        {"reminder": {"text": "x", "at": "2024-05-01T08:00:00Z"}, "quiet": {"start": "22:00"}},
    ],
    calls=[
        ({"reminder": {"text": "call", "at": "2024-05-01T08:00:00Z"}}, "call|['email']|0|None"),
        (
            {
                "reminder": {"text": "x", "at": "2024-05-01T08:00:00Z"},
                "quiet": {"start": "22:00", "end": "07:00"},
            },
            "x|['email']|0|22:00:00",
        ),
    ],
    direct=[((Reminder("t", datetime.datetime(2024, 1, 1)),), {}, "t|['email']|0|None")],
)


# 24. typing.TypedDict with total=False and Required; typing_extensions with NotRequired.
@tool
def add_contact(
    contact: Contact, prefs: Preferences | None = None, options: Options | None = None
) -> str:
    """Add a contact.

    Args:
        contact: The contact card; only the name is required.
        prefs: Display preferences.
        options: Import options.
    """
    return f"{sorted(contact)}|{sorted(prefs or {})}|{sorted(options or {})}"


entry(
    "typeddicts",
    tool=add_contact,
    description="Add a contact.",
    properties={
        "contact": "The contact card; only the name is required.",
        "prefs": "Display preferences.",
        "options": "Import options.",
    },
    required=["contact"],
    defaults={"prefs": None, "options": None},
    valid=[
        {"contact": {"name": "ann"}},
        {"contact": {"name": "ann", "email": "a@b.c", "phone": "123"}, "prefs": {"theme": "dark"}},
        {
            "contact": {"name": "bo"},
            "prefs": {"theme": "light", "font_size": 12},
            "options": {"depth": 1},
        },
        {"contact": {"name": "bo"}, "options": {"depth": 1, "verbose": True}},
    ],
    invalid=[
        {"contact": {"email": "a@b.c"}},
        {"contact": {"name": "ann", "age": 3}},
        {"contact": {"name": "ann"}, "prefs": {}},
        {"contact": {"name": "ann"}, "prefs": {"theme": "blue"}},
        {"contact": {"name": "ann"}, "prefs": {"theme": "dark", "font_size": "12"}},
        {"contact": {"name": "ann"}, "options": {"verbose": True}},
    ],
    calls=[
        (
            {"contact": {"name": "a", "phone": "1"}, "prefs": {"theme": "dark"}},
            "['name', 'phone']|['theme']|[]",
        )
    ],
    direct=[(({"name": "x"},), {}, "['name']|[]|[]")],
)


# 25. A recursive typing.TypedDict.
@tool
def save_outline(outline: Outline) -> int:
    """Save a document outline."""

    def count(node: Outline) -> int:
        return 1 + sum(count(s) for s in node["sections"])

    return count(outline)


entry(
    "recursive-typeddict",
    tool=save_outline,
    description="Save a document outline.",
    properties={"outline": None},
    required=["outline"],
    valid=[
        {"outline": {"heading": "a", "sections": []}},
        {"outline": {"heading": "a", "sections": [{"heading": "b", "sections": []}]}},
        {
            "outline": {
                "heading": "",
                "sections": [{"heading": "b", "sections": [{"heading": "c", "sections": []}]}],
            }
        },
    ],
    invalid=[
        {"outline": {"heading": "a"}},
        {"outline": {"heading": "a", "sections": [{"heading": "b"}]}},
        {"outline": {"heading": 1, "sections": []}},
        {"outline": {"heading": "a", "sections": [], "x": 1}},
    ],
    calls=[({"outline": {"heading": "a", "sections": [{"heading": "b", "sections": []}]}}, 2)],
    direct=[(({"heading": "x", "sections": []},), {}, 1)],
)


# 26. Keyword-only parameters, documented under "Keyword Args".
@tool
def search(query: str, *, limit: int = 10, exact: bool = False) -> str:
    """Search the catalogue.

    Args:
        query: What to look for.

    Keyword Args:
        limit: At most this many results.
        exact: Match the whole phrase.
    """
    return f"{query}|{limit}|{exact}"


entry(
    "keyword-only",
    tool=search,
    description="Search the catalogue.",
    properties={
        "query": "What to look for.",
        "limit": "At most this many results.",
        "exact": "Match the whole phrase.",
    },
    required=["query"],
    defaults={"limit": 10, "exact": False},
    valid=[
        {"query": "lamp"},
        {"query": "lamp", "limit": 3},
        {"query": "red lamp", "exact": True, "limit": 1},
    ],
    invalid=[
        {"limit": 3},
        {"query": "x", "limit": "3"},
        {"query": "x", "exact": "yes"},
        {"query": "x", "offset": 2},
    ],
    calls=[({"query": "q", "exact": True}, "q|10|True")],
    direct=[(("q",), {"limit": 2}, "q|2|False")],
)


# 27. Positional-only parameters: allowed, named in the schema, passed positionally.
@tool
def power(base: float, exponent: int = 2, /, *, modulo: int | None = None) -> float:
    """Raise a number to a power.

    Args:
        base: The base.
        exponent: The exponent.
        modulo: Reduce the result modulo this.
    """
    result = base**exponent
    return result % modulo if modulo else result


entry(
    "positional-only",
    tool=power,
    description="Raise a number to a power.",
    properties={
        "base": "The base.",
        "exponent": "The exponent.",
        "modulo": "Reduce the result modulo this.",
    },
    required=["base"],
    defaults={"exponent": 2, "modulo": None},
    valid=[
        {"base": 2},
        {"base": 2.5, "exponent": 3},
        {"base": 3, "modulo": 5},
        {"base": 3, "exponent": 0, "modulo": None},
    ],
    invalid=[{}, {"exponent": 2}, {"base": "2"}, {"base": 2, "exponent": 1.5}],
    calls=[({"base": 3}, 9.0), ({"base": 2, "exponent": 3}, 8.0), ({"base": 3, "modulo": 5}, 4.0)],
    direct=[((2.0, 5), {}, 32.0), ((3.0,), {"modulo": 4}, 1.0)],
)


# 28. Unannotated parameters accept any JSON value; Any and object too.
@tool
def log_event(message, level="info", payload: Any = None, extra: object = None) -> str:  # type: ignore[no-untyped-def]
    """Write an event to the log.

    Args:
        message: What happened.
        level: The log level.
        payload: Any JSON data.
        extra: Anything else.
    """
    return f"{message!r}|{level!r}|{payload!r}|{extra!r}"


entry(
    "unannotated-any-object",
    tool=log_event,
    description="Write an event to the log.",
    properties={
        "message": "What happened.",
        "level": "The log level.",
        "payload": "Any JSON data.",
        "extra": "Anything else.",
    },
    required=["message"],
    defaults={"level": "info", "payload": None, "extra": None},
    valid=[
        {"message": "x"},
        {"message": 5, "level": 3},
        {"message": None, "payload": {"a": [1, None]}},
        {"message": [1, "a"], "extra": True},
    ],
    invalid=[{}, {"level": "info"}, {"message": "x", "msg": "y"}],
    calls=[
        ({"message": {"a": 1}}, "{'a': 1}|'info'|None|None"),
        ({"message": [1], "payload": 2.5}, "[1]|'info'|2.5|None"),
    ],
    direct=[(("m",), {}, "'m'|'info'|None|None")],
    strict="refused",
)


# 29. Bare list and dict, dict[str, Any], list of dicts of unions.
@tool
def import_rows(
    rows: list,  # type: ignore[type-arg]
    meta: dict,  # type: ignore[type-arg]
    headers: dict[str, Any] | None = None,
    cells: list[dict[str, int | str]] = [],
) -> int:
    """Import rows.

    Args:
        rows: The rows, any JSON values.
        meta: Free-form metadata.
        headers: Header values by name.
        cells: Cell values by column.
    """
    return len(rows) + len(meta) + len(cells)


entry(
    "bare-containers",
    tool=import_rows,
    description="Import rows.",
    properties={
        "rows": "The rows, any JSON values.",
        "meta": "Free-form metadata.",
        "headers": "Header values by name.",
        "cells": "Cell values by column.",
    },
    required=["rows", "meta"],
    defaults={"headers": None, "cells": []},
    valid=[
        {"rows": [], "meta": {}},
        {"rows": [1, "a", None, [2]], "meta": {"x": {"y": 1}}},
        {"rows": [], "meta": {}, "headers": {"a": [1]}, "cells": [{"a": 1, "b": "x"}]},
    ],
    invalid=[
        {"rows": {}, "meta": {}},
        {"rows": [], "meta": []},
        {"rows": "abc", "meta": {}},
        {"rows": [], "meta": {}, "cells": [{"a": 1.5}]},
        {"rows": [], "meta": {}, "cells": [{"a": None}]},
    ],
    calls=[({"rows": [1, 2], "meta": {"a": 1}}, 3)],
    direct=[(([1],), {"meta": {}}, 1)],
    strict="refused",
)


# 30. Field(description) and an Annotated string win over the docstring; a Field default.
@tool
def book_room(
    room: Annotated[str, Field(description="The room code, e.g. B-201.")],
    people: int = Field(2, ge=1, description="How many people come."),
    note: Annotated[str, "A note for the front desk."] = "",
    floor: int | None = None,
) -> str:
    """Book a meeting room.

    Args:
        room: Docstring text that the Field overrides.
        people: Docstring text that the Field default overrides.
        note: Docstring text that the annotation overrides.
        floor: Only rooms on this floor.
    """
    return f"{room}|{people}|{note}|{floor}"


entry(
    "field-vs-docstring",
    tool=book_room,
    description="Book a meeting room.",
    properties={
        "room": "The room code, e.g. B-201.",
        "people": "How many people come.",
        "note": "A note for the front desk.",
        "floor": "Only rooms on this floor.",
    },
    required=["room"],
    defaults={"people": 2, "note": "", "floor": None},
    valid=[
        {"room": "B-201"},
        {"room": "A-1", "people": 10, "note": "window"},
        {"room": "C", "floor": 3},
    ],
    invalid=[{"room": "B", "people": 0}, {"room": 201}, {"people": 2}, {"room": "B", "floor": "3"}],
    calls=[({"room": "B"}, "B|2||None"), ({"room": "B", "people": 4, "floor": None}, "B|4||None")],
    direct=[(("X",), {"people": 1, "note": "n", "floor": 2}, "X|1|n|2")],
)


# 31. Defaults of every kind: shown as JSON, mutable ones untouched between calls.
@tool
def export_report(
    title: str = "Report",
    pages: int = 1,
    ratio: float = 0.5,
    draft: bool = True,
    tags: list[str] = ["weekly"],
    options: dict[str, int] = {"dpi": 300},
    size: tuple[int, int] = (210, 297),
    unit: Unit = Unit.FAHRENHEIT,
    since: datetime.date = datetime.date(2024, 1, 1),
    at: datetime.datetime = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.UTC),
    budget: Decimal = Decimal("9.99"),
    folder: Path = Path("out"),
    owners: list[str] = Field(default_factory=list),
    nothing: None = None,
) -> str:
    """Export a report."""
    tags.append("seen")  # a mutable default: the next call must start from the original
    values = (title, pages, ratio, draft, tags, options, size, unit.name, since, at.hour)
    result = "|".join(map(str, (*values, budget, folder, owners, nothing)))
    tags.remove("seen")
    return result


DEFAULT_REPORT = (
    "Report|1|0.5|True|['weekly', 'seen']|{'dpi': 300}|(210, 297)|FAHRENHEIT|2024-01-01|12"
    "|9.99|out|[]|None"
)
entry(
    "defaults-of-every-kind",
    tool=export_report,
    description="Export a report.",
    properties={
        k: None
        for k in (
            "title",
            "pages",
            "ratio",
            "draft",
            "tags",
            "options",
            "size",
            "unit",
            "since",
            "at",
            "budget",
            "folder",
            "owners",
            "nothing",
        )
    },
    required=[],
    defaults={
        "title": "Report",
        "pages": 1,
        "ratio": 0.5,
        "draft": True,
        "tags": ["weekly"],
        "options": {"dpi": 300},
        "size": [210, 297],
        "unit": "fahrenheit",
        "since": "2024-01-01",
        "at": "2024-01-01T12:00:00Z",
        "budget": "9.99",
        "folder": "out",
        "nothing": None,
    },
    valid=[
        {},
        {"title": "Q1", "tags": [], "options": {}},
        {"size": [1, 2], "unit": "celsius", "since": "2023-12-31", "budget": 5},
        {"owners": ["ann"], "nothing": None},
    ],
    invalid=[
        {"pages": "1"},
        {"size": [1]},
        {"nothing": 0},
        {"since": "yesterday"},
        {"options": {"dpi": "300"}},
        {"owners": "ann"},
    ],
    calls=[
        ({}, DEFAULT_REPORT),
        ({}, DEFAULT_REPORT),
        ({"owners": ["a"]}, DEFAULT_REPORT.replace("|[]|", "|['a']|")),
    ],
    direct=[((), {"owners": []}, DEFAULT_REPORT)],
)


# 32. A bound method (state from the instance), a classmethod, staticmethods.
class Calculator:
    """A calculator with a memory."""

    def __init__(self, memory: float) -> None:
        self.memory = memory

    def add_to_memory(self, value: float) -> float:
        """Add a value to the memory.

        Args:
            value: The value to add.
        """
        return self.memory + value

    @classmethod
    def describe(cls, verbose: bool = False) -> str:
        """Describe the calculator.

        Args:
            verbose: Say more.
        """
        return cls.__name__ + ("!" if verbose else "")

    @staticmethod
    @tool
    def double(x: int) -> int:
        """Double a number.

        Args:
            x: The number.
        """
        return 2 * x

    @tool
    @staticmethod
    def halve(x: float) -> float:
        """Halve a number.

        Args:
            x: The number.
        """
        return x / 2


_calculator = Calculator(10)
entry(
    "bound-method",
    tool=tool(_calculator.add_to_memory),
    description="Add a value to the memory.",
    properties={"value": "The value to add."},
    required=["value"],
    valid=[{"value": 1}, {"value": -2.5}, {"value": 0}],
    invalid=[{}, {"self": 1, "value": 1}, {"value": "1"}],
    calls=[({"value": 5}, 15.0)],
    direct=[((2,), {}, 12)],
)
entry(
    "classmethod",
    tool=tool(Calculator.describe),
    description="Describe the calculator.",
    properties={"verbose": "Say more."},
    required=[],
    defaults={"verbose": False},
    valid=[{}, {"verbose": True}, {"verbose": False}],
    invalid=[{"cls": "x"}, {"verbose": "yes"}, {"verbose": None}],
    calls=[({"verbose": True}, "Calculator!")],
    direct=[((), {}, "Calculator")],
)
entry(
    "staticmethod-over-tool",
    tool=Calculator.__dict__["double"].__func__,
    description="Double a number.",
    properties={"x": "The number."},
    required=["x"],
    valid=[{"x": 1}, {"x": -3}, {"x": 0}],
    invalid=[{}, {"x": 1.5}, {"x": "2"}],
    calls=[({"x": 4}, 8)],
    direct=[((3,), {}, 6)],
)
entry(
    "tool-over-staticmethod",
    tool=Calculator.halve,
    description="Halve a number.",
    properties={"x": "The number."},
    required=["x"],
    valid=[{"x": 1}, {"x": -3.5}, {"x": 0}],
    invalid=[{}, {"x": "1"}, {"x": None}],
    calls=[({"x": 3}, 1.5)],
    direct=[((5,), {}, 2.5)],
    name="halve",
)


# 33. Async functions: with a model argument, and with a context parameter.
@tool
async def fetch_page(
    url: Annotated[str, Field(pattern=r"^https?://")], timeout: float = 10.0
) -> str:
    """Fetch a web page.

    Args:
        url: The address, http or https.
        timeout: Seconds to wait.
    """
    await asyncio.sleep(0)
    return f"{url}|{timeout}"


entry(
    "async",
    tool=fetch_page,
    description="Fetch a web page.",
    properties={"url": "The address, http or https.", "timeout": "Seconds to wait."},
    required=["url"],
    defaults={"timeout": 10.0},
    valid=[
        {"url": "https://example.com"},
        {"url": "http://x", "timeout": 1},
        {"url": "https://a/b?c=d", "timeout": 0.5},
    ],
    invalid=[{"url": "ftp://x"}, {"url": "example.com"}, {"url": "https://x", "timeout": "5"}, {}],
    calls=[
        ({"url": "https://e"}, "https://e|10.0"),
        ({"url": "http://e", "timeout": 2}, "http://e|2.0"),
    ],
    direct=[(("https://d",), {}, "https://d|10.0")],
)


# 34. RunContext in the first, a middle and the last position; bare and parameterised.
@tool
async def greet(ctx: RunContext[Deps], name: str) -> str:
    """Greet someone.

    Args:
        ctx: The run context (never shown to the model).
        name: Who to greet.
    """
    return f"{ctx.deps.greeting}, {name}"


@tool
def greet_many(names: list[str], ctx: RunContext[Deps], shout: bool = False) -> str:
    """Greet several people.

    Args:
        names: Who to greet.
        ctx: The run context.
        shout: Use capitals.
    """
    text = ", ".join(f"{ctx.deps.greeting} {n}" for n in names)
    return text.upper() if shout else text


@tool
def whoami(prefix: str = "", *, context: RunContext) -> str:  # type: ignore[type-arg]
    """Say which turn of the run this is.

    Args:
        prefix: Text to put first.
        context: The run context.
    """
    return f"{prefix}{context.turn}"


_CTX = RunContext(deps=Deps("Hello"), turn=3)
entry(
    "context-first-async",
    tool=greet,
    description="Greet someone.",
    properties={"name": "Who to greet."},
    required=["name"],
    valid=[{"name": "ann"}, {"name": ""}, {"name": "bo"}],
    invalid=[{}, {"name": "ann", "ctx": {}}, {"name": None}],
    calls=[({"name": "ann"}, "Hello, ann")],
    direct=[((_CTX, "bo"), {}, "Hello, bo")],
    context=_CTX,
)
entry(
    "context-middle",
    tool=greet_many,
    description="Greet several people.",
    properties={"names": "Who to greet.", "shout": "Use capitals."},
    required=["names"],
    defaults={"shout": False},
    valid=[{"names": []}, {"names": ["a", "b"]}, {"names": ["a"], "shout": True}],
    invalid=[{"names": "a"}, {"names": ["a"], "ctx": None}, {"shout": True}],
    calls=[
        ({"names": ["a", "b"]}, "Hello a, Hello b"),
        ({"names": ["a"], "shout": True}, "HELLO A"),
    ],
    direct=[((["x"], _CTX), {}, "Hello x")],
    context=_CTX,
)
entry(
    "context-last-bare",
    tool=whoami,
    description="Say which turn of the run this is.",
    properties={"prefix": "Text to put first."},
    required=[],
    defaults={"prefix": ""},
    valid=[{}, {"prefix": "turn "}, {"prefix": ""}],
    invalid=[{"context": {}}, {"prefix": 3}, {"turn": 1}],
    calls=[({"prefix": "t"}, "t3")],
    direct=[(("#",), {"context": _CTX}, "#3")],
    context=_CTX,
)


# 35. Name and description overrides; a functools.partial; a callable object.
@tool(name="lookup-user_v2", description="Find a user. Overrides the docstring.")
def lookup_user(login: str) -> str:
    """Docstring summary that the override replaces.

    Args:
        login: The login name.
    """
    return login.upper()


entry(
    "overrides",
    tool=lookup_user,
    description="Find a user. Overrides the docstring.",
    properties={"login": "The login name."},
    required=["login"],
    valid=[{"login": "ann"}, {"login": ""}, {"login": "b c"}],
    invalid=[{}, {"login": 1}, {"name": "ann"}],
    calls=[({"login": "ann"}, "ANN")],
    direct=[(("bo",), {}, "BO")],
    name="lookup-user_v2",
)


def _convert(amount: float, rate: float, currency: str = "EUR") -> str:
    """Convert an amount of money.

    Args:
        amount: The amount in CNY.
        rate: The exchange rate.
        currency: The target currency.
    """
    return f"{amount * rate:.2f} {currency}"


entry(
    "partial",
    tool=tool(functools.partial(_convert, rate=0.5), name="convert"),
    description="Convert an amount of money.",
    properties={
        "amount": "The amount in CNY.",
        "rate": "The exchange rate.",
        "currency": "The target currency.",
    },
    required=["amount"],
    defaults={"rate": 0.5, "currency": "EUR"},
    valid=[{"amount": 10}, {"amount": 10, "currency": "USD"}, {"amount": 1, "rate": 2}],
    invalid=[{}, {"amount": "10"}, {"amount": 1, "currency": None}],
    calls=[({"amount": 10}, "5.00 EUR"), ({"amount": 10, "rate": 2}, "20.00 EUR")],
    direct=[((4,), {}, "2.00 EUR")],
    name="convert",
)


class Translator:
    """Translates text (a callable object)."""

    def __call__(self, text: str, target: Literal["en", "zh"] = "en") -> str:
        """Translate a text.

        Args:
            text: The text.
            target: The target language.
        """
        return f"{target}:{text}"


entry(
    "callable-object",
    tool=tool(Translator(), name="translate"),
    description="Translate a text.",
    properties={"text": "The text.", "target": "The target language."},
    required=["text"],
    defaults={"target": "en"},
    valid=[{"text": "hi"}, {"text": "hi", "target": "zh"}, {"text": ""}],
    invalid=[{"text": "hi", "target": "fr"}, {}, {"text": 1}],
    calls=[({"text": "hi", "target": "zh"}, "zh:hi")],
    direct=[(("a",), {}, "en:a")],
    name="translate",
)


# 36. Parameter names pydantic reserves for itself, and a model field with an alias.
@tool
def send_mail(
    mail: Mail, schema: str = "v1", copy: bool = False, json: bool = True, _trace: str = ""
) -> str:
    """Send an e-mail.

    Args:
        mail: The message.
        schema: The message schema version.
        copy: Keep a copy.
        json: Send as JSON.
        _trace: A trace id.
    """
    return f"{mail.sender}|{mail.to}|{schema}|{copy}|{json}|{_trace}"


entry(
    "reserved-names-and-alias",
    tool=send_mail,
    description="Send an e-mail.",
    properties={
        "mail": "The message.",
        "schema": "The message schema version.",
        "copy": "Keep a copy.",
        "json": "Send as JSON.",
        "_trace": "A trace id.",
    },
    required=["mail"],
    defaults={"schema": "v1", "copy": False, "json": True, "_trace": ""},
    valid=[
        {"mail": {"from": "a", "to": ["b"]}},
        {"mail": {"from": "a", "to": ["b", "c"]}, "schema": "v2", "copy": True, "json": False},
        {"mail": {"from": "a", "to": ["b"]}, "_trace": "t1"},
    ],
    invalid=[
        {"mail": {"sender": "a", "to": ["b"]}},
        {"mail": {"from": "a", "to": []}},
        {"mail": {"from": "a", "to": ["b"]}, "copy": "yes"},
        {"mail": {"from": "a", "to": ["b"]}, "trace": "x"},
    ],
    calls=[({"mail": {"from": "a", "to": ["b"]}, "_trace": "t"}, "a|['b']|v1|False|True|t")],
    direct=[((Mail(sender="s", to=["t"]),), {}, "s|['t']|v1|False|True|")],  # type: ignore[call-arg]
)


# 37. Docstring variants: sections only, paragraphs only, examples, "Arguments:" header,
#     a Google section right after the summary, trailing notes.
@tool
def only_args(x: int) -> int:
    """
    Args:
        x: The x.
    """
    return x


entry(
    "docstring-only-args",
    tool=only_args,
    description="",
    properties={"x": "The x."},
    required=["x"],
    valid=[{"x": 1}, {"x": 0}, {"x": -1}],
    invalid=[{}, {"x": "1"}, {"y": 1}],
    calls=[({"x": 2}, 2)],
    direct=[((3,), {}, 3)],
)


@tool
def paragraphs(text: str) -> str:
    """Summarise a text.

    The summary keeps names and numbers.

    It is at most three sentences: short enough for a notification.
    """
    return text[:3]


entry(
    "docstring-paragraphs",
    tool=paragraphs,
    description=(
        "Summarise a text.\n\nThe summary keeps names and numbers.\n\n"
        "It is at most three sentences: short enough for a notification."
    ),
    properties={"text": None},
    required=["text"],
    valid=[{"text": "abcdef"}, {"text": ""}, {"text": "ü"}],
    invalid=[{}, {"text": None}, {"text": ["a"]}],
    calls=[({"text": "abcdef"}, "abc")],
    direct=[(("xyzw",), {}, "xyz")],
)


@tool
def convert_units(value: float, to: Literal["km", "mi"]) -> float:
    """Convert a distance.

    Arguments:
        value: The distance
            in the other unit.
        to: The target unit.

    Example:
        >>> convert_units(1, "km")
        1.609

    Note:
        Rounds to three decimals.
    """
    return round(value * (1.609 if to == "km" else 1 / 1.609), 3)


entry(
    "docstring-examples-notes",
    tool=convert_units,
    description="Convert a distance.",
    properties={"value": "The distance\nin the other unit.", "to": "The target unit."},
    required=["value", "to"],
    valid=[{"value": 1, "to": "km"}, {"value": 2.5, "to": "mi"}, {"value": 0, "to": "km"}],
    invalid=[{"value": 1}, {"value": 1, "to": "m"}, {"value": "1", "to": "km"}],
    calls=[({"value": 1, "to": "km"}, 1.609)],
    direct=[((1.0, "km"), {}, 1.609)],
)


@tool
def numpy_multiline(path: str, recursive: bool = False) -> str:
    """List a directory.

    The listing is sorted by name.

    Parameters
    ----------
    path : str
        The directory, relative to the
        workspace root.
    recursive : bool, default False
        Also list subdirectories.

    Returns
    -------
    str
        One name per line.

    Examples
    --------
    >>> numpy_multiline(".")
    """
    return f"{path}|{recursive}"


entry(
    "numpy-multiline",
    tool=numpy_multiline,
    description="List a directory.\n\nThe listing is sorted by name.",
    properties={
        "path": "The directory, relative to the\nworkspace root.",
        "recursive": "Also list subdirectories.",
    },
    required=["path"],
    defaults={"recursive": False},
    valid=[{"path": "."}, {"path": "a/b", "recursive": True}, {"path": ""}],
    invalid=[{}, {"path": ".", "recursive": "no"}, {"path": 1}],
    calls=[({"path": "x"}, "x|False")],
    direct=[(("y",), {"recursive": True}, "y|True")],
)


@tool
def rest_multiline(table: str, where: dict[str, str] | None = None) -> str:
    """Query a table.

    Only reads; never writes.

    :param str table: The table name,
        without the schema prefix.
    :param where: Column filters,
        all of which must match.
    :return: The rows as CSV.
    :raises KeyError: For an unknown table.
    """
    return f"{table}|{where}"


entry(
    "rest-multiline",
    tool=rest_multiline,
    description="Query a table.\n\nOnly reads; never writes.",
    properties={
        "table": "The table name,\nwithout the schema prefix.",
        "where": "Column filters,\nall of which must match.",
    },
    required=["table"],
    defaults={"where": None},
    valid=[{"table": "users"}, {"table": "t", "where": {"id": "1"}}, {"table": "t", "where": None}],
    invalid=[{}, {"table": "t", "where": {"id": 1}}, {"table": "t", "where": "id=1"}],
    calls=[({"table": "t", "where": {"a": "b"}}, "t|{'a': 'b'}")],
    direct=[(("u",), {}, "u|None")],
)


# 38. Legacy typing generics.
@tool
def legacy_types(
    names: typing.List[str],  # noqa: UP006
    scores: typing.Dict[str, float],  # noqa: UP006
    pair: typing.Tuple[int, str],  # noqa: UP006
    flags: typing.Set[str] = set(),  # noqa: UP006
    maybe: typing.Optional[typing.Union[int, str]] = None,  # noqa: UP007, UP045
) -> str:
    """Use the typing module's generics.

    Args:
        names: Names.
        scores: Scores by name.
        pair: A number and a label.
        flags: Flags.
        maybe: An id or a slug.
    """
    return f"{names}|{scores}|{pair}|{sorted(flags)}|{maybe!r}"


entry(
    "legacy-typing",
    tool=legacy_types,
    description="Use the typing module's generics.",
    properties={
        "names": "Names.",
        "scores": "Scores by name.",
        "pair": "A number and a label.",
        "flags": "Flags.",
        "maybe": "An id or a slug.",
    },
    required=["names", "scores", "pair"],
    defaults={"flags": [], "maybe": None},
    valid=[
        {"names": [], "scores": {}, "pair": [1, "a"]},
        {"names": ["a"], "scores": {"a": 1}, "pair": [0, ""], "flags": ["x"], "maybe": "s"},
        {"names": [], "scores": {"b": 2.5}, "pair": [2, "b"], "maybe": 3},
    ],
    invalid=[
        {"names": "a", "scores": {}, "pair": [1, "a"]},
        {"names": [], "scores": {"a": "1"}, "pair": [1, "a"]},
        {"names": [], "scores": {}, "pair": ["a", 1]},
        {"names": [], "scores": {}, "pair": [1, "a"], "maybe": 1.5},
    ],
    calls=[
        (
            {"names": ["a"], "scores": {"a": 1}, "pair": [1, "x"], "maybe": 3},
            "['a']|{'a': 1.0}|(1, 'x')|[]|3",
        )
    ],
    direct=[((["n"], {}, (1, "p")), {}, "['n']|{}|(1, 'p')|[]|None")],
)


# 39. Optional nested model, list and dict of models, int | float.
@tool
def ship(
    parcels: list[Address],
    by_warehouse: dict[str, Address] = {},
    return_to: Address | None = None,
    weight: int | float = 1,
) -> str:
    """Ship parcels to several addresses.

    Args:
        parcels: One address per parcel.
        by_warehouse: Pickup address per warehouse.
        return_to: Where returns go.
        weight: Kilograms per parcel.
    """
    return (
        f"{len(parcels)}|{sorted(by_warehouse)}|{return_to.city if return_to else None}|{weight!r}"
    )


ADDR = {"street": "1 Main St", "city": "Ningbo", "postcode": "315000"}
entry(
    "models-in-containers",
    tool=ship,
    description="Ship parcels to several addresses.",
    properties={
        "parcels": "One address per parcel.",
        "by_warehouse": "Pickup address per warehouse.",
        "return_to": "Where returns go.",
        "weight": "Kilograms per parcel.",
    },
    required=["parcels"],
    defaults={"by_warehouse": {}, "return_to": None, "weight": 1},
    valid=[
        {"parcels": []},
        {"parcels": [ADDR, ADDR], "by_warehouse": {"w1": ADDR}},
        {"parcels": [ADDR], "return_to": ADDR, "weight": 2.5},
        {"parcels": [], "return_to": None, "weight": 3},
    ],
    invalid=[
        {"parcels": [{"city": "x"}]},
        {"parcels": [], "by_warehouse": {"w1": {"street": "x"}}},
        {"parcels": [], "return_to": {**ADDR, "postcode": "1"}},
        {"parcels": [], "weight": "2"},
        {"parcels": ADDR},
    ],
    calls=[
        (
            {
                "parcels": [ADDR],
                "by_warehouse": {"b": ADDR, "a": ADDR},
                "return_to": ADDR,
                "weight": 2,
            },
            "1|['a', 'b']|Ningbo|2",
        ),
        ({"parcels": [], "weight": 2.5}, "0|[]|None|2.5"),
    ],
    direct=[(([],), {}, "0|[]|None|1")],
)


# 40. Annotated items inside containers; an enum-keyed mapping; int-keyed mapping.
@tool
def rate_items(
    scores: list[Annotated[int, Field(ge=1, le=5)]],
    by_unit: dict[Unit, float] = {},
    by_id: dict[int, str] = {},
) -> str:
    """Rate items from one to five stars.

    Args:
        scores: Stars per item.
        by_unit: A reading per unit.
        by_id: Names by numeric id.
    """
    return f"{scores}|{sorted(u.name for u in by_unit)}|{sorted(by_id)}"


entry(
    "constrained-items-and-keys",
    tool=rate_items,
    description="Rate items from one to five stars.",
    properties={
        "scores": "Stars per item.",
        "by_unit": "A reading per unit.",
        "by_id": "Names by numeric id.",
    },
    required=["scores"],
    defaults={"by_unit": {}, "by_id": {}},
    valid=[
        {"scores": []},
        {"scores": [1, 5, 3]},
        {"scores": [2], "by_unit": {"celsius": 20, "fahrenheit": 68.5}},
        {"scores": [], "by_id": {"1": "a", "-20": "b"}},
    ],
    invalid=[
        {"scores": [0]},
        {"scores": [6]},
        {"scores": [1.5]},
        {"scores": [], "by_unit": {"kelvin": 1}},
        {"scores": [], "by_id": {"one": "a"}},
        {"scores": [], "by_id": {"1": 1}},
    ],
    calls=[
        (
            {"scores": [5], "by_unit": {"celsius": 1}, "by_id": {"2": "b", "1": "a"}},
            "[5]|['CELSIUS']|[1, 2]",
        )
    ],
    direct=[(([1],), {}, "[1]|[]|[]")],
)


# 41. A realistic wide signature (ten parameters).
@tool
def book_flight(
    origin: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="IATA code of the origin.")],
    destination: Annotated[
        str, Field(pattern=r"^[A-Z]{3}$", description="IATA code of the destination.")
    ],
    depart: datetime.date,
    return_date: datetime.date | None = None,
    adults: Annotated[int, Field(ge=1, le=9)] = 1,
    children: Annotated[int, Field(ge=0, le=9)] = 0,
    cabin: Literal["economy", "premium", "business", "first"] = "economy",
    max_price: Decimal | None = None,
    airlines: list[str] | None = None,
    flexible: bool = False,
) -> str:
    """Search flights and book the cheapest.

    Args:
        depart: The departure day.
        return_date: The return day; null for one way.
        adults: Travellers aged 12 or more.
        children: Travellers under 12.
        cabin: The cabin class.
        max_price: The most to pay, in CNY.
        airlines: Only these airlines (IATA codes).
        flexible: Allow +/- 3 days.
    """
    trip = f"{origin}-{destination}|{depart}|{return_date}|{adults}+{children}"
    return f"{trip}|{cabin}|{max_price}|{airlines}|{flexible}"


entry(
    "wide-signature",
    tool=book_flight,
    description="Search flights and book the cheapest.",
    properties={
        "origin": "IATA code of the origin.",
        "destination": "IATA code of the destination.",
        "depart": "The departure day.",
        "return_date": "The return day; null for one way.",
        "adults": "Travellers aged 12 or more.",
        "children": "Travellers under 12.",
        "cabin": "The cabin class.",
        "max_price": "The most to pay, in CNY.",
        "airlines": "Only these airlines (IATA codes).",
        "flexible": "Allow +/- 3 days.",
    },
    required=["origin", "destination", "depart"],
    defaults={
        "return_date": None,
        "adults": 1,
        "children": 0,
        "cabin": "economy",
        "max_price": None,
        "airlines": None,
        "flexible": False,
    },
    valid=[
        {"origin": "PEK", "destination": "HGH", "depart": "2024-06-01"},
        {
            "origin": "PEK",
            "destination": "SFO",
            "depart": "2024-06-01",
            "return_date": "2024-06-10",
            "adults": 2,
            "children": 1,
            "cabin": "business",
            "max_price": "8000",
            "airlines": ["CA"],
            "flexible": True,
        },
        {
            "origin": "PVG",
            "destination": "NRT",
            "depart": "2024-06-01",
            "return_date": None,
            "max_price": 1999.5,
        },
    ],
    invalid=[
        {"origin": "pek", "destination": "HGH", "depart": "2024-06-01"},
        {"origin": "PEK", "destination": "HGH"},
        {"origin": "PEK", "destination": "HGH", "depart": "2024-06-01", "adults": 0},
        {"origin": "PEK", "destination": "HGH", "depart": "2024-06-01", "children": 10},
        {"origin": "PEK", "destination": "HGH", "depart": "2024-06-01", "cabin": "Economy"},
        {"origin": "PEK", "destination": "HGH", "depart": "2024-06-01", "airlines": "CA"},
        {"origin": "PEK", "destination": "HGH", "depart": "June 1st"},
    ],
    calls=[
        (
            {"origin": "PEK", "destination": "HGH", "depart": "2024-06-01"},
            "PEK-HGH|2024-06-01|None|1+0|economy|None|None|False",
        )
    ],
    direct=[
        (
            ("A", "B", datetime.date(2024, 1, 1)),
            {},
            "A-B|2024-01-01|None|1+0|economy|None|None|False",
        )
    ],
)


# 42. None as a type; a Literal[True] confirmation; Optional[Literal].
@tool
def delete_all(
    confirm: Literal[True], reason: None = None, scope: Literal["mine", "team"] | None = None
) -> str:
    """Delete every item. Irreversible.

    Args:
        confirm: Must be true.
        reason: Reserved; always null.
        scope: Whose items; null for all.
    """
    return f"{confirm}|{reason}|{scope}"


entry(
    "none-and-literal-true",
    tool=delete_all,
    description="Delete every item. Irreversible.",
    properties={
        "confirm": "Must be true.",
        "reason": "Reserved; always null.",
        "scope": "Whose items; null for all.",
    },
    required=["confirm"],
    defaults={"reason": None, "scope": None},
    valid=[
        {"confirm": True},
        {"confirm": True, "reason": None},
        {"confirm": True, "scope": "team"},
        {"confirm": True, "scope": None},
    ],
    invalid=[
        {"confirm": False},
        {"confirm": 1},
        {"confirm": "true"},
        {"confirm": True, "reason": "x"},
        {"confirm": True, "scope": "all"},
    ],
    calls=[({"confirm": True, "scope": "mine"}, "True|None|mine")],
    direct=[((True,), {}, "True|None|None")],
)


# 43. A decorated function (functools.wraps) keeps its signature and docstring.
def _audited(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return ("audited", function(*args, **kwargs))

    return wrapper


@tool
@_audited
def rename_file(old: str, new: str, overwrite: bool = False) -> str:
    """Rename a file.

    Args:
        old: The current path.
        new: The new path.
        overwrite: Replace an existing file.
    """
    return f"{old}->{new}|{overwrite}"


entry(
    "wrapped-function",
    tool=rename_file,
    description="Rename a file.",
    properties={
        "old": "The current path.",
        "new": "The new path.",
        "overwrite": "Replace an existing file.",
    },
    required=["old", "new"],
    defaults={"overwrite": False},
    valid=[
        {"old": "a", "new": "b"},
        {"old": "a", "new": "b", "overwrite": True},
        {"old": "", "new": ""},
    ],
    invalid=[{"old": "a"}, {"old": "a", "new": 1}, {"old": "a", "new": "b", "force": True}],
    calls=[({"old": "a", "new": "b"}, ("audited", "a->b|False"))],
    direct=[(("x", "y"), {}, ("audited", "x->y|False"))],
)


# 44. A model with its own validator-level constraints (min/max on a nested field, enum list).
class Filter(BaseModel):
    """Which rows to keep."""

    column: str
    op: Literal["==", "!=", "<", ">", "in"] = "=="
    value: int | float | str | list[int | float | str]
    negate: bool = False


@tool
def query_rows(
    table: str,
    filters: list[Filter] = [],
    order_by: list[tuple[str, Literal["asc", "desc"]]] = [],
    limit: Annotated[int, Field(gt=0, le=1000)] = 100,
) -> str:
    """Query rows with filters.

    Args:
        table: The table.
        filters: All must match.
        order_by: (column, direction) pairs.
        limit: At most this many rows.
    """
    return f"{table}|{[(f.column, f.op, f.value) for f in filters]}|{order_by}|{limit}"


entry(
    "model-with-unions",
    tool=query_rows,
    description="Query rows with filters.",
    properties={
        "table": "The table.",
        "filters": "All must match.",
        "order_by": "(column, direction) pairs.",
        "limit": "At most this many rows.",
    },
    required=["table"],
    defaults={"filters": [], "order_by": [], "limit": 100},
    valid=[
        {"table": "t"},
        {
            "table": "t",
            "filters": [
                {"column": "a", "value": 1},
                {"column": "b", "op": "in", "value": ["x", 2]},
            ],
        },
        {"table": "t", "order_by": [["a", "desc"]], "limit": 1000},
    ],
    invalid=[
        {"table": "t", "filters": [{"column": "a"}]},
        {"table": "t", "filters": [{"column": "a", "value": None}]},
        {"table": "t", "filters": [{"column": "a", "value": 1, "op": "like"}]},
        {"table": "t", "order_by": [["a", "up"]]},
        {"table": "t", "limit": 0},
        {"table": "t", "limit": 1001},
    ],
    calls=[
        (
            {"table": "t", "filters": [{"column": "a", "value": 1.5}], "order_by": [["a", "asc"]]},
            "t|[('a', '==', 1.5)]|[('a', 'asc')]|100",
        )
    ],
    direct=[(("t",), {}, "t|[]|[]|100")],
)


# 45. Parameters named like JSON Schema keywords; non-ASCII text.
@tool
def define_field(
    type: Literal["string", "number"],
    required: bool = False,
    properties: dict[str, str] = {},
    description: str = "",
    default: str | None = None,
    title: str = "Feld",
) -> str:
    """Define a form field. Beschreibung: ein Feld — 字段.

    Args:
        type: The JSON type of the field.
        required: Whether it must be filled in.
        properties: Extra properties.
        description: Help text (Hilfetext, 说明).
        default: The initial value.
        title: The label.
    """
    return f"{type}|{required}|{properties}|{description}|{default}|{title}"


entry(
    "keyword-like-names",
    tool=define_field,
    description="Define a form field. Beschreibung: ein Feld — 字段.",
    properties={
        "type": "The JSON type of the field.",
        "required": "Whether it must be filled in.",
        "properties": "Extra properties.",
        "description": "Help text (Hilfetext, 说明).",
        "default": "The initial value.",
        "title": "The label.",
    },
    required=["type"],
    defaults={
        "required": False,
        "properties": {},
        "description": "",
        "default": None,
        "title": "Feld",
    },
    valid=[
        {"type": "string"},
        {"type": "number", "required": True, "properties": {"min": "0"}, "title": "Größe"},
        {"type": "string", "default": None, "description": "说明"},
    ],
    invalid=[
        {"type": "integer"},
        {"required": True},
        {"type": "string", "properties": {"min": 0}},
        {"type": "string", "title": None},
    ],
    calls=[({"type": "string", "title": "名字"}, "string|False|{}||None|名字")],
    direct=[(("number",), {}, "number|False|{}||None|Feld")],
)


# 46. A single-value Literal, an Optional model without a default, a model default.
class Point(BaseModel):
    x: float
    y: float = 0


@tool
def place_marker(action: Literal["place"], at: Point | None, origin: Point = Point(x=0)) -> str:
    """Place a marker.

    Args:
        action: Always "place".
        at: Where; null for the current position.
        origin: The coordinate origin.
    """
    return f"{action}|{at}|{origin}"


entry(
    "const-and-model-default",
    tool=place_marker,
    description="Place a marker.",
    properties={
        "action": 'Always "place".',
        "at": "Where; null for the current position.",
        "origin": "The coordinate origin.",
    },
    required=["action", "at"],
    defaults={"origin": {"x": 0.0, "y": 0.0}},
    valid=[
        {"action": "place", "at": None},
        {"action": "place", "at": {"x": 1}},
        {"action": "place", "at": {"x": 1, "y": 2}, "origin": {"x": 5}},
    ],
    invalid=[
        {"action": "move", "at": None},
        {"action": "place"},
        {"action": "place", "at": {"y": 1}},
        {"action": "place", "at": None, "origin": None},
    ],
    calls=[
        ({"action": "place", "at": {"x": 1}}, "place|x=1.0 y=0|x=0.0 y=0"),
        ({"action": "place", "at": None, "origin": {"x": 2}}, "place|None|x=2.0 y=0"),
    ],
    direct=[(("place", None), {}, "place|None|x=0.0 y=0")],
)


# 47. A generic pydantic model; a model that allows extra fields (refused all the same).
T = typing.TypeVar("T")


class Page(BaseModel, typing.Generic[T]):
    items: list[T]
    cursor: str | None = None


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


@tool
def store_page(page: Page[int], meta: Loose | None = None) -> int:
    """Store one page of results.

    Args:
        page: The page.
        meta: Metadata with a name.
    """
    return sum(page.items)


entry(
    "generic-model-and-extra-allow",
    tool=store_page,
    description="Store one page of results.",
    properties={"page": "The page.", "meta": "Metadata with a name."},
    required=["page"],
    defaults={"meta": None},
    valid=[
        {"page": {"items": []}},
        {"page": {"items": [1, 2], "cursor": "abc"}},
        {"page": {"items": [3]}, "meta": {"name": "x"}},
    ],
    invalid=[
        {"page": {"items": ["a"]}},
        {"page": {"cursor": "x"}},
        {"page": {"items": [], "next": 2}},
        {"page": {"items": []}, "meta": {"name": "x", "other": 1}},
    ],
    calls=[({"page": {"items": [1, 2, 3]}}, 6)],
    direct=[((Page[int](items=[4]),), {}, 4)],
)


# 48. An async bound method.
class Inbox:
    def __init__(self, owner: str) -> None:
        self.owner = owner

    async def count_unread(
        self, folder: Literal["inbox", "spam"] = "inbox", since: datetime.date | None = None
    ) -> str:
        """Count unread messages.

        Args:
            folder: Which folder.
            since: Only messages since this day.
        """
        await asyncio.sleep(0)
        return f"{self.owner}|{folder}|{since}"


entry(
    "async-bound-method",
    tool=tool(Inbox("ann").count_unread),
    description="Count unread messages.",
    properties={"folder": "Which folder.", "since": "Only messages since this day."},
    required=[],
    defaults={"folder": "inbox", "since": None},
    valid=[{}, {"folder": "spam"}, {"since": "2024-02-29"}, {"folder": "inbox", "since": None}],
    invalid=[{"folder": "sent"}, {"since": "2023-02-29"}, {"self": {}}, {"since": "yesterday"}],
    calls=[({"since": "2024-02-29"}, "ann|inbox|2024-02-29")],
    direct=[((), {"folder": "spam"}, "ann|spam|None")],
)


# 49. Deeply nested containers and constraints inside Optional.
@tool
def save_matrix(
    cells: dict[str, dict[str, list[int]]],
    labels: list[Annotated[str, Field(min_length=1)]] | None = None,
    weights: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(max_length=3)] = [],
) -> int:
    """Save a sparse matrix.

    Args:
        cells: Values by row, then column.
        labels: Non-empty row labels.
        weights: Up to three weights between 0 and 1.
    """
    return sum(sum(v) for row in cells.values() for v in row.values())


entry(
    "deep-containers",
    tool=save_matrix,
    description="Save a sparse matrix.",
    properties={
        "cells": "Values by row, then column.",
        "labels": "Non-empty row labels.",
        "weights": "Up to three weights between 0 and 1.",
    },
    required=["cells"],
    defaults={"labels": None, "weights": []},
    valid=[
        {"cells": {}},
        {"cells": {"r1": {"c1": [1, 2], "c2": []}}, "labels": ["a"]},
        {"cells": {"r": {}}, "weights": [0, 0.5, 1]},
    ],
    invalid=[
        {"cells": {"r1": {"c1": [1.5]}}},
        {"cells": {"r1": [1]}},
        {"cells": {}, "labels": [""]},
        {"cells": {}, "weights": [1.5]},
        {"cells": {}, "weights": [0, 0, 0, 0]},
    ],
    calls=[({"cells": {"a": {"b": [1, 2]}, "c": {"d": [3]}}}, 6)],
    direct=[(({"a": {"b": [5]}},), {}, 5)],
)


# 50. A Google docstring with a multi-paragraph description, markdown, and type info in
#     brackets; a parameter description that contains a colon.
@tool
def run_sql(query: str, params: list[str | int | float | None] = [], timeout_s: int = 30) -> str:
    """Run a read-only SQL query

    Use it for questions about orders; the schema is:

    - orders(id, customer, total)
    - customers(id, name)

    Args:
        query (str): The SQL, e.g.: SELECT 1. Only SELECT is allowed.
        params (list[str | int | float | None], optional): Values for the
            ? placeholders, in order.
        timeout_s (int): Give up after this many seconds.

    Returns:
        list[dict]: The rows.
    """
    return f"{query}|{params}|{timeout_s}"


entry(
    "google-markdown",
    tool=run_sql,
    description=(
        "Run a read-only SQL query\n\nUse it for questions about orders; the schema is:\n\n"
        "- orders(id, customer, total)\n- customers(id, name)"
    ),
    properties={
        "query": "The SQL, e.g.: SELECT 1. Only SELECT is allowed.",
        "params": "Values for the\n? placeholders, in order.",
        "timeout_s": "Give up after this many seconds.",
    },
    required=["query"],
    defaults={"params": [], "timeout_s": 30},
    valid=[
        {"query": "SELECT 1"},
        {"query": "SELECT ?", "params": [1, "a", None, 2.5]},
        {"query": "x", "timeout_s": 1},
    ],
    invalid=[
        {"query": "x", "params": [[1]]},
        {"query": "x", "params": [True]},
        {"query": "x", "timeout_s": "30"},
        {"sql": "x"},
    ],
    calls=[({"query": "q", "params": [1, None]}, "q|[1, None]|30")],
    direct=[(("q",), {}, "q|[]|30")],
)


# 51. A dataclass with nested dataclass and TypedDict fields; reST :param type name:.
@dataclasses.dataclass
class Dimensions:
    width: float
    height: float
    unit: Literal["cm", "in"] = "cm"


@dataclasses.dataclass
class Parcel:
    size: Dimensions
    sender: Contact
    fragile: bool = False


@tool
def quote_shipping(parcel: Parcel, insured: bool = False) -> str:
    """Quote the price of shipping a parcel.

    :param Parcel parcel: The parcel.
    :param bool insured: Add insurance.
    """
    size = f"{parcel.size.width}x{parcel.size.height}{parcel.size.unit}"
    return f"{size}|{parcel.sender['name']}|{parcel.fragile}|{insured}"


PARCEL = {"size": {"width": 10, "height": 5}, "sender": {"name": "ann"}}
entry(
    "nested-dataclasses",
    tool=quote_shipping,
    description="Quote the price of shipping a parcel.",
    properties={"parcel": "The parcel.", "insured": "Add insurance."},
    required=["parcel"],
    defaults={"insured": False},
    valid=[
        {"parcel": PARCEL},
        {"parcel": {**PARCEL, "fragile": True, "size": {"width": 1.5, "height": 2, "unit": "in"}}},
        {"parcel": PARCEL, "insured": True},
    ],
    invalid=[
        {"parcel": {**PARCEL, "size": {"width": 1}}},
        {"parcel": {**PARCEL, "size": {"width": 1, "height": 1, "unit": "mm"}}},
        {"parcel": {**PARCEL, "sender": {}}},
        {"parcel": {"size": PARCEL["size"]}},
    ],
    calls=[({"parcel": PARCEL}, "10.0x5.0cm|ann|False|False")],
    direct=[((Parcel(Dimensions(1, 2), {"name": "b"}),), {}, "1x2cm|b|False|False")],
)


# 52. Parameters documented in the docstring that do not exist, and a context parameter
#     documented too; a docstring with a "Note:" before Args.
@tool
def archive(ctx: RunContext[Deps], path: str, keep_days: int = 30) -> str:
    """Archive a folder.

    Note:
        Archives are compressed.

    Args:
        ctx: The run context.
        path: The folder.
        keep_days: Delete the archive after this many days.
        legacy_flag: Removed in 2.0.
    """
    return f"{ctx.deps.greeting}|{path}|{keep_days}"


entry(
    "stale-docstring-params",
    tool=archive,
    description="Archive a folder.",
    properties={"path": "The folder.", "keep_days": "Delete the archive after this many days."},
    required=["path"],
    defaults={"keep_days": 30},
    valid=[{"path": "/a"}, {"path": "b", "keep_days": 0}, {"path": "", "keep_days": 365}],
    invalid=[{"path": "/a", "legacy_flag": True}, {"keep_days": 1}, {"path": "/a", "ctx": None}],
    calls=[({"path": "p"}, "Hello|p|30")],
    direct=[((_CTX, "q"), {}, "Hello|q|30")],
    context=_CTX,
)


# 53. pydantic's own types (URLs, PositiveInt, StringConstraints), IP addresses, and a
#     parameter whose JSON name is a Python keyword (an alias).
@tool
def register_webhook(
    url: HttpUrl,
    from_: Annotated[str, Field(alias="from", description="The sender id.")],
    retries: PositiveInt = 3,
    callback: AnyUrl | None = None,
    allow_ip: ipaddress.IPv4Address | None = None,
    allow_ip6: ipaddress.IPv6Address | None = None,
    secret: Annotated[str, StringConstraints(min_length=8)] | None = None,
) -> str:
    """Register a webhook.

    Args:
        url: Where to post events.
        from_: Ignored: the Field description wins.
        retries: Attempts per event.
        callback: Where to confirm the registration.
        allow_ip: Only accept calls from this IPv4 address.
        allow_ip6: Only accept calls from this IPv6 address.
        secret: A shared secret, at least 8 characters.
    """
    return f"{url.host}|{from_}|{retries}|{callback}|{allow_ip}|{allow_ip6}|{secret}"


HOOK = {"url": "https://example.com/hook", "from": "svc"}
entry(
    "pydantic-types-and-alias",
    tool=register_webhook,
    description="Register a webhook.",
    properties={
        "url": "Where to post events.",
        "from": "The sender id.",
        "retries": "Attempts per event.",
        "callback": "Where to confirm the registration.",
        "allow_ip": "Only accept calls from this IPv4 address.",
        "allow_ip6": "Only accept calls from this IPv6 address.",
        "secret": "A shared secret, at least 8 characters.",
    },
    required=["url", "from"],
    defaults={"retries": 3, "callback": None, "allow_ip": None, "allow_ip6": None, "secret": None},
    valid=[
        HOOK,
        {
            **HOOK,
            "url": "http://localhost:8080/x?y=1",
            "retries": 1,
            "callback": "mailto:ops@example.com",
        },
        {**HOOK, "allow_ip": "10.0.0.255", "allow_ip6": "fe80::1", "secret": "12345678"},
        {**HOOK, "callback": "ftp://files.example.com/in", "allow_ip6": "::ffff:1.2.3.4"},
    ],
    invalid=[
        {**HOOK, "url": "example.com/hook"},
        {**HOOK, "url": "ftp://example.com"},
        {**HOOK, "url": "https://"},
        {"url": "https://example.com", "from_": "svc"},
        {**HOOK, "from_": "svc"},
        {**HOOK, "retries": 0},
        {**HOOK, "callback": "not a url"},
        {**HOOK, "allow_ip": "256.0.0.1"},
        {**HOOK, "allow_ip": "10.0.0"},
        {**HOOK, "allow_ip6": "10.0.0.1"},
        {**HOOK, "secret": "short"},
    ],
    calls=[
        (HOOK, "example.com|svc|3|None|None|None|None"),
        ({**HOOK, "allow_ip": "10.0.0.1"}, "example.com|svc|3|None|10.0.0.1|None|None"),
    ],
    direct=[
        ((HttpUrl("http://h.example"),), {"from_": "me"}, "h.example|me|3|None|None|None|None")
    ],
)


# 54. A NamedTuple, abstract Sequence and Mapping, a mapping whose keys have a pattern.
class Span(typing.NamedTuple):
    start: int
    end: int


@tool
def annotate(
    text: str,
    spans: Sequence[Span],
    labels: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]+$")], str] = {},
    counts: Mapping[str, int] | None = None,
) -> str:
    """Annotate spans of a text.

    Args:
        text: The text.
        spans: (start, end) character offsets.
        labels: Descriptions by upper-case label.
        counts: How often each label occurs.
    """
    return f"{[text[s.start : s.end] for s in spans]}|{sorted(labels)}|{dict(counts or {})}"


entry(
    "namedtuple-abstract-pattern-keys",
    tool=annotate,
    description="Annotate spans of a text.",
    properties={
        "text": "The text.",
        "spans": "(start, end) character offsets.",
        "labels": "Descriptions by upper-case label.",
        "counts": "How often each label occurs.",
    },
    required=["text", "spans"],
    defaults={"labels": {}, "counts": None},
    valid=[
        {"text": "abc", "spans": []},
        {"text": "abcdef", "spans": [[0, 2], [3, 6]], "labels": {"PER": "a person"}},
        {"text": "x", "spans": [[0, 1]], "counts": {"PER": 2}},
    ],
    invalid=[
        {"text": "abc", "spans": [[0]]},
        {"text": "abc", "spans": [[0, 1, 2]]},
        {"text": "abc", "spans": [["0", 1]]},
        {"text": "abc", "spans": [], "labels": {"per": "lower case"}},
        {"text": "abc", "spans": [], "counts": {"PER": "2"}},
        {"text": "abc", "spans": "0-1"},
    ],
    calls=[
        (
            {
                "text": "abcdef",
                "spans": [[0, 2]],
                "labels": {"B": "x", "A": "y"},
                "counts": {"A": 1},
            },
            "['ab']|['A', 'B']|{'A': 1}",
        )
    ],
    direct=[(("xyz", [Span(1, 3)]), {}, "['yz']|[]|{}")],
)


# 55. A function that returns None (a side effect only), with a Google "Returns:" that
#     says so.
_CLEARED: list[str] = []


@tool
def clear_cache(region: Literal["eu", "us", "cn"], keys: list[str] | None = None) -> None:
    """Clear cached entries.

    Args:
        region: The cache region.
        keys: Only these keys; null clears everything.

    Returns:
        None.
    """
    _CLEARED.append(f"{region}:{keys}")


entry(
    "returns-none",
    tool=clear_cache,
    description="Clear cached entries.",
    properties={"region": "The cache region.", "keys": "Only these keys; null clears everything."},
    required=["region"],
    defaults={"keys": None},
    valid=[{"region": "eu"}, {"region": "cn", "keys": ["a"]}, {"region": "us", "keys": None}],
    invalid=[{"region": "asia"}, {"keys": []}, {"region": "eu", "keys": "a"}],
    calls=[({"region": "eu"}, None)],
    direct=[(("us",), {"keys": []}, None)],
)


# 56. Money as Decimal with constraints: the string form is constrained like the number.
@tool
def transfer(
    to_account: Annotated[str, Field(pattern=r"^[0-9]{8,12}$")],
    amount: Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2)],
    fee: Annotated[Decimal, Field(ge=0)] = Decimal("0"),
) -> str:
    """Transfer money to another account.

    Args:
        to_account: The account number, 8 to 12 digits.
        amount: The amount in CNY, with at most two decimal places.
        fee: The fee to add.
    """
    return f"{to_account}|{amount + fee}"


entry(
    "decimal-constraints",
    tool=transfer,
    description="Transfer money to another account.",
    properties={
        "to_account": "The account number, 8 to 12 digits.",
        "amount": "The amount in CNY, with at most two decimal places.",
        "fee": "The fee to add.",
    },
    required=["to_account", "amount"],
    defaults={"fee": "0"},
    valid=[
        {"to_account": "12345678", "amount": "19.99"},
        {"to_account": "123456789012", "amount": 5, "fee": "0.50"},
        {"to_account": "12345678", "amount": "0.01", "fee": 0},
        {"to_account": "12345678", "amount": "12345678.90"},
    ],
    invalid=[
        {"to_account": "12345678", "amount": "-5"},
        {"to_account": "12345678", "amount": "0"},
        {"to_account": "12345678", "amount": 0},
        {"to_account": "12345678", "amount": "1.234"},
        {"to_account": "12345678", "amount": "123456789.00"},
        {"to_account": "12345678", "amount": "ten"},
        {"to_account": "12345678", "amount": "1", "fee": "-1"},
        {"to_account": "1234567", "amount": "1"},
    ],
    calls=[({"to_account": "12345678", "amount": "19.99", "fee": "0.01"}, "12345678|20.00")],
    direct=[(("87654321", Decimal("1.5")), {}, "87654321|1.5")],
)


# --- a module under `from __future__ import annotations` ------------------------------------

FUTURE_SOURCE = '''
from __future__ import annotations

import datetime
from typing import Literal

from pydantic import BaseModel, Field

from agentkit import RunContext, tool


class Node(BaseModel):
    """A node of a graph."""

    id: int
    edges: list[Edge] = []  # Edge is defined below: a forward reference


class Edge(BaseModel):
    target: Node
    weight: float = 1.0


@tool
def walk(start: Node, max_steps: int | None = None) -> int:
    """Walk a graph.

    Args:
        start: Where to start.
        max_steps: Stop after this many steps.
    """

    def size(node: Node) -> int:
        return 1 + sum(size(edge.target) for edge in node.edges)

    return size(start)


@tool
async def remind(ctx: RunContext[dict[str, str]], when: datetime.datetime, what: str) -> str:
    """Remind the user.

    Args:
        when: When to remind.
        what: What to say.
    """
    return f"{ctx.deps['user']}|{when.hour}|{what}"


def make_local_tools():
    class Point(BaseModel):
        x: float
        y: float = 0

    @tool
    def distance(a: Point, b: Point, metric: Literal["euclid", "manhattan"] = "euclid") -> float:
        """Distance between two points.

        Args:
            a: The first point.
            b: The second point.
            metric: How to measure.
        """
        if metric == "manhattan":
            return abs(a.x - b.x) + abs(a.y - b.y)
        return ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5

    strict_distance = tool(distance.function, strict=True)
    return distance, strict_distance
'''


def _load_future_module() -> types.ModuleType:
    module = types.ModuleType("agentkit_corpus_future")
    module.__file__ = "<agentkit corpus: from __future__ import annotations>"
    sys.modules[module.__name__] = module  # pydantic resolves model forward refs here
    exec(compile(FUTURE_SOURCE, module.__file__, "exec"), module.__dict__)
    return module


future = _load_future_module()
_distance, _strict_distance = future.make_local_tools()

entry(
    "future-forward-refs",
    tool=future.walk,
    description="Walk a graph.",
    properties={"start": "Where to start.", "max_steps": "Stop after this many steps."},
    required=["start"],
    defaults={"max_steps": None},
    valid=[
        {"start": {"id": 1}},
        {"start": {"id": 1, "edges": [{"target": {"id": 2}, "weight": 2}]}},
        {"start": {"id": 1, "edges": []}, "max_steps": 3},
    ],
    invalid=[
        {"start": {}},
        {"start": {"id": 1, "edges": [{"weight": 2}]}},
        {"start": {"id": 1, "edges": [{"target": {"id": "x"}}]}},
        {"start": {"id": 1}, "max_steps": "3"},
    ],
    calls=[
        (
            {
                "start": {
                    "id": 1,
                    "edges": [{"target": {"id": 2, "edges": [{"target": {"id": 3}}]}}],
                }
            },
            3,
        )
    ],
    direct=[((future.Node(id=1),), {}, 1)],
)
entry(
    "future-async-context",
    tool=future.remind,
    description="Remind the user.",
    properties={"when": "When to remind.", "what": "What to say."},
    required=["when", "what"],
    valid=[
        {"when": "2024-05-01T08:00:00Z", "what": "x"},
        {"when": "2024-05-01T08:00:00+08:00", "what": ""},
        {"when": "2024-05-01T08:00:00.25Z", "what": "tea"},
    ],
    invalid=[
        {"when": "2024-05-01", "what": "x"},
        {"what": "x"},
        {"when": "2024-05-01T08:00:00Z", "what": "x", "ctx": {}},
    ],
    calls=[({"when": "2024-05-01T08:00:00Z", "what": "tea"}, "ann|8|tea")],
    direct=[
        ((RunContext(deps={"user": "bo"}), datetime.datetime(2024, 1, 1, 9), "x"), {}, "bo|9|x")
    ],
    context=RunContext(deps={"user": "ann"}),
)
entry(
    "future-local-classes",
    tool=_distance,
    strict_tool=_strict_distance,
    description="Distance between two points.",
    properties={"a": "The first point.", "b": "The second point.", "metric": "How to measure."},
    required=["a", "b"],
    defaults={"metric": "euclid"},
    valid=[
        {"a": {"x": 0}, "b": {"x": 3, "y": 4}},
        {"a": {"x": 1, "y": 1}, "b": {"x": 2, "y": 2}, "metric": "manhattan"},
        {"a": {"x": 0.5}, "b": {"x": 0.5}},
    ],
    invalid=[
        {"a": {"y": 0}, "b": {"x": 1}},
        {"a": {"x": 0}},
        {"a": {"x": 0}, "b": {"x": 1}, "metric": "chebyshev"},
        {"a": {"x": 0, "z": 1}, "b": {"x": 1}},
    ],
    calls=[
        ({"a": {"x": 0}, "b": {"x": 3, "y": 4}}, 5.0),
        ({"a": {"x": 0}, "b": {"x": 3, "y": 4}, "metric": "manhattan"}, 7.0),
    ],
    direct=[],
)


# --- the checks -------------------------------------------------------------------------

IDS = list(CORPUS)


def _is_valid(schema: dict[str, Any], instance: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(instance)


def _accepts(t: Tool[..., Any], arguments: Any) -> bool:
    try:
        t.validate_json(json.dumps(arguments))
    except ToolArgumentsError:
        return False
    return True


def _run(result: Any) -> Any:
    if inspect.isawaitable(result):

        async def awaited() -> Any:
            return await result

        return asyncio.run(awaited())
    return result


def _strict_variant(e: Entry) -> Tool[..., Any]:
    if e.strict_tool is not None:
        return e.strict_tool
    return tool(e.tool.function, name=e.tool.name, description=e.tool.description, strict=True)


def test_corpus_size() -> None:
    assert len(CORPUS) >= 60
    for entry_id, e in CORPUS.items():
        # a tool without parameters has one valid argument object: {}
        assert len(e.valid) >= (3 if e.properties else 1), entry_id
        assert len(e.invalid) >= 3, entry_id


@pytest.mark.parametrize("entry_id", IDS)
def test_name_description_and_property_descriptions(entry_id: str) -> None:
    e = CORPUS[entry_id]
    t = e.tool
    assert t.name == (e.name or t.function.__name__)
    assert t.description == e.description
    properties = t.validation_parameters["properties"]
    sent = t.parameters["properties"]
    assert list(properties) == list(e.properties) == list(sent)
    for prop, description in e.properties.items():
        assert properties[prop].get("description") == description, prop
        assert _sent_description(t, prop) == description, prop


def _sent_description(t: Tool[..., Any], prop: str) -> str | None:
    """The description of a parameter in the sent schema, without the one of its type that
    came along when a definition used once was written in place (``"A temperature
    unit."``); strict mode's notes of dropped constraints stay."""
    sent = t.parameters["properties"][prop]
    full = t.validation_parameters["properties"][prop]
    refs = [full, *full.get("anyOf", ())]
    defs = t.validation_parameters.get("$defs", {})
    own = [
        defs[ref["$ref"].rsplit("/", 1)[-1]].get("description")
        for ref in refs
        if "$ref" in ref and "$ref" not in json.dumps(sent)
    ]
    text = sent.get("description")
    if "description" not in full and text is not None and text in own:
        return None
    return text  # type: ignore[no-any-return]


@pytest.mark.parametrize("entry_id", IDS)
def test_schema_shape(entry_id: str) -> None:
    e = CORPUS[entry_id]
    for schema in (e.tool.validation_parameters, e.tool.parameters):
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert schema.get("required", []) == e.required
        for sub in iter_schemas(schema):
            assert "title" not in sub, sub
            if "properties" in sub:
                assert sub.get("additionalProperties") is False, sub
        json.dumps(schema)  # plain JSON, nothing Python-only
    for prop, subschema in e.tool.validation_parameters["properties"].items():
        assert subschema.get("default", MISSING) == e.defaults.get(prop, MISSING), prop
    sent = e.tool.parameters
    assert len(json.dumps(sent)) <= len(json.dumps(e.tool.validation_parameters))
    for sub in iter_schemas(sent):
        # the model is sent the format, never a pattern that restates it
        assert "pattern" not in sub or sub.get("format") not in RESTATED_FORMATS, sub
        assert "discriminator" not in sub and sub.get("default", MISSING) is not None, sub
    for prop, subschema in sent["properties"].items():
        # a null default says nothing that not being required does not: it is not sent
        shown = e.defaults.get(prop, MISSING)
        assert subschema.get("default", MISSING) == (MISSING if shown is None else shown), prop


@pytest.mark.parametrize("entry_id", IDS)
def test_labelled_objects_schema_and_validator_agree(entry_id: str) -> None:
    e = CORPUS[entry_id]
    schema = e.tool.validation_parameters
    for arguments in e.valid:
        assert _is_valid(schema, arguments), f"schema refuses valid {arguments}"
        assert _is_valid(e.tool.parameters, arguments), f"sent schema refuses valid {arguments}"
        assert _accepts(e.tool, arguments), f"tool refuses valid {arguments}"
    for arguments in e.invalid:
        assert not _is_valid(schema, arguments), f"schema accepts invalid {arguments}"
        assert not _accepts(e.tool, arguments), f"tool accepts invalid {arguments}"


@pytest.mark.parametrize("entry_id", IDS)
def test_to_openai_shape(entry_id: str) -> None:
    e = CORPUS[entry_id]
    assert e.tool.to_openai() == {
        "type": "function",
        "function": {
            "name": e.tool.name,
            "description": e.description,
            "parameters": e.tool.parameters,
        },
    }
    json.dumps(e.tool.to_openai())


@pytest.mark.parametrize("entry_id", IDS)
def test_still_the_function(entry_id: str) -> None:
    e = CORPUS[entry_id]
    t = e.tool
    f = t.function
    assert inspect.iscoroutinefunction(t) == inspect.iscoroutinefunction(f) == t.is_async
    assert inspect.signature(t) == inspect.signature(f)
    assert t.__wrapped__ is f and t.__doc__ == f.__doc__
    assert t.__name__ == getattr(f, "__name__", t.name)
    for args, kwargs, expected in e.direct:
        direct = t(*args, **kwargs)
        assert inspect.isawaitable(direct) == t.is_async
        assert _run(direct) == _run(t.function(*args, **kwargs)) == expected
    for arguments, expected in e.calls:
        kwargs = t.validate_json(json.dumps(arguments))
        assert _run(t.call(kwargs, e.context)) == expected, arguments


@pytest.mark.parametrize("entry_id", IDS)
def test_strict_variant(entry_id: str) -> None:
    e = CORPUS[entry_id]
    if e.strict == "refused":
        with pytest.raises(ToolDefinitionError, match="Strict mode"):
            _strict_variant(e)
        return
    strict = _strict_variant(e)
    schema = strict.parameters
    assert_strict_subset(schema)
    assert strict.to_openai()["function"]["strict"] is True
    assert strict.name == e.tool.name and strict.description == e.tool.description
    assert_strict_subset(strict.validation_parameters)
    for sub in iter_schemas(schema):
        assert "pattern" not in sub or sub.get("format") not in RESTATED_FORMATS, sub
    for prop, description in e.properties.items():
        sent = _sent_description(strict, prop)
        noted = _strict_notes(e.tool.validation_parameters["properties"][prop])
        assert sent == _with_notes(description, noted), prop
    shown = e.tool.validation_parameters["properties"]
    for arguments in e.valid:
        # a strict model sends every parameter: the shown default for one left out
        filled = {
            **{p: sub["default"] for p, sub in shown.items() if "default" in sub},
            **arguments,
        }
        written = as_strict_model_writes_it(schema, schema, filled)
        assert _is_valid(schema, written), f"strict schema refuses {written}"
        expected = _with_defaults(e.tool, e.tool.validate_json(json.dumps(arguments)))
        got = _with_defaults(strict, strict.validate_json(json.dumps(written)))
        assert got == expected, written
    for arguments in e.invalid:
        if _accepts(strict, arguments):
            # valid under strict mode's own contract only: a null for an optional parameter
            # means "use the default"
            written = as_strict_model_writes_it(schema, schema, arguments)
            assert _is_valid(schema, written), f"strict tool accepts invalid {arguments}"
            assert None in arguments.values(), f"strict tool accepts invalid {arguments}"


NOTED = ("minLength", "maxLength", "pattern", "format", "uniqueItems")
RESTATED_FORMATS = {
    "date",
    "date-time",
    "time",
    "duration",
    "uuid",
    "ipv4",
    "ipv6",
    "ipvanyaddress",
}


def _strict_notes(schema: dict[str, Any]) -> str | None:
    """What strict mode writes into a parameter's description for the constraints it
    drops (written independently of agentkit: keywords outside the subset, formats outside
    its list, patterns with lookaround)."""
    notes = []
    # the parameter's own, then those of union members without a description of their own
    members = [m for m in schema.get("anyOf", ()) if "description" not in m]
    for sub in (schema, *members):
        for key in NOTED:
            value = sub.get(key)
            if value is None:
                continue
            if key == "format" and value in ALLOWED_FORMATS:
                continue
            if key == "pattern" and "(?" not in value:
                continue
            notes.append(f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
    return ", ".join(notes) or None


def _with_notes(description: str | None, notes: str | None) -> str | None:
    if notes is None:
        return description
    return f"{description} ({notes})" if description else notes


def _with_defaults(t: Tool[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments the function ends up with: its defaults, then ``kwargs``."""
    defaults = {
        name: param.default
        for name, param in inspect.signature(t.function).parameters.items()
        if param.default is not param.empty
    }
    return {**defaults, **kwargs}
