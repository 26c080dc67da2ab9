"""The built-in tools: the clock for real, the weather against a loopback Open-Meteo fake."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from _helpers import refused_port
from hypothesis import given
from hypothesis import strategies as st

from agentkit import Tool, ToolArgumentsError, ToolRetry
from agentkit.tools import BUILTIN_TOOLS, get_current_time, get_current_weather
from agentkit.tools.weather import _CONDITIONS

# --- a loopback fake of Open-Meteo's geocoding and forecast endpoints --------------------

SINGAPORE = {
    "name": "Singapore",
    "latitude": 1.28967,
    "longitude": 103.85007,
    "country": "Singapore",
    "country_code": "SG",
}
PARIS_FRANCE = {
    "name": "Paris",
    "latitude": 48.85341,
    "longitude": 2.3488,
    "country": "France",
    "country_code": "FR",
    "admin1": "Île-de-France",
}
PARIS_TEXAS = {
    "name": "Paris",
    "latitude": 33.66094,
    "longitude": -95.55551,
    "country": "United States",
    "country_code": "US",
    "admin1": "Texas",
}


@dataclass
class FakeOpenMeteo:
    """Both endpoints on one loopback server; tests set what it answers and read what it saw."""

    places: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    current: dict[str, Any] = field(
        default_factory=lambda: {"temperature_2m": 31.2, "weather_code": 95, "wind_speed_10m": 12.4}
    )
    fail: dict[str, int] = field(default_factory=dict)  # path -> HTTP status to answer
    garbage: set[str] = field(default_factory=set)  # paths answering a non-JSON body
    hang: set[str] = field(default_factory=set)  # paths that never answer (until teardown)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0  # handlers inside a hang right now
    port: int = 0

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        self.requests.append((path, query))
        if path in self.hang:
            self.waiting += 1
            self.release.wait(30)
            self.waiting -= 1
        if path in self.fail:
            return self.fail[path], b'{"error": true, "reason": "scripted failure"}'
        if path in self.garbage:
            return 200, b"<html>gateway says hello</html>"
        if path == "/v1/search":
            found = self.places.get(query["name"], [])[: int(query["count"])]
            body = {"results": found, "generationtime_ms": 0.4} if found else {}
            return 200, json.dumps(body).encode()
        if path == "/v1/forecast":
            body = {
                "latitude": float(query["latitude"]),
                "longitude": float(query["longitude"]),
                "current_units": {"temperature_2m": "°C", "wind_speed_10m": "km/h"},
                "current": {"time": "2025-06-01T12:00", "interval": 900, **self.current},
            }
            return 200, json.dumps(body).encode()
        return 404, b"{}"


def _serve(fake: FakeOpenMeteo) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            status, body = fake.answer(url.path, query)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    fake.port = server.server_address[1]
    return server


@pytest.fixture
def open_meteo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenMeteo]:
    fake = FakeOpenMeteo(places={"Singapore": [SINGAPORE], "Paris": [PARIS_FRANCE, PARIS_TEXAS]})
    server = _serve(fake)
    base = f"http://127.0.0.1:{fake.port}"
    monkeypatch.setenv("AGENTKIT_GEOCODING_URL", f"{base}/v1/search")
    monkeypatch.setenv("AGENTKIT_FORECAST_URL", f"{base}/v1/forecast")
    # Generous: a busy machine must not turn an HTTP 500 into a timeout. The timeout test
    # sets a short one itself.
    monkeypatch.setenv("AGENTKIT_WEATHER_TIMEOUT", "30")
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


# --- the tools as a set -------------------------------------------------------------------


def test_builtin_tools_are_the_two_tools_in_seed_order() -> None:
    assert isinstance(BUILTIN_TOOLS, tuple)
    assert [t.name for t in BUILTIN_TOOLS] == ["get_current_time", "get_current_weather"]
    assert all(isinstance(t, Tool) for t in BUILTIN_TOOLS)


def test_time_tool_schema_has_one_optional_timezone() -> None:
    schema = get_current_time.parameters
    assert set(schema["properties"]) == {"timezone"}
    assert "timezone" not in schema.get("required", [])
    assert "Asia/Shanghai" in schema["properties"]["timezone"]["description"]
    function = get_current_time.to_openai()["function"]
    assert function["name"] == "get_current_time"
    assert function["description"].startswith("Get the current date and time")
    assert "Args" not in function["description"]


def test_weather_tool_schema_requires_location() -> None:
    schema = get_current_weather.parameters
    assert schema["required"] == ["location"]
    assert schema["properties"]["location"]["type"] == "string"
    assert "city" in schema["properties"]["location"]["description"]
    assert schema["additionalProperties"] is False
    assert get_current_weather.to_openai()["function"]["name"] == "get_current_weather"


def test_weather_tool_rejects_missing_location_before_any_request() -> None:
    with pytest.raises(ToolArgumentsError, match="location"):
        get_current_weather.validate_json("{}")


# --- get_current_time ---------------------------------------------------------------------

_ANSWER = re.compile(
    r"It is \w+ (?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:in (?P<zone>\S+)|local time) "
    r"\(UTC(?P<offset>[+-]\d\d:\d\d)"
)


def _parse(answer: str) -> tuple[datetime, str | None, str]:
    match = _ANSWER.match(answer)
    assert match, answer
    return datetime.fromisoformat(match["stamp"]), match["zone"], match["offset"]


@pytest.mark.parametrize(
    "zone", ["Asia/Shanghai", "America/New_York", "Europe/London", "UTC", "Asia/Kathmandu"]
)
def test_time_in_a_named_zone_is_the_real_time_there(zone: str) -> None:
    answer = get_current_time(zone)
    stamp, named, offset = _parse(answer)
    now = datetime.now(ZoneInfo(zone))
    assert named == zone
    assert abs(now.replace(tzinfo=None) - stamp) < timedelta(seconds=5)
    expected = now.strftime("%z")
    assert offset == f"{expected[:3]}:{expected[3:]}"
    assert now.strftime("%A") in answer


def test_time_without_zone_is_local_time() -> None:
    for argument in (None, "", "  "):
        stamp, named, offset = _parse(get_current_time(argument))
        now = datetime.now().astimezone()
        assert named is None
        assert abs(now.replace(tzinfo=None) - stamp) < timedelta(seconds=5)
        assert offset == f"{now.strftime('%z')[:3]}:{now.strftime('%z')[3:]}"
    assert "local time" in get_current_time()


@pytest.fixture
def local_zone_kathmandu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone set to UTC+05:45, so "local" cannot pass by being UTC."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_time_without_zone_follows_the_machines_zone(local_zone_kathmandu: None) -> None:
    stamp, named, offset = _parse(get_current_time())
    assert (named, offset) == (None, "+05:45")
    now = datetime.now(ZoneInfo("Asia/Kathmandu")).replace(tzinfo=None)
    assert abs(now - stamp) < timedelta(seconds=5)


def test_time_zone_names_in_the_wrong_case_are_understood() -> None:
    assert " in Asia/Shanghai (UTC+08:00)" in get_current_time("asia/shanghai")


@given(
    sign=st.sampled_from(["+", "-"]),
    hours=st.integers(0, 14),
    minutes=st.sampled_from([None, 0, 30, 45]),
    prefix=st.sampled_from(["UTC", "GMT", "utc"]),
)
def test_utc_offsets_are_understood(
    sign: str, hours: int, minutes: int | None, prefix: str
) -> None:
    if hours == 14 and minutes:
        return  # past the largest offset in use
    name = f"{prefix}{sign}{hours}" + ("" if minutes is None else f":{minutes:02d}")
    stamp, _, offset = _parse(get_current_time(name))
    assert offset == f"{sign if hours or minutes else '+'}{hours:02d}:{minutes or 0:02d}"
    delta = timedelta(hours=hours, minutes=minutes or 0) * (-1 if sign == "-" else 1)
    expected = datetime.now(ZoneInfo("UTC")).replace(tzinfo=None) + delta
    assert abs(expected - stamp) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "Beijing", "../etc/passwd", "/etc/localtime", "UTC+99"]
)
def test_unknown_zone_asks_the_model_to_retry_with_an_iana_name(zone: str) -> None:
    with pytest.raises(ToolRetry) as caught:
        get_current_time(zone)
    message = str(caught.value)
    assert repr(zone) in message
    assert "Asia/Shanghai" in message
    assert "Traceback" not in message


def test_time_tool_validates_and_calls_like_the_loop_does() -> None:
    kwargs = get_current_time.validate_json('{"timezone": "Europe/Paris"}')
    assert " in Europe/Paris (" in get_current_time.call(kwargs)
    assert "local time" in get_current_time.call(get_current_time.validate_json(""))


# --- get_current_weather ------------------------------------------------------------------


def test_weather_happy_path(open_meteo: FakeOpenMeteo) -> None:
    answer = get_current_weather("Singapore")
    assert answer == "It is 31°C and thunderstorms in Singapore, Singapore (wind 12 km/h)."
    (search_path, search), (forecast_path, forecast) = open_meteo.requests
    assert search_path == "/v1/search"
    assert search["name"] == "Singapore"
    assert search["count"] == "1"
    assert forecast_path == "/v1/forecast"
    assert float(forecast["latitude"]) == SINGAPORE["latitude"]
    assert float(forecast["longitude"]) == SINGAPORE["longitude"]
    assert set(forecast["current"].split(",")) >= {
        "temperature_2m",
        "weather_code",
        "wind_speed_10m",
    }


def test_weather_picks_the_place_in_the_named_region(open_meteo: FakeOpenMeteo) -> None:
    open_meteo.current = {"temperature_2m": -3.6, "weather_code": 3, "wind_speed_10m": 0.2}
    answer = get_current_weather("Paris, Texas")
    assert answer == "It is -4°C and overcast in Paris, Texas, United States (wind 0 km/h)."
    assert float(open_meteo.requests[1][1]["longitude"]) == PARIS_TEXAS["longitude"]
    assert "Île-de-France, France" in get_current_weather("Paris")
    assert "Île-de-France, France" in get_current_weather("Paris, fr")


def test_weather_unknown_place_is_a_clear_message(open_meteo: FakeOpenMeteo) -> None:
    answer = get_current_weather("Atlantis")
    assert "'Atlantis'" in answer
    assert "No place" in answer
    assert [path for path, _ in open_meteo.requests] == ["/v1/search"]


@pytest.mark.parametrize("path", ["/v1/search", "/v1/forecast"])
def test_weather_service_error_is_a_clear_message(open_meteo: FakeOpenMeteo, path: str) -> None:
    open_meteo.fail[path] = 500
    answer = get_current_weather("Singapore")
    assert "HTTP 500" in answer
    assert "weather in Singapore is not known" in answer


def test_weather_unreadable_answer_is_a_clear_message(open_meteo: FakeOpenMeteo) -> None:
    open_meteo.garbage.add("/v1/forecast")
    assert "not readable" in get_current_weather("Singapore")


def test_weather_unreachable_service_is_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = refused_port()
    monkeypatch.setenv("AGENTKIT_GEOCODING_URL", f"http://127.0.0.1:{port}/v1/search")
    monkeypatch.setenv("AGENTKIT_FORECAST_URL", f"http://127.0.0.1:{port}/v1/forecast")
    answer = get_current_weather("Singapore")
    assert answer.startswith("The weather service is unreachable right now")
    assert "Singapore" in answer


def test_weather_slow_service_times_out_with_a_clear_message(
    open_meteo: FakeOpenMeteo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKIT_WEATHER_TIMEOUT", "0.5")
    open_meteo.hang.add("/v1/forecast")
    answer = get_current_weather("Singapore")
    assert "did not answer within 0.5 s" in answer
    assert open_meteo.waiting == 1  # the timeout fired while the service still hung


def test_weather_empty_location_asks_the_model_to_retry(open_meteo: FakeOpenMeteo) -> None:
    with pytest.raises(ToolRetry, match="city"):
        get_current_weather("  , China")
    assert open_meteo.requests == []


@pytest.mark.parametrize("code", sorted(_CONDITIONS))
def test_every_wmo_code_reads_as_words(open_meteo: FakeOpenMeteo, code: int) -> None:
    open_meteo.current["weather_code"] = code
    answer = get_current_weather("Singapore")
    assert f" and {_CONDITIONS[code]} in Singapore" in answer
    assert not re.search(r"\d", _CONDITIONS[code])


def test_unlisted_wmo_code_is_still_reported(open_meteo: FakeOpenMeteo) -> None:
    open_meteo.current["weather_code"] = 42
    assert "weather code 42" in get_current_weather("Singapore")


@pytest.mark.parametrize("value", ["abc", "-1", "0", ""])
def test_weather_timeout_setting_falls_back_to_the_default_when_unusable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from agentkit.tools import weather

    monkeypatch.setenv("AGENTKIT_WEATHER_TIMEOUT", value)
    assert weather._timeout() == weather.DEFAULT_TIMEOUT
    monkeypatch.setenv("AGENTKIT_WEATHER_TIMEOUT", "2.5")
    assert weather._timeout() == 2.5
