"""@tool: the description and parameter descriptions, from every docstring style."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import pytest
import typing_extensions
from pydantic import Field

from agentkit import RunContext, tool
from agentkit._schema_doc import describe_function


def google(city: str, days: int = 1, *, unit: str = "c") -> str:
    """Get the weather forecast.

    Looks the city up and asks the forecast service;
    answers with one sentence.

    Args:
        city: The city name,
            e.g. "Hangzhou".
        days (int): How many days ahead.
        unit: "c" or "f".

    Returns:
        A sentence about the weather.

    Raises:
        ValueError: for an unknown city.
    """
    return city


def numpy(city: str, days: int = 1, *, unit: str = "c") -> str:
    """Get the weather forecast.

    Looks the city up and asks the forecast service;
    answers with one sentence.

    Parameters
    ----------
    city : str
        The city name,
        e.g. "Hangzhou".
    days : int, optional
        How many days ahead.
    unit : str
        "c" or "f".

    Returns
    -------
    str
        A sentence about the weather.
    """
    return city


def rest(city: str, days: int = 1, *, unit: str = "c") -> str:
    """Get the weather forecast.

    Looks the city up and asks the forecast service;
    answers with one sentence.

    :param city: The city name,
        e.g. "Hangzhou".
    :param int days: How many days ahead.
    :param unit: "c" or "f".
    :returns: A sentence about the weather.
    :raises ValueError: for an unknown city.
    """
    return city


def epydoc(city: str, days: int = 1, *, unit: str = "c") -> str:
    """Get the weather forecast.

    Looks the city up and asks the forecast service;
    answers with one sentence.

    @param city: The city name,
        e.g. "Hangzhou".
    @param days: How many days ahead.
    @type days: int
    @param unit: "c" or "f".
    @return: A sentence about the weather.
    """
    return city


DESCRIPTION = (
    "Get the weather forecast.\n\n"
    "Looks the city up and asks the forecast service;\nanswers with one sentence."
)


@pytest.mark.parametrize("function", [google, numpy, rest, epydoc], ids=lambda f: f.__name__)
def test_every_style_gives_the_description_and_parameter_descriptions(function: object) -> None:
    t = tool(function)  # type: ignore[call-overload]
    assert t.description == DESCRIPTION
    props = t.parameters["properties"]
    assert props["city"]["description"] == 'The city name,\ne.g. "Hangzhou".'
    assert props["days"]["description"] == "How many days ahead."
    assert props["unit"]["description"] == '"c" or "f".'
    for section in (
        "Args",
        "Parameters",
        ":param",
        "@param",
        "Returns",
        "Raises",
        "sentence about",
    ):
        assert section not in t.description


def test_one_line_docstring() -> None:
    @tool
    def now(timezone: str) -> str:
        """Tell the current time."""
        return timezone

    assert now.description == "Tell the current time."
    assert "description" not in now.parameters["properties"]["timezone"]


def test_summary_over_two_lines_is_kept_whole() -> None:
    @tool
    def f(a: int) -> int:
        """Add one to a number
        and return it.

        Args:
            a: The number.
        """
        return a + 1

    assert f.description == "Add one to a number\nand return it."
    assert f.parameters["properties"]["a"]["description"] == "The number."


def test_no_docstring_gives_an_empty_description() -> None:
    def f(a: int) -> int:
        return a

    t = tool(f)
    assert t.description == ""
    assert t.to_openai()["function"]["description"] == ""


def test_description_override_keeps_parameter_descriptions() -> None:
    t = tool(description="Weather, briefly.")(google)
    assert t.description == "Weather, briefly."
    assert t.parameters["properties"]["days"]["description"] == "How many days ahead."


def test_field_description_wins_over_the_docstring() -> None:
    @tool
    def f(
        a: Annotated[int, Field(description="From Annotated.")],
        b: int = Field(2, description="From the default."),
        c: int = 3,
    ) -> None:
        """F.

        Args:
            a: From the docstring.
            b: From the docstring.
            c: From the docstring.
        """

    props = f.parameters["properties"]
    assert props["a"]["description"] == "From Annotated."
    assert props["b"]["description"] == "From the default."
    assert props["c"]["description"] == "From the docstring."


def test_documented_names_that_are_not_parameters_are_ignored() -> None:
    @tool
    def f(ctx: RunContext[None], a: int) -> None:
        """F.

        Args:
            ctx: The run context.
            a: A number.
            gone: A parameter that was removed.
        """

    assert list(f.parameters["properties"]) == ["a"]
    assert f.parameters["properties"]["a"]["description"] == "A number."


def test_docstrings_of_partials_methods_and_decorated_functions() -> None:
    class Desk:
        def lookup(self, order_id: int) -> str:
            """Look up an order.

            Args:
                order_id: The order number.
            """
            return str(order_id)

    def logged(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        return wrapper

    for made in (tool(Desk().lookup), tool(logged(Desk().lookup))):
        assert made.description == "Look up an order."
        assert made.parameters["properties"]["order_id"]["description"] == "The order number."
        assert made.call({"order_id": 5}) == "5"

    partial = tool(functools.partial(google, days=2))
    assert partial.description == DESCRIPTION
    assert partial.parameters["properties"]["city"]["description"].startswith("The city name")


def test_describe_function_directly() -> None:
    description, params = describe_function(numpy)
    assert description == DESCRIPTION
    assert params == {
        "city": 'The city name,\ne.g. "Hangzhou".',
        "days": "How many days ahead.",
        "unit": '"c" or "f".',
    }


def test_docstring_without_sections_is_all_description() -> None:
    @tool
    def f(a: int) -> None:
        """Do a thing.

        First paragraph.

        Second paragraph, with a colon: here.
        """

    assert f.description == (
        "Do a thing.\n\nFirst paragraph.\n\nSecond paragraph, with a colon: here."
    )


def test_keyword_argument_sections_of_google_style() -> None:
    for section in ("Keyword Args", "Keyword Arguments", "Kwargs", "Other Parameters"):

        def search(query: str, *, limit: int = 10) -> str:
            return query

        search.__doc__ = f"""Search the catalogue.

        Args:
            query: What to look for.

        {section}:
            limit: At most this many results.
        """
        t = tool(search)
        assert t.description == "Search the catalogue.", section
        props = t.parameters["properties"]
        assert props["query"]["description"] == "What to look for."
        assert props["limit"]["description"] == "At most this many results.", section


def test_docstring_that_opens_with_its_parameter_section() -> None:
    def google_only(x: int) -> int:
        """
        Args:
            x: The x.
        """
        return x

    def numpy_only(x: int) -> int:
        """
        Parameters
        ----------
        x : int
            The x.
        """
        return x

    for function in (google_only, numpy_only):
        t = tool(function)
        assert t.description == ""
        assert t.parameters["properties"]["x"]["description"] == "The x."


def test_plain_string_in_annotated_describes_the_parameter() -> None:
    # LangChain's spelling, and PEP 727's typing_extensions.Doc; annotation wins over the
    # docstring (as Field(description=...) does), Field wins over both
    @tool
    def f(
        a: Annotated[str, "From a string."],
        b: Annotated[int, typing_extensions.Doc("From Doc.")] = 1,
        c: Annotated[str, "From a string.", Field(description="From Field.")] = "",
        d: Annotated[Annotated[str, "Inner."], "Outer."] = "",
        e: Annotated[str, "  "] = "",
    ) -> None:
        """F.

        Args:
            a: From the docstring.
            e: From the docstring, since the annotation's text is blank.
        """

    props = f.parameters["properties"]
    assert props["a"]["description"] == "From a string."
    assert props["b"]["description"] == "From Doc."
    assert props["c"]["description"] == "From Field."
    assert props["d"]["description"] == "Outer."
    assert props["e"]["description"] == "From the docstring, since the annotation's text is blank."


def test_callable_object_is_described_by_its_call_docstring() -> None:
    class Translator:
        """A translator (the class docstring)."""

        def __call__(self, text: str) -> str:
            """Translate a text.

            Args:
                text: The text.
            """
            return text

    class Quiet:
        """Echo a text (the class docstring, since __call__ has none)."""

        def __call__(self, text: str) -> str:
            return text

    made = tool(Translator(), name="translate")
    assert made.description == "Translate a text."
    assert made.parameters["properties"]["text"]["description"] == "The text."
    assert tool(Quiet(), name="echo").description.startswith("Echo a text")


def test_notes_and_warnings_are_sections_not_description() -> None:
    @tool
    def archive(path: str) -> None:
        """Archive a folder.

        Note:
            Archives are compressed.

        Warning:
            Slow for big folders.

        Args:
            path: The folder.

        See Also:
            restore
        """

    assert archive.description == "Archive a folder."
    assert archive.parameters["properties"]["path"]["description"] == "The folder."
