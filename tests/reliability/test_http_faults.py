"""Network and HTTP faults between the agent and the model server, one test per row of
``docs/reliability.md``.

Each fault is injected in the *second* model call, after a tool round, so a run that fails
must hand back everything it had: the instructions, the prompt, the assistant's tool call
and the tool's result. Retryable faults come in two sizes: a burst the retries absorb (the
run recovers) and one longer than ``max_retries`` (a typed error, the request count exact).
"""

from __future__ import annotations

import email.utils
import json

import pytest

from agentkit import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    IncompleteStreamError,
    InvalidResponseError,
    QuotaExceededError,
    RateLimitError,
    RetryPolicy,
    RunResult,
    ServerError,
)
from agentkit.testing import Reply, ScriptedServer

from ._support import (
    KEY,
    STREAMING,
    SUNNY_PARIS,
    Driver,
    assert_carries_transcript,
    client_options,
    refused_url,
    run_expecting,
    run_with,
    tool_messages,
    weather_calls,
)

ANSWER = "It is sunny in Paris."
CALL = Reply.tool_calls(("get_weather", {"city": "Paris"}))
RETRIES = 2  # FAST_RETRY's max_retries: a burst of 2 is absorbed, a burst of 3 is not


def script(server: ScriptedServer, *faults: Reply) -> None:
    """Round 1 calls the tool; round 2 meets ``faults`` (one per attempt), then the answer."""
    server.queue(CALL, *faults, Reply.text(ANSWER))


def assert_recovered(result: RunResult[object], server: ScriptedServer, faults: int) -> None:
    """The run finished with the answer; every fault cost exactly one more request."""
    assert result.output == ANSWER
    assert server.request_count == 2 + faults
    assert weather_calls == [{"city": "Paris", "days": 1}], "the tool ran once, not per retry"
    assert [m["content"] for m in tool_messages(result.messages)] == [SUNNY_PARIS]
    assert not server.errors


def assert_failed_in_round_two(error: BaseException, server: ScriptedServer, sent: int) -> None:
    """The error carries the transcript up to the failed call: the tool's result is kept."""
    messages = assert_carries_transcript(error)
    assert [m["content"] for m in tool_messages(messages)] == [SUNNY_PARIS]
    assert messages[-1]["role"] == "tool", "no half answer was added to the transcript"
    assert server.request_count == 1 + sent


# --- connection faults ----------------------------------------------------------------------


def test_connection_refused(driver: Driver) -> None:
    error = run_expecting(APIConnectionError, driver, refused_url())
    assert not isinstance(error, APITimeoutError)
    assert "could not connect" in str(error)
    messages = assert_carries_transcript(error)
    assert len(messages) == 2  # instructions and prompt: nothing else happened


@pytest.mark.parametrize("burst", [RETRIES, RETRIES + 1])
def test_connection_reset_before_the_answer(
    driver: Driver, server: ScriptedServer, burst: int
) -> None:
    # alternately a TCP reset and an orderly close, before a single byte of the answer
    faults = [Reply.reset(rst=index % 2 == 0) for index in range(burst)]
    script(server, *faults)
    if burst <= RETRIES:
        assert_recovered(run_with(driver, server.base_url), server, burst)
        return
    error = run_expecting(APIConnectionError, driver, server.base_url)
    assert_failed_in_round_two(error, server, sent=burst)


SLOW_STORY = "Expect a bright sky over the river with a light breeze all day long"


@pytest.mark.parametrize("driver", STREAMING)
@pytest.mark.parametrize("when", ["before_any_text", "after_text_was_shown"])
def test_connection_reset_during_a_stream(
    server: ScriptedServer, when: str, driver: Driver
) -> None:
    # A stream is retried only while nothing was handed to the caller; after that a cut is
    # an IncompleteStreamError and the half answer never enters the transcript.
    events = 1 if when == "before_any_text" else 5  # the first event is the role, no text
    cut = Reply.text(SLOW_STORY, stream=True).with_(cut_after=events, rst=True, chunk_delay=0.02)
    script(server, cut)
    if when == "before_any_text":
        assert_recovered(run_with(driver, server.base_url), server, 1)
        return
    error = run_expecting(IncompleteStreamError, driver, server.base_url)
    assert_failed_in_round_two(error, server, sent=1)
    assert "bright sky" not in json.dumps(error.messages), "the cut answer leaked in"


