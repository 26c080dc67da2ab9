"""One request's run: the agent driven with ``run_async``/``stream_async``, and its outcome
as plain data (text pieces, tool activity, the end).

Nothing here outlives the request: a conversation lives in the agent's store, so any
worker can take the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._blocking import off_loop_to_the_end, release_claim

if TYPE_CHECKING:
    from .._agent import Agent
    from .._context import Principal
    from .._result import PendingCall, RunResult

__all__ = [
    "Ended",
    "RunSpec",
    "activity_of",
    "call_view",
    "ending_of",
    "execute",
    "execute_stored",
    "keep_seen",
    "stream",
]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What to run: the agent, the prompt and, in a conversation, its stored id.

    ``decisions`` set means: resume the paused conversation with these decisions, made by
    ``decided_by`` (the deciding principal's id, for the approval span event);
    ``undecide`` removes their record when the resume fails before any decided call
    started, so that another reviewer may decide them.
    """

    agent: Agent[Any]
    prompt: list[dict[str, Any]]
    session: str | None = None
    decisions: Mapping[Any, bool | str] | None = None
    deps: Any = None
    principal: Principal | None = None
    decided_by: str | None = None
    undecide: Callable[[], Awaitable[bool]] | None = None


@dataclass(slots=True)
class Ended:
    """How a run ended: the answer, why it stopped, usage, and what a client should know
    (``agent``: the name of the agent that answered, after any handoffs)."""

    content: str
    finish_reason: str
    usage: dict[str, int]
    status: str = "done"
    pending: list[dict[str, Any]] = field(default_factory=list)
    agent: str | None = None


def call_view(call: PendingCall) -> dict[str, Any]:
    """A waiting call as a client is shown it. ``id`` is what a decision names it by: its
    key (``"call_1/call_7"`` for a call asked inside an agent used as a tool, where model
    servers may reuse ids across levels), ``path`` the agents that asked it, top down. The
    digest goes out with the call and must come back with its decision."""
    return {
        "id": call.key,
        "name": call.name,
        "arguments": call.arguments,
        "arguments_digest": call.digest,
        "path": list(call.path),
    }


def pending_line(pending: list[dict[str, Any]]) -> str:
    """The human-readable line a paused answer ends with."""
    names = ", ".join(f"{call['name']}({_short(call['arguments'])})" for call in pending)
    return f"Waiting for approval: {names}."


def _short(arguments: str, limit: int = 120) -> str:
    try:
        text = json.dumps(json.loads(arguments), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        text = arguments
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ending_of(result: RunResult[Any]) -> Ended:
    """The end of a finished (or paused) run, as a client is told it."""
    output: Any = result.output
    dump = getattr(output, "model_dump_json", None)
    content = dump() if callable(dump) else ("" if output is None else str(output))
    status = str(getattr(result, "status", "done"))
    pending = [call_view(call) for call in result.pending]
    if status == "paused" and pending:
        content = (content + "\n\n" if content else "") + pending_line(pending)
    usage = {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.total_tokens,
    }
    reason = "length" if result.truncated else "stop"
    return Ended(content, reason, usage, status, pending, result.agent)


def activity_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls and results among ``messages`` (what one run added), in order."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                names[call.get("id", "")] = function.get("name", "")
                out.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments"),
                    }
                )
        elif message.get("role") == "tool":
            call_id = message.get("tool_call_id", "")
            out.append(
                {
                    "type": "tool_result",
                    "id": call_id,
                    "name": names.get(call_id, ""),
                    "output": message.get("content"),
                }
            )
    return out


def _session_kwargs(spec: RunSpec) -> dict[str, Any]:
    given = _identity_kwargs(spec)
    return given if spec.session is None else {"session": spec.session, **given}


def _identity_kwargs(spec: RunSpec) -> dict[str, Any]:
    return {"deps": spec.deps, "principal": spec.principal}


async def execute(spec: RunSpec, timeout: float) -> tuple[Ended, list[dict[str, Any]]]:
    """Run to the end with ``run_async`` (or resume); the ending and the tool activity."""
    async with asyncio.timeout(timeout):
        if spec.decisions is not None:
            result = await spec.agent.resume_async(
                spec.session or "",
                dict(spec.decisions),
                decided_by=spec.decided_by,
                **_identity_kwargs(spec),
            )
        else:
            result = await spec.agent.run_async(spec.prompt, **_session_kwargs(spec))
    added = result.messages[_known_length(spec, result) :]
    return ending_of(result), activity_of(added)


