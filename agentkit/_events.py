"""Typed events of a streamed run, in the order a caller sees them.

``Agent.stream()`` and ``stream_async()`` yield these; the stream assembler produces the
first three from wire chunks. They are frozen dataclasses: cheap to build, easy to match::

    for event in agent.stream("What time is it?"):
        match event:
            case TextDelta(text=text):
                print(text, end="")
            case RunFinished(result=result):
                print(result.usage)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from ._result import RunResult
    from ._wire import Usage

__all__ = [
    "AgentEvent",
    "HandedOff",
    "ModelRoundFinished",
    "ReasoningDelta",
    "RunFinished",
    "StreamDelta",
    "SubAgentEvent",
    "TextDelta",
    "ToolCallArgumentsDelta",
    "ToolCallStarted",
    "ToolResult",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the assistant's answer text, as it arrives."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (Qwen's ``reasoning_content``), as it arrives."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    """A fragment of a tool call's argument JSON, as it arrives.

    ``index`` is the call's position in the assistant message; ``call_id`` and ``name``
    are as known so far (servers send them with the first fragment).
    """

    index: int
    call_id: str
    name: str
    delta: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call is about to run (its arguments are whole and were validated)."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool call ended: ``output`` is the text sent back to the model.

    ``error`` is set (and ``output`` carries the message the model sees) when the call
    failed: unknown tool, invalid arguments, an exception, a timeout or a refused approval.
    ``duration`` is in seconds.
    """

    call_id: str
    name: str
    output: str
    error: str | None
    duration: float


@dataclass(frozen=True, slots=True)
class ModelRoundFinished:
    """One model call finished: ``turn`` counts from 1; ``message`` is the assistant dict."""

    turn: int
    usage: Usage
    finish_reason: str | None
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The last event of a run; ``result`` is the :class:`~agentkit.RunResult`."""

    result: RunResult[Any]


@dataclass(frozen=True, slots=True)
class SubAgentEvent:
    """An event of a sub-agent's run (an agent used as a tool, :meth:`Agent.as_tool`),
    handed to the caller's stream while the call runs.

    Attributes:
        path: the names of the agents below the caller, top down: ``("flights",)`` for an
            event of ``flights`` called by this run, ``("flights", "hotels")`` one level
            deeper.
        event: the sub-agent's own event (never itself a ``SubAgentEvent``).
    """

    path: tuple[str, ...]
    event: AgentEvent

    @property
    def agent(self) -> str:
        """The name of the agent whose event this is (the last of :attr:`path`)."""
        return self.path[-1]


@dataclass(frozen=True, slots=True)
class HandedOff:
    """The conversation passed from one agent to another (``Agent(handoffs=)``): the
    rounds after this event are ``target``'s.

    Attributes:
        source: the name of the agent that handed the conversation on.
        target: the name of the agent that has it now.
    """

    source: str
    target: str


StreamDelta: TypeAlias = TextDelta | ReasoningDelta | ToolCallArgumentsDelta
"""What a streamed model call yields while it is under way."""

AgentEvent: TypeAlias = (
    TextDelta
    | ReasoningDelta
    | ToolCallArgumentsDelta
    | ToolCallStarted
    | ToolResult
    | ModelRoundFinished
    | RunFinished
    | SubAgentEvent
    | HandedOff
)
"""Everything ``Agent.stream()`` yields."""
