"""One run tree's count limits: the top-level run's ``max_turns`` and ``max_tool_calls``,
taken from by every model call and tool call of every agent in the tree.

A run that calls no agent tool never has one (its loop counts on its own, as before). The
first sub-run of a run makes the budget (:func:`budget_of`), seeded with what the top-level
run has counted so far; every loop of the tree then takes from it, the top-level one too.
Sub-runs of the sync driver run in tool threads, so each take is under a lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._loop import RunLoop

__all__ = ["Budget", "budget_of"]

_MAKING = threading.Lock()  # two parallel sub-runs may start at once


class Budget:
    """The model calls and tool calls made so far by every agent of a run tree, against
    the top-level run's limits (read live: a handoff there keeps its limits)."""

    __slots__ = ("_lock", "calls", "root", "turns")

    def __init__(self, root: RunLoop) -> None:
        self.root = root
        self.turns = root.turns
        self.calls = root._calls_made
        self._lock = threading.Lock()

    @property
    def max_turns(self) -> int:
        """The tree's model calls: the top-level run's ``max_turns``."""
        return self.root._max_turns

    @property
    def max_tool_calls(self) -> int | None:
        """The tree's tool calls: the top-level run's ``max_tool_calls``."""
        return self.root.settings.max_tool_calls

    def take_turn(self) -> bool:
        """Take one model call; ``False`` (nothing taken) when the tree's are spent."""
        with self._lock:
            if self.turns >= self.root._max_turns:
                return False
            self.turns += 1
            return True

    def take_call(self) -> bool:
        """Take one tool call; ``False`` (nothing taken) when the tree's are spent."""
        cap = self.root.settings.max_tool_calls
        with self._lock:
            if cap is not None and self.calls >= cap:
                return False
            self.calls += 1
            return True

    def turns_text(self) -> str:
        """The message of the ``MaxTurnsExceededError`` that the spent budget raises."""
        return (
            f"the run and the agents it called made {self.turns} model calls together "
            f"(max_turns={self.max_turns} is the run's, across its agents) without a final answer"
        )

    def calls_text(self) -> str:
        """What a model is told of a tool call past the tree's budget."""
        return (
            f"Not run: this run and the agents it calls reached the run's limit of "
            f"{self.max_tool_calls} tool calls, shared across its agents. "
            "Answer now with the information you have."
        )


def budget_of(caller: RunLoop) -> Budget:
    """The budget of the tree ``caller`` is in, made at its first sub-run."""
    budget = caller.budget
    if budget is None:
        with _MAKING:
            budget = caller.budget
            if budget is None:
                budget = caller.budget = Budget(caller)
    return budget
