"""Stream chunks to deltas as they arrive, and to one whole ``ChatCompletion`` at the end.

:class:`StreamAssembler` is fed each parsed ``data:`` chunk of a streamed answer. It
returns the caller-facing deltas of that chunk at once and keeps what it needs to build
the completion that a non-streamed request would have returned. It does no I/O and
never parses JSON per chunk; the client parses each event and feeds the chunk.

Real servers bend the format, and the assembler accepts what they send:

- Tool calls are assembled by ``index``. ``id``, ``type`` and ``function.name`` are set
  once per index and never concatenated: llama.cpp repeats them in every chunk, DashScope
  sends ``"id": ""`` on continuation chunks and may end with ``"function": {}``; an empty
  string counts as absent. Only ``arguments`` fragments are concatenated.
- A tool-call delta without an ``index`` continues the latest call, or starts a new one
  when it carries an id different from the latest call's. A call that never got an id
  gets a generated ``call_...`` one in the completion (the transcript needs it).
- A legacy ``function_call`` delta is ignored when the same choice has ``tool_calls``
  (llama.cpp sends both); alone, it becomes a tool call with a generated id.
- With ``parse_text_tool_calls`` on, ``<tool_call>{...}</tool_call>`` written in the
  content (Qwen served without a tool parser) becomes tool calls, and no markup reaches
  the text deltas (see :mod:`agentkit._textcalls`).
- Usage comes from whichever chunk carries it; with ``stream_options.include_usage`` that
  is a final chunk whose ``choices`` is empty.

When is a stream whole? When ``[DONE]`` arrived (:meth:`StreamAssembler.mark_done`) or
every choice that appeared carries a finish reason. A finish reason is the model's own
word that its answer ended, so a stream that has one but lost what follows it (the usage
chunk, the ``[DONE]`` line) is whole, its ``usage`` then ``None``. Without either,
:meth:`StreamAssembler.finish` raises :class:`~agentkit._errors.IncompleteStreamError`,
as it does for a stream that brought no chunk at all (llama.cpp's empty 200 answer), no
choice, or, without a finish reason, a tool call whose arguments are not whole JSON.
"""

from __future__ import annotations

import json
from typing import Any

from ._errors import IncompleteStreamError
from ._events import ReasoningDelta, StreamDelta, TextDelta, ToolCallArgumentsDelta
from ._textcalls import ToolCallTextFilter
from ._wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Choice,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
    distinct_calls,
    new_call_id,
)

__all__ = ["StreamAssembler"]


class _CallState:
    """One tool call under assembly."""

    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = ""
        self.name = ""
        self.arguments: list[str] = []


class _ChoiceState:
    """One choice under assembly."""

    __slots__ = (
        "calls",
        "content",
        "finish_reason",
        "last_call",
        "legacy",
        "reasoning",
        "role",
        "saw_content",
        "shown",
        "text_filter",
        "wire",
    )

    def __init__(self, parse_text_tool_calls: bool) -> None:
        self.role = ""
        self.content: list[str] = []  # the content exactly as it arrived
        self.shown: list[str] = []  # the content as yielded (markup removed)
        self.saw_content = False  # a content field arrived, even an empty one
        self.reasoning: list[str] = []
        self.calls: dict[int, _CallState] = {}  # by key: the wire index, unless reused
        self.wire: dict[int, int] = {}  # a call's wire index -> its key in ``calls``
        self.last_call = -1  # index of the latest call, for deltas without an index
        self.legacy: _CallState | None = None  # a legacy function_call, if only that came
        self.finish_reason: str | None = None
        self.text_filter = ToolCallTextFilter() if parse_text_tool_calls else None


