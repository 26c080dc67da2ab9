"""Scripts a user writes (``agentkit.testing.load_script``, ``python -m agentkit.testing
--script``): turns matched by the user's message, replies by round, clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit import Agent, RunFinished, RunLimits, ServerError, tool
from agentkit.testing import Reply, ScriptedServer, ScriptError, load_script, script_model

ORDERS = {42: "shipped"}


@tool
def find_order(order_id: int) -> str:
    """Look an order up."""
    return ORDERS.get(order_id, "unknown order")


SCRIPT: list[dict[str, Any]] = [
    {
        "when": "ORDER 42",
        "replies": [
            {"tool_calls": [{"name": "find_order", "arguments": {"order_id": 42}, "id": "c1"}]},
            {"text": "Order 42 has shipped.", "reasoning": "the tool said so"},
        ],
    },
    {"replies": ["Ask me about an order."]},
]


def _agent(server: ScriptedServer) -> Agent[str]:
    return Agent("scripted", [find_order], base_url=server.base_url)


def test_each_user_message_walks_its_turn_round_by_round(server: ScriptedServer) -> None:
    server.respond_with(script_model(SCRIPT))
    with _agent(server) as agent:
        first = agent.run("Where is order 42?")
        assert first.output == "Order 42 has shipped."
        assert [m["content"] for m in first.messages if m["role"] == "tool"] == ["shipped"]
        follow_up = agent.run([*first.messages[1:], {"role": "user", "content": "thanks"}])
        assert follow_up.output == "Ask me about an order."
        streamed = list(agent.stream("and order 42 again?"))  # an SSE stream, same script
        assert isinstance(streamed[-1], RunFinished)
        assert streamed[-1].result.output == "Order 42 has shipped."


def test_conversations_at_once_each_walk_the_script(server: ScriptedServer) -> None:
    server.respond_with(script_model(SCRIPT))
    with _agent(server) as agent:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(agent.run, ["order 42?"] * 8))
    assert {a.output for a in answers} == {"Order 42 has shipped."}
    assert server.request_count == 16


@pytest.mark.script_errors
def test_a_conversation_past_the_end_of_its_turn_gets_a_500_that_says_so(
    server: ScriptedServer,
) -> None:
    server.respond_with(
        script_model(
            [{"when": "hi", "replies": [Reply.tool_calls(("find_order", {"order_id": 1}))]}]
        )
    )
    with _agent(server) as agent, pytest.raises(ServerError) as caught:
        agent.run("hi", limits=RunLimits(max_turns=3))
    assert "has 1 replies; this is round 2" in str(caught.value)
    assert "has 1 replies; this is round 2 after the user's 'hi'" in server.errors[0]


@pytest.mark.script_errors
def test_a_message_no_turn_matches_is_a_script_error(server: ScriptedServer) -> None:
    server.respond_with(script_model([{"when": "refund", "replies": ["ok"]}]))
    with _agent(server) as agent, pytest.raises(ServerError):
        agent.run("hello")
    assert "no turn matches the user's 'hello'" in server.errors[0]


@pytest.mark.parametrize(
    ("script", "said"),
    [
        ([], "a non-empty list of turns or of replies"),
        ({"replies": ["x"]}, "a non-empty list of turns or of replies"),
        ([{"when": "x", "replies": []}], "turn 1: 'replies' is a non-empty list"),
        ([{"when": "", "replies": ["x"]}], "turn 1: 'when' is text"),
        ([{"replies": ["x"], "then": 1}], "turn 1: unknown key 'then'"),
        ([{"replies": ["x", 7]}], "turn 1, reply 2: a reply is text or an object, not int"),
        ([{"text": 1}], "reply 1: 'text' and 'reasoning' are text"),
        ([{"tool_calls": []}], "reply 1: 'tool_calls' is a non-empty list"),
        ([{"tool_calls": [{"arguments": {}}]}], "each tool call is an object with a 'name'"),
        ([{"tool_calls": [{"name": "f", "arguments": 3}]}], "a call's 'arguments' is an object"),
        ([{"tool_calls": [{"name": "f", "args": {}}]}], "unknown key 'args'"),
        ([{"say": "x"}], "a reply object has 'text' or 'tool_calls'"),
    ],
)
def test_a_malformed_script_is_refused_naming_where(script: Any, said: str) -> None:
    with pytest.raises(ScriptError) as caught:
        script_model(script, source="s.json")
    assert str(caught.value).startswith("s.json") and said in str(caught.value)


def test_a_python_script_gives_a_handler_or_a_script(
    tmp_path: Path, server: ScriptedServer
) -> None:
    handler_file = tmp_path / "echoing.py"
    handler_file.write_text(
        "from agentkit.testing import Reply\n"
        "def handler(request):\n"
        "    return Reply.text('heard ' + request.messages[-1]['content'])\n"
    )
    scripted_file = tmp_path / "replies.py"
    scripted_file.write_text(
        "from agentkit.testing import Reply\n"
        "script = [Reply.tool_calls(('find_order', {'order_id': 42})), 'found it']\n"
    )
    server.respond_with(load_script(handler_file))
    with _agent(server) as agent:
        assert agent.run("hi").output == "heard hi"
        server.respond_with(load_script(scripted_file))
        result = agent.run("hi")
        assert result.output == "found it"
        assert result.messages[-2]["content"] == "shipped"
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ScriptError, match="defines neither `script` nor a `handler"):
        load_script(tmp_path / "empty.py")
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
    with pytest.raises(ScriptError, match=r"broken\.py: RuntimeError: oops"):
        load_script(tmp_path / "broken.py")


def test_a_missing_or_non_json_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="no such file"):
        load_script(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("[{'text': 1}]")
    with pytest.raises(ScriptError, match=r"bad\.json: not JSON"):
        load_script(tmp_path / "bad.json")


def test_the_command_line_serves_a_script_and_says_where(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(SCRIPT))
    command = [sys.executable, "-m", "agentkit.testing", "--script", str(script)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            assert process.stderr.readline()  # the first of the two lines
            assert process.stderr.readline().strip() == f"export AGENTKIT_BASE_URL={base_url}"
            body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
            answer = httpx.post(f"{base_url}/chat/completions", json=body, timeout=30).json()
            assert answer["choices"][0]["message"]["content"] == "Ask me about an order."
        finally:
            process.terminate()
            assert process.wait() == 0


def test_the_command_line_refuses_a_bad_script_in_one_line(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text('[{"when": "x", "replies": [{"say": 1}]}]')
    done = subprocess.run(
        [sys.executable, "-m", "agentkit.testing", "--script", str(script)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "turn 1, reply 1: a reply object has 'text' or 'tool_calls'" in done.stderr
    assert "Traceback" not in done.stderr
