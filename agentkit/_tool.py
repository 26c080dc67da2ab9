"""``@tool`` and ``Tool``: a Python function the model can call.

Everything is derived once, when the function is decorated: the name, the description,
the JSON Schema of the parameters and the pydantic validator of the arguments. Per call
there is one pydantic-core JSON validation and the call itself::

    @tool
    def get_weather(city: str, days: int = 1) -> str:
        \"\"\"Get the weather forecast.

        Args:
            city: The city, e.g. "Hangzhou".
            days: How many days ahead, 1 to 7.
        \"\"\"
        ...

    get_weather("Hangzhou")                       # still the plain function
    get_weather.to_openai()                       # {"type": "function", "function": {...}}
    kwargs = get_weather.validate_json('{"city": "Hangzhou"}')
    get_weather.call(kwargs)                      # what the agent loop does

Validation is pydantic's *strict* JSON mode, so the schema the model sees says exactly
what is accepted: ``"5"`` is not an integer and ``"true"`` is not a boolean (the model is
told and corrects itself), while the values JSON cannot hold natively are read from their
JSON form (ISO-8601 strings for datetime/date/time/duration, strings for UUID, Path and
Decimal, enum values, arrays for tuples and sets, objects for models, dataclasses and
TypedDicts). A number with a zero fraction (``3.0``) is accepted as an integer, as JSON
Schema says it is. Unknown fields are refused at every level.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

import pydantic
import pydantic_core
from pydantic import ValidationError

from ._errors import ToolArgumentsError, ToolDefinitionError
from ._schema import FunctionSchema, function_schema
from ._schema_decode import StrictDecoder

__all__ = ["Tool", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

_MAX_LISTED_ERRORS = 20
_MAX_SHOWN_CHARS = 80
# pydantic error types that a number with a zero fraction (3.0) triggers in strict mode,
# although JSON Schema counts it as an integer; such numbers are read as integers.
_INTEGRAL_FLOAT_ERRORS = frozenset({"int_type", "literal_error", "enum"})


class Tool(Generic[P, R]):
    """A function the model can call, with its schema and argument validator.

    A ``Tool`` is still the function: ``tool_obj(*args, **kwargs)`` calls it exactly as
    before (an async function still returns a coroutine). It keeps the function's
    ``__name__``, ``__doc__`` and ``__wrapped__``.

    Attributes:
        name: the name the model calls the tool by.
        description: what the tool does, for the model.
        parameters: the JSON Schema (Draft 2020-12) of the arguments object, as the model
            is sent it: compact, without patterns that only restate a ``format``.
        validation_parameters: the full JSON Schema of the arguments object, with every
            check of the validator that JSON Schema can say (calendar-exact date patterns,
            for one). Never sent; for checking arguments with a JSON Schema validator.
        strict: whether ``parameters`` is in OpenAI's strict structured-outputs subset.
        requires_approval: the agent asks the approval callback before each call (without
            one, the run pauses for a decision).
        side_effects: the call changes the world (pays, sends, writes). On a session it is
            written ahead before it runs and its result recorded when it ends, so a crash
            between the two is reported, never silently repeated. ``requires_approval``
            implies it.
        idempotent: running the call twice with the same ``RunContext.idempotency_key`` does
            no more than running it once, so after a crash it is simply run again.
        timeout: seconds a call may take before the agent gives up on it, or ``None``.
        is_async: the function is a coroutine function.
        context_param: the name of the ``RunContext`` parameter, or ``None``.
        function: the wrapped callable.
        __wrapped__: the wrapped callable too (what ``functools.wraps`` and ``inspect``
            follow).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    validation_parameters: dict[str, Any]
    strict: bool
    requires_approval: bool
    side_effects: bool
    idempotent: bool
    timeout: float | None
    is_async: bool
    context_param: str | None
    function: Callable[P, R]
    __wrapped__: Callable[P, R]
    # An async tool's blocking form, ``(kwargs, context) -> value``, or None: the sync
    # driver calls it in its tool thread instead of running the coroutine on an event
    # loop of its own there (an agent used as a tool runs its sub-agent on the sync
    # driver and client this way, see _delegate.py).
    _in_thread: Callable[[dict[str, Any], Any], Any] | None = None

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
        requires_approval: bool = False,
        timeout: float | None = None,
        side_effects: bool = False,
        idempotent: bool = False,
    ) -> None:
        if not callable(function):
            raise ToolDefinitionError(f"@tool needs a function, got {function!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ToolDefinitionError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        schema = function_schema(
            function,
            name=name,
            description=description,
            strict=strict,
            localns=_caller_locals(),
        )
        functools.update_wrapper(self, function)
        self.__name__ = getattr(function, "__name__", schema.name)
        self._schema: FunctionSchema = schema
        self._validator = schema.model.__pydantic_validator__
        self.name = schema.name
        self.description = schema.description
        self.parameters = schema.parameters
        self.validation_parameters = schema.validation_parameters
        self.strict = strict
        self.requires_approval = requires_approval
        self.side_effects = side_effects or requires_approval
        self.idempotent = idempotent
        self.timeout = float(timeout) if timeout is not None else None
        self.context_param = schema.context_param
        self.function = function
        self.is_async = _is_coroutine_function(function)
        _mark_like_function(self, function, self.is_async)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function directly, exactly as if it were not decorated."""
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, strict={self.strict!r})"

    def to_openai(self) -> dict[str, Any]:
        """The tool as a Chat Completions ``tools`` entry.

        ``{"type": "function", "function": {"name", "description", "parameters"}}``, plus
        ``"strict": true`` in the function object when the tool is strict.
        """
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    def validate_json(self, text: str | bytes | bytearray) -> dict[str, Any]:
        """Validate a tool call's argument JSON; return the keyword arguments for :meth:`call`.

        Values are converted to the annotated Python types (models, dataclasses, enums,
        datetimes...). Arguments the model left out are left out here too, so the
        function's own defaults apply; so is a null that strict mode sent for an optional
        parameter. An empty string means no arguments (``{}``): some servers send ``""``
        for tools without parameters.

        Raises :class:`~agentkit._errors.ToolArgumentsError` when the text is not JSON, not
        an object, or does not fit the parameters; its ``str()`` names every bad field,
        what was expected and what was received, for the model to correct itself.
        """
        if not text or text.isspace():
            text = "{}"
        decoder = self._schema.strict_decoder
        if decoder is not None:
            text = _decoded(text, decoder)
        try:
            # strict types; unknown fields refused at every level; fields read by the names
            # the schema shows (aliases) only, even in models that also take the Python name
            instance = self._validator.validate_json(
                text, strict=True, extra="forbid", by_alias=True, by_name=False
            )
        except ValidationError as exc:
            instance = self._revalidate_integral_floats(text, exc)
        except Exception as exc:  # a validator of the user's own types that broke
            message = (
                f"The arguments for tool `{self.name}` could not be validated "
                f"({type(exc).__name__}: {_cut(str(exc))})."
            )
            raise ToolArgumentsError(message, tool_name=self.name, errors=[("", message)]) from exc
        return self._keyword_arguments(instance)

    def call(self, kwargs: dict[str, Any], context: Any = None) -> R:
        """Call the function with validated ``kwargs`` (from :meth:`validate_json`).

        ``context`` is passed as the ``RunContext`` parameter if the tool declares one.
        Returns what the function returns: an awaitable for an async tool. Does not
        validate again.
        """
        schema = self._schema
        if schema.context_param is not None:
            kwargs = {**kwargs, schema.context_param: context}
        if not schema.positional_only:
            return self.function(**kwargs)  # type: ignore[call-arg]
        kwargs = dict(kwargs)
        args = []
        for name in schema.positional_only:
            if name in kwargs:
                args.append(kwargs.pop(name))
            elif name in schema.defaults:  # left out, but a later one may be given
                args.append(schema.defaults[name])
            else:
                break  # Python reports the missing argument
        return self.function(*args, **kwargs)

    # --- internals ------------------------------------------------------------------

    def _keyword_arguments(self, instance: Any) -> dict[str, Any]:
        schema = self._schema
        values = instance.__dict__
        given = instance.__pydantic_fields_set__
        out: dict[str, Any] = {}
        for field_name, param in schema.fields:
            if field_name in given:
                value = values[field_name]
                if value is None and param in schema.null_means_default:
                    # strict mode's null for "not given": Python's default applies
                    if param in schema.filled_defaults:
                        field = schema.model.model_fields[field_name]
                        out[param] = field.get_default(call_default_factory=True)
                    continue
                out[param] = value
            elif param in schema.filled_defaults:
                out[param] = values[field_name]
        return out

    def _revalidate_integral_floats(
        self, text: str | bytes | bytearray, exc: ValidationError
    ) -> Any:
        fixed = _integral_floats_as_ints(text, exc.errors())
        if fixed is not None:
            try:
                return self._validator.validate_json(
                    fixed, strict=True, extra="forbid", by_alias=True, by_name=False
                )
            except ValidationError as again:
                exc = again
        raise _arguments_error(self.name, [f[1] for f in self._schema.fields], text, exc) from None


# --- decoration ----------------------------------------------------------------------------


@overload
def tool(
    function: Callable[P, R],
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    requires_approval: bool = False,
    timeout: float | None = None,
    side_effects: bool = False,
    idempotent: bool = False,
) -> Tool[P, R]: ...


@overload
def tool(
    function: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    requires_approval: bool = False,
    timeout: float | None = None,
    side_effects: bool = False,
    idempotent: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    requires_approval: bool = False,
    timeout: float | None = None,
    side_effects: bool = False,
    idempotent: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a function into a :class:`Tool`; bare (``@tool``) or with options.

    Args:
        function: the function (sync or async), a bound method or a ``functools.partial``.
        name: the tool name; defaults to the function's ``__name__``. 1 to 64 letters,
            digits, ``_`` or ``-``.
        description: overrides the docstring's summary and long description.
        strict: emit OpenAI's strict structured-outputs schema and send ``"strict": true``.
        requires_approval: the agent asks its approval callback before every call; without
            one, the run pauses (``RunResult.status == "paused"``) until ``Agent.resume``.
        timeout: seconds a call may run before the agent reports a timeout to the model.
        side_effects: the call changes the world: on a session it is written ahead before
            it runs and its result recorded after, so a crash in between is reported as "in
            doubt", never repeated silently (``requires_approval`` implies it).
        idempotent: a repeat with the same ``RunContext.idempotency_key`` is harmless, so a
            call left in doubt by a crash is simply run again.

    Raises :class:`~agentkit._errors.ToolDefinitionError` at decoration time for a bad name,
    ``*args``/``**kwargs``, or a parameter type that has no JSON Schema.
    """
    options: dict[str, Any] = {
        "name": name,
        "description": description,
        "strict": strict,
        "requires_approval": requires_approval,
        "timeout": timeout,
        "side_effects": side_effects,
        "idempotent": idempotent,
    }
    if function is not None:
        return Tool(function, **options)

    def decorate(function: Callable[P, R]) -> Tool[P, R]:
        return Tool(function, **options)

    return decorate


