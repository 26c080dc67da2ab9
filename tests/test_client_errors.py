"""Every error class the client raises, what it carries, and that the key never leaks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import refused_port

from agentkit import AsyncChatClient, ChatClient
from agentkit._errors import (
    AgentKitError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentModerationError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from agentkit.testing import Reply, ScriptedServer

DATA = Path(__file__).parent / "data"
USER = [{"role": "user", "content": "Hi"}]
KEY = "sk-leak-canary-7f3a9c2e51"


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY, max_retries=0) as chat:
        yield chat


def _raised(client: ChatClient, reply: Reply, server: ScriptedServer) -> APIError:
    server.queue(reply)
    with pytest.raises(APIError) as info:
        client.create(model="m", messages=USER)
    return info.value


@pytest.mark.parametrize(
    ("reply", "cls", "status", "code"),
    [
        (
            Reply.error(400, "bad temperature", code="invalid_parameter"),
            BadRequestError,
            400,
            "invalid_parameter",
        ),
        (Reply.error(422, "unprocessable"), BadRequestError, 422, None),
        (Reply.invalid_api_key(), AuthenticationError, 401, "invalid_api_key"),
        (
            Reply.error(403, "model access denied", code="AccessDenied"),
            PermissionDeniedError,
            403,
            "AccessDenied",
        ),
        (
            Reply.error(404, "model not found", code="model_not_found"),
            NotFoundError,
            404,
            "model_not_found",
        ),
        (Reply.rate_limited(), RateLimitError, 429, "rate_limit_exceeded"),
        (Reply.quota_exceeded(), QuotaExceededError, 429, "insufficient_quota"),
        (Reply.error(429, "Arrearage", code="Arrearage"), QuotaExceededError, 429, "Arrearage"),
        (
            Reply.error(429, "slow down", code="Throttling.RateQuota"),
            RateLimitError,
            429,
            "Throttling.RateQuota",
        ),
        (Reply.content_moderation(), ContentModerationError, 400, "data_inspection_failed"),
        (Reply.error(500, "boom"), ServerError, 500, None),
        (Reply.error(503, "The engine is currently overloaded"), ServerError, 503, None),
    ],
)
def test_status_errors(
    server: ScriptedServer,
    client: ChatClient,
    reply: Reply,
    cls: type[APIStatusError],
    status: int,
    code: str | None,
) -> None:
    error = _raised(client, reply, server)
    assert type(error) is cls
    assert isinstance(error, AgentKitError)
    assert error.status == status
    assert error.code == code
    assert error.request_id == "req-1"
    assert error.message
    assert f"status {status}" in str(error)
    assert "req-1" in str(error)


def test_seed_error_body_byte_for_byte(server: ScriptedServer, client: ChatClient) -> None:
    body = (DATA / "dashscope" / "error_invalid_api_key.json").read_bytes()
    error = _raised(client, Reply.replay(body, status=401), server)
    assert isinstance(error, AuthenticationError)
    assert error.message == "Incorrect API key provided."
    assert error.type == "invalid_request_error"
    assert error.code == "invalid_api_key"
    assert error.param is None


def test_request_id_headers_and_body(server: ScriptedServer, client: ChatClient) -> None:
    dashscope = Reply.error(400, "bad").with_(
        headers={"x-request-id": "", "x-dashscope-request-id": "ds-1"}
    )
    assert _raised(client, dashscope, server).request_id == "ds-1"
    native = Reply.raw(
        '{"code": "InvalidParameter", "message": "bad", "request_id": "rid-9"}', status=400
    ).with_(headers={"x-request-id": ""})
    error = _raised(client, native, server)
    assert (error.request_id, error.code, error.message) == ("rid-9", "InvalidParameter", "bad")


@pytest.mark.parametrize(
    ("reply", "status", "fragment"),
    [
        (
            Reply.raw(
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                status=502,
                content_type="text/html",
            ),
            502,
            "502 Bad Gateway",
        ),
        (Reply.raw('{"detail": "Not Found"}', status=404), 404, "Not Found"),
        (Reply.raw('{"error": "model \'x\' not found"}', status=404), 404, "model 'x' not found"),
        (Reply.raw("", status=500, content_type=None), 500, "HTTP 500"),
    ],
)
def test_odd_error_bodies_stay_readable(
    server: ScriptedServer, client: ChatClient, reply: Reply, status: int, fragment: str
) -> None:
    error = _raised(client, reply, server)
    assert isinstance(error, APIStatusError)
    assert error.status == status
    assert fragment in str(error)


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        ("not json at all", "text/plain", "not JSON"),
        ("<!DOCTYPE html><html><title>Login</title></html>", "text/html", "<!DOCTYPE html>"),
        ('{"id": "x", "object": "chat.completion"}', "application/json", "choices"),
        ('{"id": "x", "choices": []}', "application/json", "no choices"),
        ('{"choices": "nope"}', "application/json", "not a chat completion"),
        ("", "application/json", "empty body"),
        ("[1, 2]", "application/json", "not a chat completion"),
    ],
)
def test_invalid_2xx_bodies(
    server: ScriptedServer, client: ChatClient, body: str, content_type: str, fragment: str
) -> None:
    error = _raised(client, Reply.raw(body, content_type=content_type), server)
    assert type(error) is InvalidResponseError
    assert error.status == 200
    assert error.request_id == "req-1"
    assert fragment in str(error)


def test_error_body_with_status_200(server: ScriptedServer, client: ChatClient) -> None:
    body = (
        '{"error": {"message": "Input data may contain inappropriate content.", '
        '"code": "data_inspection_failed", "type": "data_inspection_failed"}}'
    )
    error = _raised(client, Reply.raw(body), server)
    assert isinstance(error, ContentModerationError)


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{refused_port()}/v1"
    with ChatClient(url, KEY, max_retries=0) as client, pytest.raises(APIConnectionError) as info:
        client.create(model="m", messages=USER)
    assert type(info.value) is APIConnectionError
    assert "could not connect" in str(info.value)
    assert url in str(info.value)
    assert isinstance(info.value.__cause__, Exception)


def test_connection_reset(server: ScriptedServer, client: ChatClient) -> None:
    error = _raised(client, Reply.reset(), server)
    assert type(error) is APIConnectionError


def test_read_timeout(server: ScriptedServer) -> None:
    server.queue(Reply.hang())
    with (
        ChatClient(server.base_url, KEY, max_retries=0, read_timeout=0.2) as client,
        pytest.raises(APITimeoutError) as info,
    ):
        client.create(model="m", messages=USER)
    assert "ReadTimeout" in str(info.value)
    assert isinstance(info.value, APIConnectionError)


def test_one_timeout_for_everything(server: ScriptedServer) -> None:
    server.queue(Reply.text("late").with_(delay=0.5))
    with (
        ChatClient(server.base_url, max_retries=0, timeout=0.1) as client,
        pytest.raises(APITimeoutError),
    ):
        client.create(model="m", messages=USER)


# --- the key never leaks -------------------------------------------------------------------


def test_key_never_in_errors_reprs_or_logs(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echoing = f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}"
    server.queue(
        Reply.error(503, "busy"),
        Reply.error(401, echoing, code="invalid_api_key"),
        Reply.raw(f"<html>your header was Bearer {KEY}</html>", content_type="text/html"),
        Reply.sse([f"data: garbage {KEY}\n\n"]),
        Reply.sse([{"error": {"message": f"bad key {KEY}", "code": 401}}]),
    )
    errors: list[BaseException] = []
    with ChatClient(server.base_url, KEY, max_retries=1, retry_base_delay=0.01) as client:
        assert KEY not in repr(client)
        for _ in range(2):
            with pytest.raises(AgentKitError) as info:
                client.create(model="m", messages=USER)
            errors.append(info.value)
        for _ in range(2):
            with pytest.raises(AgentKitError) as info, client.stream(model="m", messages=USER) as s:
                s.until_done()
            errors.append(info.value)
    assert [type(e) for e in errors] == [
        AuthenticationError,
        InvalidResponseError,
        InvalidResponseError,
        AuthenticationError,
    ]
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert all(KEY not in str(arg) for arg in error.args)
        assert KEY not in str(vars(error))
    assert "***" in str(errors[0])
    assert caplog.records, "expected retry and httpx log lines"
    assert any("retry" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        assert KEY not in record.getMessage()


def test_async_errors_match(server: ScriptedServer) -> None:
    server.queue(Reply.quota_exceeded(), Reply.raw("oops", content_type="text/plain"), Reply.hang())

    async def main() -> list[type[BaseException]]:
        seen: list[type[BaseException]] = []
        async with AsyncChatClient(server.base_url, KEY, max_retries=0, read_timeout=1.0) as client:
            for _ in range(3):
                try:
                    await client.create(model="m", messages=USER)
                except AgentKitError as exc:
                    assert KEY not in str(exc)
                    seen.append(type(exc))
        return seen

    assert asyncio.run(main()) == [QuotaExceededError, InvalidResponseError, APITimeoutError]