@pytest.mark.parametrize("driver", ["run", "run_async"])
def test_connection_reset_mid_body(server: ScriptedServer, driver: Driver) -> None:
    # a plain JSON answer cut after 40 bytes: nothing was shown yet, so it is retried
    script(server, Reply.text(ANSWER).with_(cut_after=40, rst=True))
    assert_recovered(run_with(driver, server.base_url), server, 1)


@pytest.mark.parametrize("burst", [1, 2])
def test_server_accepts_and_never_answers(
    driver: Driver, server: ScriptedServer, burst: int
) -> None:
    # max_retries=1, read timeout 1 s: one hang is retried, two end the run (the timeout
    # also bounds the answers that must arrive, on a loaded machine too)
    options = client_options(max_retries=1, read_timeout=1.0)
    script(server, *[Reply.hang()] * burst)
    if burst == 1:
        result = run_with(driver, server.base_url, client=options)
        assert_recovered(result, server, 1)
        return
    error = run_expecting(APITimeoutError, driver, server.base_url, client=options)
    assert "timed out" in str(error)
    assert_failed_in_round_two(error, server, sent=2)


@pytest.mark.parametrize("driver", STREAMING)
def test_stream_that_stalls_midway(server: ScriptedServer, driver: Driver) -> None:
    # text was shown, then silence: the read timeout fires and the stream is not retried
    stall = Reply.text(SLOW_STORY, stream=True).with_(hang_after=4, chunk_delay=0.01)
    script(server, stall)
    options = client_options(read_timeout=1.0)  # also bounds round one, which must pass
    error = run_expecting(IncompleteStreamError, driver, server.base_url, client=options)
    assert "timed out" in str(error)
    assert_failed_in_round_two(error, server, sent=1)


# --- status codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("burst", [RETRIES, RETRIES + 1])
def test_5xx_burst(driver: Driver, server: ScriptedServer, status: int, burst: int) -> None:
    script(server, *[Reply.error(status)] * burst)
    if burst <= RETRIES:
        assert_recovered(run_with(driver, server.base_url), server, burst)
        return
    error = run_expecting(ServerError, driver, server.base_url)
    assert error.status == status  # type: ignore[attr-defined]
    assert error.request_id == f"req-{server.request_count}"  # type: ignore[attr-defined]
    assert_failed_in_round_two(error, server, sent=burst)


NOW = 1_900_000_000.0  # the retry policy's clock: an HTTP date is whole seconds from it


@pytest.mark.parametrize("driver", ["run", "stream_async"])
@pytest.mark.parametrize("form", ["seconds", "http_date"])
def test_429_with_retry_after(server: ScriptedServer, driver: Driver, form: str) -> None:
    # The waits are recorded, not slept: the backoff would be a random 0 to 0.01 s.
    waits: list[float] = []

    async def async_sleep(delay: float) -> None:
        waits.append(delay)

    policy = RetryPolicy(
        base_delay=0.01, clock=lambda: NOW, sleep=waits.append, async_sleep=async_sleep
    )
    after = "3" if form == "seconds" else email.utils.formatdate(NOW + 3, usegmt=True)
    script(server, Reply.rate_limited(after))
    assert_recovered(run_with(driver, server.base_url, client={"retry": policy}), server, 1)
    assert waits == [3.0]


@pytest.mark.parametrize("driver", ["run", "stream_async"])
def test_429_rate_limit_past_the_retries(server: ScriptedServer, driver: Driver) -> None:
    script(server, *[Reply.rate_limited()] * (RETRIES + 1))
    error = run_expecting(RateLimitError, driver, server.base_url)
    assert not isinstance(error, QuotaExceededError)
    assert_failed_in_round_two(error, server, sent=RETRIES + 1)


