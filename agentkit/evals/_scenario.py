"""A scenario is data: what the customer says (fixed turns or a simulated customer) and what
must hold afterwards."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import SuiteError

if TYPE_CHECKING:
    from .._store import Store
    from ._checks import Check, Judge

__all__ = ["Scenario", "SimulatedUser"]

# What the simulated customer is told besides its goal; the two markers end the chat.
DONE = "[DONE]"
GIVE_UP = "[GIVE UP]"
USER_RULES = (
    "You are playing a customer writing to a support bot. Stay in character and write only "
    "your next message to the bot, nothing else. When your goal is met, write "
    f"{DONE}. If the bot cannot or will not help and you give up, write {GIVE_UP}."
)


@dataclass(frozen=True, slots=True)
class SimulatedUser:
    """A customer played by another agentkit Agent, talking to the bot toward ``goal``.

    Each of its turns is one run of the customer's agent, which sees the bot's answers as
    its prompts. The conversation ends when it writes ``[DONE]`` (goal met) or
    ``[GIVE UP]``, or after ``max_turns`` messages.

    Args:
        goal: who the customer is and what they want, in plain words ("You are Dana. Get a
            refund for order 77").
        max_turns: the most messages the customer sends.
        agent: a factory of the customer's ``Agent`` (default: the suite's ``user=``).
    """

    goal: str
    max_turns: int = 10
    agent: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.goal, str) or not self.goal.strip():
            raise SuiteError("SimulatedUser needs a goal: who the customer is and what they want")
        if (
            not isinstance(self.max_turns, int)
            or isinstance(self.max_turns, bool)
            or self.max_turns < 1
        ):
            raise SuiteError("SimulatedUser's max_turns must be a positive number of messages")

    def opening(self) -> str:
        """The customer agent's first prompt: the rules and the goal."""
        return f"{USER_RULES}\n\nYour goal: {self.goal}\n\nWrite your first message to the bot."


@dataclass(frozen=True)
class Scenario:
    """One conversation to try: fixed ``turns`` or a :class:`SimulatedUser`, and ``checks``.

    Args:
        name: what the scenario tests, shown in the report (unique within a suite).
        turns: the customer's messages, sent one per run, each after the bot's answer.
        user: a simulated customer instead of fixed turns.
        checks: each called with the finished :class:`~agentkit.evals.Conversation`; see
            :func:`called`, :func:`not_called`, :func:`output_matches`,
            :func:`output_schema`, :func:`judge`, or any callable (the final state of the
            bot's data is ``conversation.deps``). A conversation passes when all pass and
            it ended without an error.
        history: messages the bot has already exchanged before the first turn.
    """

    name: str
    turns: Sequence[str] = ()
    user: SimulatedUser | None = None
    checks: Sequence[Check | Judge] = field(default_factory=tuple)
    history: Sequence[dict[str, Any]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SuiteError("a Scenario needs a name saying what it tests")
        if isinstance(self.turns, str):
            raise SuiteError(f"scenario {self.name!r}: turns is a list of messages, not one str")
        object.__setattr__(self, "turns", self._listed("turns", "turns=['Hello']"))
        object.__setattr__(self, "checks", self._listed("checks", "checks=[called('refund')]"))
        history = self._listed("history", "history=[{'role': 'user', 'content': 'Hi'}]")
        for index, message in enumerate(history):
            if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
                raise SuiteError(
                    f"scenario {self.name!r}: history[{index}] is not a message (a dict with "
                    "a 'role', such as {'role': 'user', 'content': 'Hi'})"
                )
        object.__setattr__(self, "history", tuple(dict(m) for m in history))
        if bool(self.turns) == (self.user is not None):
            raise SuiteError(
                f"scenario {self.name!r}: give either turns=[...] or user=SimulatedUser(...)"
            )
        for text in self.turns:
            if not isinstance(text, str) or not text:
                raise SuiteError(f"scenario {self.name!r}: every turn is a non-empty str")
        from ._checks import Judge

        for index, check in enumerate(self.checks):
            if not callable(check) and not isinstance(check, Judge):
                raise SuiteError(
                    f"scenario {self.name!r}: check {index + 1} is a {type(check).__name__}, "
                    "not a callable"
                )

    def _listed(self, field_name: str, example: str) -> tuple[Any, ...]:
        # one check (or one message) where a list belongs is the easy slip: say so, rather
        # than "'ToolCheck' object is not iterable"
        value = getattr(self, field_name)
        if isinstance(value, str | Mapping) or callable(value) or not isinstance(value, Iterable):
            raise SuiteError(
                f"scenario {self.name!r}: {field_name} must be a list, e.g. {example} "
                f"(got {type(value).__name__})"
            )
        return tuple(value)

    @classmethod
    def from_session(
        cls,
        store: Store,
        session_id: str,
        *,
        checks: Sequence[Check | Judge] = (),
        name: str | None = None,
    ) -> Scenario:
        """A regression scenario from a stored real conversation: the customer's messages
        of session ``session_id`` in ``store``, sent again to a fresh bot, with ``checks``.

        ``Scenario.from_session(store, "cust-17", checks=[not_called("refund_order")])``
        turns a failure seen in production into a test.
        """
        record = store.load(session_id)
        if inspect.isawaitable(record):
            raise SuiteError("from_session needs a store whose load() returns the record")
        turns = [
            message["content"]
            for message in record.messages
            if message.get("role") == "user" and isinstance(message.get("content"), str)
        ]
        if not turns:
            raise SuiteError(f"session {session_id!r} holds no customer message to send again")
        return cls(name or f"session {session_id}", turns=turns, checks=checks)
