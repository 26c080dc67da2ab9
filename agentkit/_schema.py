"""Python signature and docstring to JSON Schema, and the OpenAI strict-mode transform.

Everything here runs once, when a function is decorated with ``@tool``:

* :func:`function_schema` reads the signature (``typing.get_type_hints``) and the docstring
  (docstring-parser: Google, NumPy, reST or Epydoc), builds a pydantic model of the
  arguments (the validator) and its JSON Schema (what the model is told). Both come from
  the same pydantic model, so the schema says what the validator accepts.
* :func:`to_strict_json_schema` rewrites a schema into the subset OpenAI's structured
  outputs accept: every property required, optional ones as a union with null,
  ``additionalProperties: false`` on every object, unsupported keywords removed (the
  constraints among them written into the description, so the model still learns them).
* :func:`compact_json_schema` makes the schema the model is sent from the full one: every
  request carries it, so it leaves out what only restates something else (see below).

Rules the schema follows (and the validator enforces):

* Unknown fields are refused at every level (``additionalProperties: false`` on every
  object with named fields; ``dict[str, X]`` keeps its value schema).
* Auto-generated ``title`` keys are dropped; ``$defs``/``$ref`` are kept for nested and
  recursive types; JSON-serialisable defaults are shown as ``default``.
* The full schema (``validation_parameters``), checked by any Draft 2020-12 validator with
  formats not asserted, refuses what the validator refuses wherever JSON Schema can say
  it: the string forms of dates (calendar-exact), times, durations, UUIDs, URLs, IP
  addresses and decimals carry a ``pattern`` beside their ``format``; sets refuse repeats
  (``uniqueItems``); integer and boolean literals and enums do not mix up ``1`` and
  ``true``; a discriminated union requires its tag; mapping keys have their own schema.
* The schema the model is sent (``parameters``) is the full one without the patterns that
  only restate a ``format`` (a model is guided by ``date-time``, not by a calendar
  regex), without ``"default": null`` (an optional parameter says that already) and
  without OpenAPI's ``discriminator`` (the tags' ``const`` says it). It accepts everything
  the full one accepts; the validator checks the rest and explains a violation.
* The description of a parameter is ``Annotated[..., Field(description=...)]`` (or a
  ``Field(description=...)`` default) if given, else a plain string in its ``Annotated``
  metadata (``Annotated[str, "The city"]``), else the docstring's.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import inspect
import re
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import docstring_parser
import docstring_parser.epydoc
import docstring_parser.google
import docstring_parser.numpydoc
import docstring_parser.rest
import typing_extensions
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, PydanticJsonSchemaWarning
from pydantic_core import PydanticCustomError, PydanticUndefined, core_schema, to_json

from ._context import RunContext
from ._errors import ToolDefinitionError

__all__ = [
    "NAME_PATTERN",
    "FunctionSchema",
    "StrictDecoder",
    "compact_json_schema",
    "describe_function",
    "function_schema",
    "to_strict_json_schema",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A tool name as the Chat Completions API accepts it: letters, digits, ``_``, ``-``, 1 to 64."""


@dataclass(frozen=True, slots=True)
class FunctionSchema:
    """Everything derived from a function when it becomes a tool.

    Attributes:
        name: the tool name (checked against :data:`NAME_PATTERN`).
        description: the docstring's summary and long description, or the override.
        parameters: the JSON Schema of the arguments object that the model is sent
            (compact; strict-transformed if ``strict``).
        validation_parameters: the full JSON Schema of the arguments object: everything
            the validator checks that JSON Schema can say (see the module docstring).
            Never sent; for checking arguments with a JSON Schema validator.
        model: the pydantic model that validates the arguments object.
        fields: ``(model field name, parameter name)`` per schema parameter, in order.
        positional_only: names of positional-only parameters, in order.
        defaults: the signature's default per parameter that has one.
        null_means_default: parameters for which a JSON ``null`` means "not given" (strict
            mode makes optional parameters nullable; the Python default then applies).
        filled_defaults: parameters whose signature default is a pydantic ``Field(...)``;
            Python would pass the ``FieldInfo`` itself, so the validator's default is passed.
        strict_decoder: in strict mode, turns arguments written for the strict schema
            back into the shape the validator reads (nulls inside nested objects that mean
            "use the default", key/value lists that stand for mappings); ``None`` when the
            strict schema has neither.
        context_param: the name of the ``RunContext`` parameter, or ``None``.
        strict: whether ``parameters`` is in OpenAI's strict subset.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    validation_parameters: dict[str, Any]
    model: type[BaseModel]
    fields: tuple[tuple[str, str], ...]
    positional_only: tuple[str, ...]
    defaults: dict[str, Any]
    null_means_default: frozenset[str]
    filled_defaults: frozenset[str]
    strict_decoder: StrictDecoder | None
    context_param: str | None
    strict: bool


# --- the function ----------------------------------------------------------------------


def _underlying(function: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function behind partials, bound methods and decorators (for hints, docs)."""
    seen = 0
    while seen < 100:  # a cycle of __wrapped__ is a user bug; never loop forever
        seen += 1
        if isinstance(function, partial):
            function = function.func
        elif isinstance(function, types.MethodType):
            function = function.__func__
        elif hasattr(function, "__wrapped__"):
            function = function.__wrapped__
        else:
            break
    return function


