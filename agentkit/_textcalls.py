"""Tool calls written as ``<tool_call>{...}</tool_call>`` in the content, made real.

Qwen served without a tool-call parser (vLLM without ``--tool-call-parser``, for example)
answers a tool call with text in Hermes style::

    <tool_call>
    {"name": "get_current_weather", "arguments": {"location": "Singapore"}}
    </tool_call>

possibly several blocks in a row. :func:`extract_text_tool_calls` turns each well-formed
block into a :class:`~agentkit._wire.ToolCall` and removes it from the content;
:class:`ToolCallTextFilter` does the same incrementally for a stream, holding back text
from the moment a ``<tool_call>`` tag may be starting until it is resolved, so no markup
reaches the caller. Both run the same scanner, so the streamed text and the final content
always agree.

The rules, identical in both:

- A block is ``<tool_call>`` up to the next ``</tool_call>``. It is well-formed when its
  body is a JSON object with a non-empty string ``name`` and an object ``arguments``
  (also accepted: ``arguments`` as a string holding a JSON object, or absent or null,
  meaning no arguments). Arguments are re-serialised as a compact JSON text.
- A well-formed block is removed together with the whitespace just before it; when any
  block was removed, whitespace at the very end of the content goes too, and content
  left empty becomes ``None``.
- Anything else (a body that is not such an object, a tag that is never closed) is left
  exactly as written: nothing is guessed.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from ._wire import ChatMessage, FunctionCall, ToolCall, new_call_id

__all__ = ["ToolCallTextFilter", "extract_text_tool_calls"]

_OPEN = "<tool_call>"
_CLOSE = "</tool_call>"


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON; json.dumps would write them back out as invalid JSON.
    raise ValueError(f"{name} is not JSON")


def _parse_block(body: str) -> ToolCall | None:
    """The tool call a block's body describes, or ``None`` when it is not well-formed."""
    try:
        obj: Any = json.loads(body, parse_constant=_refuse_constant)
    except ValueError:  # JSONDecodeError, too many digits, NaN
        return None
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = obj.get("arguments")
    if arguments is None:
        arguments = {}
    elif isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, parse_constant=_refuse_constant)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(
        id=new_call_id(),
        type="function",
        function=FunctionCall(
            name=name,
            arguments=json.dumps(arguments, ensure_ascii=False, separators=(",", ":")),
        ),
    )


class ToolCallTextFilter:
    """Removes ``<tool_call>`` blocks from text that arrives in pieces.

    :meth:`feed` returns the text that is safe to show now (never any part of a tag or a
    block); text that might still turn out to be markup, and whitespace that might turn
    out to precede a block, is held back. :meth:`finish` returns what was held at the end.
    ``calls`` lists the tool calls found so far, in order. The concatenated output is the
    same for any split of the input, and equals what :func:`extract_text_tool_calls`
    leaves in the content (``""`` for ``None``).

    Linear in the length of the text, however it is split: held whitespace and a block's
    body are kept as lists of pieces and joined once, and the close tag is looked for only
    where it can newly end (80,000 one-space pieces: milliseconds, not seconds).
    """

    __slots__ = ("_block", "_held", "_held_blank", "_in_block", "_lead", "_tail", "calls")

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self._held: list[str] = []  # outside a block: whitespace, then maybe a partial tag
        self._held_blank = False  # the held text is whitespace only
        self._in_block = False
        self._lead = ""  # the whitespace just before the open block's tag
        self._block: list[str] = []  # the open block's body so far, in pieces
        self._tail = ""  # the body's last characters, where a close tag may be starting

    def feed(self, text: str) -> str:
        """Take the next piece of text; return the part that is plain text for certain."""
        if not self._in_block:
            if not self._held:
                if "<" not in text and not text[-1:].isspace():
                    return text  # the common case: nothing to hold
            elif self._held_blank and text.isspace():
                self._held.append(text)  # more whitespace that may precede a block
                return ""
        buf = text
        if self._held:
            buf = "".join(self._held) + text
            self._held = []
        out: list[str] = []
        while buf:
            buf = self._block_step(buf, out) if self._in_block else self._text_step(buf, out)
        return "".join(out)

    def _text_step(self, buf: str, out: list[str]) -> str:
        """Text outside a block: show what is plain, hold the rest; the text after an
        open tag (now inside a block) is returned."""
        start = buf.find(_OPEN)
        if start < 0:
            # No whole open tag: hold a possible start of one (it has only one "<", so
            # only the last "<" can begin it) and the whitespace before it.
            cut = len(buf)
            lt = buf.rfind("<", max(0, len(buf) - len(_OPEN) + 1))
            if lt >= 0 and _OPEN.startswith(buf[lt:]):
                cut = lt
            head = buf[:cut].rstrip()
            out.append(head)
            rest = buf[len(head) :]
            if rest:
                self._held = [rest]
                self._held_blank = rest.isspace()
            return ""
        head = buf[:start].rstrip()
        out.append(head)
        self._in_block = True
        self._lead = buf[len(head) : start]
        return buf[start + len(_OPEN) :]

    def _block_step(self, buf: str, out: list[str]) -> str:
        """Text inside a block: keep it until the close tag; the text after it is returned."""
        seen = self._tail + buf
        end = seen.find(_CLOSE)
        self._block.append(buf)
        if end < 0:
            self._tail = seen[-(len(_CLOSE) - 1) :]
            return ""
        whole = "".join(self._block)
        close_at = len(whole) - len(seen) + end
        body = whole[:close_at]
        call = _parse_block(body)
        if call is None:
            out.append(self._lead + _OPEN + body + _CLOSE)  # malformed: the text stays
        else:
            self.calls.append(call)  # whitespace before the block goes with it
        self._in_block, self._lead, self._block, self._tail = False, "", [], ""
        return whole[close_at + len(_CLOSE) :]

    def finish(self) -> str:
        """End of the text: return what was held back, then start afresh.

        An unclosed or partial tag is plain text after all. Trailing whitespace is dropped
        when a block was found (it separated blocks, or followed the last one).
        """
        held = "".join(self._held)
        if self._in_block:
            held = self._lead + _OPEN + "".join(self._block)
        self._held, self._in_block, self._lead, self._block, self._tail = [], False, "", [], ""
        if self.calls and held.isspace():
            return ""
        return held


def extract_text_tool_calls(message: ChatMessage) -> ChatMessage:
    """Turn ``<tool_call>{...}</tool_call>`` blocks in the content into tool calls.

    Returns ``message`` itself when its content has no well-formed block; otherwise a
    copy whose content has the blocks removed (``None`` if nothing else was written) and
    whose ``tool_calls`` lists any calls it already had, then the extracted ones, each
    with a fresh ``call_...`` id. The finish reason plays no part: servers without a tool
    parser report ``"stop"`` for these answers.
    """
    content = message.content
    if not content or _OPEN not in content:
        return message
    scanner = ToolCallTextFilter()
    text = scanner.feed(content) + scanner.finish()
    if not scanner.calls:
        return message
    return message.model_copy(
        update={
            "content": text or None,
            "tool_calls": [*(message.tool_calls or []), *scanner.calls],
        }
    )