class StreamAssembler:
    """Assembles one streamed answer: chunks in, deltas out, a whole completion at the end.

    Feed each parsed chunk to :meth:`feed` and show the deltas it returns; call
    :meth:`mark_done` on ``[DONE]`` (show what it returns, too); then :meth:`finish`
    gives the ``ChatCompletion`` or raises :class:`~agentkit._errors.IncompleteStreamError`.
    The text deltas of a choice, concatenated, equal its final ``content``.
    """

    __slots__ = (
        "_choices",
        "_created",
        "_done",
        "_error",
        "_id",
        "_model",
        "_parse_text",
        "_received",
        "_shown",
        "_system_fingerprint",
        "_usage",
    )

    def __init__(self, parse_text_tool_calls: bool = True) -> None:
        self._parse_text = parse_text_tool_calls
        self._choices: dict[int, _ChoiceState] = {}
        self._received = False
        self._shown: int | None = None  # the choice whose deltas reach the caller
        self._done = False
        self._id = ""
        self._model = ""
        self._created: int | None = None
        self._system_fingerprint: str | None = None
        self._usage: Usage | None = None
        self._error: Any = None

    @property
    def received_any(self) -> bool:
        """Whether any chunk arrived (a retry is safe only while nothing was shown)."""
        return self._received

    @property
    def done(self) -> bool:
        """Whether ``[DONE]`` arrived."""
        return self._done

    def feed(self, chunk: ChatCompletionChunk) -> list[StreamDelta]:
        """Take one chunk; return its deltas, in the order the caller should see them."""
        self._received = True
        if not self._id and chunk.id:
            self._id = chunk.id
        if not self._model and chunk.model:
            self._model = chunk.model
        if self._created is None:
            self._created = chunk.created
        if chunk.system_fingerprint:
            self._system_fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self._usage = chunk.usage
        extra = chunk.__pydantic_extra__
        if extra and extra.get("error") is not None:
            self._error = extra["error"]  # reported by finish() if the stream stays cut
        shown: list[StreamDelta] = []
        for choice in chunk.choices:
            state = self._choices.get(choice.index)
            if state is None:
                state = self._choices[choice.index] = _ChoiceState(self._parse_text)
            if self._shown is None:
                self._shown = choice.index
            # One choice is shown: another (n > 1, or one nobody asked for) is assembled
            # into the completion but never interleaved into the caller's deltas.
            out = shown if choice.index == self._shown else []
            delta = choice.delta
            if delta.role and not state.role:
                state.role = delta.role
            if delta.reasoning_content:
                state.reasoning.append(delta.reasoning_content)
                out.append(ReasoningDelta(delta.reasoning_content))
            content = delta.content
            if content is not None:
                state.saw_content = True
                if content:
                    state.content.append(content)
                    self._show_text(state, content, out)
            if delta.tool_calls:
                for call_delta in delta.tool_calls:
                    self._feed_call(state, call_delta, out)
            elif not state.calls:
                legacy = delta.__pydantic_extra__
                if legacy and legacy.get("function_call"):
                    self._feed_legacy(state, legacy["function_call"], out)
            if choice.finish_reason:
                state.finish_reason = choice.finish_reason
                self._end_text(state, out)
        return shown

    def mark_done(self) -> list[StreamDelta]:
        """``[DONE]`` arrived: the stream is whole. Returns any text still held back."""
        self._done = True
        out: list[StreamDelta] = []
        for index, state in self._choices.items():
            self._end_text(state, out if index == self._shown else [])
        return out

    def finish(self) -> ChatCompletion:
        """The whole completion; raises ``IncompleteStreamError`` if the stream is not whole.

        The error's ``partial`` holds what arrived (a ``ChatCompletion`` with the raw
        content, or ``None`` when nothing did); it is never an answer.
        """
        if not self._received:
            raise IncompleteStreamError(
                "the stream ended before any chunk arrived (an empty response)"
            )
        problem = self._incomplete_reason()
        if problem is not None:
            raise IncompleteStreamError(problem, partial=self._build(whole=False))
        return self._build(whole=True)

    # --- internals ------------------------------------------------------------------

    def _show_text(self, state: _ChoiceState, content: str, out: list[StreamDelta]) -> None:
        text_filter = state.text_filter
        if text_filter is None:
            state.shown.append(content)
            out.append(TextDelta(content))
            return
        found = len(text_filter.calls)
        shown = text_filter.feed(content)
        if shown:
            state.shown.append(shown)
            out.append(TextDelta(shown))
        if len(text_filter.calls) > found:
            self._announce_text_calls(state, found, out)

    def _end_text(self, state: _ChoiceState, out: list[StreamDelta]) -> None:
        text_filter = state.text_filter
        if text_filter is None:
            return
        shown = text_filter.finish()
        if shown:
            state.shown.append(shown)
            out.append(TextDelta(shown))

    def _announce_text_calls(self, state: _ChoiceState, found: int, out: list[StreamDelta]) -> None:
        assert state.text_filter is not None
        base = len(state.calls)
        for offset, call in enumerate(state.text_filter.calls[found:], start=found):
            out.append(
                ToolCallArgumentsDelta(
                    base + offset, call.id, call.function.name, call.function.arguments
                )
            )

    def _feed_call(
        self, state: _ChoiceState, call_delta: ToolCallDelta, out: list[StreamDelta]
    ) -> None:
        if "index" in call_delta.model_fields_set:
            index = self._key_of(state, call_delta)
        else:
            # No index (some servers): continue the latest call unless a new id says
            # this is another one.
            index = state.last_call
            latest = state.calls.get(index)
            if latest is None or (call_delta.id and latest.id and call_delta.id != latest.id):
                index = max(state.calls, default=-1) + 1
        call = state.calls.get(index)
        is_new = call is None
        if call is None:
            call = state.calls[index] = _CallState()
        state.last_call = index
        # Set once, never concatenated; "" means absent.
        if call_delta.id and not call.id:
            call.id = call_delta.id
        if call_delta.type and not call.type:
            call.type = call_delta.type
        fragment = ""
        function = call_delta.function
        if function is not None:
            if function.name and not call.name:
                call.name = function.name
            if function.arguments:
                fragment = function.arguments
                call.arguments.append(fragment)
        if fragment or is_new:
            out.append(ToolCallArgumentsDelta(index, call.id, call.name, fragment))

    @staticmethod
    def _key_of(state: _ChoiceState, call_delta: ToolCallDelta) -> int:
        """The key of the call a delta with an index continues, or of a new call.

        A delta whose id differs from the id its index already has is another call that
        the server sent under a reused index (some send every call as index 0): it gets a
        key of its own, and later deltas with that index continue it.
        """
        wire = call_delta.index
        key = state.wire.get(wire)
        if key is not None:
            current = state.calls[key]
            if not (call_delta.id and current.id and call_delta.id != current.id):
                return key
        key = wire if key is None and wire not in state.calls else max(state.calls) + 1
        state.wire[wire] = key
        return key

    def _feed_legacy(self, state: _ChoiceState, function_call: Any, out: list[StreamDelta]) -> None:
        if not isinstance(function_call, dict):
            return
        call = state.legacy
        is_new = call is None
        if call is None:
            call = state.legacy = _CallState()
            call.id = new_call_id()
            call.type = "function"
        name = function_call.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        fragment = function_call.get("arguments")
        if not isinstance(fragment, str):
            fragment = ""
        if fragment:
            call.arguments.append(fragment)
        if fragment or is_new:
            out.append(ToolCallArgumentsDelta(0, call.id, call.name, fragment))

    def _incomplete_reason(self) -> str | None:
        all_finished = bool(self._choices) and all(
            state.finish_reason is not None for state in self._choices.values()
        )
        problem: str | None
        if not self._done and not all_finished:
            problem = "the stream ended without [DONE] or a finish reason"
        elif not self._choices:
            problem = "the stream carried no choices"
        else:
            problem = self._cut_tool_call()
        if problem is not None and self._error is not None:
            error = self._error
            if isinstance(error, dict):
                error = error.get("message") or error.get("code") or error
            problem += f"; the server sent an error: {error}"
        return problem

    def _cut_tool_call(self) -> str | None:
        # [DONE] without a finish reason is whole, unless a tool call was cut short.
        for state in self._choices.values():
            if state.finish_reason is not None:
                continue
            for call in _calls_of(state):
                arguments = "".join(call.arguments)
                if arguments and not _is_json(arguments):
                    return (
                        "the stream ended without a finish reason and the arguments of "
                        f"tool call {call.name or call.id or '?'!r} are not whole JSON"
                    )
        return None

    def _build(self, *, whole: bool) -> ChatCompletion:
        choices = [
            self._build_choice(index, self._choices[index], whole=whole)
            for index in sorted(self._choices)
        ]
        return ChatCompletion(
            id=self._id,
            object="chat.completion",
            created=self._created,
            model=self._model,
            choices=choices,
            usage=self._usage,
            system_fingerprint=self._system_fingerprint,
        )

    def _build_choice(self, index: int, state: _ChoiceState, *, whole: bool) -> Choice:
        calls = _calls_of(state)
        for call in calls:
            if not call.id:
                # Never sent (some servers): the transcript needs one to answer the call.
                call.id = new_call_id()
        tool_calls = [
            ToolCall(
                id=call.id,
                type=call.type or "function",
                function=FunctionCall(name=call.name, arguments="".join(call.arguments)),
            )
            for call in calls
        ]
        text: str
        if whole and state.text_filter is not None:
            # Whole: take the text as shown (markup removed) and the calls found in it.
            state.shown.append(state.text_filter.finish())
            text = "".join(state.shown)
            tool_calls.extend(state.text_filter.calls)
        else:
            text = "".join(state.content)
        # Each id once: a missing one made, a repeated call dropped, a reused id renewed.
        tool_calls = distinct_calls(tool_calls)
        if text:
            content: str | None = text
        elif state.saw_content and not tool_calls:
            content = ""
        else:
            content = None
        message = ChatMessage(
            role=state.role or "assistant",
            content=content,
            reasoning_content="".join(state.reasoning) or None,
            tool_calls=tool_calls or None,
        )
        return Choice(index=index, message=message, finish_reason=state.finish_reason)


def _calls_of(state: _ChoiceState) -> list[_CallState]:
    if state.calls:
        return [state.calls[index] for index in sorted(state.calls)]
    return [state.legacy] if state.legacy is not None else []


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
