"""``agentkit demo``: the weather-and-time bot, offline, with a scripted stand-in for Qwen.

The agent loop, the client and the two built-in tools are the real ones. Only the model and
the weather service are scripted: :func:`scripted_qwen` reads each request the way Qwen
would and answers it (both tools in one round when the question asks for both, so the
calls run in parallel), and ``agentkit.testing`` serves it on loopback; the weather tool
asks a scripted weather source on loopback too (:func:`scripted_weather`), whose made-up
readings say that they are. Nothing leaves the machine and no key is needed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from ..testing import RecordedRequest

__all__ = ["DEFAULT_QUESTION", "run_demo", "scripted_qwen", "scripted_weather"]

DEFAULT_QUESTION = "What's the weather in Singapore, and what time is it there?"
"""The question the demo asks when you give none (the seed's example, both tools at once)."""

_WEATHER_WORDS = re.compile(
    r"\b(weather|rain\w*|sunny|snow\w*|temperature|forecast|wind\w*|hot|cold|umbrella)\b", re.I
)
_TIME_WORDS = re.compile(r"\b(time|clock|hour|date|day|today|now)\b", re.I)
# "in Singapore", "for New York", "at Hangzhou": capitalised words after a preposition.
_PLACE = re.compile(r"\b(?:in|for|at)\s+((?:[A-Z][\w'-]*)(?:\s+[A-Z][\w'-]*)*)")
# Places whose IANA zone is not named after them.
_ZONE_ALIASES = {
    "beijing": "Asia/Shanghai",
    "hangzhou": "Asia/Shanghai",
    "yuhang district": "Asia/Shanghai",
    "shenzhen": "Asia/Shanghai",
    "guangzhou": "Asia/Shanghai",
    "san francisco": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "washington": "America/New_York",
    "boston": "America/New_York",
    "mumbai": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
}


def scripted_qwen(body: dict[str, Any]) -> dict[str, Any]:
    """Decide the next assistant message for a Chat Completions request body.

    A weather question gets a ``get_current_weather`` call, a time question a
    ``get_current_time`` call (in the place's time zone when one is named); a question
    asking both gets both calls in one round (parallel tool calls, as Qwen makes them).
    Once the tools have answered, the reply is composed from their results in the
    transcript. Returns ``{"content": ...}`` or ``{"tool_calls": [{"name", "arguments"}]}``.
    """
    messages: list[dict[str, Any]] = body.get("messages") or []
    offered = {item.get("function", {}).get("name") for item in body.get("tools") or [] if item}
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    question = _text(messages[last_user]) if last_user >= 0 else ""
    since = messages[last_user + 1 :]
    called = [
        call.get("function", {}).get("name") for m in since for call in m.get("tool_calls") or []
    ]
    place = _place(question) or _earlier_place(messages[:last_user])

    plan: list[tuple[str, dict[str, Any]]] = []
    if _WEATHER_WORDS.search(question) and "get_current_weather" in offered:
        plan.append(("get_current_weather", {"location": place or "Singapore"}))
    if _TIME_WORDS.search(question) and "get_current_time" in offered:
        zone = _zone_for(place) if place else None
        plan.append(("get_current_time", {"timezone": zone} if zone else {}))
    due = [
        {"name": name, "arguments": json.dumps(arguments)}
        for name, arguments in plan
        if name not in called
    ]
    if due:
        return {"tool_calls": due}

    results = [_text(m) for m in since if m.get("role") == "tool"]
    if results:
        return {"content": " ".join(_answer_line(line, place) for line in results)}
    return {
        "content": "I am agentkit's scripted stand-in for Qwen, so all I can do is ask the "
        "weather and time tools: try “What's the weather in Beijing?” or “What time is it "
        "in Tokyo?”. For the real Qwen, set DASHSCOPE_API_KEY and run `agentkit chat`."
    }


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _place(text: str) -> str | None:
    match = _PLACE.search(text)
    return match.group(1) if match else None


def _earlier_place(messages: list[dict[str, Any]]) -> str | None:
    # "what time is it there?": the place of an earlier question or weather call
    for message in reversed(messages):
        for call in message.get("tool_calls") or []:
            try:
                location = json.loads(call["function"]["arguments"]).get("location")
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            if isinstance(location, str) and location:
                return location
        if message.get("role") == "user" and (found := _place(_text(message))):
            return found
    return None


def _zone_for(place: str) -> str | None:
    key = place.split(",")[0].strip().lower()
    return _ZONE_ALIASES.get(key) or _zones_by_city().get(key.replace(" ", "_"))


@cache
def _zones_by_city() -> dict[str, str]:
    import zoneinfo

    # "Area/City" names only ("Singapore" alone is a legacy alias), first in sorted order,
    # so the answer is the same on every run
    zones: dict[str, str] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/", "US/")):
            zones.setdefault(zone.rsplit("/", 1)[-1].lower(), zone)
    return zones


def _answer_line(result: str, place: str | None) -> str:
    if "not known" in result:  # the weather tool could not reach its service
        where = f" in {place}" if place else ""
        return (
            f"I couldn't reach the weather service (this demo runs offline), so I can't "
            f"tell you the weather{where} right now."
        )
    return result


# --- the demo run -----------------------------------------------------------------------


def scripted_weather(place: str) -> dict[str, Any]:
    """Made-up current weather for ``place``, the same for the same name, in the shape of
    Open-Meteo's geocoding and forecast answers: ``{"place": ..., "forecast": ...}``. The
    place's country says the reading is scripted, so the tool's sentence says so too."""
    seed = sum(ord(char) for char in place.lower())
    return {
        "place": {
            "name": place,
            "latitude": 0.0,
            "longitude": 0.0,
            "country": "scripted demo weather, not a real reading",
        },
        "forecast": {
            "current": {
                "temperature_2m": 12 + seed % 20,
                "weather_code": (0, 1, 2, 3, 61)[seed % 5],
                "wind_speed_10m": 3 + seed % 17,
            },
            "current_units": {"temperature_2m": "°C", "wind_speed_10m": "km/h"},
        },
    }


class _WeatherHandler(BaseHTTPRequestHandler):
    """Open-Meteo's two endpoints, answered from :func:`scripted_weather`."""

    places: dict[str, str]  # "latitude,longitude" -> the name it was found for

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path.endswith("/search"):
            name = (query.get("name") or ["?"])[0]
            place = scripted_weather(name)["place"]
            # coordinates of its own, so the forecast request names the place again
            place["latitude"] = round(len(self.places) * 0.5 + 0.25, 2)
            self.places[f"{place['latitude']}"] = name
            body: Any = {"results": [place]}
        else:
            latitude = (query.get("latitude") or ["?"])[0]
            found = self.places.get(f"{float(latitude)}" if _number(latitude) else "", "?")
            body = scripted_weather(found)["forecast"]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the demo's output is the conversation, not an access log


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@contextmanager
def _scripted_weather_source() -> Iterator[None]:
    """Point the weather tool at a scripted weather source on loopback for the demo."""
    handler = type("_Handler", (_WeatherHandler,), {"places": {}})  # places of this demo
    source = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=source.serve_forever, name="demo-weather", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{source.server_address[1]}"
    try:
        with _weather_urls(url):
            yield
    finally:
        source.shutdown()
        source.server_close()


@contextmanager
def _offline_weather() -> Iterator[None]:
    """Point the weather tool at a closed loopback port for the duration of the demo."""
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused at once
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    try:
        with _weather_urls(url):
            yield
    finally:
        closed.close()


@contextmanager
def _weather_urls(url: str) -> Iterator[None]:
    """Point the weather tool's two URLs at ``url``, restoring the caller's on exit."""
    saved = {name: os.environ.get(name) for name in _WEATHER_ENV}
    os.environ["AGENTKIT_GEOCODING_URL"] = f"{url}/v1/search"
    os.environ["AGENTKIT_FORECAST_URL"] = f"{url}/v1/forecast"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_WEATHER_ENV = ("AGENTKIT_GEOCODING_URL", "AGENTKIT_FORECAST_URL")


def run_demo(
    prompt: str | None, out: TextIO, err: TextIO, *, verbose: bool = False, paced: bool = True
) -> int:
    """Run the demo conversation; the answer streams to ``out``, everything else to ``err``.

    ``paced`` makes the scripted model take a moment per round and stream word by word,
    as a real one does; tests switch it off. Returns the exit code (0).
    """
    from .._agent import Agent, Hooks
    from ..testing import Reply, ScriptedServer
    from ._console import Console, play
    from ._loading import builtin_tools

    question = prompt or DEFAULT_QUESTION
    console = Console(out, err, verbose=verbose)
    rule, dot, arrow = ("──", "·", "›") if console.fancy else ("--", "-", ">")
    console.label = f"qwen {arrow} "

    def model(request: RecordedRequest) -> Reply:
        decision = scripted_qwen(request.json())
        if "tool_calls" in decision:
            calls = [(c["name"], c["arguments"]) for c in decision["tool_calls"]]
            reply = Reply.tool_calls(*calls, style="dashscope")
        else:
            reply = Reply.text(decision["content"])
        return reply.with_(delay=0.3, chunk_delay=0.03) if paced else reply

    def round_starts(turn: int, request: dict[str, Any]) -> None:
        sent = len(request.get("messages") or [])
        plural = "" if sent == 1 else "s"
        console.note(f"{rule} round {turn} {rule} {sent} message{plural} to the model")

    started = time.perf_counter()
    with _scripted_weather_source(), ScriptedServer(handler=model) as server:
        console.note(
            f"agentkit demo {dot} the model is a scripted stand-in for Qwen, no network "
            f"(served on {server.host}:{server.port})\n"
            "the agent loop, the client and the tools are real; the weather they report "
            "comes from a scripted source\n"
        )
        console.note(f"you {arrow} {question}")
        agent = Agent(
            "qwen-plus (scripted)",
            builtin_tools(),
            base_url=server.base_url,
            hooks=Hooks(before_model_call=round_starts),
        )
        with agent:
            result = play(agent, question, console)
    calls = sum(1 for m in result.messages if m.get("role") == "tool")
    own = "" if prompt else 'Ask your own: agentkit demo "What time is it in Tokyo?"\n'
    console.note(
        f"\n{_count(result.turns, 'model call')} {dot} {_count(calls, 'tool call')} {dot} "
        f"{result.usage.total_tokens} tokens {dot} {_elapsed(started)}\n"
        f"{own}"
        "Now for real: export DASHSCOPE_API_KEY=sk-... and run\n"
        '  agentkit chat "What\'s the weather in Hangzhou, and what time is it there?"'
    )
    return 0


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"
