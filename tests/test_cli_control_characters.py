"""What the command line prints from a model, a judge, a tool or a suite file is shown,
not obeyed: a terminal escape sequence in it (clear the screen, retitle the window, move
the cursor) is written out as ``\\x1b``, and a newline cannot forge a line of its own.
The JSON and HTML reports keep the text as it was."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentkit.cli import main
from agentkit.cli._console import visible
from agentkit.sessions import SQLiteStore
from agentkit.testing import Reply, ScriptedServer, echo

CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
TITLE = "\x1b]0;owned\x07"  # retitle the window
CSI = "\x9b31m"  # the one-byte (C1) control sequence introducer


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as the console asks before colouring or
    writing the answer out."""

    def isatty(self) -> bool:
        return True


def _cli(*argv: str, out: io.StringIO | None = None) -> tuple[int, str, str]:
    out = out if out is not None else io.StringIO()
    err = io.StringIO()
    code = main(list(argv), stdin=io.StringIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]


SUITE = """
import os
from agentkit import Agent
from agentkit.evals import Scenario, Suite, judge

def on(variable):
    return lambda: Agent("scripted", [], "x", base_url=os.environ[variable], api_key="sk-x")

suite = Suite(
    agent=on("BOT_URL"),
    judge=on("JUDGE_URL"),
    scenarios=[
        Scenario("judged \\x1b]0;named\\x07", turns=["hi"], checks=[judge("polite")]),
        Scenario("failing", turns=["hi"]),
    ],
)
"""


