"""``RunResult``: what a finished agent run hands back."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import unquote

from ._deprecation import AgentKitDeprecationWarning
from ._wire import Usage

__all__ = ["PendingCall", "RunResult"]

OutputT = TypeVar("OutputT")


def call_key(address: Sequence[str]) -> str:
    """The key text of the call at ``address`` (the ids of the agent-tool calls that lead
    to it, then its own): the ids joined by ``/``, each ``%`` and ``/`` in them escaped."""
    return "/".join(part.replace("%", "%25").replace("/", "%2F") for part in address)


def key_address(key: str) -> tuple[str, ...]:
    """The address a key text names (the inverse of :func:`call_key`)."""
    return tuple(unquote(part) for part in key.split("/"))


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A tool call a paused run is waiting on (or, in ``RunResult.in_doubt``, one whose
    outcome is unknown).

    Attributes:
        call_id: the call's id (the ``id`` of the assistant's tool call, the
            ``tool_call_id`` of its answer); the key of its decision in ``Agent.resume``.
        name: the tool's name.
        arguments: the arguments exactly as the model wrote them (JSON text): what a person
            reviews.
        kwargs: the validated keyword arguments (empty when they could not be validated).
        digest: binds a decision to these exact arguments: a resume checks it against the
            stored call (pass the ``PendingCall`` itself as the decision's key to require it).
        path: the agents' names from the top down: ``("planner",)`` for a call the top
            agent asked for, ``("planner", "flights")`` for one asked by ``flights`` used as
            a tool inside ``planner`` (an unnamed agent is ``"agent"``).
        via: the ids of the agent-tool calls that lead to the call, from the top down
            (empty for the top agent's own calls). With ``call_id`` it names the call
            uniquely: model servers reuse call ids across levels.
    """

    call_id: str
    name: str
    arguments: str
    kwargs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    digest: str = ""
    path: tuple[str, ...] = ()
    via: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The call's key in ``Agent.resume``'s decisions: ``call_id`` for the top agent's
        own call, else the ids of ``via`` and ``call_id`` joined by ``/``
        (``"call_1/call_7"``). A ``/`` or ``%`` in an id is escaped (``%2F``, ``%25``), so
        each key names one call whatever ids the model chose. The ``PendingCall`` itself
        is a key too (and binds the decision to the arguments shown)."""
        return call_key((*self.via, self.call_id))

    @property
    def id(self) -> str:
        """Deprecated: the old name of :attr:`call_id` (warns)."""
        warnings.warn(
            "PendingCall.id is renamed PendingCall.call_id (the old name will be removed)",
            AgentKitDeprecationWarning,
            stacklevel=2,
        )
        return self.call_id

    def to_dict(self) -> dict[str, Any]:
        """The call as JSON-ready data (``kwargs`` left out: they may not be JSON). The id's
        key is ``"id"``, as in the wire format's ``tool_calls``; ``"key"`` is its key in a
        resume's decisions, ``"path"`` and ``"via"`` where it sits (lists)."""
        return {
            "id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "digest": self.digest,
            "path": list(self.path),
            "via": list(self.via),
            "key": self.key,
        }


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
        status: ``"done"``, or ``"paused"``: a ``requires_approval`` call is waiting for a
            decision (there was no ``approve=`` callback). Nothing of it has run; ``output``
            is ``None``; ``Agent.resume`` goes on.
        pending: when paused, the calls waiting for a decision, at every level: a call
            asked inside an agent used as a tool is here too, with its ``path`` and ``via``
            (the agent-tool call stays open until the resume settles it).
        in_doubt: side-effect calls started and never seen to finish: by an earlier run on
            the session that crashed or was stopped while they ran, or by this run, past
            their ``timeout``. Whether they took effect is unknown (the model was told
            so). Check them by hand.
        session: the session id, for a run on a session.
        resume_state: what ``Agent.resume`` needs to go on from a pause without a store
            (JSON-ready); ``None`` when done.
        agent: the name of the agent that answered (or paused): the agent's own, or with
            handoffs (``Agent(handoffs=)``) the one that had the conversation at the end.
    """

    output: OutputT
    messages: list[dict[str, Any]]
    usage: Usage
    turns: int
    truncated: bool = False
    status: Literal["done", "paused"] = "done"
    pending: tuple[PendingCall, ...] = ()
    in_doubt: tuple[PendingCall, ...] = ()
    session: str | None = None
    resume_state: dict[str, Any] | None = None
    agent: str | None = None
    # where this run's own messages start in ``messages`` (see new_messages)
    _start: int = field(default=0, repr=False, compare=False, kw_only=True)

    def new_messages(self) -> list[dict[str, Any]]:
        """The messages this run added to the conversation: the model's turns and the tool
        messages after the prompt (or after the stored history and the new prompt, on a
        session; after the reopened round, for a resume). The prompt itself is not in it."""
        return self.messages[self._start :]

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
            "status": self.status,
            "pending": [call.to_dict() for call in self.pending],
            "in_doubt": [call.to_dict() for call in self.in_doubt],
            "agent": self.agent,
        }
