"""Retry rules, counted on the server: what is retried, how often, and after how long."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit import AsyncChatClient, ChatClient
from agentkit._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentModerationError,
    IncompleteStreamError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from agentkit._events import TextDelta
from agentkit._protocol import MAX_SERVER_DELAY, retry_delay, should_retry
from agentkit.testing import Reply, ScriptedServer

USER = [{"role": "user", "content": "Hi"}]
FAST = 0.001  # backoff base for tests that do not time the backoff
SLOW = 30.0  # backoff base that would time a test out if Retry-After were ignored


def _client(server: ScriptedServer, **options: float) -> ChatClient:
    options.setdefault("retry_base_delay", FAST)
    options.setdefault("retry_max_delay", max(8.0, 4 * options["retry_base_delay"]))
    return ChatClient(server.base_url, "sk-test", **options)  # type: ignore[arg-type]


def _gaps(server: ScriptedServer) -> list[float]:
    times = [request.received_at for request in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- what is retried ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_burst_then_success(server: ScriptedServer, status: int) -> None:
    server.queue(Reply.error(status), Reply.error(status), Reply.text("finally"))
    with _client(server) as client:
        answer = client.create(model="m", messages=USER)
    assert answer.choices[0].message.content == "finally"
    assert len(server.requests) == 3
    assert server.requests[0].body == server.requests[2].body


def test_rate_limit_is_retried(server: ScriptedServer) -> None:
    server.queue(Reply.rate_limited(), Reply.text("ok"))
    with _client(server) as client:
        client.create(model="m", messages=USER)
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("reply", "cls"),
    [
        (Reply.quota_exceeded(), QuotaExceededError),
        (Reply.error(400, "bad"), BadRequestError),
        (Reply.invalid_api_key(), AuthenticationError),
        (Reply.error(403), PermissionDeniedError),
        (Reply.error(404), NotFoundError),
        (Reply.error(422), BadRequestError),
        (Reply.content_moderation(), ContentModerationError),
        (Reply.error(501, "not implemented"), ServerError),
        (Reply.raw("not json", content_type="text/plain"), InvalidResponseError),
    ],
)
def test_never_retried(server: ScriptedServer, reply: Reply, cls: type[APIError]) -> None:
    server.queue(reply, Reply.text("must not be reached"))
    with _client(server, max_retries=5) as client, pytest.raises(cls):
        client.create(model="m", messages=USER)
    assert len(server.requests) == 1


def test_max_retries_exhausted(server: ScriptedServer) -> None:
    server.queue(*[Reply.error(503, "overloaded")] * 4, Reply.text("too late"))
    with _client(server, max_retries=3) as client, pytest.raises(ServerError) as info:
        client.create(model="m", messages=USER)
    assert len(server.requests) == 4
    assert info.value.request_id == "req-4"  # the last answer's error is raised


def test_max_retries_zero_sends_once(server: ScriptedServer) -> None:
    server.queue(Reply.error(503), Reply.text("no"))
    with _client(server, max_retries=0) as client, pytest.raises(ServerError):
        client.create(model="m", messages=USER)
    assert len(server.requests) == 1


def test_connection_reset_then_success(server: ScriptedServer) -> None:
    server.queue(Reply.reset(), Reply.reset(rst=False), Reply.text("ok"))
    with _client(server) as client:
        assert client.create(model="m", messages=USER).choices[0].message.content == "ok"
    assert len(server.requests) == 3


def test_timeout_then_success(server: ScriptedServer) -> None:
    server.queue(Reply.hang(), Reply.text("ok"))
    with _client(server, read_timeout=0.2) as client:
        assert client.create(model="m", messages=USER).choices[0].message.content == "ok"
    assert len(server.requests) == 2


def test_timeouts_exhaust_retries(server: ScriptedServer) -> None:
    server.queue(Reply.hang(), Reply.hang())
    with _client(server, read_timeout=0.1, max_retries=1) as client, pytest.raises(APITimeoutError):
        client.create(model="m", messages=USER)
    assert len(server.requests) == 2


# --- how long it waits ---------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(server: ScriptedServer) -> None:
    server.queue(Reply.rate_limited(retry_after=0.3), Reply.text("ok"))
    started = time.monotonic()
    with _client(server, retry_base_delay=SLOW) as client:
        client.create(model="m", messages=USER)
    # Ignored, the slow backoff would wait a random 0 to 30 s: rarely in this window.
    assert 0.29 <= _gaps(server)[0] < 1.5
    assert time.monotonic() - started < 5


def test_retry_after_ms_is_honoured(server: ScriptedServer) -> None:
    server.queue(Reply.error(503).with_(headers={"retry-after-ms": "150"}), Reply.text("ok"))
    with _client(server, retry_base_delay=SLOW) as client:
        client.create(model="m", messages=USER)
    assert 0.14 <= _gaps(server)[0] < 1.5


def test_retry_after_http_date_is_honoured(server: ScriptedServer) -> None:
    # HTTP dates have whole seconds: 1.6 s ahead, truncated, is between 0.6 and 1.6 s away.
    when = email.utils.formatdate(time.time() + 1.6, usegmt=True)
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    server.queue(
        Reply.rate_limited(retry_after=when),
        Reply.rate_limited(retry_after=past),
        Reply.text("ok"),
    )
    with _client(server, retry_base_delay=SLOW) as client:
        client.create(model="m", messages=USER)
    future_gap, past_gap = _gaps(server)
    assert 0.5 <= future_gap < 2.5
    assert past_gap < 1.5  # a date in the past: retry at once, not after the slow backoff


def test_backoff_grows_without_retry_after(server: ScriptedServer) -> None:
    server.queue(Reply.error(503), Reply.error(503), Reply.text("ok"))
    # Full jitter: waits are random in [0, base * 2**n], so only bounds can be asserted.
    with _client(server, retry_base_delay=0.05, retry_max_delay=0.08) as client:
        client.create(model="m", messages=USER)
    assert all(gap < 2 for gap in _gaps(server))


@given(
    attempt=st.integers(min_value=0, max_value=40),
    base=st.floats(min_value=0.001, max_value=5),
    maximum=st.floats(min_value=0.001, max_value=60),
)
def test_full_jitter_bounds(attempt: int, base: float, maximum: float) -> None:
    delay = retry_delay(attempt, None, base=base, maximum=maximum)
    assert 0 <= delay <= min(maximum, base * 2**attempt)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # the finer one wins
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "86400"}, MAX_SERVER_DELAY),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # long past
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, 0.0),
    ],
)
def test_server_delay_forms(headers: dict[str, str], expected: float) -> None:
    assert retry_delay(5, headers, base=100, maximum=100) == pytest.approx(expected)


def test_http_date_is_read_as_gmt() -> None:
    ahead = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_delay(0, {"retry-after": ahead}) <= 30
    naive = ahead.replace("GMT", "-0000")
    assert 28 <= retry_delay(0, {"retry-after": naive}) <= 30


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf"])
def test_unreadable_retry_after_falls_back_to_backoff(value: str) -> None:
    for _ in range(20):
        assert 0 <= retry_delay(0, {"retry-after": value}, base=0.01) <= 0.01


def test_should_retry_classification() -> None:
    assert should_retry(RateLimitError("x", status=429))
    assert not should_retry(QuotaExceededError("x", status=429))
    assert should_retry(ServerError("x", status=503))
    assert not should_retry(ServerError("x", status=501))
    assert not should_retry(ContentModerationError("x", status=400))
    assert should_retry(APIConnectionError("x"))
    assert should_retry(APITimeoutError("x"))
    assert not should_retry(InvalidResponseError("x"))
    assert not should_retry(ValueError("x"))


def test_retries_are_logged_without_headers(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentkit._client")
    server.queue(Reply.error(503), Reply.text("ok"))
    with _client(server) as client:
        client.create(model="m", messages=USER)
    [record] = [r for r in caplog.records if r.name == "agentkit._client"]
    line = record.getMessage()
    assert record.levelno == logging.INFO
    assert "POST" in line and f"{server.base_url}/chat/completions" in line
    assert "503" in line and "retry 1 of 2" in line and " s" in line
    assert "sk-test" not in line and "Bearer" not in line


# --- streams: retried only while nothing was shown ----------------------------------------------


def test_stream_open_errors_are_retried(server: ScriptedServer) -> None:
    server.queue(Reply.error(503), Reply.reset(), Reply.text("one two"))
    with _client(server) as client, client.stream(model="m", messages=USER) as stream:
        texts = [d.text for d in stream if isinstance(d, TextDelta)]
    assert "".join(texts) == "one two"
    assert len(server.requests) == 3


def test_stream_retry_after_is_honoured(server: ScriptedServer) -> None:
    server.queue(
        Reply.rate_limited(retry_after=0.3),
        Reply.error(503).with_(headers={"retry-after-ms": "200"}),
        Reply.text("ok"),
    )
    with (
        _client(server, retry_base_delay=SLOW) as client,
        client.stream(model="m", messages=USER) as stream,
    ):
        assert stream.until_done().choices[0].message.content == "ok"
    first, second = _gaps(server)
    assert 0.29 <= first < 1.5
    assert 0.19 <= second < 1.5


def test_stream_cut_before_the_first_delta_is_retried(server: ScriptedServer) -> None:
    # The first event is the role chunk with "" content: nothing reaches the caller.
    server.queue(Reply.text("alpha beta").with_(cut_after=1), Reply.text("alpha beta"))
    with _client(server) as client, client.stream(model="m", messages=USER) as stream:
        texts = [d.text for d in stream if isinstance(d, TextDelta)]
    assert "".join(texts) == "alpha beta"  # shown once, not twice
    assert stream.completion.choices[0].message.content == "alpha beta"
    assert len(server.requests) == 2


def test_stream_cut_after_a_delta_is_not_retried(server: ScriptedServer) -> None:
    server.queue(Reply.text("alpha beta gamma").with_(cut_after=3), Reply.text("again"))
    shown: list[str] = []
    with (
        _client(server, max_retries=5) as client,
        client.stream(model="m", messages=USER) as s,
        pytest.raises(IncompleteStreamError) as info,
    ):
        for delta in s:
            assert isinstance(delta, TextDelta)
            shown.append(delta.text)
    assert "".join(shown) == "alpha beta"
    assert len(server.requests) == 1
    partial = info.value.partial
    assert partial is not None and partial.choices[0].message.content == "alpha beta"
    assert info.value.request_id == "req-1"


def test_stream_quota_is_not_retried(server: ScriptedServer) -> None:
    server.queue(Reply.quota_exceeded(), Reply.text("no"))
    with (
        _client(server) as client,
        client.stream(model="m", messages=USER) as stream,
        pytest.raises(QuotaExceededError),
    ):
        stream.until_done()
    assert len(server.requests) == 1


def test_stream_stall_times_out_and_is_retried_when_nothing_was_shown(
    server: ScriptedServer,
) -> None:
    server.queue(Reply.text("a b").with_(hang_after=1), Reply.text("a b"))
    with _client(server, read_timeout=0.2) as client, client.stream(model="m", messages=USER) as s:
        assert s.until_done().choices[0].message.content == "a b"
    assert len(server.requests) == 2


def test_stream_retries_exhausted(server: ScriptedServer) -> None:
    server.queue(*[Reply.text("x y").with_(cut_after=1)] * 3)
    with (
        _client(server, max_retries=2) as client,
        client.stream(model="m", messages=USER) as s,
        pytest.raises(IncompleteStreamError),
    ):
        s.until_done()
    assert len(server.requests) == 3


# --- async parity ------------------------------------------------------------------------------


def test_async_retry_rules(server: ScriptedServer) -> None:
    server.queue(
        Reply.error(503),
        Reply.rate_limited(retry_after=0.2),
        Reply.text("created"),
        Reply.quota_exceeded(),
        Reply.text("x y").with_(cut_after=1),
        Reply.rate_limited(retry_after=0.2),
        Reply.text("streamed"),
    )

    async def main() -> tuple[str | None, str]:
        async with AsyncChatClient(server.base_url, retry_base_delay=FAST) as client:
            created = await client.create(model="m", messages=USER)
            with pytest.raises(QuotaExceededError):
                await client.create(model="m", messages=USER)
            async with client.stream(model="m", messages=USER) as stream:
                text = "".join([d.text async for d in stream if isinstance(d, TextDelta)])
        return created.choices[0].message.content, text

    assert asyncio.run(main()) == ("created", "streamed")
    assert len(server.requests) == 7
    gaps = _gaps(server)
    assert gaps[1] >= 0.19 and gaps[5] >= 0.19  # Retry-After honoured by the async client too