def test_quota_429_is_sent_once(driver: Driver, server: ScriptedServer) -> None:
    script(server, Reply.quota_exceeded())
    error = run_expecting(QuotaExceededError, driver, server.base_url)
    assert error.status == 429  # type: ignore[attr-defined]
    assert "quota" in str(error)
    assert_failed_in_round_two(error, server, sent=1)
    assert server.remaining == 1, "the answer queued after the quota error was never asked for"


def test_401_is_not_retried(driver: Driver, server: ScriptedServer) -> None:
    script(server, Reply.invalid_api_key())
    error = run_expecting(AuthenticationError, driver, server.base_url)
    assert error.status == 401  # type: ignore[attr-defined]
    assert error.code == "invalid_api_key"  # type: ignore[attr-defined]
    assert "Incorrect API key provided" in str(error)
    assert KEY not in str(error) and KEY not in repr(error)
    assert_failed_in_round_two(error, server, sent=1)


# DashScope compatible mode's answer to an over-long input, as it sends it.
DASHSCOPE_400 = {
    "error": {
        "message": "<400> InternalError.Algo.InvalidParameter: Range of input length should be "
        "[1, 129024]",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_parameter_error",
    },
    "id": "chatcmpl-0f4c1a2e-7d1b-9a3e-b2c4-5e6f7a8b9c0d",
    "request_id": "0f4c1a2e-7d1b-9a3e-b2c4-5e6f7a8b9c0d",
}


def test_400_with_the_dashscope_body(driver: Driver, server: ScriptedServer) -> None:
    script(server, Reply.raw(json.dumps(DASHSCOPE_400), status=400))
    error = run_expecting(BadRequestError, driver, server.base_url)
    assert error.status == 400  # type: ignore[attr-defined]
    assert error.code == "invalid_parameter_error"  # type: ignore[attr-defined]
    assert "Range of input length should be [1, 129024]" in str(error)
    assert_failed_in_round_two(error, server, sent=1)


NOT_COMPLETIONS = {
    "not_json": "Service temporarily unavailable",
    "empty": "",
    "no_choices_key": json.dumps({"id": "chatcmpl-1", "object": "chat.completion"}),
    "empty_choices": json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": []}),
    "json_array": "[1, 2, 3]",
}


@pytest.mark.parametrize("body", NOT_COMPLETIONS.values(), ids=NOT_COMPLETIONS.keys())
def test_200_that_is_not_a_completion(driver: Driver, server: ScriptedServer, body: str) -> None:
    script(server, Reply.raw(body, status=200))
    error = run_expecting(InvalidResponseError, driver, server.base_url)
    assert error.status == 200  # type: ignore[attr-defined]
    assert body[:20] in str(error), "the message shows what arrived"
    assert_failed_in_round_two(error, server, sent=1)


PROXY_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
    + "<!-- a padding comment to make the page large -->" * 100
    + "</body></html>"
)


@pytest.mark.parametrize("burst", [RETRIES, RETRIES + 1])
def test_html_error_page_from_a_proxy(driver: Driver, server: ScriptedServer, burst: int) -> None:
    page = Reply.raw(PROXY_PAGE, status=502, content_type="text/html")
    script(server, *[page] * burst)
    if burst <= RETRIES:
        assert_recovered(run_with(driver, server.base_url), server, burst)
        return
    error = run_expecting(ServerError, driver, server.base_url)
    assert error.status == 502  # type: ignore[attr-defined]
    assert "502 Bad Gateway" in str(error)
    assert len(str(error)) < 400, "a snippet of the page, not the whole page"
    assert_failed_in_round_two(error, server, sent=burst)


def test_html_page_with_status_200(driver: Driver, server: ScriptedServer) -> None:
    # a captive portal or a misconfigured base URL: a 200 that is a web page
    script(
        server,
        Reply.raw(
            PROXY_PAGE.replace("502 Bad Gateway", "Sign in"),
            status=200,
            content_type="text/html; charset=utf-8",
        ),
    )
    error = run_expecting(InvalidResponseError, driver, server.base_url)
    assert "Sign in" in str(error) and len(str(error)) < 400
    assert_failed_in_round_two(error, server, sent=1)
