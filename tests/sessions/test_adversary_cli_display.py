"""An outside review of the command line a person decides waiting calls from: what it
shows must be what runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agentkit.cli import main
from agentkit.cli._loading import load_agent
from agentkit.testing import Reply, ScriptedServer

BOT = '''
import os
from agentkit import Agent, tool
from agentkit.sessions import SQLiteStore

@tool(requires_approval=True)
def book(slot: str) -> str:
    """Book a slot.

    Args:
        slot: the slot, e.g. "Mon 09:00".
    """
    return f"booked {slot!r}"

desk = Agent("scripted", [book], "You run the clinic desk.",
             base_url=os.environ["BOT_MODEL_URL"], api_key="sk-model-key-123456",
             store=SQLiteStore(os.environ["BOT_STORE"]))
'''

DISGUISED = '{"slot": "\u202e00:90 noM\u200b"}'
"""Read as "Mon 09:00" where the text runs right to left; the tool gets the reversed text."""


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def bot(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "bot.py"
    path.write_text(BOT)
    monkeypatch.setenv("BOT_MODEL_URL", server.base_url)
    monkeypatch.setenv("BOT_STORE", str(tmp_path / "desk.db"))
    return f"{path}:desk"


def test_pending_and_approve_write_out_characters_that_would_disguise_a_call(
    bot: str, server: ScriptedServer
) -> None:
    """``agentkit sessions pending`` and ``approve`` printed the arguments as the model
    wrote them: a right-to-left override reversed the rest of the line on a terminal that
    lays text out both ways. They are written out as ``\\u202e``, as on the chat page."""
    server.queue(Reply.tool_calls(("book", DISGUISED, "call_1")))
    _, agent = load_agent(bot)
    with agent:
        assert agent.run("book monday", session="c1").status == "paused"
    code, out, err = _cli("sessions", "pending", "--agent", bot)
    assert code == 0, err
    assert 'book({"slot": "\\u202e00:90 noM\\u200b"})' in out
    server.queue(Reply.text("Booked."))
    code, out, err = _cli("sessions", "approve", "c1", "call_1", "--agent", bot)
    assert code == 0, err
    assert 'approved call_1 book({"slot": "\\u202e00:90 noM\\u200b"})' in err
    for shown in (out, err):
        assert "\u202e" not in shown and "\u200b" not in shown


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ


def test_pending_shows_joined_emoji_and_persian_as_written_and_an_override_escaped(
    bot: str, server: ScriptedServer
) -> None:
    """624dff7 wrote every zero-width joiner and non-joiner out: an emoji family read
    ``👨\\u200d👩\\u200d👧`` and a Persian word was broken in two. A joiner that joins
    two letters or emoji is shown as written; the override beside them still is not."""
    arguments = f'{{"slot": "{FAMILY} {PERSIAN} \u202e00:90 noM"}}'
    server.queue(Reply.tool_calls(("book", arguments, "call_1")))
    _, agent = load_agent(bot)
    with agent:
        assert agent.run("book monday", session="c1").status == "paused"
    code, out, err = _cli("sessions", "pending", "--agent", bot)
    assert code == 0, err
    assert f'book({{"slot": "{FAMILY} {PERSIAN} \\u202e00:90 noM"}})' in out
    assert "\u202e" not in out
    code, out, err = _cli("sessions", "show", "c1", "--agent", bot)
    assert code == 0, err
    assert f"{FAMILY} {PERSIAN} \\u202e00:90 noM" in out and "\u202e" not in out


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_approve_writes_the_answers_control_characters_out_on_a_terminal(
    bot: str, server: ScriptedServer
) -> None:
    """The answer after ``agentkit sessions approve`` is the model's text: on a terminal its
    escape sequences are written out (``\\x1b``) and its lines kept, as ``agentkit chat``
    writes its answer; piped, it is as the model wrote it."""
    for name, out in (("c1", Terminal()), ("c2", io.StringIO())):
        server.queue(Reply.tool_calls(("book", '{"slot": "Mon 09:00"}', "call_1")))
        _, agent = load_agent(bot)
        with agent:
            assert agent.run("book monday", session=name).status == "paused"
        server.queue(Reply.text("Booked \x1b]0;owned\x07\nsee you"))
        err = io.StringIO()
        argv = ["sessions", "approve", name, "call_1", "--agent", bot]
        assert main(argv, stdin=io.StringIO(), stdout=out, stderr=err) == 0, err.getvalue()
        shown = out.getvalue()
        if isinstance(out, Terminal):
            assert shown == "Booked \\x1b]0;owned\\x07\nsee you\n"
        else:
            assert shown == "Booked \x1b]0;owned\x07\nsee you\n"
