"""Options as records: the run limits (:class:`RunLimits`) and the model's wire settings
(:class:`ModelSettings`). Each option is written once, here: its default and its check.
``Agent``'s flat keywords of the same names and the loop core's settings
(``LoopSettings``) take theirs from these fields."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypedDict

from ._deprecation import warn_deprecated
from ._errors import ConfigurationError

__all__ = ["ModelSettings", "RunLimits"]


@dataclasses.dataclass(frozen=True)
class RunLimits:
    """The limits of a run, validated once when the record is built (``ConfigurationError``).

    Pass it as ``Agent(..., limits=RunLimits(...))``, or for one run only as
    ``agent.run(prompt, limits=RunLimits(...))`` (also ``run_async``, ``stream``,
    ``stream_async`` and ``resume``), which replaces all of the agent's limits for that run
    (``dataclasses.replace(agent.limits, max_turns=2)`` keeps the others). The fields as
    flat keywords of ``Agent`` (``Agent(..., max_turns=5)``) are deprecated: they still
    work, and warn.

    Attributes:
        max_turns: model calls per run before ``MaxTurnsExceededError``; a top-level
            run's bound its agents used as tools too (one budget for the run, see
            :meth:`Agent.as_tool`).
        max_tool_calls: tool calls per run (``None``: no cap), its sub-agents' included
            in a top-level run's.
        tool_timeout: seconds a tool call may run (a tool's own ``timeout`` wins;
            ``None``: no limit).
        max_tool_output_chars: longest tool message sent back (``None``: no cap).
        max_repeated_calls: identical repeated calls told to the model before
            ``RepeatedToolCallError``.
        max_tool_failures: rounds in a row one tool may fail before
            ``ToolFailureLimitExceededError``.
        max_output_retries: invalid structured answers fed back before
            ``OutputValidationError``.
        parallel_tool_calls_limit: tool calls running at once (it sizes the agent's thread
            pool, so a run-level record must keep the agent's value).
        run_timeout: seconds a whole run may take (``None``: no bound), then
            ``RunTimeoutError``.
        max_handoffs: handoffs from one agent to another in one run (``Agent(handoffs=)``)
            before ``HandoffLimitError``; at least 1.
    """

    max_turns: int = 10
    max_tool_calls: int | None = 64
    tool_timeout: float | None = 120.0
    max_tool_output_chars: int | None = 32_000
    max_repeated_calls: int = 2
    max_tool_failures: int = 3
    max_output_retries: int = 2
    parallel_tool_calls_limit: int = 16
    run_timeout: float | None = None
    max_handoffs: int = 5

    def __post_init__(self) -> None:
        check_count("max_turns", self.max_turns)
        check_count("max_tool_calls", self.max_tool_calls, optional=True)
        check_seconds("tool_timeout", self.tool_timeout)
        check_count("max_tool_output_chars", self.max_tool_output_chars, optional=True)
        check_count("max_repeated_calls", self.max_repeated_calls, minimum=0)
        check_count("max_tool_failures", self.max_tool_failures)
        check_count("max_output_retries", self.max_output_retries, minimum=0)
        check_count("parallel_tool_calls_limit", self.parallel_tool_calls_limit)
        check_seconds("run_timeout", self.run_timeout)
        check_count("max_handoffs", self.max_handoffs)


def check_count(name: str, value: object, *, minimum: int = 1, optional: bool = False) -> None:
    """Refuse anything but an ``int`` of at least ``minimum`` (``None`` too if ``optional``);
    a ``bool`` is not a count, though Python makes it an ``int``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = " or None" if optional else ""
        raise ConfigurationError(
            f"{name} must be a whole number of at least {minimum}{allowed}, not {value!r}"
        )


def check_seconds(name: str, value: object) -> None:
    """Refuse anything but a finite positive number of seconds, or ``None``."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(
            f"{name} must be a positive number of seconds or None, not {value!r}"
        )


LIMIT_FIELDS = frozenset(f.name for f in dataclasses.fields(RunLimits))


class ModelSettings(TypedDict, total=False):
    """Model parameters sent with every request (a key left out is not sent).

    Pass it as ``Agent(..., settings=ModelSettings(temperature=0.2, seed=7))``. The keys as
    flat keywords of ``Agent`` (``Agent(..., temperature=0.2)``) are deprecated: they still
    work, and warn; the same key in both is a ``ConfigurationError``. ``extra_body``
    carries vendor extras such as Qwen's ``enable_thinking``; ``Agent(params=...)`` sends
    any other wire field.
    """

    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None
    stop: str | list[str] | list[int] | list[list[int]] | None
    presence_penalty: float | None
    tool_choice: str | dict[str, Any] | None
    parallel_tool_calls: bool | None
    extra_body: Mapping[str, Any] | None


SETTING_FIELDS = tuple(ModelSettings.__annotations__)


def split_options(
    flat: Mapping[str, Any], limits: RunLimits | None, settings: ModelSettings | None
) -> tuple[RunLimits, dict[str, Any]]:
    """The agent's limits and wire settings from the records and the flat keywords, refusing
    an unknown keyword (``TypeError``, as Python would) and an option given both ways."""
    unknown = [name for name in flat if name not in LIMIT_FIELDS and name not in SETTING_FIELDS]
    if unknown:
        raise TypeError(f"Agent() got an unexpected keyword argument {unknown[0]!r}")
    flat_limits = {name: value for name, value in flat.items() if name in LIMIT_FIELDS}
    if limits is None:
        limits = RunLimits(**flat_limits)
    elif not isinstance(limits, RunLimits):
        raise ConfigurationError("limits must be a RunLimits record")
    elif flat_limits:
        name = next(iter(flat_limits))
        raise ConfigurationError(
            f"{name} is given both as a keyword and in limits=; give it in one place"
        )
    given: dict[str, Any] = dict(settings or {})
    for name in given:
        if name not in SETTING_FIELDS:
            raise ConfigurationError(f"settings has no field {name!r}; use params= for it")
        if name in flat:
            raise ConfigurationError(
                f"{name} is given both as a keyword and in settings=; give it in one place"
            )
    given.update((name, value) for name, value in flat.items() if name in SETTING_FIELDS)
    wire = {name: given[name] for name in SETTING_FIELDS if given.get(name) is not None}
    if "extra_body" in wire:
        wire["extra_body"] = dict(wire["extra_body"])
    if flat:  # only once they are known to work: a mistake's error comes first
        warn_deprecated(flat_message(flat))
    return limits, wire


def flat_message(flat: Mapping[str, Any]) -> str:
    """The warning for ``Agent``'s flat keywords, with the records that replace them, e.g.
    ``Agent(max_turns=5, temperature=0.2)`` -> ``limits=RunLimits(max_turns=5),
    settings=ModelSettings(temperature=0.2)``."""
    records = []
    for record, fields in (
        ("limits=RunLimits", LIMIT_FIELDS),
        ("settings=ModelSettings", SETTING_FIELDS),
    ):
        given = ", ".join(f"{name}={_shown(flat[name])}" for name in flat if name in fields)
        if given:
            records.append(f"{record}({given})")
    keywords = ", ".join(f"{name}=" for name in flat)
    return (
        f"Agent({keywords}) as flat keywords is deprecated: pass {', '.join(records)} "
        "(the flat keywords will be removed before 0.1.0)"
    )


def _shown(value: object) -> str:
    # a number or a short word as given; anything else (extra_body...) is not repeated
    if isinstance(value, int | float | None) or (isinstance(value, str) and len(value) < 40):
        return repr(value)
    return "..."


def loop_limits(limits: RunLimits) -> dict[str, Any]:
    """The limits ``LoopSettings`` takes (all but the agent-wide thread-pool size)."""
    found = dataclasses.asdict(limits)
    del found["parallel_tool_calls_limit"]
    return found
