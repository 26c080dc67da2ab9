"""The built-in weather tool: current weather from Open-Meteo, which needs no API key.

Two requests per call: the geocoding API turns a place name into coordinates, the forecast
API gives the current conditions there. Every failure (no network, a timeout, an HTTP
error, an unknown place) becomes a sentence for the model, never a traceback.

The tool is synchronous on purpose: it works the same from ``Agent.run`` and
``Agent.run_async`` (the agent runs sync tools in worker threads, so parallel calls still
overlap) and when called directly. The endpoints can be pointed elsewhere, for tests or a
proxy, with ``AGENTKIT_GEOCODING_URL`` and ``AGENTKIT_FORECAST_URL``; the per-request
timeout in seconds with ``AGENTKIT_WEATHER_TIMEOUT``.
"""

from __future__ import annotations

import os
import ssl
from functools import cache

import httpx
import pydantic

from agentkit._errors import ToolRetry
from agentkit._tool import tool

__all__ = [
    "DEFAULT_FORECAST_URL",
    "DEFAULT_GEOCODING_URL",
    "DEFAULT_TIMEOUT",
    "get_current_weather",
]

DEFAULT_GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"
"""Open-Meteo's geocoding endpoint; ``AGENTKIT_GEOCODING_URL`` overrides it."""

DEFAULT_FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
"""Open-Meteo's forecast endpoint; ``AGENTKIT_FORECAST_URL`` overrides it."""

DEFAULT_TIMEOUT = 5.0
"""Seconds allowed for each request; ``AGENTKIT_WEATHER_TIMEOUT`` overrides it."""

# WMO weather interpretation codes, as Open-Meteo documents them, worded to follow "and".
_CONDITIONS = {
    0: "clear sky",
    1: "mainly clear skies",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "freezing fog",
    51: "light drizzle",
    53: "drizzle",
    55: "heavy drizzle",
    56: "light freezing drizzle",
    57: "heavy freezing drizzle",
    61: "light rain",
    63: "rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "light snow",
    73: "snow",
    75: "heavy snow",
    77: "snow grains",
    80: "light rain showers",
    81: "rain showers",
    82: "violent rain showers",
    85: "light snow showers",
    86: "heavy snow showers",
    95: "thunderstorms",
    96: "thunderstorms with light hail",
    99: "thunderstorms with heavy hail",
}


class _Place(pydantic.BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str | None = None
    country_code: str | None = None
    admin1: str | None = None


class _Places(pydantic.BaseModel):
    results: list[_Place] = []  # Open-Meteo leaves the key out when nothing matched


class _Current(pydantic.BaseModel):
    temperature_2m: float
    weather_code: int
    wind_speed_10m: float


class _Units(pydantic.BaseModel):
    temperature_2m: str = "°C"
    wind_speed_10m: str = "km/h"


class _Forecast(pydantic.BaseModel):
    current: _Current
    current_units: _Units = _Units()


@tool
def get_current_weather(location: str) -> str:
    """Get the current weather (temperature, conditions and wind) in a city.

    Args:
        location: A city or county, such as "Beijing", "Hangzhou" or "Singapore". Add
            the region or country after a comma when the name is ambiguous, as in
            "Paris, Texas".
    """
    name, _, region = (part.strip() for part in location.partition(","))
    if not name:
        raise ToolRetry('The location is empty: give a city or county, such as "Beijing".')
    try:
        with httpx.Client(timeout=_timeout(), verify=_tls_context()) as http:
            place = _find_place(http, name, region)
            if place is None:
                return (
                    f"No place called {location!r} was found. Check the spelling, or try the "
                    "nearest larger city."
                )
            weather = _current_weather(http, place)
    except httpx.TimeoutException:
        return _unavailable(location, f"The weather service did not answer within {_timeout()} s")
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        return _unavailable(location, f"The weather service failed (HTTP {status})")
    except httpx.HTTPError:  # DNS failure, connection refused or reset, no network
        return _unavailable(location, "The weather service is unreachable right now")
    except pydantic.ValidationError:
        return _unavailable(location, "The weather service sent an answer that is not readable")
    return _sentence(place, weather)


def _find_place(http: httpx.Client, name: str, region: str) -> _Place | None:
    # Open-Meteo searches names only ("Paris, Texas" matches nothing), so ask for a few
    # candidates and pick the one in the named region or country.
    params = {"name": name, "count": 10 if region else 1, "language": "en", "format": "json"}
    response = http.get(_url("AGENTKIT_GEOCODING_URL", DEFAULT_GEOCODING_URL), params=params)
    places = _Places.model_validate_json(response.raise_for_status().content).results
    for place in places:
        labels = (place.admin1, place.country, place.country_code)
        if region and region.lower() in {label.lower() for label in labels if label}:
            return place
    return places[0] if places else None


def _current_weather(http: httpx.Client, place: _Place) -> _Forecast:
    params: dict[str, str | float] = {
        "latitude": place.latitude,
        "longitude": place.longitude,
        "current": "temperature_2m,weather_code,wind_speed_10m",
    }
    response = http.get(_url("AGENTKIT_FORECAST_URL", DEFAULT_FORECAST_URL), params=params)
    return _Forecast.model_validate_json(response.raise_for_status().content)


def _sentence(place: _Place, forecast: _Forecast) -> str:
    now, units = forecast.current, forecast.current_units
    conditions = _CONDITIONS.get(now.weather_code, f"weather code {now.weather_code}")
    region = place.admin1 if place.admin1 != place.name else None
    where = ", ".join(part for part in (place.name, region, place.country) if part)
    return (
        f"It is {round(now.temperature_2m)}{units.temperature_2m} and {conditions} in {where} "
        f"(wind {round(now.wind_speed_10m)} {units.wind_speed_10m})."
    )


def _unavailable(location: str, reason: str) -> str:
    return f"{reason}, so the weather in {location} is not known. Tell the user; do not guess it."


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds: once per process, not once per call.
    return httpx.create_ssl_context()


def _url(variable: str, default: str) -> str:
    return os.environ.get(variable) or default


def _timeout() -> float:
    try:
        seconds = float(os.environ.get("AGENTKIT_WEATHER_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return seconds if seconds > 0 else DEFAULT_TIMEOUT
