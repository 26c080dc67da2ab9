"""What the loop core decides about a ``transfer_to_<name>`` call (no I/O, no agents).

A transfer is never run: the core answers it at once. The first transfer of a round is
made (its tool message says so, :func:`transferred`), unless it would pass the run's
``max_handoffs`` or hand the conversation back and forth between two agents; a second
transfer in the same round is told the first one stands. The switch to the target
happens once the round is closed (:mod:`agentkit._handoff`), so the round's other calls
are run and answered first, by the agent that asked for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._calls import PlannedCall
from ._errors import HandoffLimitError

if TYPE_CHECKING:
    from ._loop import RunLoop

__all__ = ["made_transfer", "plan_transfer", "transferred"]

TRANSFER_PREFIX = "transfer_to_"


def transferred(target: str) -> str:
    """The tool message of a transfer that was made: the transcript's record of it (a
    stored conversation's active agent is read back from it)."""
    return f"Transferred to {target}."


def plan_transfer(
    loop: RunLoop,
    index: int,
    call_id: str,
    name: str,
    arguments: str,
    refused: list[HandoffLimitError],
) -> PlannedCall:
    """The planned call for a transfer the model asked for; ``loop.handoff`` is set to the
    target when it is made, and a transfer past the limits is added to ``refused`` (the
    run stops with it once the round is planned). Arguments are ignored: the tools have
    none, and a model that adds some still means the transfer."""
    target = loop.settings.handoffs[name][0]
    if loop.handoff is not None:
        text = f"Not run: this round already transferred the conversation to {loop.handoff}."
    else:
        error = _limit(loop, target)
        if error is None:
            loop.handoff = target
            text = transferred(target)
        else:
            refused.append(error)
            text = f"Not run: {error}"
    return PlannedCall(index, call_id, name, arguments, ready=text, kind="handoff")


def made_transfer(loop: RunLoop, name: str, text: str) -> str | None:
    """The target of a transfer settled before a pause (``name`` the call's tool, ``text``
    its recorded message), when it was made; else ``None``."""
    entry = loop.settings.handoffs.get(name)
    if entry is not None and text == transferred(entry[0]):
        return entry[0]
    return None


def _limit(loop: RunLoop, target: str) -> HandoffLimitError | None:
    """Why a handoff to ``target`` may not be made now, or ``None``."""
    path = (*loop.handoffs, target)
    limit = loop.team.max_handoffs if loop.team is not None else loop.settings.max_handoffs
    if len(path) - 1 > limit:
        return HandoffLimitError(
            f"the run reached its limit of {limit} handoffs (max_handoffs): " + " -> ".join(path),
            path=path,
        )
    if len(path) >= 4 and path[-4:-2] == path[-2:]:
        return HandoffLimitError(
            f"the conversation went back and forth between {path[-2]} and {path[-1]}: "
            + " -> ".join(path),
            path=path,
        )
    return None
