"""``RunResult``: what a finished agent run hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._wire import Usage

__all__ = ["RunResult"]

OutputT = TypeVar("OutputT")


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """The outcome of one ``Agent.run``.

    Attributes:
        output: the final assistant text, or the validated object when the agent has an
            ``output_type``.
        messages: the whole transcript as plain wire-format dicts, the system message first.
            Pass it back to ``Agent.run`` to continue the conversation.
        usage: the token counts (cached and reasoning tokens included) summed over every
            model call of the run; ``usage.cost(price)`` estimates what they cost.
        turns: how many model calls the run made.
        truncated: ``True`` only when the agent accepts truncated answers
            (``on_truncated="return"``) and the last answer stopped at ``max_tokens``.
    """

    output: OutputT
    messages: list[dict[str, Any]]
    usage: Usage
    turns: int
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (``output`` dumped when it is a pydantic model)."""
        output: Any = self.output
        dump = getattr(output, "model_dump", None)
        if callable(dump):
            output = dump(mode="json")
        return {
            "output": output,
            "messages": self.messages,
            "usage": self.usage.to_dict(),
            "turns": self.turns,
            "truncated": self.truncated,
        }