# --- helpers -------------------------------------------------------------------------------


def _caller_locals() -> Mapping[str, Any] | None:
    """The local names where the tool is defined (as pydantic does for models).

    A function defined inside another one may name local classes in string annotations
    (``from __future__ import annotations``); its own globals cannot resolve those. The
    names are looked up in the frames that led to the decoration, nearest first (a helper
    that calls ``tool(fn)`` for a function defined in its caller still finds them), and
    only when the function's globals do not have them.
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
    return _FrameLocals(frame) if frame is not None else None


class _FrameLocals(Mapping[str, Any]):
    """The local names of a frame and of up to :data:`_FRAMES_SEARCHED` frames around it,
    nearest first; read only when a string annotation names something unknown."""

    __slots__ = ("_frame",)

    def __init__(self, frame: types.FrameType) -> None:
        self._frame = frame

    def _frames(self) -> Iterator[types.FrameType]:
        frame: types.FrameType | None = self._frame
        for _ in range(_FRAMES_SEARCHED):
            if frame is None:
                return
            yield frame
            frame = frame.f_back

    def __getitem__(self, name: str) -> Any:
        for frame in self._frames():
            names = frame.f_locals
            if name in names:
                return names[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter({name: None for frame in self._frames() for name in frame.f_locals})

    def __len__(self) -> int:
        return sum(1 for _ in self)


_FRAMES_SEARCHED = 8


def _is_coroutine_function(function: Callable[..., Any]) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 (a callable object's method)
    return call is not None and inspect.iscoroutinefunction(call)


def _mark_like_function(
    tool_obj: Tool[Any, Any], function: Callable[..., Any], is_async: bool
) -> None:
    """Let ``inspect.iscoroutinefunction(tool_obj)`` answer as it would for the function.

    Python 3.12+ has ``inspect.markcoroutinefunction``. On 3.11, ``inspect`` accepts an
    object as "function-like" when it carries a code object and the function attributes;
    the code object of the wrapped function carries the coroutine flag.
    """
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        if is_async:
            mark(tool_obj)
        return
    target = function
    while True:
        if isinstance(target, functools.partial):
            target = target.func
        elif inspect.ismethod(target):
            target = target.__func__
        else:
            break
    code = getattr(target, "__code__", None)
    if code is None:
        return
    vars(tool_obj).update(
        __code__=code,
        __defaults__=getattr(target, "__defaults__", None),
        __kwdefaults__=getattr(target, "__kwdefaults__", None),
    )
    if not isinstance(getattr(tool_obj, "__annotations__", None), dict):
        vars(tool_obj)["__annotations__"] = {}


def _decoded(text: str | bytes | bytearray, decoder: StrictDecoder) -> str | bytes | bytearray:
    """Arguments written for the strict schema, in the shape the validator reads."""
    if not decoder.needed(text):
        return text
    try:
        data = pydantic_core.from_json(text)
    except ValueError:
        return text  # not JSON: validation reports it
    if not isinstance(data, dict):
        return text
    return pydantic_core.to_json(decoder.decode(data))


def _integral_floats_as_ints(text: str | bytes | bytearray, errors: list[Any]) -> bytes | None:
    """The arguments with the floats like ``3.0`` that failed as integers made integers."""
    locations = [
        error["loc"]
        for error in errors
        if error["type"] in _INTEGRAL_FLOAT_ERRORS
        and isinstance(error.get("input"), float)
        and error["input"].is_integer()
    ]
    if not locations:
        return None
    try:
        data = pydantic_core.from_json(text)
    except ValueError:
        return None
    changed = False
    for location in locations:
        parent: Any = None
        key: Any = None
        node: Any = data
        for part in location:
            # a part that does not index the data is a union-branch label: skip it
            if _indexes(node, part):
                parent, key, node = node, part, node[part]
        if parent is not None and isinstance(node, float) and node.is_integer():
            parent[key] = int(node)
            changed = True
    return pydantic_core.to_json(data) if changed else None


def _indexes(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    if isinstance(node, list):
        return isinstance(part, int) and 0 <= part < len(node)
    return False


# --- the readable error --------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value as JSON, cut to a length that keeps the message readable."""
    try:
        text = pydantic_core.to_json(value, fallback=repr).decode()
    except Exception:
        text = repr(value)
    return _cut(text)


