"""Every example, run for real against agentkit.testing's scripted model on loopback.

Each example module is loaded from its file and its ``main`` is called with the scripted
server's base URL, as a user would run it; some also run as real subprocesses. The weather
tool talks to a loopback fake of Open-Meteo, so nothing leaves the machine.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agentkit.testing import RecordedRequest, Reply, ScriptedServer, tool_then_answer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WEATHER = "It is 31°C and thunderstorms in Singapore, Singapore (wind 12 km/h)."


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pydantic resolve annotations through it
    spec.loader.exec_module(module)
    return module


# --- fixtures: the scripted model and a loopback Open-Meteo --------------------------------


class _OpenMeteo(BaseHTTPRequestHandler):
    """Singapore, 31.2 °C, thunderstorms, wind 12.4 km/h: whatever place is asked for."""

    def do_GET(self) -> None:
        if self.path.startswith("/v1/search"):
            place = {"name": "Singapore", "latitude": 1.29, "longitude": 103.85,
                     "country": "Singapore", "country_code": "SG"}  # fmt: skip
            body: dict[str, Any] = {"results": [place]}
        else:
            current = {"temperature_2m": 31.2, "weather_code": 95, "wind_speed_10m": 12.4}
            body = {"current": current, "current_units": {}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def open_meteo(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenMeteo)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AGENTKIT_GEOCODING_URL", f"{base}/v1/search")
    monkeypatch.setenv("AGENTKIT_FORECAST_URL", f"{base}/v1/forecast")
    monkeypatch.delenv("AGENTKIT_BASE_URL", raising=False)
    yield base
    server.shutdown()
    server.server_close()


@pytest.fixture
def model() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server
        assert not server.errors


def tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return [m for m in request.messages if m["role"] == "tool"]


def assert_is_now(answer: str, zone: str) -> None:
    """``answer`` is the time tool's sentence for ``zone``, within a few seconds of now."""
    stamp = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", answer)
    assert stamp, answer
    now = datetime.now(ZoneInfo(zone)).replace(tzinfo=None)
    assert abs(now - datetime.fromisoformat(stamp[0])) < timedelta(seconds=10)
    assert f"in {zone}" in answer


# --- weather_time_bot.py ------------------------------------------------------------------


def test_weather_time_bot_answers_over_many_rounds(
    model: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    model.queue(
        Reply.tool_calls(("get_current_weather", {"location": "Singapore"})),
        Reply.tool_calls(("get_current_time", {"timezone": "Asia/Singapore"})),
        Reply.text("Thunderstorms at 31°C, and it is evening in Singapore."),
    )
    bot = load_example("weather_time_bot")
    bot.main(["--base-url", model.base_url, "Weather", "and", "time", "in", "Singapore?"])

    out = capsys.readouterr().out
    assert f"<- {WEATHER}" in out
    assert '-> get_current_weather({"location": "Singapore"})' in out
    assert "Final answer: Thunderstorms at 31°C, and it is evening in Singapore." in out
    first, second, third = model.requests
    assert first.messages[0]["role"] == "system"
    assert first.messages[-1] == {"role": "user", "content": "Weather and time in Singapore?"}
    assert {t["function"]["name"] for t in first.tools} == {
        "get_current_time",
        "get_current_weather",
    }
    assert tool_messages(second)[-1]["content"] == WEATHER
    assert_is_now(tool_messages(third)[-1]["content"], "Asia/Singapore")
    assert first.model == "qwen-plus"


def test_weather_time_bot_keeps_the_conversation_across_typed_questions(
    model: ScriptedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("What time is it in Tokyo?\nAnd in Paris?\n\n"))
    model.queue(
        Reply.tool_calls(("get_current_time", {"timezone": "Asia/Tokyo"})),
        Reply.text("It is late in Tokyo."),
        Reply.tool_calls(("get_current_time", {"timezone": "Europe/Paris"})),
        Reply.text("It is afternoon in Paris."),
    )
    load_example("weather_time_bot").main(["--base-url", model.base_url, "--model", "qwen-max"])

    out = capsys.readouterr().out
    assert "Final answer: It is late in Tokyo." in out
    assert "Final answer: It is afternoon in Paris." in out
    assert len(model.requests) == 4
    later = model.requests[2].messages  # the second question sees the first exchange
    assert [m["role"] for m in later] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert later[-1]["content"] == "And in Paris?"
    assert_is_now(tool_messages(model.requests[3])[-1]["content"], "Europe/Paris")
    assert all(request.model == "qwen-max" for request in model.requests)


def test_weather_time_bot_runs_as_a_script(model: ScriptedServer) -> None:
    model.queue(
        Reply.tool_calls(("get_current_weather", {"location": "Singapore"})),
        Reply.text("Stormy."),
    )
    env = {**os.environ, "AGENTKIT_BASE_URL": model.base_url}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "weather_time_bot.py"), "Weather in Singapore?"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Final answer: Stormy." in done.stdout
    assert tool_messages(model.requests[1])[-1]["content"] == WEATHER