async def execute_stored(
    spec: RunSpec, timeout: float, max_chars: int
) -> tuple[Ended, list[dict[str, Any]]]:
    """A whole answer on a stored conversation (a new message's, or a decision's), cut at
    ``max_chars`` as the stream is: the run is stopped at the bound, and the conversation
    keeps the question and the cut answer (what the client is sent), not the uncut one."""
    activity: list[dict[str, Any]] = []
    text: list[str] = []
    room = max_chars
    ended: Ended | None = None
    async with asyncio.timeout(timeout):
        async with contextlib.aclosing(stream(spec)) as items:
            async for item in items:
                if isinstance(item, Ended):
                    ended = item  # read on to the end: the run commits its pause after it
                    continue
                if isinstance(item, dict):
                    # the whole answer's activity has no "error" key (its output says it)
                    activity.append({k: v for k, v in item.items() if k != "error"})
                    continue
                text.append(item[:room])
                room -= len(item)
                if room < 0:
                    break  # closing the stream stops the run; its whole rounds are stored
        if ended is not None:
            return ended, activity
        seen = "".join(text)
        await off_loop_to_the_end(keep_seen, spec, seen, bool(activity))
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return Ended(seen, "length", usage), activity


def keep_seen(spec: RunSpec, seen: str, rounds_stored: bool) -> None:
    """Append the answer a client saw to a conversation whose run was stopped at the bound
    (``rounds_stored``: the run had finished a tool round, and stored it)."""
    # A run stopped in its first round stores nothing (so that sending the question again
    # does not repeat it); after a tool round it has stored the question and that round. A
    # resumed run has always stored the round it reopened (the decided calls' results).
    store = spec.agent.store
    if store is None or spec.session is None:  # pragma: no cover - callers check
        return
    answer = {"role": "assistant", "content": seen}
    stored = rounds_stored or spec.decisions is not None
    messages = [answer] if stored else [*spec.prompt, answer]
    claim = store.claim(spec.session, wait=30.0)  # the stopped run may still be letting go
    try:
        store.append(claim, messages, close_round=True)
    finally:
        # The answer is whole and stored: a release the store refuses now (a restart) is
        # retried in the background, and the client is not told of it.
        with contextlib.suppress(Exception):
            release_claim(store, claim)


def _known_length(spec: RunSpec, result: RunResult[Any]) -> int:
    # What the run added starts after the prompt; a stored conversation is not known here,
    # so count back from the end to the last user message the client sent.
    if spec.session is None:
        extra = 1 if result.messages and result.messages[0].get("role") == "system" else 0
        if spec.prompt and spec.prompt[0].get("role") == "system":
            extra = 0
        return len(spec.prompt) + extra
    for index in range(len(result.messages) - 1, -1, -1):
        if result.messages[index].get("role") == "user":
            return index + 1
    return 0


async def stream(spec: RunSpec) -> AsyncGenerator[str | dict[str, Any] | Ended, None]:
    """The run as it happens: answer text (``str``), tool activity and handoffs (``dict``),
    then the :class:`Ended`. Closing the iterator stops the run."""
    from .._events import HandedOff, RunFinished, TextDelta, ToolCallStarted, ToolResult

    if spec.decisions is not None:
        decisions = dict(spec.decisions)
        events = spec.agent.resume_stream_async(
            spec.session or "", decisions, decided_by=spec.decided_by, **_identity_kwargs(spec)
        )
    else:
        events = spec.agent.stream_async(spec.prompt, **_session_kwargs(spec))
    started = False  # a call started: from here a decision's record stands, whatever fails
    try:
        async with contextlib.aclosing(events) as running:
            async for event in running:
                if isinstance(event, TextDelta):
                    yield event.text
                elif isinstance(event, ToolCallStarted):
                    started = True
                    yield {
                        "type": "tool_call",
                        "id": event.call_id,
                        "name": event.name,
                        "arguments": event.arguments,
                    }
                elif isinstance(event, ToolResult):
                    yield {
                        "type": "tool_result",
                        "id": event.call_id,
                        "name": event.name,
                        "output": event.output,
                        "error": event.error,
                    }
                elif isinstance(event, HandedOff):  # the answer goes on in the target's words
                    yield {"type": "handoff", "source": event.source, "target": event.target}
                elif isinstance(event, RunFinished):
                    yield ending_of(event.result)
    except (Exception, asyncio.CancelledError):
        if spec.undecide is not None and not started:
            # The resume failed before any decided call started (a refusal, a busy or a
            # failing store, the run's time up, the client gone): its record would lock
            # every other reviewer out of the pause. The run's own end is what counts.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await spec.undecide()
        raise