def _cut(text: str) -> str:
    if len(text) > _MAX_SHOWN_CHARS:
        return text[: _MAX_SHOWN_CHARS - 1] + "…"
    return text


@dataclass(slots=True)
class _Problem:
    path: str  # JSON path of the bad value, e.g. "items[2].name"
    text: str  # what is wrong / what was expected
    received: str | None  # the value received, shown as JSON; None when missing
    branch: tuple[str, str] | None  # (path of the union, member tried) inside a union


def _locate(data: Any, location: tuple[Any, ...], is_missing: bool) -> tuple[str, list[str]]:
    """Split a pydantic error location into a JSON path and the union members on the way.

    pydantic's locations mix keys and indexes of the data with the names of the union
    members it tried (``Cat``, ``int``, ``list[int]``...). Walking the data tells them apart.
    Returns the path and, per union member met, the path up to it.
    """
    path = ""
    branches: list[str] = []
    node = data
    last = len(location) - 1
    for index, part in enumerate(location):
        if (
            isinstance(node, dict)
            and isinstance(part, str)
            and (part in node or (index == last and is_missing))
        ):
            path += (f".{part}" if path else part) if part.isidentifier() else f"[{_shown(part)}]"
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
        else:
            branches.append(f"{path}\0{part}")
    return path, branches


