"""Parameter annotations read and adjusted, so that the validator accepts exactly what the
schema says.

pydantic reads some JSON values its schema does not describe (``true`` for the literal ``1``,
a repeated item in a set, odd duration spellings) and refuses ``typing.TypedDict`` before
Python 3.12; :func:`modernise` rebuilds an annotation so that neither happens. The other
helpers answer questions about a parameter's annotation (its description, whether it is the
``RunContext``, whether it accepts ``None``).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import sys
import types
import typing
from functools import partial
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typing_extensions
from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema, to_json

from ._context import RunContext
from ._schema_formats import DURATION_MATCH

__all__ = ["accepts_none", "annotated_description", "is_context", "modernise", "strip_annotated"]


def strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def annotated_description(annotation: Any) -> str | None:
    """A description written as a plain string (or ``typing_extensions.Doc``) in
    ``Annotated`` metadata: ``Annotated[str, "The city"]``, as LangChain and PEP 727 write it.
    Outer metadata wins over inner, as it does for ``Field``."""
    found: str | None = None
    if get_origin(annotation) is Annotated:
        for item in annotation.__metadata__:  # nested Annotated is flattened, inner first
            text = item if isinstance(item, str) else _doc_text(item)
            if text is not None and text.strip():
                found = text.strip()
    return found


def _doc_text(item: Any) -> str | None:
    documentation = getattr(item, "documentation", None)
    if type(item).__name__ == "Doc" and isinstance(documentation, str):
        return documentation
    return None


def is_context(annotation: Any) -> bool:
    annotation = strip_annotated(annotation)
    return annotation is RunContext or get_origin(annotation) is RunContext


def accepts_none(annotation: Any) -> bool:
    annotation = strip_annotated(annotation)
    if annotation in (None, type(None), Any):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(accepts_none(arg) for arg in get_args(annotation))
    if get_origin(annotation) is Literal:
        return None in get_args(annotation)
    return False


def _is_stdlib_typeddict(annotation: Any) -> bool:
    return (
        sys.version_info < (3, 12)
        and isinstance(annotation, type)
        and typing.is_typeddict(annotation)
        and type(annotation).__module__ == "typing"
    )


def modernise(annotation: Any, memo: dict[Any, Any]) -> Any:
    """Adjust an annotation so that pydantic validates exactly what its schema says.

    * ``typing.TypedDict`` classes are rebuilt as ``typing_extensions.TypedDict`` (pydantic
      refuses the former before Python 3.12) with the same name, docstring, keys,
      totality and (converted) annotations;
    * integer ``Literal``s and enums with integer values refuse booleans (pydantic would
      read ``true`` as ``1``); boolean ``Literal``s refuse numbers (``1`` as ``true``);
    * durations (``timedelta``) refuse the strings the schema's duration pattern refuses
      (pydantic also reads repeated units, units out of order and over a million years:
      ``P1D1D``, ``P1D2Y``, ``P3D3DT``);
    * sets refuse duplicate items (their schema says ``uniqueItems``; pydantic would
      silently drop the duplicates; strict mode cannot say ``uniqueItems``, but the
      validator still checks it, as it checks ``minLength``);
    * the fields of TypedDicts and standard-library dataclasses are adjusted too (see
      :func:`_modernise_dataclass`).

    Other annotations are returned unchanged unless something inside them changed.
    """
    if isinstance(annotation, type) and typing_extensions.is_typeddict(annotation):
        return _modernise_typeddict(annotation, memo)
    if _is_plain_dataclass(annotation):
        return _modernise_dataclass(annotation, memo)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        if _has_numbers(values) and not _has_bools(values):
            return Annotated[annotation, BeforeValidator(_refuse_bool)]
        return annotation
    if annotation is datetime.timedelta:
        return Annotated[annotation, BeforeValidator(_refuse_odd_duration)]
    if annotation in (set, frozenset):
        return _unique_items(annotation, Any)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is None or not args:
        return annotation
    if origin is Annotated:
        inner = modernise(args[0], memo)
        return annotation if inner is args[0] else Annotated[(inner, *annotation.__metadata__)]
    if origin is Literal:
        # pydantic matches JSON true/false to the literals 1/0 and 1/0 to true/false; the
        # schema (JSON Schema's enum) does neither
        if _has_numbers(args) and not _has_bools(args):
            return Annotated[annotation, BeforeValidator(_refuse_bool)]
        if _has_bools(args) and not _has_numbers(args):
            return Annotated[annotation, BeforeValidator(_refuse_number)]
        return annotation
    new_args = tuple(modernise(arg, memo) for arg in args)
    changed = any(new is not old for new, old in zip(new_args, args, strict=True))
    if origin in (set, frozenset):
        return _unique_items(origin, new_args[0])
    if not changed:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[new_args]  # noqa: UP007 (a runtime-built union)
    if origin in (typing.Required, typing.NotRequired):
        return origin[new_args[0]]
    try:
        return origin[new_args]
    except TypeError:  # an origin that cannot be subscripted again: leave it to pydantic
        return annotation


def _modernise_typeddict(annotation: Any, memo: dict[Any, Any]) -> Any:
    """A TypedDict with adjusted value types: the same class if nothing changed (and it is
    not a ``typing.TypedDict`` pydantic refuses), else an equivalent
    ``typing_extensions.TypedDict`` (only dicts exist at runtime, so nothing else sees it)."""
    if annotation in memo:
        return memo[annotation]
    # Create first and fill in after, so recursive TypedDicts find themselves in memo.
    make_typeddict: Any = typing_extensions.TypedDict
    rebuilt: Any = make_typeddict(annotation.__name__, {})
    memo[annotation] = rebuilt
    hints = typing.get_type_hints(annotation, include_extras=True)
    adjusted = {key: modernise(value, memo) for key, value in hints.items()}
    if not _is_stdlib_typeddict(annotation) and all(adjusted[key] is hints[key] for key in hints):
        memo[annotation] = annotation
        return annotation
    rebuilt.__annotations__ = adjusted
    rebuilt.__required_keys__ = frozenset(annotation.__required_keys__)
    rebuilt.__optional_keys__ = frozenset(annotation.__optional_keys__)
    rebuilt.__total__ = annotation.__total__
    rebuilt.__doc__ = annotation.__doc__
    rebuilt.__module__ = annotation.__module__
    rebuilt.__qualname__ = annotation.__qualname__
    return rebuilt


def _is_plain_dataclass(annotation: Any) -> bool:
    return (
        isinstance(annotation, type)
        and dataclasses.is_dataclass(annotation)
        and not hasattr(annotation, "__pydantic_validator__")  # pydantic's own dataclasses
    )


def _modernise_dataclass(cls: type[Any], memo: dict[Any, Any]) -> Any:
    """A standard-library dataclass whose field types needed adjusting (a ``typing.TypedDict``
    field, an integer ``Literal``, a set...), else the class itself.

    The class cannot change (the function expects its instances), so pydantic validates
    into a shadow dataclass with the adjusted fields, the same name and the same defaults,
    and the result is turned into the real class by calling it with the validated fields.
    """
    if cls in memo:
        return memo[cls]
    memo[cls] = cls  # a recursive reference keeps the original class
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # unresolvable annotations: pydantic reports them
        return cls
    fields = [field for field in dataclasses.fields(cls) if field.init]
    if any(isinstance(hint, dataclasses.InitVar) for hint in hints.values()):
        return cls  # __init__ takes more than the fields: leave it to pydantic
    adjusted = {field.name: modernise(hints[field.name], memo) for field in fields}
    if all(adjusted[name] is hints[name] for name in adjusted):
        return cls
    spec: list[Any] = []
    for field in fields:
        options: dict[str, Any] = {"kw_only": field.kw_only is True}
        if field.default is not dataclasses.MISSING:
            options["default"] = field.default
        if field.default_factory is not dataclasses.MISSING:
            options["default_factory"] = field.default_factory
        spec.append((field.name, adjusted[field.name], dataclasses.field(**options)))
    shadow = dataclasses.make_dataclass(cls.__name__, spec)
    shadow.__module__ = cls.__module__
    shadow.__qualname__ = cls.__qualname__
    shadow.__doc__ = cls.__doc__
    rebuilt: Any = Annotated[(shadow, AfterValidator(partial(_from_shadow, cls)))]
    memo[cls] = rebuilt
    return rebuilt


def _from_shadow(cls: type[Any], shadow: Any) -> Any:
    return cls(**{field.name: getattr(shadow, field.name) for field in dataclasses.fields(shadow)})


def _has_numbers(values: Any) -> bool:
    return any(isinstance(value, int | float) and not isinstance(value, bool) for value in values)


def _has_bools(values: Any) -> bool:
    return any(isinstance(value, bool) for value in values)


def _refuse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"Input should be a number, not {str(value).lower()}")
    return value


def _refuse_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"Input should be a boolean, not the number {value}")
    return value


def _refuse_odd_duration(value: Any) -> Any:
    """A duration string read only in the forms the schema's ``duration`` pattern describes.

    A string that fits is read as pydantic reads it in strict JSON mode (the result, a
    ``timedelta``, then passes the strict schema); anything else but a string is left to
    that schema, which refuses it as before.
    """
    if not isinstance(value, str):
        return value
    if DURATION_MATCH.fullmatch(value) is None:
        raise PydanticCustomError(
            "time_delta_parsing",
            "Input should be a valid duration, like PT1.5H, P1DT2H or 1 day, 01:30:00 "
            "(ISO 8601 units in order, each at most once)",
        )
    try:
        return _TIMEDELTA.validate_json(to_json(value), strict=True)
    except ValidationError as exc:  # within the pattern, but not a timedelta
        error = exc.errors()[0]
        raise PydanticCustomError(error["type"], "{message}", {"message": error["msg"]}) from None


_TIMEDELTA: TypeAdapter[datetime.timedelta] = TypeAdapter(datetime.timedelta)


def _unique_items(kind: type[Any], item: Any) -> Any:
    """``set[item]``/``frozenset[item]`` validated as a JSON array that refuses duplicates.

    pydantic reads a set from any array and silently drops repeated items, while the
    schema says ``uniqueItems``. The array is validated as a list (so every item keeps
    JSON-mode validation) and becomes the set afterwards, if no item was repeated.
    """
    return Annotated[list[item], AfterValidator(partial(_as_set, kind)), _UniqueItems()]


def _as_set(kind: type[Any], values: list[Any]) -> Any:
    result = kind(values)
    if len(result) != len(values):
        seen: list[Any] = []
        for value in values:
            if value in seen:
                raise ValueError(f"Set should have unique items; {_json_text(value)} is repeated")
            seen.append(value)
    return result


def _json_text(value: Any) -> str:
    text = to_json(value, fallback=repr).decode()
    return text if len(text) <= 40 else text[:39] + "…"


class _UniqueItems:
    """``uniqueItems: true`` in the JSON Schema of the array it annotates."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["uniqueItems"] = True
        return json_schema