def _type_hints(
    function: Callable[..., Any], display: str, localns: Mapping[str, Any] | None
) -> dict[str, Any]:
    target = _underlying(function)
    if not inspect.isroutine(target) and callable(target):
        target = _underlying(type(target).__call__)  # a callable object: its __call__
    try:
        try:
            return typing.get_type_hints(target, include_extras=True)
        except NameError:
            if localns is None:
                raise
            # a local class named in a string annotation: look where the tool was made
            return typing.get_type_hints(target, localns=localns, include_extras=True)
    except Exception as exc:  # NameError for unresolvable forward references, and more
        raise ToolDefinitionError(
            f"Cannot read the type annotations of {display}: {exc}. Every annotation must "
            "be resolvable at decoration time (define or import the types it names)."
        ) from exc


def describe_function(function: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description and the per-parameter descriptions from a function's docstring.

    The description is the summary and the long description, without the parameter (or
    returns, raises, examples) sections. Google, NumPy, reST and Epydoc styles are
    recognised by docstring-parser.
    """
    doc = inspect.getdoc(_documented(function))
    if not doc:
        return "", {}
    # The parsers clean the text again, and cleaning takes the first line as the summary
    # line; a leading newline keeps the indentation of a docstring that opens with "Args:".
    parsed = _parse_docstring("\n" + doc)
    if parsed is None:
        return doc.strip(), {}
    params = {
        p.arg_name.lstrip("*"): p.description.strip()
        for p in parsed.params
        if p.description and p.description.strip()
    }
    return (parsed.description or "").strip(), params


def _documented(function: Callable[..., Any]) -> Any:
    """What carries the docstring: the function, or a callable object's ``__call__``
    (which documents the call's parameters) when it has a docstring of its own."""
    target = _underlying(function)
    if not inspect.isroutine(target) and not isinstance(target, type) and callable(target):
        call = _underlying(type(target).__call__)
        if inspect.isfunction(call) and call.__doc__:
            return call
    return target


# Google-style sections beyond docstring-parser's defaults (the names Sphinx's napoleon
# reads): keyword-only parameters documented under "Keyword Args:" get their descriptions,
# and notes, warnings and the like are sections, not part of the tool description (even
# when they come before "Args:").
_GOOGLE = docstring_parser.google.GoogleParser(
    sections=[
        *docstring_parser.google.DEFAULT_SECTIONS,
        *(
            docstring_parser.google.Section(
                title, "param", docstring_parser.google.SectionType.MULTIPLE
            )
            for title in (
                "Keyword Args",
                "Keyword Arguments",
                "Kwargs",
                "Other Args",
                "Other Arguments",
                "Other Parameters",
            )
        ),
        *(
            docstring_parser.google.Section(
                title, title.lower(), docstring_parser.google.SectionType.SINGULAR
            )
            for title in (
                "Attention",
                "Caution",
                "Danger",
                "Error",
                "Hint",
                "Important",
                "Note",
                "Notes",
                "References",
                "See Also",
                "Tip",
                "Todo",
                "Warning",
                "Warnings",
            )
        ),
    ]
)
_STYLES: tuple[Callable[[str], docstring_parser.Docstring], ...] = (
    docstring_parser.rest.parse,
    _GOOGLE.parse,
    docstring_parser.numpydoc.parse,
    docstring_parser.epydoc.parse,
)


def _parse_docstring(doc: str) -> docstring_parser.Docstring | None:
    """The docstring read in the style that recognises the most sections (as docstring-parser's
    own automatic choice does, with the wider Google sections)."""
    parsed: list[docstring_parser.Docstring] = []
    for parse in _STYLES:
        try:
            parsed.append(parse(doc))
        except docstring_parser.ParseError:
            continue
    return max(parsed, key=lambda result: len(result.meta), default=None)


# --- typing helpers ---------------------------------------------------------------------


def _strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _annotated_description(annotation: Any) -> str | None:
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


def _is_context(annotation: Any) -> bool:
    annotation = _strip_annotated(annotation)
    return annotation is RunContext or get_origin(annotation) is RunContext


def _accepts_none(annotation: Any) -> bool:
    annotation = _strip_annotated(annotation)
    if annotation in (None, type(None), Any):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_accepts_none(arg) for arg in get_args(annotation))
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


def _modernise(annotation: Any, memo: dict[Any, Any]) -> Any:
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
        inner = _modernise(args[0], memo)
        return annotation if inner is args[0] else Annotated[(inner, *annotation.__metadata__)]
    if origin is Literal:
        # pydantic matches JSON true/false to the literals 1/0 and 1/0 to true/false; the
        # schema (JSON Schema's enum) does neither
        if _has_numbers(args) and not _has_bools(args):
            return Annotated[annotation, BeforeValidator(_refuse_bool)]
        if _has_bools(args) and not _has_numbers(args):
            return Annotated[annotation, BeforeValidator(_refuse_number)]
        return annotation
    new_args = tuple(_modernise(arg, memo) for arg in args)
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
    adjusted = {key: _modernise(value, memo) for key, value in hints.items()}
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
    adjusted = {field.name: _modernise(hints[field.name], memo) for field in fields}
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
    if _DURATION_MATCH.fullmatch(value) is None:
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


# --- building the schema ----------------------------------------------------------------


def _field_name(name: str, aliased: bool) -> str:
    # pydantic treats leading underscores as private attributes and refuses names that
    # shadow BaseModel's own; such parameters get an internal field name and keep their
    # real name as the alias (what the JSON uses). A parameter with an alias of its own
    # gets an internal name too: pydantic ignores (rather than refuses) a key that is a
    # field's name, and the model must not think ``from_`` was taken when only ``from`` is.
    if aliased or name.startswith("_") or hasattr(BaseModel, name):
        return f" {name}"
    return name


def function_schema(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    localns: Mapping[str, Any] | None = None,
) -> FunctionSchema:
    """Derive a tool's name, description, argument model and JSON Schema from a function.

    ``localns`` resolves string annotations that name local classes (a function defined
    inside another one, under ``from __future__ import annotations``).

    Raises :class:`~agentkit._errors.ToolDefinitionError` for anything that cannot become a
    tool: a bad name, ``*args``/``**kwargs``, an unresolvable or unsupported annotation.
    """
    underlying = _underlying(function)
    tool_name = name if name is not None else getattr(underlying, "__name__", "")
    display = f"function {getattr(underlying, '__qualname__', tool_name)!r}"
    if not isinstance(tool_name, str) or not NAME_PATTERN.match(tool_name):
        raise ToolDefinitionError(
            f"Invalid tool name {tool_name!r} for {display}: a tool name is 1 to 64 "
            "letters, digits, '_' or '-'. Pass a valid one with @tool(name=...)."
        )
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"Cannot read the signature of {display}: {exc}") from exc
    hints = _type_hints(function, display, localns)
    doc_description, doc_params = describe_function(function)

    memo: dict[Any, Any] = {}
    model_fields: dict[str, Any] = {}
    fields: list[tuple[str, str]] = []
    positional_only: list[str] = []
    defaults: dict[str, Any] = {}
    null_means_default: set[str] = set()
    filled_defaults: set[str] = set()
    context_param: str | None = None

    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"{display} takes {star}{param.name}; a tool needs named parameters the model "
                "can fill in. Replace it with explicit parameters (or a list/dict parameter)."
            )
        annotation = hints.get(param.name, Any)
        if _is_context(annotation):
            if context_param is not None:
                raise ToolDefinitionError(
                    f"{display} has two RunContext parameters ({context_param!r} and "
                    f"{param.name!r}); declare at most one."
                )
            context_param = param.name
            continue
        if index == 0 and param.name in ("self", "cls") and param.name not in hints:
            raise ToolDefinitionError(
                f"{display} looks like a method ({param.name!r} is its first parameter). "
                "Make the tool from the bound method instead: tool(instance.method)."
            )
        if param.kind is param.POSITIONAL_ONLY:
            positional_only.append(param.name)
        has_default = param.default is not param.empty
        if has_default and isinstance(param.default, FieldInfo):
            filled_defaults.add(param.name)
        elif has_default:
            defaults[param.name] = param.default
        annotation = _modernise(annotation, memo)
        try:
            info = FieldInfo.from_annotated_attribute(
                annotation, param.default if has_default else PydanticUndefined
            )
        except Exception as exc:
            raise ToolDefinitionError(
                f"Parameter {param.name!r} of {display} has an unusable annotation: {exc}"
            ) from exc
        overrides: dict[str, Any] = {}
        if info.description is None:
            described = _annotated_description(annotation) or doc_params.get(param.name)
            if described:
                overrides["description"] = described
        aliased = info.alias is not None or info.validation_alias is not None
        field_name = _field_name(param.name, aliased)
        if field_name != param.name and not aliased:
            overrides["alias"] = param.name
        if overrides:
            info = FieldInfo.merge_field_infos(info, Field(**overrides))
        if strict and not info.is_required() and not _accepts_none(info.annotation):
            # Strict mode sends every property; an optional one may come as null, which
            # then means "use the default".
            info = FieldInfo.merge_field_infos(info)
            base = (
                Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            widened: Any = typing.Optional[base]  # noqa: UP045 (a runtime-built union)
            info.annotation = widened
            info.metadata = []
            null_means_default.add(param.name)
        model_fields[field_name] = (info.annotation, info)
        fields.append((field_name, param.name))

    model = _build_model(tool_name, model_fields, display)
    full = _json_schema(model, display)
    decoder = None
    if strict:
        transform = _StrictTransform()
        full = transform.convert(full, "parameters")
        if transform.null_defaults or transform.pairs:
            decoder = StrictDecoder(full, transform.null_defaults, transform.pairs)
            full = copy.deepcopy(full)  # the callers' copy; the decoder keeps its own
    return FunctionSchema(
        name=tool_name,
        description=description if description is not None else doc_description,
        parameters=compact_json_schema(full),
        validation_parameters=full,
        model=model,
        fields=tuple(fields),
        positional_only=tuple(positional_only),
        defaults=defaults,
        null_means_default=frozenset(null_means_default),
        filled_defaults=frozenset(filled_defaults),
        strict_decoder=decoder,
        context_param=context_param,
        strict=strict,
    )


def _build_model(name: str, model_fields: dict[str, Any], display: str) -> type[BaseModel]:
    try:
        with warnings.catch_warnings():
            # shadowing warnings are avoided by _field_name; others are not the user's concern
            warnings.simplefilter("ignore")
            return create_model(
                f"{name}_arguments",
                __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                **model_fields,
            )
    except Exception as exc:
        raise ToolDefinitionError(f"Cannot build the argument model of {display}: {exc}") from exc


# The string forms the validator reads (pydantic strict JSON mode), as patterns beside the
# usual ``format``: JSON Schema treats ``format`` as a note only, a pattern is checked. The
# date pattern knows the calendar (month lengths, 29 February in leap years only), so the
# schema refuses the dates the validator refuses.
_YEAR = "([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"  # 0001 to 9999
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    "|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = f"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_OFFSET = "([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?"
_TIME = "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.,][0-9]+)?)?" + _OFFSET
# ISO 8601 (P1DT2H, PT1.5H) or the clock form (1 day, 01:30:00). ISO components in the
# usual order, each at most once and at least one, a fraction on the last one only, and
# numbers no longer than the validator takes. Six digits per unit keep every duration the
# pattern describes within a timedelta. pydantic also reads rarer spellings (P1D1D, P1D2Y,
# P3D3DT) and durations beyond a million years; _refuse_odd_duration refuses, before
# pydantic reads it, any string this pattern refuses, so the two agree.
_ISO_NUMBER = "[0-9]{1,6}"


def _iso_components(units: str, *, required: bool) -> str:
    """A regex of ISO 8601 duration components for ``units`` (like ``"HMS"``) in order,
    each at most once; at least one when ``required``, and then the last present one may
    carry a fraction."""
    if not required:
        return "".join(f"({_ISO_NUMBER}{unit})?" for unit in units)
    options = [
        _iso_components(units[:last], required=False) + f"{_ISO_NUMBER}([.,][0-9]+)?{unit}"
        for last, unit in enumerate(units)
    ]
    return "(" + "|".join(options) + ")"


_ISO_DURATION = (
    f"P({_iso_components('YMWD', required=True)}T?"
    f"|{_iso_components('YMWD', required=False)}T{_iso_components('HMS', required=True)})"
)
_SECONDS = ":[0-5][0-9]([.,][0-9]+)?"
_CLOCK = f"([0-9]{{2,8}}:[0-5][0-9]|[0-9]{{1,8}}:[0-5][0-9]{_SECONDS})"  # hours unbounded
_DAY_CLOCK = f"(([01][0-9]|2[0-3]):[0-5][0-9]|([01]?[0-9]|2[0-3]):[0-5][0-9]{_SECONDS})"
_DURATION = f"[+-]?({_ISO_DURATION}|[0-9]{{1,9}} ?d(ays?)?(,? ?{_DAY_CLOCK})?|{_CLOCK})"
_DURATION_MATCH = re.compile(_DURATION)
_EXPONENT = "([eE][+-]?[0-9]{1,18})?"
_DECIMAL_DIGITS = r"([0-9]+\.?[0-9]*|\.[0-9]+)" + _EXPONENT
_POSITIVE_DECIMAL = r"([0-9]*[1-9][0-9]*\.?[0-9]*|[0-9]*\.[0-9]*[1-9][0-9]*)" + _EXPONENT


def _decimal_pattern(schema: core_schema.DecimalSchema) -> str:
    """The string form of a decimal, with its sign and digit constraints where given.

    ``gt``/``ge`` of zero or more refuse a minus sign (more than zero: and all zeros);
    ``decimal_places`` and ``max_digits`` bound the digits on each side of the point
    (without an exponent; leading zeros and trailing fraction zeros do not count, as
    for the validator). Other bounds are left to the number form and the validator.
    """
    lower = schema.get("gt", schema.get("ge"))
    sign = r"\+?" if lower is not None and lower >= 0 else "[+-]?"
    places = schema.get("decimal_places")
    digits = schema.get("max_digits")
    positive = lower is not None and (lower > 0 or (lower == 0 and "gt" in schema))
    if places is not None or digits is not None:
        return f"^{sign}{_digit_limited(digits, places, positive=positive)}$"
    if positive:
        return f"^{sign}{_POSITIVE_DECIMAL}$"
    return f"^{sign}{_DECIMAL_DIGITS}$"


def _digit_limited(max_digits: int | None, places: int | None, *, positive: bool) -> str:
    """Digits with at most ``max_digits`` in all and ``places`` after the point (and not
    all zeros when ``positive``)."""
    splits: list[tuple[int | None, int]]  # (digits before the point, digits after it)
    if max_digits is None:
        splits = [(None, places or 0)]
    elif places is not None:
        splits = [(max(max_digits - places, 0), places)]
    else:  # any split of the digits between the two sides
        splits = [(whole, max_digits - whole) for whole in range(max_digits + 1)]
    options = []
    widest = max(fraction for _, fraction in splits)
    if widest:  # nothing but zeros before the point
        digits = f"[0-9]{{0,{widest - 1}}}[1-9]" if positive else f"[0-9]{{1,{widest}}}"
        options.append(f"0*\\.{digits}0*")
    for whole, fraction in splits:
        if whole is None:
            integer = "[0-9]*[1-9][0-9]*" if positive else "[0-9]+"
        elif whole == 0:
            if positive:
                continue  # zero before the point: the option above
            integer = "0+"
        else:
            integer = f"0*[1-9][0-9]{{0,{whole - 1}}}"
            if len(splits) == 1 and not positive:
                integer = f"(0+|{integer})"
        point = f"(\\.[0-9]{{0,{fraction}}}0*)?" if fraction else "(\\.0*)?"
        options.append(integer + point)
    return "(" + "|".join(options) + ")"


_INTEGER_KEY_PATTERN = "^[+-]?[0-9]+$"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = f"{_OCTET}(\\.{_OCTET}){{3}}"
_IPV6 = "[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(%[0-9A-Za-z._-]+)?"  # the shape; the validator the rest
# URLs of schemes that need a host (http://example.com); other schemes (mailto:x, file:///)
_HOST_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_URL_WITH_HOST = "://[^\\s/?#]+([/?#]\\S*)?$"
_ANY_URL = "^[A-Za-z][A-Za-z0-9+.-]*:\\S+$"
_PATTERNS = {
    "date": f"^{_DATE}$",
    "date-time": f"^{_DATE}[Tt _]{_TIME}$",
    "time": f"^{_TIME}$",
    "duration": f"^({_DURATION})$",
    "uuid": r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})$",
    "ipv4": f"^{_IPV4}$",
    "ipv6": f"^{_IPV6}$",
    "ipvanyaddress": f"^({_IPV4}|{_IPV6})$",
}