def _problems(data: Any, errors: list[Any], params: list[str]) -> list[_Problem]:
    problems: list[_Problem] = []
    for error in errors:
        kind = error["type"]
        is_missing = kind == "missing"
        path, branches = _locate(data, tuple(error["loc"]), is_missing)
        nested = "." in path or "[" in path
        if kind == "extra_forbidden":
            text = (
                "unknown field, not allowed here"
                if nested
                else "unknown parameter; this tool takes: " + (", ".join(params) or "nothing")
            )
        elif is_missing:
            text = "required field is missing" if nested else "required parameter is missing"
        else:
            text = error["msg"]
        branch = None
        if branches:
            site, _, member = branches[0].partition("\0")
            branch = (site, member)
        received = None if is_missing else _shown(error.get("input"))
        problems.append(_Problem(path or "(arguments)", text, received, branch))
    return _closest_union_members(problems)


def _closest_union_members(problems: list[_Problem]) -> list[_Problem]:
    """Inside a union, keep the problems of the member(s) that came closest to matching.

    A value meant as a ``Dog`` fails as a ``Cat`` too; reporting only the member with the
    fewest problems tells the model what to fix instead of everything it could have meant.
    """
    counts: dict[str, dict[str, int]] = {}
    for problem in problems:
        if problem.branch is not None:
            site, member = problem.branch
            members = counts.setdefault(site, {})
            members[member] = members.get(member, 0) + 1
    kept: list[_Problem] = []
    for problem in problems:
        if problem.branch is not None:
            site, member = problem.branch
            members = counts[site]
            if members[member] > min(members.values()):
                continue
            if len(members) > 1 and member[:1].isupper():
                problem.text = f"{problem.text} (as {member})"
        kept.append(problem)
    return kept


