"""``agentkit serve`` and ``agentkit chat --agent``, as a user runs them."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentkit.cli import main
from agentkit.testing import ScriptedServer, echo

from ._serving import serving as serve_process

BOT = '''
import os
from agentkit import Agent, tool

@tool
def get_order(order_id: int) -> str:
    """Look an order up.

    Args:
        order_id: the order number.
    """
    return f"order {order_id}: shipped"

desk = Agent("scripted", [get_order], "You run the order desk.",
             base_url=os.environ["BOT_MODEL_URL"], api_key="sk-model-key-123456")
not_an_agent = 5
'''


@pytest.fixture
def bot(tmp_path: Path, model: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bot.py"
    path.write_text(textwrap.dedent(BOT))
    monkeypatch.setenv("BOT_MODEL_URL", model.base_url)
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(""), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "{bot}:desk", "--host", "0.0.0.0"], "--host 0.0.0.0 is reachable"),
        (["serve", "{bot}:desk", "--api-key", "short"], "at least 8 characters"),
        (["serve", "{bot}:nobody"], "has no 'nobody' (it has desk)"),
        (["serve", "{bot}:not_an_agent"], "is a int, not an agentkit Agent"),
        (["serve", "{bot}"], "name the agent as FILE.py:NAME"),
        (["serve", "missing.py:desk"], "no such file"),
        (["chat", "--agent", "{bot}:desk", "--tools", "x.py", "hi"], "drop --tools"),
    ],
)
def test_usage_errors_are_one_line_without_a_traceback(
    bot: Path, argv: list[str], expected: str
) -> None:
    code, _, err = run(*(arg.format(bot=bot) for arg in argv))
    assert code == 2
    assert expected in err
    assert "Traceback" not in err and err.count("\n") <= 2
    assert err.startswith("agentkit: error: ")


def test_an_open_host_without_a_key_says_how_to_make_one(bot: Path) -> None:
    code, _, err = run("serve", f"{bot}:desk", "--host", "0.0.0.0")
    error, hint = err.splitlines()
    assert code == 2 and "no API key is set" in error
    assert hint.startswith("agentkit: hint: give --api-key KEY (or set AGENTKIT_SERVE_API_KEY)")


def test_a_port_in_use_is_a_usage_error(bot: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run("serve", f"{bot}:desk", "--port", str(busy.getsockname()[1]))
    assert code == 2 and "is in use" in err


def test_chat_with_your_own_agent(bot: Path, model: ScriptedServer) -> None:
    model.respond_with(echo())
    code, out, err = run("chat", "--agent", f"{bot}:desk", "Where", "is", "1042?")
    assert code == 0, err
    assert out.strip() == "Where is 1042?"
    assert model.requests[0].messages[0]["content"] == "You run the order desk."


@pytest.fixture
def serving(bot: Path, model: ScriptedServer) -> Iterator[str]:
    """``agentkit serve bot.py:desk --workers 2`` as a real process; yields its URL."""
    model.respond_with(echo())
    env = {**os.environ, "BOT_MODEL_URL": model.base_url}
    env.pop("AGENTKIT_SERVE_API_KEY", None)
    argv = [f"{bot}:desk", "--workers", "2", "--allowed-host", "desk.example"]
    with serve_process(argv, env, ready_timeout=120) as url:
        yield url


@pytest.mark.timeout(180)  # two worker processes start slowly on a loaded machine
def test_serve_with_two_workers_answers_on_the_port(serving: str) -> None:
    for index in range(6):  # spread over both workers
        response = httpx.post(
            serving + "/v1/chat/completions",
            json={"model": "desk", "messages": [{"role": "user", "content": f"n{index}"}]},
            timeout=30,
        )
        assert response.json()["choices"][0]["message"]["content"] == f"n{index}"
    assert "<title>desk</title>" in httpx.get(serving + "/").text
    # each worker guards against DNS rebinding, with the operator's name allowed
    assert httpx.get(serving + "/v1/models", headers={"Host": "desk.example"}).status_code == 200
    assert httpx.get(serving + "/v1/models", headers={"Host": "evil.example"}).status_code == 421


def test_importing_agentkit_serve_loads_neither_starlette_nor_uvicorn() -> None:
    code = (
        "import sys, agentkit, agentkit.serve; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
