"""``Hooks``: four callbacks around model and tool calls, sugar over :class:`RunObserver`.

A run is watched one way, by observers (:mod:`agentkit._observe`). ``Agent(hooks=Hooks(...))``
is the short form for the four callbacks most bots want: the agent turns it into the first
observer of each of its runs, so hooks are called exactly where an observer's
``model_call_started``, ``model_call_finished``, ``tool_call_started`` and
``tool_call_finished`` are, before any other observer's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._observe import ObserverFactory, RunInfo, RunObserver

if TYPE_CHECKING:
    from ._calls import PlannedCall
    from ._events import ToolResult
    from ._wire import ChatCompletion

__all__ = ["Hooks", "hooks_observer"]


@dataclass(frozen=True, slots=True)
class Hooks:
    """Callbacks around each model call and each tool call; all optional. The short form
    of a :class:`~agentkit.RunObserver` with those four methods (the agent makes one of them
    for each run, called before any other observer).

    They run on the caller's thread (``run``/``stream``) or event loop (``run_async``/
    ``stream_async``), never concurrently with each other. In the async drivers a hook may
    return an awaitable, which is awaited. An exception from a hook ends the run (with
    ``.messages``). Tool hooks see only the calls that actually run; every call, run or not,
    appears as a :class:`~agentkit.ToolResult` event.

    Attributes:
        before_model_call: ``(turn, request)``; ``request`` is the keyword arguments about to
            be sent (read it; do not change it).
        after_model_call: ``(turn, completion)`` with the whole ``ChatCompletion``.
        before_tool_call: ``(call)``, a :class:`~agentkit.PlannedCall` about to run.
        after_tool_call: ``(call, result)``; ``result`` is the ``ToolResult`` event (the
            text the model gets, the error if any, the duration).
    """

    before_model_call: Callable[[int, dict[str, Any]], object] | None = None
    after_model_call: Callable[[int, ChatCompletion], object] | None = None
    before_tool_call: Callable[[PlannedCall], object] | None = None
    after_tool_call: Callable[[PlannedCall, ToolResult], object] | None = None


class _HookObserver(RunObserver):
    """One run's observer that calls the hooks (a fresh one per run: it keeps which calls
    started, so that ``after_tool_call`` sees only the calls that ran)."""

    def __init__(self, hooks: Hooks) -> None:
        self._hooks = hooks
        self._started: set[str] = set()

    def model_call_started(self, turn: int, request: Mapping[str, Any]) -> object:
        hook = self._hooks.before_model_call
        return None if hook is None else hook(turn, request)  # type: ignore[arg-type]

    def model_call_finished(self, turn: int, completion: ChatCompletion) -> object:
        hook = self._hooks.after_model_call
        return None if hook is None else hook(turn, completion)

    def tool_call_started(self, call: PlannedCall) -> object:
        self._started.add(call.call_id)
        hook = self._hooks.before_tool_call
        return None if hook is None else hook(call)

    def tool_call_finished(self, call: PlannedCall, result: ToolResult) -> object:
        hook = self._hooks.after_tool_call
        if hook is None or call.call_id not in self._started:  # never ran: no hook
            return None
        return hook(call, result)


def hooks_observer(hooks: Hooks | None) -> ObserverFactory | None:
    """The observer factory that calls ``hooks`` (``None`` when there is nothing to call,
    so an agent without hooks observes nothing for them)."""
    if hooks is None:
        return None
    if not isinstance(hooks, Hooks):
        from ._errors import ConfigurationError

        raise ConfigurationError("hooks must be a Hooks(...) of callbacks")
    if all(
        hook is None
        for hook in (
            hooks.before_model_call,
            hooks.after_model_call,
            hooks.before_tool_call,
            hooks.after_tool_call,
        )
    ):
        return None

    def factory(info: RunInfo) -> RunObserver:
        return _HookObserver(hooks)

    return factory