_FORMATS_FROM_METADATA = frozenset({"ipv4", "ipv6", "ipvanyaddress"})


class _SchemaGenerator(GenerateJsonSchema):
    """pydantic's generator, saying everything the validator checks that it can say.

    * patterns for the date, time, duration, UUID, URL, IP address and decimal string forms;
    * integer-keyed mappings name the key form (``propertyNames``);
    * a discriminated union requires the tag in each member, as the validator does even
      when the member's model gives the tag a default.
    """

    def _with_pattern(self, schema: JsonSchemaValue) -> JsonSchemaValue:
        pattern = _PATTERNS.get(schema.get("format", ""))
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
            json_schema.setdefault("pattern", _ANY_URL)
        else:
            names = "|".join(re.escape(name) for name in schemes)
            rest = _URL_WITH_HOST if set(schemes) <= _HOST_SCHEMES else ":\\S+$"
            json_schema.setdefault("pattern", f"^({names}){rest}")
        return json_schema

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        keys = schema.get("keys_schema", {})
        if keys.get("type") == "int" and "propertyNames" not in json_schema:
            json_schema["propertyNames"] = {"pattern": _INTEGER_KEY_PATTERN}
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
                option["pattern"] = _decimal_pattern(schema)
        return json_schema


def _json_schema(model: type[BaseModel], display: str) -> dict[str, Any]:
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