def test_an_example_without_a_key_says_which_variable_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k and "BASE_URL" not in k}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "weather_time_bot.py"), "What time is it?"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "DASHSCOPE_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr


# --- streaming_chat.py --------------------------------------------------------------------


def test_streaming_chat_prints_tool_activity_then_the_streamed_answer(
    model: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    model.queue(
        Reply.tool_calls(("get_current_time", {"timezone": "UTC"}), style="dashscope"),
        Reply.text("It is noon in London, give or take."),
    )
    load_example("streaming_chat").main(["--base-url", model.base_url, "What time is it?"])

    out = capsys.readouterr().out
    started = out.index('[get_current_time {"timezone": "UTC"}]')
    finished = out.index("[ok in ")
    assert started < finished < out.index("It is noon in London, give or take.")
    assert " in UTC (UTC+00:00)" in out
    assert all(request.stream for request in model.requests)
    assert_is_now(tool_messages(model.requests[1])[-1]["content"], "UTC")


def test_streaming_chat_keeps_history_and_shows_failed_tools(
    model: ScriptedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Time on Mars?\nThanks!\n"))
    model.queue(
        Reply.tool_calls(("get_current_time", {"timezone": "Mars/Olympus"})),
        Reply.text("Mars has no time zone."),
        Reply.text("You're welcome."),
    )
    load_example("streaming_chat").main(["--base-url", model.base_url])

    out = capsys.readouterr().out
    assert "[failed in " in out
    assert "'Mars/Olympus'" in out
    assert "You're welcome." in out
    assert [m["role"] for m in model.requests[2].messages][-3:] == ["tool", "assistant", "user"]


# --- order_desk.py ------------------------------------------------------------------------


def _orders(db: Path) -> dict[int, tuple[str, str]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT id, status, address FROM orders").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def _refunds(db: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT order_id, amount_cents, reason FROM refunds").fetchall()


def test_order_desk_changes_an_address_and_cancels_in_the_database(
    model: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "orders.db"
    model.queue(
        Reply.tool_calls(("list_orders", {})),
        Reply.tool_calls(
            ("change_shipping_address", {"order_id": 1001, "new_address": "1 Main St, Leeds"}),
            ("cancel_order", {"order_id": 1002}),  # shipped: the tool refuses
        ),
        Reply.text("Your keyboard now ships to Leeds; the dock has already shipped."),
    )
    desk = load_example("order_desk")
    desk.main(["--db", str(db), "--base-url", model.base_url, "Send my keyboard to Leeds"])

    assert "now ships to Leeds" in capsys.readouterr().out
    orders = _orders(db)
    assert orders[1001] == ("processing", "1 Main St, Leeds")
    assert orders[1002][0] == "shipped"
    listed = json.loads(tool_messages(model.requests[1])[0]["content"])
    assert {order["order_id"] for order in listed} == {1001, 1002, 1003}  # Ada's only
    results = [m["content"] for m in tool_messages(model.requests[2])[1:]]
    assert results[0] == "Order 1001 will now ship to 1 Main St, Leeds."
    assert "can no longer be cancelled" in results[1]
    assert "RunContext" not in json.dumps(model.requests[0].tools)  # never shown to the model


def test_order_desk_never_touches_another_customers_order(
    model: ScriptedServer, tmp_path: Path
) -> None:
    db = tmp_path / "orders.db"
    model.queue(
        Reply.tool_calls(("cancel_order", {"order_id": 1004})),  # Grace's order
        Reply.text("I can't find that order."),
    )
    load_example("order_desk").main(["--db", str(db), "--base-url", model.base_url, "Cancel 1004"])
    assert _orders(db)[1004][0] == "delivered"
    assert tool_messages(model.requests[1])[0]["content"] == "The customer has no order 1004."


def test_order_desk_refund_runs_once_approved(model: ScriptedServer, tmp_path: Path) -> None:
    desk = load_example("order_desk")
    db = desk.create_database(tmp_path / "orders.db")
    asked: list[Any] = []

    def approve(*args: Any) -> bool:
        asked.append(args)
        return True

    model.queue(
        Reply.tool_calls(("refund_order", {"order_id": 1003, "reason": "It flickers"})),
        Reply.text("Refunded."),
    )
    agent = desk.make_agent(base_url=model.base_url, approve=approve)
    result = agent.run("My lamp flickers, refund it", deps=desk.Desk(db, "ada@example.com"))

    assert result.output == "Refunded."
    assert len(asked) == 1
    assert _refunds(db) == [(1003, 4500, "It flickers")]
    assert _orders(db)[1003][0] == "refunded"
    assert tool_messages(model.requests[1])[0]["content"] == "Refunded $45.00 for order 1003."


def test_order_desk_refund_waits_for_a_person_then_runs_once_approved_later(
    model: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "orders.db"
    model.queue(Reply.tool_calls(("refund_order", {"order_id": 1003, "reason": "Broken"})))
    # stdin is not a terminal under pytest: the refund waits, stored in the session
    load_example("order_desk").main(["--db", str(db), "--base-url", model.base_url, "Refund"])
    assert "waiting for approval: refund_order(order_id=1003" in capsys.readouterr().out
    assert _refunds(db) == [] and _orders(db)[1003][0] == "delivered"
    assert model.request_count == 1

    model.queue(Reply.text("Your refund is done."))  # a manager approves, in a new process
    load_example("order_desk").main(["--db", str(db), "--base-url", model.base_url, "--approve"])
    assert "Your refund is done." in capsys.readouterr().out
    assert _refunds(db) == [(1003, 4500, "Broken")]
    assert tool_messages(model.requests[1])[0]["content"] == "Refunded $45.00 for order 1003."


def test_order_desk_continues_the_customers_conversation(
    model: ScriptedServer, tmp_path: Path
) -> None:
    db = tmp_path / "orders.db"
    model.queue(Reply.text("Hello Ada."), Reply.text("Still here."))
    load_example("order_desk").main(["--db", str(db), "--base-url", model.base_url, "Hi"])
    load_example("order_desk").main(["--db", str(db), "--base-url", model.base_url, "Again"])
    sent = model.requests[1].messages
    assert [m["content"] for m in sent[1:]] == ["Hi", "Hello Ada.", "Again"]
    assert "ada@example.com" in sent[0]["content"]


# --- structured_output.py -----------------------------------------------------------------


def _answer_with(ticket: dict[str, Any]) -> Any:
    """A scripted model that answers ``ticket`` the way the agent asked for structure."""

    def handler(request: RecordedRequest) -> Reply:
        body = request.json()
        if "response_format" in body:
            return Reply.text(json.dumps(ticket))
        (final,) = [t["function"]["name"] for t in request.tools]
        return Reply.tool_calls((final, ticket))

    return handler


def test_structured_output_returns_a_validated_ticket(
    model: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    model.respond_with(
        _answer_with(
            {"category": "refund", "urgency": 5, "order_id": 1002, "summary": "Broken dock."}
        )
    )
    example = load_example("structured_output")
    example.main(["--base-url", model.base_url, "My dock arrived broken! Order 1002."])

    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "category": "refund", "urgency": 5, "order_id": 1002, "summary": "Broken dock."
    }  # fmt: skip
    assert "paging the on-call agent about a refund ticket" in captured.err
    assert len(model.requests) == 1


def test_structured_output_lets_the_model_correct_an_invalid_answer(
    model: ScriptedServer,
) -> None:
    valid = {"category": "shipping", "urgency": 2, "order_id": None, "summary": "Where is it?"}
    invalid = {**valid, "urgency": 9}
    answers = [_answer_with(invalid), _answer_with(valid)]
    model.respond_with(lambda request: answers[len(model.requests) > 1](request))

    example = load_example("structured_output")
    ticket = example.triage("Where is my parcel?", base_url=model.base_url)

    assert isinstance(ticket, example.Ticket)
    assert ticket.urgency == 2
    assert ticket.order_id is None
    assert len(model.requests) == 2
    assert "urgency" in json.dumps(model.requests[1].messages[-1])


# --- many_conversations.py ----------------------------------------------------------------


def test_many_conversations_overlap_on_one_event_loop(
    model: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    two_rounds = tool_then_answer(("get_current_time", {"timezone": "Asia/Tokyo"}), answer="Late.")
    count = 12
    first_rounds = 0
    all_asked = asyncio.Event()

    async def overlapping(request: RecordedRequest) -> Reply:
        # Each first round waits until every conversation has asked: one after another
        # they would never get there (a test timeout), overlapping they all do.
        nonlocal first_rounds
        if request.messages[-1]["role"] == "user":
            first_rounds += 1
            if first_rounds == count:
                all_asked.set()
            await all_asked.wait()
        return two_rounds(request)

    model.respond_with(overlapping)
    load_example("many_conversations").main(["--base-url", model.base_url, "--count", str(count)])

    out = capsys.readouterr().out
    assert re.search(r"conversations in ([\d.]+) s", out)
    assert out.count("->  Late.") == count
    assert len(model.requests) == 2 * count
    questions = {r.messages[-1]["content"] for r in model.requests if len(r.messages) == 2}
    assert "What time is it in Tokyo?" in questions and len(questions) == 8


# --- interop.py ---------------------------------------------------------------------------


def test_interop_with_the_openai_sdk(model: ScriptedServer) -> None:
    pytest.importorskip("openai", reason="the interop extra is not installed")
    model.queue(
        Reply.tool_calls(("get_current_time", {"timezone": 5})),  # invalid: fed back
        Reply.tool_calls(("get_current_time", {"timezone": "Asia/Tokyo"})),
        Reply.text("It is late in Tokyo."),
    )
    interop = load_example("interop")
    answer = interop.with_openai("Time in Tokyo?", "qwen-plus", model.base_url, "test-key")

    assert answer == "It is late in Tokyo."
    assert model.requests[0].tools == [t.to_openai() for t in interop.TOOLS.values()]
    assert "timezone" in tool_messages(model.requests[1])[0]["content"]
    assert_is_now(tool_messages(model.requests[2])[-1]["content"], "Asia/Tokyo")


def test_interop_with_langchain(model: ScriptedServer) -> None:
    pytest.importorskip("langchain_openai", reason="the interop extra is not installed")
    model.queue(
        Reply.tool_calls(
            ("get_current_weather", {"location": "Singapore"}),
            ("get_current_time", '{"timezone": "Asia/Sing'),  # cut JSON: explained, not run
        ),
        Reply.tool_calls(("get_current_time", {"timezone": "Asia/Singapore"})),
        Reply.text("Stormy evening."),
    )
    interop = load_example("interop")
    answer = interop.with_langchain("Singapore?", "qwen-plus", model.base_url, "test-key")

    assert answer == "Stormy evening."
    weather, broken = tool_messages(model.requests[1])
    assert weather["content"] == WEATHER
    assert "JSON" in broken["content"]
    assert_is_now(tool_messages(model.requests[2])[-1]["content"], "Asia/Singapore")


# --- every example, as a newcomer first runs it ---------------------------------------------

ALL_EXAMPLES = sorted(path.stem for path in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_every_example_explains_its_options(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--model MODEL" in done.stdout and "--base-url BASE_URL" in done.stdout
    assert "qwen-plus" in done.stdout and "AGENTKIT_BASE_URL" in done.stdout  # the defaults
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text(encoding="utf-8"))
    arguments = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
    ]
    assert arguments
    for argument in arguments:  # every option and argument says what it is for
        assert any(keyword.arg == "help" for keyword in argument.keywords), ast.unparse(argument)


def test_interop_without_its_packages_says_what_to_install() -> None:
    # as if openai were not installed: importing it fails
    code = (
        "import runpy, sys; sys.modules['openai'] = None; sys.argv = ['interop.py']; "
        f"runpy.run_path({str(EXAMPLES / 'interop.py')!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert 'pip install -e ".[interop]"' in done.stderr