def test_eval_writes_out_a_judges_and_a_models_control_characters(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A judge's reason and a model's error went into ``agentkit eval``'s summary as they
    were: ESC sequences cleared the screen of whoever read the nightly eval, and a newline
    in a reason printed a line of the judge's choosing."""
    reason = f"{CLEAR}{TITLE}fine{CSI}\nall 2 scenarios passed"
    suite = tmp_path / "suite.py"
    suite.write_text(SUITE)
    with ScriptedServer() as bot, ScriptedServer() as referee:
        bot.queue(Reply.text("hello"), Reply.error(400, f"bad request {CLEAR}"))
        bot.respond_with(echo())
        referee.respond_with(
            lambda request: Reply.text(json.dumps({"passed": False, "reason": reason}))
        )
        monkeypatch.setenv("BOT_URL", bot.base_url)
        monkeypatch.setenv("JUDGE_URL", referee.base_url)
        report = tmp_path / "report.json"
        code, out, err = _cli("eval", f"{suite}:suite", "--concurrency", "1", "--json", str(report))
    assert code == 0, err
    assert _raw_controls(out) == [] and _raw_controls(err) == []
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert fails == [
        "FAIL judged \\x1b]0;named\\x07 (0/1): judge('polite'): "
        "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07fine\\x9b31m\\nall 2 scenarios passed",
        "FAIL failing (0/1): " + fails[1].split(": ", 1)[1],
    ]
    assert "bad request \\x1b[2J\\x1b[H" in fails[1]
    assert "[1/2] FAIL judged \\x1b]0;named\\x07 (try 1)" in err
    saved = json.loads(report.read_text())  # the report keeps what the judge said
    assert saved["scenarios"][0]["name"] == "judged \x1b]0;named\x07"
    assert saved["scenarios"][0]["attempts"][0]["checks"][0]["detail"] == reason


TOOLS = """
from agentkit import tool

@tool
def look(query: str) -> str:
    \"\"\"Look something up.

    Args:
        query: what to look for.
    \"\"\"
    return "found \\x1b[2J\\x1b]0;owned\\x07 it"
"""


def test_chat_writes_out_control_characters_of_tools_models_and_errors(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """A tool's output, a tool name the model made up, the model's reasoning and an
    error's message from the server reached the terminal raw in ``agentkit chat``."""
    tools = tmp_path / "tools.py"
    tools.write_text(TOOLS)
    server.queue(
        Reply.tool_calls(("look", {"query": f"x{TITLE}"}), (f"gone{CLEAR}", {})),
        Reply.text(f"Done {CLEAR}\nbye", reasoning=f"think {TITLE}"),
        Reply.error(400, f"no {CLEAR} way"),
    )
    base = ["chat", "--base-url", server.base_url, "--tools", str(tools), "-v"]
    code, answer, err = _cli(*base, "look it up")
    assert code == 0, err
    assert _raw_controls(err) == []
    assert "look" in err and "found \\x1b[2J\\x1b]0;owned\\x07 it" in err
    assert 'look({"query": "x\\u001b]0;owned\\u0007"})' in err  # as JSON writes them
    assert "gone\\x1b[2J\\x1b[H not run" in err
    assert "think \\x1b]0;owned\\x07" in err
    assert answer == f"Done {CLEAR}\nbye\n"  # into a file: the answer as it was
    code, _, err = _cli(*base, "again")
    assert code == 1
    assert "request refused: no \\x1b[2J\\x1b[H way" in err and _raw_controls(err) == []


def test_on_a_terminal_the_answer_is_written_out_and_keeps_its_lines(
    server: ScriptedServer,
) -> None:
    server.queue(Reply.text(f"one {CLEAR}\r\ntwo\tthree{CSI}\rfour"))
    code, shown, err = _cli(
        "chat", "--base-url", server.base_url, "--no-tools", "hi", out=Terminal()
    )
    assert code == 0, err
    assert shown == "one \\x1b[2J\\x1b[H\ntwo\tthree\\x9b31m\\rfour\n"


def test_sessions_show_writes_out_what_the_conversation_holds(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    name = f"c{TITLE}"
    claim = store.claim(name)
    store.append(
        claim,
        [
            {"role": "user", "content": f"hi {CLEAR}"},
            {"role": "assistant", "content": f"hello {TITLE}"},
        ],
    )
    store.release(claim)
    store.close()
    for argv in (["show", name], ["list"]):
        code, out, err = _cli("sessions", *argv, "--store", str(tmp_path / "s.db"))
        assert code == 0, err
        assert _raw_controls(out) == [] and "c\\x1b]0;owned\\x07" in out
    code, out, _ = _cli("sessions", "show", name, "--store", str(tmp_path / "s.db"))
    assert "user: hi \\x1b[2J\\x1b[H" in out and "assistant: hello \\x1b]0;owned\\x07" in out


@given(st.text())
def test_visible_leaves_no_control_character_and_hides_nothing(text: str) -> None:
    shown = visible(text)
    assert _raw_controls(shown) == []
    assert "\n" not in shown
    assert visible(text, lines=True).count("\n") == text.count("\n")
    # nothing but the escapes was changed: ASCII text comes back from them
    if text.isascii() and "\\" not in text:
        assert shown.encode().decode("unicode_escape") == text


def test_sessions_json_writes_out_what_a_terminal_would_obey_as_json_escapes(
    tmp_path: Path,
) -> None:
    """``agentkit sessions show --json`` wrote a C1 control sequence and a right-to-left
    override raw (JSON writes out only ESC and the other C0 controls); they are JSON
    escapes now, the same data to a parser."""
    store = SQLiteStore(tmp_path / "s.db")
    said = f"hello {CSI} \u202e00:90 noM"
    claim = store.claim("c1")
    store.append(claim, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": said}])
    store.release(claim)
    store.close()
    code, out, err = _cli("sessions", "show", "c1", "--json", "--store", str(tmp_path / "s.db"))
    assert code == 0, err
    assert "\x9b" not in out and "\u202e" not in out
    assert "\\u009b31m \\u202e00:90 noM" in out
    assert json.loads(out)["messages"][-1]["content"] == said


def test_tools_writes_a_descriptions_hidden_characters_as_json_escapes(tmp_path: Path) -> None:
    """``agentkit tools FILE`` printed a tool's description with its C1 controls and
    right-to-left overrides raw."""
    tools = tmp_path / "tools.py"
    tools.write_text(
        "from agentkit import tool\n\n@tool\ndef book(slot: str) -> str:\n"
        '    """Book a slot \\u202eyadnoM\\x9b2J."""\n    return slot\n'
    )
    code, out, err = _cli("tools", str(tools))
    assert code == 0, err
    assert "\u202e" not in out and "\x9b" not in out
    assert "Book a slot \\u202eyadnoM\\u009b2J." in out
