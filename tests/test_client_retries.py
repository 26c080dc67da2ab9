"""Retry rules, counted on the server: what is retried, how often, and after how long.

Waits are never slept: each client gets a :class:`RetryPolicy` whose ``sleep`` records the
wait, whose clock is fixed and whose jitter is a known fraction, so every wait is asserted
exactly (with ``Retry-After`` ignored, none of them would come out equal).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any

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
    ConfigurationError,
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
from agentkit._retry import RetryEvent, RetryPolicy
from agentkit.testing import Reply, ScriptedServer

USER = [{"role": "user", "content": "Hi"}]
NOW = 1_900_000_000.0  # the injected wall clock: HTTP dates are whole seconds from it
JITTER = 0.25  # the injected random source: every backoff is a quarter of its bound


class Waits(list[float]):
    """The waits a client asked for, in order; the policy records instead of sleeping."""

    def policy(self, **options: Any) -> RetryPolicy:
        async def async_sleep(delay: float) -> None:
            self.append(delay)

        options.setdefault("base_delay", 0.5)
        return RetryPolicy(
            clock=lambda: NOW,
            sleep=self.append,
            async_sleep=async_sleep,
            random=lambda: JITTER,
            **options,
        )


@pytest.fixture
def waits() -> Waits:
    return Waits()


def _client(server: ScriptedServer, waits: Waits | None = None, **options: Any) -> ChatClient:
    waits = Waits() if waits is None else waits
    policy = {k: options.pop(k) for k in ("base_delay", "max_delay", "on_retry") if k in options}
    return ChatClient(server.base_url, "sk-test", retry=waits.policy(**policy), **options)


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
    # 1 s: the read timeout also bounds the answer that must arrive (a loaded machine)
    with _client(server, read_timeout=1.0) as client:
        assert client.create(model="m", messages=USER).choices[0].message.content == "ok"
    assert len(server.requests) == 2


def test_timeouts_exhaust_retries(server: ScriptedServer) -> None:
    server.queue(Reply.hang(), Reply.hang())
    with _client(server, read_timeout=0.1, max_retries=1) as client, pytest.raises(APITimeoutError):
        client.create(model="m", messages=USER)
    assert len(server.requests) == 2


# --- how long it waits ---------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(server: ScriptedServer, waits: Waits) -> None:
    server.queue(Reply.rate_limited(retry_after=0.3), Reply.text("ok"))
    with _client(server, waits, base_delay=30.0) as client:
        client.create(model="m", messages=USER)
    assert waits == [0.3]


def test_retry_after_ms_is_honoured(server: ScriptedServer, waits: Waits) -> None:
    server.queue(Reply.error(503).with_(headers={"retry-after-ms": "150"}), Reply.text("ok"))
    with _client(server, waits, base_delay=30.0) as client:
        client.create(model="m", messages=USER)
    assert waits == [0.15]


def test_retry_after_http_date_is_honoured(server: ScriptedServer, waits: Waits) -> None:
    when = email.utils.formatdate(NOW + 7, usegmt=True)
    past = email.utils.formatdate(NOW - 30, usegmt=True)
    server.queue(
        Reply.rate_limited(retry_after=when),
        Reply.rate_limited(retry_after=past),
        Reply.text("ok"),
    )
    with _client(server, waits, base_delay=30.0) as client:
        client.create(model="m", messages=USER)
    assert waits == [7.0, 0.0]  # a date in the past: retry at once, not after the backoff


def test_backoff_grows_without_retry_after(server: ScriptedServer, waits: Waits) -> None:
    server.queue(*[Reply.error(503)] * 4, Reply.text("ok"))
    with _client(server, waits, max_retries=4, base_delay=0.1, max_delay=0.3) as client:
        client.create(model="m", messages=USER)
    # bounds 0.1, 0.2, 0.4 -> 0.3 (the maximum), 0.3; full jitter takes JITTER of each
    assert waits == pytest.approx([0.025, 0.05, 0.075, 0.075])


def test_backoff_without_jitter_is_the_bound(server: ScriptedServer) -> None:
    waits = Waits()
    server.queue(Reply.error(503), Reply.error(502), Reply.text("ok"))
    policy = waits.policy(base_delay=0.1, jitter=False)
    with ChatClient(server.base_url, retry=policy) as client:
        client.create(model="m", messages=USER)
    assert waits == [0.1, 0.2]


def test_retry_after_past_the_cap_is_not_waited_for(server: ScriptedServer, waits: Waits) -> None:
    server.queue(Reply.rate_limited(retry_after=MAX_SERVER_DELAY + 1))
    with _client(server, waits) as client, pytest.raises(RateLimitError) as caught:
        client.create(model="m", messages=USER)
    assert waits == []
    assert caught.value.retry_after == MAX_SERVER_DELAY + 1
    assert server.request_count == 1


def test_the_cap_on_retry_after_is_settable(server: ScriptedServer) -> None:
    waits = Waits()
    server.queue(Reply.rate_limited(retry_after=90), Reply.text("ok"))
    with ChatClient(server.base_url, retry=waits.policy(max_server_delay=120)) as client:
        client.create(model="m", messages=USER)
    assert waits == [90.0]


def test_on_retry_sees_each_retry_before_the_wait(server: ScriptedServer, waits: Waits) -> None:
    events: list[tuple[RetryEvent, int]] = []
    server.queue(Reply.error(503), Reply.rate_limited(retry_after=1.25), Reply.text("ok"))

    def on_retry(event: RetryEvent) -> None:
        events.append((event, len(waits)))

    with _client(server, waits, on_retry=on_retry) as client:
        client.create(model="m", messages=USER)
    assert [(e.attempt, e.max_retries, e.status, waited) for e, waited in events] == [
        (1, 2, 503, 0),
        (2, 2, 429, 1),
    ]
    assert [e.delay for e, _ in events] == waits == [0.125, 1.25]
    assert events[1][0].describe() == "429 from the server; retrying in 1.2 s (2 of 2)"
    assert events[0][0].url == f"{server.base_url}/chat/completions"


def test_a_failing_on_retry_does_not_fail_the_request(server: ScriptedServer) -> None:
    def on_retry(event: RetryEvent) -> None:
        raise RuntimeError("observer bug")

    server.queue(Reply.error(503), Reply.text("ok"))
    with _client(server, on_retry=on_retry) as client:
        assert client.create(model="m", messages=USER).choices[0].message.content == "ok"


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": -1},
        {"max_retries": True},
        {"base_delay": -0.1},
        {"max_delay": float("nan")},
        {"base_delay": float("inf")},
    ],
)
def test_a_bad_policy_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)


def test_client_shortcuts_override_the_policy(server: ScriptedServer) -> None:
    policy = RetryPolicy(max_retries=5, base_delay=1.0)
    with ChatClient(server.base_url, retry=policy, max_retries=0, retry_base_delay=0.2) as c:
        assert (c.retry.max_retries, c.retry.base_delay, c.max_retries) == (0, 0.2, 0)


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
    # this test's server only: another test's leftover thread may retry meanwhile
    url = f"{server.base_url}/chat/completions"
    [record] = [r for r in caplog.records if r.name == "agentkit._client" and url in r.getMessage()]
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


def test_stream_retry_after_is_honoured(server: ScriptedServer, waits: Waits) -> None:
    server.queue(
        Reply.rate_limited(retry_after=0.3),
        Reply.error(503).with_(headers={"retry-after-ms": "200"}),
        Reply.text("ok"),
    )
    with (
        _client(server, waits, base_delay=30.0) as client,
        client.stream(model="m", messages=USER) as stream,
    ):
        assert stream.until_done().choices[0].message.content == "ok"
    assert waits == [0.3, 0.2]


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
    # 1 s: the read timeout also bounds the retried stream, which must not time out
    with _client(server, read_timeout=1.0) as client, client.stream(model="m", messages=USER) as s:
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


def test_async_retry_rules(server: ScriptedServer, waits: Waits) -> None:
    server.queue(
        Reply.error(503),
        Reply.rate_limited(retry_after=0.2),
        Reply.text("created"),
        Reply.quota_exceeded(),
        Reply.text("x y").with_(cut_after=1),
        Reply.rate_limited(retry_after=0.3),
        Reply.text("streamed"),
    )

    async def main() -> tuple[str | None, str]:
        async with AsyncChatClient(server.base_url, retry=waits.policy(base_delay=0.1)) as client:
            created = await client.create(model="m", messages=USER)
            with pytest.raises(QuotaExceededError):
                await client.create(model="m", messages=USER)
            async with client.stream(model="m", messages=USER) as stream:
                text = "".join([d.text async for d in stream if isinstance(d, TextDelta)])
        return created.choices[0].message.content, text

    assert asyncio.run(main()) == ("created", "streamed")
    assert len(server.requests) == 7
    # Retry-After honoured by the async client too; the backoff of retry 1 is jittered
    assert waits == pytest.approx([0.025, 0.2, 0.025, 0.3])
