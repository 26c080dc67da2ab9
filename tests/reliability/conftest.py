"""Fixtures of the reliability suite: a scripted server per test, the drivers, a clean slate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._support import DRIVERS, Driver, weather_calls


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> Driver:
    """Each of ``run``, ``stream``, ``run_async`` and ``stream_async`` in turn."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _forget_weather_calls() -> Iterator[None]:
    weather_calls.clear()
    yield
    weather_calls.clear()