def _merge(problems: list[_Problem]) -> list[tuple[str, str]]:
    """One line per path: "expected X or Y; received Z"."""
    grouped: dict[str, list[_Problem]] = {}
    for problem in problems:
        grouped.setdefault(problem.path, []).append(problem)
    lines: list[tuple[str, str]] = []
    for path, group in grouped.items():
        texts: list[str] = []
        for problem in group:
            text = problem.text
            if texts and text.startswith("Input should be "):
                text = text.removeprefix("Input should be ")
            if text not in texts:
                texts.append(text)
        line = " or ".join(texts)
        received = {p.received for p in group if p.received is not None}
        if len(received) == 1:
            line += f"; received {received.pop()}"
        lines.append((path, line))
    return lines


def _arguments_error(
    tool_name: str, params: list[str], text: str | bytes | bytearray, exc: ValidationError
) -> ToolArgumentsError:
    errors = exc.errors(include_url=False)
    raw = text.decode(errors="replace") if isinstance(text, bytes | bytearray) else text
    first = errors[0] if errors else None
    if first is not None and first["type"] == "json_invalid":
        message = (
            f"The arguments for tool `{tool_name}` are not valid JSON "
            f"({first['msg'].removeprefix('Invalid JSON: ')}). Received: {_cut(raw)}\n"
            "Send one JSON object with the parameters."
        )
        return ToolArgumentsError(message, tool_name=tool_name, errors=[("", message)])
    if first is not None and first["loc"] == () and first["type"] == "model_type":
        message = (
            f"The arguments for tool `{tool_name}` must be a JSON object of its parameters "
            f"({', '.join(params) or 'none'}). Received: {_shown(first.get('input'))}"
        )
        return ToolArgumentsError(message, tool_name=tool_name, errors=[("", message)])

    try:
        data = pydantic_core.from_json(text)
    except ValueError:
        data = None
    pairs = _merge(_problems(data, errors, params))
    shown = pairs[:_MAX_LISTED_ERRORS]
    body = "\n".join(f"- {path}: {line}" for path, line in shown)
    if len(pairs) > len(shown):
        body += f"\n- ... and {len(pairs) - len(shown)} more"
    noun = "problem" if len(pairs) == 1 else "problems"
    message = (
        f"Invalid arguments for tool `{tool_name}` ({len(pairs)} {noun}):\n{body}\n"
        "Fix the arguments and call the tool again."
    )
    return ToolArgumentsError(message, tool_name=tool_name, errors=pairs)