# --- walking schemas --------------------------------------------------------------------

# Keywords whose value is one schema, a list of schemas, or a name -> schema mapping.
_ONE_SCHEMA = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")


def _subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in _ONE_SCHEMA:
        value = schema.get(key)
        if isinstance(value, dict):
            yield value
    for key in _SCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            yield from (item for item in value.values() if isinstance(item, dict))


def _tidy(schema: dict[str, Any]) -> None:
    """Drop titles; forbid unknown fields on every object with named fields, and keys
    outside the pattern of a mapping with constrained keys (in place)."""
    schema.pop("title", None)
    if "properties" in schema and not isinstance(schema.get("additionalProperties"), dict):
        # the validator refuses unknown fields everywhere (extra="forbid" at validation)
        schema["additionalProperties"] = False
    elif "patternProperties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    if schema.get("format") in _FORMATS_FROM_METADATA and "pattern" not in schema:
        # types whose schema pydantic writes without a generator method (ipaddress)
        schema["pattern"] = _PATTERNS[schema["format"]]
    for sub in _subschemas(schema):
        _tidy(sub)


# --- the schema the model is sent -------------------------------------------------------

# Patterns that only restate a format: the date and time forms, UUIDs, IP addresses, URLs
# of any scheme. A URL pattern naming its schemes says more than ``format: uri`` and stays.
_RESTATED_PATTERNS = frozenset({*_PATTERNS.values(), _ANY_URL})
# A decimal's string form with no digit bounds: its number form beside it says as much
# (the sign rule is the number form's minimum).
_NUMBER_PATTERNS = frozenset(
    f"^{sign}{digits}$"
    for sign in (r"\+?", "[+-]?")
    for digits in (_DECIMAL_DIGITS, _POSITIVE_DECIMAL)
)


