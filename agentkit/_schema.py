"""Python signature and docstring to a tool's schemas and validator (:func:`function_schema`).

Everything here runs once, when a function is decorated with ``@tool``. The steps, each in a
module of its own:

* the docstring (``_schema_doc``: Google, NumPy, reST or Epydoc) gives the descriptions;
  ``typing.get_type_hints`` the annotations, adjusted (``_schema_types``) so that pydantic
  validates exactly what the schema says;
* a pydantic model of the arguments is built (the validator), and its JSON Schema
  (``_schema_gen``, with the string-form patterns of ``_schema_formats``) is what the model
  is told. Both come from the same pydantic model, so the schema says what the validator
  accepts;
* in strict mode (``_schema_strict``) the schema is rewritten into the subset OpenAI's
  structured outputs accept: every property required, optional ones as a union with null,
  ``additionalProperties: false`` on every object, unsupported keywords removed (the
  constraints among them written into the description, so the model still learns them);
  ``_schema_decode`` turns arguments written for it back into the validator's shape;
* the schema the model is sent (``_schema_compact``) is made from the full one: every
  request carries it, so it leaves out what only restates something else (see below).

The schema jobs share one walk (``_schema_walk``).

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
import inspect
import re
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ._errors import ToolDefinitionError
from ._schema_compact import compact_json_schema
from ._schema_decode import StrictDecoder
from ._schema_doc import describe_function, underlying
from ._schema_gen import json_schema
from ._schema_strict import StrictTransform
from ._schema_types import accepts_none, annotated_description, is_context, modernise

__all__ = ["NAME_PATTERN", "FunctionSchema", "function_schema"]

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


def _type_hints(
    function: Callable[..., Any], display: str, localns: Mapping[str, Any] | None
) -> dict[str, Any]:
    target = underlying(function)
    if not inspect.isroutine(target) and callable(target):
        target = underlying(type(target).__call__)  # a callable object: its __call__
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
    target = underlying(function)
    tool_name = name if name is not None else getattr(target, "__name__", "")
    display = f"function {getattr(target, '__qualname__', tool_name)!r}"
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
        if is_context(annotation):
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
        annotation = modernise(annotation, memo)
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
            described = annotated_description(annotation) or doc_params.get(param.name)
            if described:
                overrides["description"] = described
        aliased = info.alias is not None or info.validation_alias is not None
        field_name = _field_name(param.name, aliased)
        if field_name != param.name and not aliased:
            overrides["alias"] = param.name
        if overrides:
            info = FieldInfo.merge_field_infos(info, Field(**overrides))
        if strict and not info.is_required() and not accepts_none(info.annotation):
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
    full = json_schema(model, display)
    decoder = None
    if strict:
        transform = StrictTransform()
        full = transform.node(full, "parameters")
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