# --- the result the model gets ------------------------------------------------------------


def render_tool_output(name: str, value: Any) -> tuple[str, str | None]:
    """A tool's return value as the text the model gets: ``(text, error)``.

    A ``str`` goes as it is; anything else as JSON (pydantic models, dataclasses, dicts,
    lists, datetimes...). A value that cannot become JSON gives a clear message instead,
    and ``error`` says so. A generator or iterator anywhere in the value is refused
    without being read: it could run, or grow, for ever. Lone surrogates (a file name that
    is not UTF-8) become U+FFFD, in keys as in values.
    """
    if isinstance(value, str):
        return value, None
    where = lazy_part(value)
    if where is not None:
        at = f" at {where}" if where else ""
        text = (
            f"tool {name} returned a generator or iterator{at}, which is not read; the "
            "tool must return lists or other finished values"
        )
        return text, text
    try:
        return pydantic_core.to_json(value).decode(), None
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
        problem: Exception = exc
    if "surrogates not allowed" in str(problem):
        # Rare, so paid for only here: the value with its strings made sendable.
        try:
            return pydantic_core.to_json(_sendable(value)).decode(), None
        except (
            pydantic_core.PydanticSerializationError,
            ValueError,
            TypeError,
            RecursionError,  # a cycle
        ) as exc:
            problem = exc
    first_line = (str(problem).strip().splitlines() or [""])[0]
    text = (
        f"tool {name} returned a value of type {type(value).__name__} that cannot be "
        f"turned into JSON ({first_line})"
    )
    return text, text


def _sendable(value: Any) -> Any:
    """``value`` with each lone surrogate in its strings (keys too) replaced by U+FFFD;
    models and dataclasses become dicts, which is how they serialise anyway."""
    from ._loop_text import clean_text

    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {_sendable(k): _sendable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | collections.deque):
        return [_sendable(v) for v in value]
    if isinstance(value, pydantic.BaseModel):
        return _sendable(value.model_dump(mode="python"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _sendable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return value


_ATOMS = frozenset({str, int, float, bool, type(None), bytes})
_LAZY = (Iterator, AsyncIterator)


def lazy_part(value: Any) -> str | None:
    """Where a generator or iterator sits in ``value`` (``""``: it is ``value``), or None.

    Walks what JSON would read (mappings, lists, tuples, sets, pydantic models,
    dataclasses) without reading any iterator, as deep as the serialiser goes; each
    container is visited once, so a cycle ends the walk (the serialiser then names it).
    """
    if type(value) in _ATOMS:
        return None
    path = _find_lazy(value, set(), 0)
    return None if path is None else _path_text(path[::-1])


_MAX_DEPTH = 256  # pydantic_core refuses deeper values (as a circular reference)


def _find_lazy(item: Any, seen: set[int], depth: int) -> list[Any] | None:
    """The way to the first lazy value in ``item`` (innermost key first), or None."""
    kind = type(item)
    # The common containers first: exact types are cheap to test.
    if kind is dict or kind is list or kind is tuple:
        values: Any = item
    elif isinstance(item, _LAZY):
        return []
    else:
        values = _values_of(item)
        if values is None:
            return None
    keyed = type(values) is dict
    leaves = values.values() if keyed else values
    if _ATOMS.issuperset(map(type, leaves)) or depth >= _MAX_DEPTH or id(item) in seen:
        return None  # the usual leaf is checked in C, with no Python step per value
    seen.add(id(item))
    parts = values.items() if keyed else enumerate(values)
    for key, value in parts:
        if type(value) not in _ATOMS:
            found = _find_lazy(value, seen, depth + 1)
            if found is not None:
                found.append(key)
                return found
    return None


def _values_of(item: Any) -> Any:
    """What JSON reads of a container that is not a dict, list or tuple (a mapping for
    keyed ones), or None for a value that holds nothing to walk."""
    if isinstance(item, Mapping):
        return dict(item)  # a dict, so the walk gives its keys
    if isinstance(item, set | frozenset | collections.deque):
        return list(item)
    if isinstance(item, pydantic.BaseModel):
        return {**vars(item), **(item.__pydantic_extra__ or {})}
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name, None) for f in dataclasses.fields(item)}
    return None


def _path_text(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