def compact_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema the model is sent, made from the full one (a new object; ``schema`` is
    left alone).

    Every request carries the tool definitions, so this leaves out what says nothing the
    rest of the schema does not, and writes the rest the short way:

    * no ``pattern`` that only restates its ``format`` (the calendar-exact date regex
      beside ``format: date``), nor the number pattern of a decimal's string form beside
      its ``number`` form;
    * no ``"default": null`` (not being required says it), no OpenAPI ``discriminator``
      (each member's ``const`` tag says it);
    * a definition used once is written where it is used, not in ``$defs``;
    * a one-member ``anyOf`` is merged into its parent, and an optional scalar is
      ``{"type": ["string", "null"]}`` rather than an ``anyOf`` with null.

    Everything the full schema accepts, the compact one accepts; the validator still
    checks what was left out and explains a violation to the model.
    """
    defs = schema.get("$defs")
    inline: dict[str, Any] = {}
    if isinstance(defs, dict):
        counts: dict[str, int] = {}
        _count_refs(schema, counts)
        for name, sub in defs.items():
            own: dict[str, int] = {}
            _count_refs(sub, own)
            if counts.get(name) == 1 and not own.get(name):
                inline[name] = sub
    out = _Compactor(inline).compact(schema)
    kept = {name: sub for name, sub in out.pop("$defs", {}).items() if name not in inline}
    if kept:
        out["$defs"] = kept
    return out  # type: ignore[no-any-return]


_DEFS_PREFIX = "#/$defs/"


def _count_refs(schema: Any, counts: dict[str, int]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            name = ref[len(_DEFS_PREFIX) :]
            counts[name] = counts.get(name, 0) + 1
        for sub in _subschemas(schema):
            _count_refs(sub, counts)


class _Compactor:
    """One compaction; knows the definitions to write where they are used."""

    def __init__(self, inline: dict[str, Any]) -> None:
        self.inline = inline

    def compact(self, schema: Any) -> Any:
        if not isinstance(schema, dict):
            return _copied(schema)
        schema = self._inlined(schema)
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "pattern" and "format" in schema and value in _RESTATED_PATTERNS:
                continue
            if (key == "default" and value is None) or key == "discriminator":
                continue
            if key in _ONE_SCHEMA:
                out[key] = self.compact(value)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.compact(item) for item in value]
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.compact(sub) for name, sub in value.items()}
            else:
                out[key] = _copied(value)
        if isinstance(out.get("anyOf"), list):
            _drop_decimal_pattern(out["anyOf"])
        out = _merged_single(out) or out
        return _merged_nullable(out) or out

    def _inlined(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith(_DEFS_PREFIX):
            return schema
        target = self.inline.get(ref[len(_DEFS_PREFIX) :])
        if target is None:
            return schema
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        if not rest:
            return target  # type: ignore[no-any-return]
        if "anyOf" in rest:  # not written by pydantic nor by strict mode; still valid
            return {**rest, "allOf": [target]}
        if rest.keys() & target.keys():
            # both describe (the parameter and its type): keep both, the type one level in
            return {**rest, "anyOf": [target]}
        return {**rest, **target}


def _copied(value: Any) -> Any:
    """A value the caller may change without changing the full schema (JSON: only lists
    and dicts are mutable)."""
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def _merged_single(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``{"description": ..., "anyOf": [{"type": ...}]}`` as one schema, when the two do
    not share a keyword (a lone reference stays in its ``anyOf``: strict mode wants no
    keywords beside a ``$ref``)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 1 or not isinstance(options[0], dict):
        return None
    member = options[0]
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if "$ref" in member or rest.keys() & member.keys():
        return None
    return {**rest, **member}


def _drop_decimal_pattern(options: list[Any]) -> None:
    """A decimal's string form, beside its number form, without the pattern that only
    says "a number" (in place; a pattern that also bounds the digits stays)."""
    if not any(isinstance(o, dict) and o.get("type") == "number" for o in options):
        return
    for option in options:
        if (
            isinstance(option, dict)
            and option.get("type") == "string"
            and option.get("pattern") in _NUMBER_PATTERNS
        ):
            del option["pattern"]


_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})


def _merged_nullable(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``{"anyOf": [{"type": "string", ...}, {"type": "null"}], ...}`` as the same schema
    written shorter, ``{"type": ["string", "null"], ...}``, or ``None`` when it is not
    of that shape.

    Only for a scalar type: its other keywords (``format``, ``minimum``...) do not apply
    to null, and an ``enum`` or ``const`` gains the null. Objects, arrays and references
    keep the ``anyOf`` (strict mode's consumers are least tested on nullable containers).
    """
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or options[1] != {"type": "null"}:
        return None
    member = options[0]
    if not isinstance(member, dict) or member.get("type") not in _SCALAR_TYPES:
        return None
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if rest.keys() & member.keys():
        return None  # both sides say the same thing differently; leave it as written
    merged = {**member, "type": [member["type"], "null"], **rest}
    if "const" in merged:
        merged["enum"] = [merged.pop("const")]
    if "enum" in merged and None not in merged["enum"]:
        merged["enum"] = [*merged["enum"], None]
    return merged


# --- strict mode ------------------------------------------------------------------------

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
    return _StrictTransform().convert(schema, "parameters")


class _StrictTransform:
    """One strict conversion; remembers what it changed that a decoder must undo."""

    def __init__(self) -> None:
        # id(converted object schema) -> properties whose null means "use the default"
        self.null_defaults: dict[int, frozenset[str]] = {}
        # ids of the key/value list schemas that stand for mappings
        self.pairs: set[int] = set()
        # ids of the converted schemas whose description is only the notes of dropped
        # constraints (see _note_dropped_constraints)
        self.noted: set[int] = set()

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

    def convert(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
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

        if out.get("type") == "object" or "properties" in out:
            self._object(schema, out, where)
        else:
            out.pop("additionalProperties", None)
            out.pop("required", None)
        if "items" in out and id(out) not in self.pairs:
            items = out["items"]
            if not isinstance(items, dict) or not _has_type(items):
                raise ToolDefinitionError(
                    f"Strict mode needs a type for the items of the array at {where}: use "
                    "list[X] with a concrete X, or strict=False."
                )
            out["items"] = self.convert(items, f"{where}[]")
        if "prefixItems" in out:
            out["prefixItems"] = [
                self.convert(item, f"{where}[{i}]") for i, item in enumerate(out["prefixItems"])
            ]
        if "anyOf" in out:
            out["anyOf"] = [self.convert(item, where) for item in out["anyOf"]]
            self._hoist_notes(out)
        if "$defs" in out:
            out["$defs"] = {
                key: self.convert(sub, f"$defs.{key}") for key, sub in out["$defs"].items()
            }
        if "$ref" in out and len(out) > 1:
            out["anyOf"] = [{"$ref": out.pop("$ref")}, *out.get("anyOf", [])]
        if not _has_type(out):
            raise ToolDefinitionError(
                f"Strict mode needs a type at {where}, but it accepts any JSON value (an "
                "unannotated parameter, or Any). Annotate it, or use strict=False."
            )
        return out

    def _object(self, schema: dict[str, Any], out: dict[str, Any], where: str) -> None:
        additional = schema.get("additionalProperties")
        patterns = schema.get("patternProperties")
        if not schema.get("properties") and (
            additional not in (None, False) or (isinstance(patterns, dict) and len(patterns) == 1)
        ):
            self._mapping(schema, out, where)
            return
        if "properties" not in schema or additional not in (None, False):
            raise ToolDefinitionError(
                f"Strict mode cannot express an object with both named and free-form keys "
                f"at {where}. Use a model with named fields only, or strict=False."
            )
        required = set(schema.get("required", ()))
        properties: dict[str, Any] = {}
        nulls: set[str] = set()
        for prop, sub in schema["properties"].items():
            converted = self.convert(sub, f"{where}.{prop}")
            if prop not in required and not _allows_null(converted):
                converted = _nullable(converted)
                nulls.add(prop)
            properties[prop] = converted
        out["properties"] = properties
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
            key_schema = self.convert(names, f"{where}{{}}")
        entry = {
            "type": "object",
            "properties": {
                "key": key_schema,
                "value": self.convert(value, f"{where}[]"),
            },
            "required": ["key", "value"],
            "additionalProperties": False,
        }
        for key in ("properties", "required", "additionalProperties"):
            out.pop(key, None)
        out["type"] = "array"
        out["items"] = entry
        self.pairs.add(id(out))


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


class StrictDecoder:
    """Turns arguments written for a strict schema back into what the validator reads.

    Strict mode changes two shapes (see :func:`to_strict_json_schema`): an optional field
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
