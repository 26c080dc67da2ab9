"""A run on a session: what the drivers tell the store, and how a stored round is reopened.

The core's side of sessions, over the ``Store`` protocol only (no store is imported here):

- ``SessionJournal``: the per-run object the drivers call at each step. It appends what the
  loop added to the transcript (O(new messages)), writes a side-effect call ahead before it
  runs and records its result when it ends, and commits a pause.
- ``settle_open_round``: what each call of a round left open by a pause or a crash gets:
  its recorded result, a person's decision, a re-run, or "outcome unknown".
- ``fit_budget``: the history to send under a token budget, trimmed by whole turns.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._loop_text import clean_text
from ._result import PendingCall, call_key, key_address
from ._store import (
    CallRecord,
    Claim,
    SessionError,
    Store,
    argument_digest,
    open_calls,
    paused_calls,
)

if TYPE_CHECKING:
    from ._calls import PlannedCall, ToolOutcome
    from ._loop import RunLoop
    from ._tool import Tool

__all__ = [
    "IN_DOUBT",
    "Decision",
    "NestedResume",
    "OpenRound",
    "ResumeError",
    "SessionJournal",
    "check_settler",
    "estimate_tokens",
    "fit_budget",
    "settle_open_round",
    "tool_messages",
]

Decision = bool | str
"""A person's decision on a paused call: ``True`` (run it), ``False`` (refuse), or a refusal
reason the model is told."""


class DecisionsBy(dict[Any, Decision]):
    """Decisions handed to a resume, with who made them (``by``, an id the deployment
    chose) and when (``at``, an ISO 8601 UTC time): what the approval event reports."""

    def __init__(self, decisions: Mapping[Any, Decision], by: str | None, at: str) -> None:
        super().__init__(decisions)
        self.by = by
        self.at = at


def decisions_by(
    decisions: Mapping[Any, Decision], decided_by: str | None
) -> Mapping[Any, Decision]:
    """``decisions`` stamped with who decided and now (a resume's ``decided_by=``)."""
    if decided_by is not None and (not isinstance(decided_by, str) or not decided_by.strip()):
        raise ResumeError(f"decided_by must be a non-empty id (str), not {decided_by!r}")
    if not isinstance(decisions, Mapping):
        return decisions  # settle_open_round refuses it with a clear ResumeError
    return DecisionsBy(decisions, decided_by, datetime.now(UTC).isoformat())


class ResumeError(SessionError):
    """The decisions do not fit the paused run (an unknown id, a missing id, arguments that
    changed, a session that is not paused). Nothing was changed."""


IN_DOUBT = (
    "The outcome of this call is unknown: the run stopped (a crash, a cancel or a timeout) "
    "while it was running, after it may have taken effect. Do not assume it succeeded or "
    "failed, and do not call it again on your own: tell the user, who can check."
)
IN_DOUBT_BELOW = (
    "The outcome of this call is unknown: the run stopped (a crash, a cancel or a timeout) "
    "while the agent it asked was working, after calls with side effects had started. Do "
    "not assume it succeeded or failed, and do not call it again on your own: tell the "
    "user, who can check. Its calls with side effects:"
)
NOT_RUN = "Not run: the run stopped before this call ran."
REFUSED = "Not run: a person did not approve this call."
SUPERSEDED = "Not run: the user sent a new message instead of deciding on this call."


class SessionJournal:
    """Tells a store what a run on one session does, step by step (blocking calls: the
    async driver runs each in a thread)."""

    def __init__(self, store: Store, claim: Claim, loop: RunLoop, loop_start: int) -> None:
        self.store = store
        self.claim = claim
        self._loop = loop
        self._prompt_end = len(loop.messages)
        self._held = False
        # messages[loop_start:] of the loop are not stored yet; message i of the loop is
        # stored message i + offset.
        self._cursor = loop_start
        self._offset = claim.length - loop_start
        self._round = -1  # stored index of the open round's assistant message
        # A resumed pause is cleared before its first side-effect call starts: once a call
        # may have run, the session must not ask for a decision on it again.
        self._unpause = False
        # Side-effect calls written ahead: their log keys (by call object), and those that
        # were started and have not ended. A run that stops leaves the running ones open.
        self._keys: dict[int, tuple[PlannedCall, str]] = {}
        self._running: dict[int, PlannedCall] = {}
        # Side-effect calls of sub-runs (agents used as tools) written ahead in this log:
        # their log key -> the id of this run's agent-tool call they run under; and those
        # not seen to end within their sub-run (a late result does not count: as for this
        # run's own calls, a stop leaves their agent-tool call open for the log to settle).
        # Sub-runs write from their own threads and tasks: the lock keeps the held round
        # written once, before the first record.
        self._below: dict[str, str] = {}
        self._below_running: set[str] = set()
        self._lock = threading.Lock()

    def key(self, message_index: int, call_id: str) -> str:
        """The idempotency key of a call: session, stored message number, call id."""
        return f"{self.claim.session_id}/{message_index + self._offset}/{call_id}"

    def _log_key(self, call: PlannedCall) -> str:
        return f"{self._round}:{call.call_id}"

    def _new(self, loop: RunLoop) -> list[dict[str, Any]]:
        new = loop.messages[self._cursor :]
        self._cursor = len(loop.messages)
        last = loop.messages[-1] if loop.messages else None
        if last is not None and last.get("role") == "assistant" and last.get("tool_calls"):
            self._round = len(loop.messages) - 1 + self._offset
        return new

    def reopen(self, loop: RunLoop) -> None:
        """The loop's last message is a stored open round being resumed."""
        self._round = len(loop.messages) - 1 + self._offset
        self._unpause = True

    # -- sync ---------------------------------------------------------------------------

    def step(self, loop: RunLoop, *, closed: bool) -> None:
        """Append what the loop added; ``closed``: every call has its tool message.

        An open round (the model's turn with its calls) is held back and written with its
        tool messages, one write per round; it is written at once only before a
        side-effect call (``before_call``), whose write-ahead record must point at it.
        """
        if not closed:
            self._held = True
            return
        new = self._new(loop)
        self._held = False
        self._keys.clear()  # a late result now has no record to update
        self._running.clear()  # the round is whole: none of its calls is open
        self._below.clear()
        self._below_running.clear()
        self.store.append(self.claim, new, close_round=True)

    def started(self, calls: Sequence[PlannedCall]) -> None:
        """``calls`` are about to start: a side-effect one may now run on whatever the
        run does, until it ends."""
        for call in calls:
            if call.side_effects:
                self._running[id(call)] = call

    def late_result(self, outcome: ToolOutcome) -> None:
        """A side-effect call the run stopped waiting for has ended (in its tool thread):
        record what it did. A round closed meanwhile has no record left to update."""
        entry = self._keys.get(id(outcome.call))
        if entry is not None:
            self.store.record_result(self.claim, entry[1], self._late_text(outcome))

    def _late_text(self, outcome: ToolOutcome) -> str:
        call = outcome.call
        if outcome.status == "ok" or outcome.text:
            text = outcome.text or ""
        elif outcome.error is not None:
            text = f"tool {call.name} failed: {type(outcome.error).__name__}: {outcome.error}"
        else:
            text = f"tool {call.name} failed"
        text = clean_text(text)
        limit = self._loop.settings.max_tool_output_chars
        if limit is not None and len(text) > limit:
            shown = f"showing the first {limit} of {len(text)} characters"
            text = f"{text[:limit]}\n[output cut: {shown}]"
        return text

    def _stopped(self, loop: RunLoop) -> tuple[list[dict[str, Any]], bool]:
        """What a stopped run stores, and whether its round is closed: a side-effect call
        still running gets no tool message (it is in doubt until its late result), nor do
        the calls after it."""
        new = self._new(loop)
        self._held = False
        running = {call.call_id for call in self._running.values()}
        running |= {self._below[key] for key in list(self._below_running)}
        if not running:
            return new, True
        # The round's tool messages stay in call order: those before the first call still
        # running are stored, the rest are settled with it by the next run.
        for cut, message in enumerate(new):
            if message.get("role") == "tool" and message.get("tool_call_id") in running:
                return new[:cut], False
        return new, False

    def _flush(self, loop: RunLoop) -> list[dict[str, Any]] | None:
        """What must be stored before a side-effect call is written ahead: the held open
        round, or nothing but the end of a resumed pause (an append clears it)."""
        if self._unpause:
            self._unpause = False
            held, self._held = self._held, False
            return self._new(loop) if held else []
        if not self._held:
            return None
        self._held = False
        return self._new(loop)

    def before_call(self, call: PlannedCall) -> None:
        """Write a side-effect call ahead (committed before it runs)."""
        if call.side_effects:
            held = self._flush(self._loop)
            if held is not None:
                self.store.append(self.claim, held)
            key = self._log_key(call)
            self._keys[id(call)] = (call, key)
            self.store.write_ahead(self.claim, key, call.name, call.arguments, _digest(call))

    def after_call(self, call: PlannedCall, content: str, ended: bool = True) -> None:
        """Record a side-effect call's outcome as soon as it ends. A call past its timeout
        has not ended (its thread may still take effect): its record stays open, and its
        late result (``late_result``) is recorded when it returns."""
        if call.side_effects and ended:
            self._running.pop(id(call), None)
            self.store.record_result(self.claim, self._log_key(call), content)

    def below(self, loop: RunLoop, call_id: str) -> NestedJournal:
        """The journal of a sub-run that this run's agent-tool call ``call_id`` runs."""
        return NestedJournal(self, loop, (call_id,))

    def write_below(self, where: Mapping[str, Any], call: PlannedCall) -> str:
        """Write a sub-run's side-effect call ahead in this session's log (after the held
        round, as for this run's own calls); its log key. ``where`` names the call: its
        ``via``, ``path``, idempotency ``key`` and whether it is ``idempotent``."""
        with self._lock:
            held = self._flush(self._loop)
            if held is not None:
                self.store.append(self.claim, held)
            key = f"{self._round}:{json.dumps(where, separators=(',', ':'))}"
            self._below[key] = where["via"][0]
            self._below_running.add(key)
        self.store.write_ahead(self.claim, key, call.name, call.arguments, _digest(call))
        return key

    def record_below(self, key: str, content: str, *, late: bool = False) -> None:
        """A sub-run's side-effect call written ahead as ``key`` has ended (``late``: after
        its sub-run stopped waiting for it). A round closed meanwhile has no record left."""
        if key in self._below:
            if not late:
                self._below_running.discard(key)
            self.store.record_result(self.claim, key, content)

    def paused(self, loop: RunLoop, state: Mapping[str, Any]) -> None:
        """Commit the pause: the round so far and what resume needs."""
        self.store.append(self.claim, self._new(loop), pending={**state, "round": self._round})

    def failed(self, loop: RunLoop) -> None:
        """Keep what a failed run added (its round closed), unless it added only the prompt:
        then nothing is kept, so that sending the prompt again does not repeat it."""
        if self._nothing_new(loop):
            return
        new, closed = self._stopped(loop)
        self.store.append(self.claim, new, close_round=closed)

    def _nothing_new(self, loop: RunLoop) -> bool:
        return len(loop.messages) <= self._prompt_end and self._cursor < self._prompt_end


class NestedJournal:
    """The journal of a sub-run (an agent used as a tool) inside a run on a session.

    Its side-effect calls are written ahead, and their results recorded, in the top
    session's log under the open round, keyed by where they sit; a crash inside a
    sub-agent is then reported in doubt at the top, as for the top agent's own calls. The
    sub-run's transcript is not stored: the session keeps the agent-tool call and its answer
    (a pause keeps the sub-run in the paused state)."""

    def __init__(self, top: SessionJournal, loop: RunLoop, via: tuple[str, ...]) -> None:
        self.top = top
        self._loop = loop
        self.via = via
        self._keys: dict[int, str] = {}

    def below(self, loop: RunLoop, call_id: str) -> NestedJournal:
        """The journal of a sub-run that this sub-run's agent-tool call runs."""
        return NestedJournal(self.top, loop, (*self.via, call_id))

    def before_call(self, call: PlannedCall) -> None:
        """Write a side-effect call ahead in the top session's log."""
        if call.side_effects:
            loop = self._loop
            key = call.call_id
            if loop.call_key is not None:
                key = loop.call_key(len(loop.messages) - 1, call.call_id)
            where = {
                "via": list(self.via),
                "call": call.call_id,
                "path": list(loop.path),
                "key": key,
                "idempotent": bool(call.tool is not None and call.tool.idempotent),
            }
            self._keys[id(call)] = self.top.write_below(where, call)

    def after_call(self, call: PlannedCall, content: str, ended: bool = True) -> None:
        """Record a side-effect call's outcome as soon as it ends."""
        if call.side_effects and ended:
            key = self._keys.pop(id(call), None)
            if key is not None:
                self.top.record_below(key, content)

    def late_result(self, outcome: ToolOutcome) -> None:
        """A side-effect call the sub-run stopped waiting for has ended: record it."""
        key = self._keys.pop(id(outcome.call), None)
        if key is not None:
            self.top.record_below(key, self.top._late_text(outcome), late=True)

    def started(self, calls: Sequence[PlannedCall]) -> None:
        """Nothing to keep: a started call is known by its record (see ``before_call``)."""

    def step(self, loop: RunLoop, *, closed: bool) -> None:
        """Nothing is stored of a sub-run's transcript."""

    def paused(self, loop: RunLoop, state: Mapping[str, Any]) -> None:
        """Nothing to store: the top run stores the pause, the sub-run's with it."""

    def failed(self, loop: RunLoop) -> None:
        """Nothing to store: the agent-tool call's outcome is the top run's."""


@dataclass(frozen=True, slots=True)
class NestedResume:
    """What an agent-tool call whose sub-run paused goes on from: the sub-run's transcript
    (no system message), its paused state, and the decisions for the calls below it (keyed
    by their address under that call: a tuple of call ids)."""

    messages: list[dict[str, Any]]
    state: dict[str, Any]
    decisions: Mapping[Any, Decision]


@dataclass
class OpenRound:
    """How to close a round left open: per call id, ``None`` (run it) or its tool message;
    ``decided`` holds each paused call a person decided now (``True`` when approved), and
    ``by`` and ``at`` who decided and when (for the observers' approval event); ``nested``
    what each agent-tool call whose sub-run paused resumes from."""

    plan: dict[str, str | None] = field(default_factory=dict)
    in_doubt: list[PendingCall] = field(default_factory=list)
    decided: dict[str, bool] = field(default_factory=dict)
    by: str | None = None
    at: str | None = None
    nested: dict[str, NestedResume] = field(default_factory=dict)

    def mark(self, call: PlannedCall) -> PlannedCall:
        """``call`` (of the reopened round), marked with its decision if a person decided it."""
        if call.call_id not in self.decided:
            return call
        return replace(
            call, decided=self.decided[call.call_id], decided_by=self.by, decided_at=self.at
        )

    @property
    def runs_anything(self) -> bool:
        """Whether any call of the round is to run."""
        return any(text is None for text in self.plan.values())


def settle_open_round(
    session_id: str | None,
    messages: Sequence[Mapping[str, Any]],
    state: Mapping[str, Any] | None,
    calls: Sequence[CallRecord],
    tools: Mapping[str, Tool[..., Any]],
    decisions: Mapping[Any, Decision] | None,
) -> OpenRound:
    """Decide what each call of the transcript's open last round gets.

    ``decisions`` is ``None`` for a new prompt on the session (nothing runs: paused calls are
    refused, calls a crash left are settled from the log) and a mapping for ``resume``
    (approved calls run, and so do calls that never started or are safe to repeat).
    A paused call that has a write-ahead record was approved and started before the run
    stopped (a crash): it is settled from the log like any started call (its result, or in
    doubt), whatever decision comes now, and needs none. An agent-tool call whose sub-run
    paused runs again from that pause (``OpenRound.nested``) with the decisions below it.
    Raises ``ResumeError`` when decisions do not match the paused calls, at any level.
    """
    where = f"session {session_id!r}" if session_id else "this run"
    open_ = open_calls(messages)
    pending = {c["id"]: c for c in (state or {}).get("calls", [])}
    subs: Mapping[str, Any] = (state or {}).get("nested") or {}
    settled: dict[str, str] = dict((state or {}).get("settled", {}))
    by_key, below_records = _records(calls)
    result = OpenRound(by=getattr(decisions, "by", None), at=getattr(decisions, "at", None))
    chosen: dict[str, Decision] = {}
    below: dict[str, dict[tuple[str, ...], Decision]] = {}
    if decisions is not None:
        chosen, below = _check_decisions(session_id, state, decisions, open_, by_key, where)
    for wire in open_:
        call_id = wire["id"]
        name = wire["function"]["name"]
        arguments = wire["function"].get("arguments") or ""
        tool_ = tools.get(name)
        record = by_key.get(call_id)
        if call_id in subs and record is None:
            if decisions is None:
                result.plan[call_id] = SUPERSEDED
                continue
            if getattr(tool_, "agent", None) is None:
                raise ResumeError(
                    f"{where}: the call {call_id!r} paused inside the agent tool {name!r}, "
                    "and this agent has no agent tool of that name now; nothing was run",
                    session_id=session_id,
                )
            sub = subs[call_id]
            wanted = below.get(call_id, {})
            agent = getattr(tool_, "agent", None)
            _check_tools_below(where, session_id, agent, sub["messages"], sub["state"], wanted)
            below_decisions = DecisionsBy(below.get(call_id, {}), result.by, result.at or "")
            result.plan[call_id] = None
            result.nested[call_id] = NestedResume(
                list(sub["messages"]), dict(sub["state"]), below_decisions
            )
        elif call_id in pending and call_id not in by_key:
            if pending[call_id].get("digest") != argument_digest(name, arguments):
                raise ResumeError(
                    f"{where}: the paused call {call_id!r} no longer matches its stored "
                    "arguments; refusing to run it",
                    session_id=session_id,
                )
            if decisions is None:
                result.plan[call_id] = SUPERSEDED
                continue
            decision = chosen[call_id]
            if decision is True and tool_ is None:
                # the agent lost the tool since the pause (renamed, removed, or the agent
                # that asked left the handoff graph): an approval must not end as "unknown
                # tool", with the person told nothing ran only by the model
                raise ResumeError(
                    f"{where}: the paused call {call_id!r} asks for the tool {name!r}, which "
                    "this agent does not have now; nothing was run (resume with the agent "
                    "that paused, or refuse the call)",
                    session_id=session_id,
                )
            result.decided[call_id] = decision is True
            if decision is True:
                result.plan[call_id] = None
            elif isinstance(decision, str) and decision.strip():
                result.plan[call_id] = f"{REFUSED} Reason: {decision.strip()}"
            else:
                result.plan[call_id] = REFUSED
        elif call_id in settled:
            result.plan[call_id] = settled[call_id]
        elif call_id in below_records:  # a sub-run cut short by a crash, cancel or timeout
            entries = below_records[call_id]
            if decisions is not None and all(where.get("idempotent") for where, _ in entries):
                result.plan[call_id] = None  # safe to repeat: the sub-run runs again
            else:
                result.plan[call_id] = _cut_short(entries)
                result.in_doubt += [
                    _below_call(where, record)
                    for where, record in entries
                    if record.state != "done"
                ]
        elif record is not None and record.state == "done":
            result.plan[call_id] = record.result or ""
        elif record is not None:  # written ahead, never finished: in doubt
            if tool_ is not None and tool_.idempotent and decisions is not None:
                result.plan[call_id] = None
            else:
                result.plan[call_id] = IN_DOUBT
                result.in_doubt.append(
                    PendingCall(call_id, name, arguments, {}, argument_digest(name, arguments))
                )
        elif decisions is not None and not (tool_ is not None and tool_.requires_approval):
            result.plan[call_id] = None  # never started: running it now is the first time
        else:
            result.plan[call_id] = NOT_RUN
    return result


def check_settler(
    session_id: str | None, history: Sequence[Mapping[str, Any]], name: str | None
) -> None:
    """Refuse a resume whose open round was asked by another agent than the one that would
    settle it: an agent of the handoff graph renamed or dropped since the pause (the entry
    agent would settle the round, and run its own tools of the asked names)."""
    for message in reversed(history):
        if message.get("role") == "assistant":
            asker = message.get("name")
            if isinstance(asker, str) and asker != name:
                where = f"session {session_id!r}" if session_id else "this run"
                raise ResumeError(
                    f"{where}: the paused calls were asked by agent {asker!r}, which this "
                    f"agent's handoff graph does not have now (it would go on as {name!r}); "
                    "nothing was run (resume with the graph that paused)",
                    session_id=session_id,
                )
            return


def _check_tools_below(
    where: str,
    session_id: str | None,
    agent: Any,
    messages: Sequence[Mapping[str, Any]],
    state: Mapping[str, Any],
    decisions: Mapping[tuple[str, ...], Decision],
) -> None:
    """Refuse an approval of a call paused inside a sub-agent (``agent``, at any depth)
    whose tool that agent no longer has. Checked before anything runs: inside the sub-run
    the refusal would be the agent tool's failure, the pause already spent on it. An agent
    with tool sources or handoffs is not checked (its tools are known only as it runs)."""
    if agent._runtime.sources or agent.handoffs:
        return
    tools = agent._config.settings.tools
    own = {str(c.get("id")): str(c.get("name", "")) for c in state.get("calls") or ()}
    for address, decision in decisions.items():
        name = own.get(address[0]) if len(address) == 1 else None
        if decision is True and name is not None and name not in tools:
            raise ResumeError(
                f"{where}: the call {name!r} paused inside agent {agent.name!r}, which does "
                "not have that tool now; nothing was run (resume with the agents that "
                "paused, or refuse the call)",
                session_id=session_id,
            )
    names = {str(c.get("id")): c.get("function", {}).get("name") for c in open_calls(messages)}
    for call_id, sub in (state.get("nested") or {}).items():
        deeper = {a[1:]: d for a, d in decisions.items() if len(a) > 1 and a[0] == call_id}
        below = getattr(tools.get(str(names.get(call_id))), "agent", None)
        if deeper and below is not None and isinstance(sub, Mapping):
            _check_tools_below(where, session_id, below, sub["messages"], sub["state"], deeper)


def _digest(call: PlannedCall) -> str:
    return argument_digest(call.name, call.arguments)


_Below = list[tuple[dict[str, Any], CallRecord]]


def _records(calls: Sequence[CallRecord]) -> tuple[dict[str, CallRecord], dict[str, _Below]]:
    """The open round's log: this run's own calls by call id, and the sub-runs' calls
    (written by :class:`NestedJournal`) by the id of the agent-tool call they ran under."""
    own: dict[str, CallRecord] = {}
    below: dict[str, _Below] = {}
    for record in calls:
        rest = record.key.split(":", 1)[1]
        where: Any = None
        if rest.startswith("{"):
            try:
                where = json.loads(rest)
            except ValueError:
                where = None
        if isinstance(where, dict) and isinstance(where.get("via"), list) and where["via"]:
            below.setdefault(str(where["via"][0]), []).append((where, record))
        else:
            own[rest] = record
    return own, below


def _cut_short(entries: _Below) -> str:
    """The tool message of an agent-tool call whose sub-run was cut short after it had
    started side-effect calls: what each of them is known to have done."""
    lines = [IN_DOUBT_BELOW]
    for _, record in entries:
        if record.state == "done":
            lines.append(f"- {record.name} {record.arguments} finished: {record.result or ''}")
        else:
            lines.append(f"- {record.name} {record.arguments}: outcome unknown")
    return "\n".join(lines)


def _below_call(where: Mapping[str, Any], record: CallRecord) -> PendingCall:
    """A sub-run's call in doubt, as ``RunResult.in_doubt`` lists it."""
    return PendingCall(
        str(where.get("call", "")),
        record.name,
        record.arguments,
        {},
        record.digest,
        tuple(str(name) for name in where.get("path") or ()),
        tuple(str(call_id) for call_id in where["via"]),
    )


def _check_decisions(
    session_id: str | None,
    state: Mapping[str, Any] | None,
    decisions: Mapping[Any, Decision],
    open_: Sequence[Mapping[str, Any]],
    by_key: Mapping[str, CallRecord],
    where: str,
) -> tuple[dict[str, Decision], dict[str, dict[tuple[str, ...], Decision]]]:
    """Check a resume's decisions against every paused call at every level: the run's own
    (by call id) and those below each agent-tool call (by their address under it)."""
    waiting = {(*call.via, call.call_id): call for call in paused_calls(state)}
    if not waiting and not open_:
        raise ResumeError(
            f"{where} is not paused: there is nothing to resume", session_id=session_id
        )
    chosen = _addressed(decisions, waiting, where)
    own = {address[0]: d for address, d in chosen.items() if len(address) == 1}
    unknown = set(own) - {a[0] for a in waiting if len(a) == 1}
    asking = sorted(unknown & set((state or {}).get("nested") or {}))
    if asking:
        inner = sorted(call_key(a) for a in waiting if a[0] == asking[0] and len(a) > 1)
        raise ResumeError(
            f"{where}: the call {asking[0]!r} ran an agent whose run paused; decide the "
            f"calls it waits on instead: {inner}",
            session_id=session_id,
        )
    open_ids = {wire["id"] for wire in open_}
    subs = (state or {}).get("nested") or {}
    started = sorted(
        call_key(address)
        for address in chosen
        if address not in waiting
        and address[0] in open_ids
        and (len(address) == 1 or address[0] not in subs)
    )
    if started:
        raise ResumeError(
            f"{where}: the call {started[0]!r} is not waiting for a decision: it was "
            "approved and may have run before the run stopped; resume with no decisions "
            "({}) to settle it",
            session_id=session_id,
        )
    lost = sorted(call_key(address) for address in chosen if address not in waiting)
    if lost:
        raise ResumeError(
            f"{where} has no paused call {lost[0]!r}; paused: "
            f"{sorted('/'.join(a) for a in waiting) or 'none'}",
            session_id=session_id,
        )
    missing = sorted(
        call_key(address)
        for address in waiting
        if address not in chosen and not (len(address) == 1 and address[0] in by_key)
    )
    if missing:
        raise ResumeError(
            f"{where}: no decision for the paused call {missing[0]!r} (every paused "
            "call needs True, False or a refusal reason)",
            session_id=session_id,
        )
    below: dict[str, dict[tuple[str, ...], Decision]] = {}
    for address, decision in chosen.items():
        if len(address) > 1:
            below.setdefault(address[0], {})[address[1:]] = decision
    return own, below


def _addressed(
    decisions: Mapping[Any, Decision], waiting: Mapping[tuple[str, ...], PendingCall], where: str
) -> dict[tuple[str, ...], Decision]:
    """The decisions keyed by each call's address (the ids of ``via`` and the call id).

    A key is a ``PendingCall`` (its digest must match the paused call's), its ``key`` text,
    or an address tuple; a top call's own id is taken as it is too. A text naming two paused
    calls (one's key, and another's id that holds ``/``) is refused: pass the
    ``PendingCall`` then."""
    texts: dict[str, list[tuple[str, ...]]] = {}
    for known in waiting:
        texts.setdefault(call_key(known), []).append(known)
    chosen: dict[tuple[str, ...], Decision] = {}
    for key, decision in decisions.items():
        address: tuple[str, ...]
        if isinstance(key, PendingCall):
            address = (*key.via, key.call_id)
            stored = waiting.get(address)
            if stored is not None and stored.digest != key.digest:
                raise ResumeError(
                    f"{where}: the decision for {key.key!r} was made on other arguments than "
                    "the paused call's; nothing was run"
                )
        elif isinstance(key, tuple) and key and all(isinstance(part, str) for part in key):
            address = key
        elif isinstance(key, str):
            matches = texts.get(key, [])
            if (key,) in waiting and (key,) not in matches:  # a top call's id as it is
                matches = [*matches, (key,)]  # (the key of another call too: ambiguous)
            if len(matches) > 1:
                raise ResumeError(
                    f"{where}: the key {key!r} names more than one paused call; use the "
                    "PendingCall from RunResult.pending as the key"
                )
            # an unknown key is refused below; split, it names where it was meant to be
            address = matches[0] if matches else key_address(key)
        else:
            raise ResumeError(
                f"{where}: a decision's key is a call's key (PendingCall.key), or the "
                f"PendingCall, not {key!r}"
            )
        if not isinstance(decision, bool | str):
            raise ResumeError(
                f"{where}: the decision for {call_key(address)!r} must be True, False or a "
                "reason (str)"
            )
        chosen[address] = decision
    return chosen


def tool_messages(
    open_: Sequence[Mapping[str, Any]], plan: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """The tool messages closing a round in which nothing runs, in call order."""
    return [
        {
            "role": "tool",
            "tool_call_id": wire["id"],
            "name": wire["function"]["name"],
            "content": plan.get(wire["id"]) or NOT_RUN,
        }
        for wire in open_
    ]


# -- the context budget ----------------------------------------------------------------


Summarizer = Callable[[list[dict[str, Any]]], "str | None"]
"""Called with the turns trimmed from the history sent (oldest first); the text it returns
is sent after the instructions as a summary of them."""


def estimate_tokens(messages: Sequence[Mapping[str, Any]], ratio: float | None = None) -> int:
    """A token estimate: characters of the JSON over 4, or over the measured ``ratio``
    (characters per token, from a server's ``prompt_tokens`` for a known text)."""
    chars = sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)
    return int(chars / (ratio or 4.0)) + 4 * len(messages)


def turns_of(messages: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The history cut into turns: each starts at a user message. A tool call is never
    parted from its tool messages (they are always within one turn)."""
    turns: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("role") == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def fit_budget(
    history: Sequence[dict[str, Any]],
    budget: int | None,
    *,
    fixed: Sequence[Mapping[str, Any]] = (),
    ratio: float | None = None,
    summarize: Summarizer | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The history to send under ``budget`` tokens, and a summary of what was left out.

    Whole turns go, oldest first; the last turn always stays (it holds the open round or
    the newest exchange). ``fixed`` (instructions, the new prompt) counts against the budget.
    """
    if budget is None:
        return list(history), None
    turns = turns_of(history)
    room = budget - estimate_tokens(fixed, ratio)
    sizes = [estimate_tokens(turn, ratio) for turn in turns]
    total = sum(sizes)
    first = 0
    while first < len(turns) - 1 and total > room:
        total -= sizes[first]
        first += 1
    if first == 0:
        return list(history), None
    dropped = [m for turn in turns[:first] for m in turn]
    kept = [m for turn in turns[first:] for m in turn]
    summary = summarize(dropped) if summarize is not None else None
    return kept, summary


def record_of_result(messages: Sequence[dict[str, Any]], state: Mapping[str, Any] | None) -> None:
    """Check that a paused ``RunResult`` handed to ``resume`` can be resumed."""
    if state is None:
        raise ResumeError("this result is not paused: there is nothing to resume")
    if not open_calls(messages):
        raise ResumeError("this result's transcript has no open round to resume")
