"""agentkit.testing: the scripted OpenAI-compatible server, exercised with httpx over loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit.testing import (
    RecordedRequest,
    Reply,
    ScriptedServer,
    always,
    echo,
    tool_then_answer,
)

DATA = Path(__file__).parent / "data"
USER = [{"role": "user", "content": "What time is it?"}]


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def post(client: httpx.Client, **body: Any) -> httpx.Response:
    body.setdefault("model", "qwen-plus")
    body.setdefault("messages", USER)
    return client.post("/chat/completions", json=body)


def sse_payloads(text: str) -> list[Any]:
    """The data of each event, JSON-decoded ("[DONE]" kept as the string)."""
    out: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def assemble_tool_calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls assembled by index the careful way: id, type and name set once."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(delta["index"], {"id": "", "name": "", "arguments": ""})
                if delta.get("id"):
                    call["id"] = call["id"] or delta["id"]
                function = delta.get("function") or {}
                if function.get("name"):
                    call["name"] = call["name"] or function["name"]
                call["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def raw_exchange(server: ScriptedServer, body: dict[str, Any]) -> socket.socket:
    """Send one request on a bare socket; return the socket to read the response from."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
    )
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def post_raw_stream(server: ScriptedServer) -> list[bytes]:
    """POST a streaming request on a bare socket; return the body's HTTP chunks as framed."""
    with raw_exchange(server, {"stream": True}) as sock:
        raw = b""
        while not raw.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            assert data, "connection closed before the end of the body"
            raw += data
    body = raw.split(b"\r\n\r\n", 1)[1]
    pieces: list[bytes] = []
    while True:
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return pieces
        pieces.append(body[:size])
        body = body[size + 2 :]


# --- completions as JSON ---------------------------------------------------------------


def test_text_reply_as_json(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("It is noon.", usage={"prompt_tokens": 3, "completion_tokens": 4}))
    response = post(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["x-request-id"] == "req-1"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "qwen-plus"  # echoed from the request
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "It is noon."}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4}


def test_text_reply_estimates_usage_and_keeps_reasoning(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.queue(Reply.text("Noon.", reasoning="The clock says 12.", model="qwen3"))
    body = post(client).json()
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] == "The clock says 12."
    assert body["model"] == "qwen3"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_tool_calls_as_json(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(
        Reply.tool_calls(
            ("get_current_time", {}),
            ("get_current_weather", {"location": "Zürich"}),
            ("broken", '{"location": "Par'),  # a raw string goes out verbatim
            ("named", {"x": 1}, "call_custom"),
        )
    )
    body = post(client).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == ""
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == [
        "get_current_time",
        "get_current_weather",
        "broken",
        "named",
    ]
    assert all(c["type"] == "function" for c in calls)
    assert json.loads(calls[1]["function"]["arguments"]) == {"location": "Zürich"}
    assert calls[2]["function"]["arguments"] == '{"location": "Par'
    assert calls[3]["id"] == "call_custom"
    assert len({c["id"] for c in calls}) == 4


def test_generated_call_ids_are_unique_across_requests(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.respond_with(always(Reply.tool_calls(("f", {}), ("g", {}))))
    ids = [
        c["id"]
        for _ in range(3)
        for c in post(client).json()["choices"][0]["message"]["tool_calls"]
    ]
    assert len(set(ids)) == 6


# --- completions as SSE ----------------------------------------------------------------


def test_text_stream_shape(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("I am a large language model from Alibaba Cloud."))
    response = post(client, stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["x-request-id"] == "req-1"
    events = sse_payloads(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert len(texts) > 3  # split into several deltas
    assert "".join(texts) == "I am a large language model from Alibaba Cloud."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] > 0
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage_chunk(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.queue(Reply.text("Hi there"))
    chunks = sse_payloads(post(client, stream=True).text)[:-1]
    assert all(c["choices"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_flag_can_be_forced(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("a b", stream=True), Reply.text("a b", stream=False))
    assert post(client).headers["content-type"] == "text/event-stream"
    assert post(client, stream=True).headers["content-type"] == "application/json"


def test_reasoning_streams_before_content(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("Noon.", reasoning="Look at the clock.", chunk_size=4))
    chunks = sse_payloads(post(client, stream=True).text)[:-1]
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    reasoning = [d["reasoning_content"] for d in deltas if d.get("reasoning_content")]
    content = [d["content"] for d in deltas if d.get("content")]
    assert "".join(reasoning) == "Look at the clock."
    assert all(len(piece) <= 4 for piece in reasoning + content)
    assert "".join(content) == "Noon."
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all(not d.get("content") for d in deltas[:first_content])
    assert all(not d.get("reasoning_content") for d in deltas[first_content:])


def test_tool_calls_stream_openai_style(server: ScriptedServer, client: httpx.Client) -> None:
    arguments = {"location": "Singapore", "unit": "celsius"}
    server.queue(Reply.tool_calls(("get_current_weather", arguments), ("get_current_time", {})))
    response = post(client, stream=True)
    chunks = sse_payloads(response.text)[:-1]
    per_call: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        for delta in chunk["choices"][0]["delta"].get("tool_calls") or []:
            per_call.setdefault(delta["index"], []).append(delta)
    first = per_call[0][0]
    assert first["id"] and first["type"] == "function"
    assert first["function"]["name"] == "get_current_weather"
    assert len(per_call[0]) > 2  # the arguments come in several fragments
    assert all("id" not in d and "name" not in d["function"] for d in per_call[0][1:])
    calls = assemble_tool_calls(chunks)
    assert [c["name"] for c in calls] == ["get_current_weather", "get_current_time"]
    assert json.loads(calls[0]["arguments"]) == arguments
    assert json.loads(calls[1]["arguments"]) == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_calls_stream_dashscope_style(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(
        Reply.tool_calls(("get_current_weather", {"location": "Beijing"}), style="dashscope")
    )
    chunks = sse_payloads(post(client, stream=True).text)[:-1]
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert deltas[0]["id"].startswith("call_")
    assert deltas[0]["function"]["name"] == "get_current_weather"
    continuations = deltas[1:]
    assert len(continuations) > 2
    assert all(d["id"] == "" and d["type"] == "function" for d in continuations)
    assert deltas[-1]["function"] == {}  # the trailing chunk DashScope sends
    assert chunks[-1]["choices"][0]["delta"] == {"content": ""}
    assert json.loads(assemble_tool_calls(chunks)[0]["arguments"]) == {"location": "Beijing"}


def test_tool_calls_llama_cpp_style(server: ScriptedServer, client: httpx.Client) -> None:
    reply = Reply.tool_calls(("get_current_weather", {"location": "Sydney"}), style="llama.cpp")
    server.queue(reply, reply)
    chunks = sse_payloads(post(client, stream=True).text)[:-1]
    assert chunks[0]["choices"][0]["delta"]["content"] is None
    middle = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert len(middle) > 2
    call_id = middle[0]["tool_calls"][0]["id"]
    for delta in middle:  # every chunk repeats id, type and name, plus function_call
        (call,) = delta["tool_calls"]
        assert call["id"] == call_id and call["type"] == "function"
        assert call["function"]["name"] == "get_current_weather"
        assert delta["function_call"]["name"] == "get_current_weather"
        assert delta["function_call"]["arguments"] == call["function"]["arguments"]
    naive = "".join(d["tool_calls"][0]["function"]["name"] for d in middle)
    assert naive != "get_current_weather"  # what a concatenating accumulator would get
    assert json.loads(assemble_tool_calls(chunks)[0]["arguments"]) == {"location": "Sydney"}
    message = post(client).json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["function_call"]["name"] == "get_current_weather"


def test_text_tool_calls_qwen_without_parser(server: ScriptedServer, client: httpx.Client) -> None:
    reply = Reply.text_tool_calls(("get_current_time", {"timezone": "Asia/Shanghai"}))
    server.queue(reply, reply)
    message = post(client).json()["choices"][0]["message"]
    assert "tool_calls" not in message
    content = message["content"]
    assert content.startswith("<tool_call>\n") and content.endswith("\n</tool_call>")
    inner = json.loads(content[len("<tool_call>") : -len("</tool_call>")])
    assert inner == {"name": "get_current_time", "arguments": {"timezone": "Asia/Shanghai"}}
    chunks = sse_payloads(post(client, stream=True).text)[:-1]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert streamed == content


# --- errors, raw bodies and raw streams ------------------------------------------------


def test_error_reply(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(
        Reply.error(
            400, "Range of temperature is [0, 2)", code="invalid_parameter", param="temperature"
        )
    )
    response = post(client)
    assert response.status_code == 400
    assert response.headers["x-request-id"] == "req-1"
    assert response.json() == {
        "error": {
            "message": "Range of temperature is [0, 2)",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_parameter",
        }
    }


def test_error_presets(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(
        Reply.rate_limited(retry_after=2),
        Reply.quota_exceeded(),
        Reply.invalid_api_key(),
        Reply.content_moderation(),
        Reply.error(503, headers={"retry-after-ms": "150"}),
    )
    limited = post(client)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    quota = post(client)
    assert quota.status_code == 429 and "retry-after" not in quota.headers
    assert quota.json()["error"]["code"] == "insufficient_quota"
    assert "quota" in quota.json()["error"]["message"]
    key = post(client)
    assert key.status_code == 401 and key.json()["error"]["code"] == "invalid_api_key"
    moderation = post(client)
    assert moderation.json()["error"]["code"] == "data_inspection_failed"
    overloaded = post(client)
    assert overloaded.status_code == 503
    assert overloaded.headers["retry-after-ms"] == "150"
    assert overloaded.json()["error"]["message"] == "Service Unavailable"
    assert overloaded.json()["error"]["type"] == "server_error"


def test_raw_bodies(server: ScriptedServer, client: httpx.Client) -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    server.queue(
        Reply.raw("this is not json"),
        Reply.raw(b'{"id": "x", "object": "chat.completion"}'),
        Reply.raw(html, status=502, content_type="text/html"),
        Reply.raw(b""),
        Reply.raw(b"\x00\xff", content_type=None),
    )
    assert post(client).text == "this is not json"
    assert "choices" not in post(client).json()
    proxy = post(client)
    assert (proxy.status_code, proxy.headers["content-type"], proxy.text) == (
        502,
        "text/html",
        html,
    )
    empty = post(client)
    assert empty.status_code == 200 and empty.content == b""
    assert empty.headers["content-length"] == "0"
    binary = post(client)
    assert binary.content == b"\x00\xff" and "content-type" not in binary.headers


def test_raw_sse(server: ScriptedServer, client: httpx.Client) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    server.queue(
        Reply.sse([chunk, ": keep-alive comment\n\n", "garbage line\r\n\r\n", b"data: {}\r\n\r\n"]),
        Reply.sse([chunk], done=False),
    )
    text = post(client, stream=True).text
    assert text == (
        f"data: {json.dumps(chunk)}\n\n"
        ": keep-alive comment\n\n"
        "garbage line\r\n\r\n"
        "data: {}\r\n\r\n"
        "data: [DONE]\n\n"
    )
    assert post(client, stream=True).text == f"data: {json.dumps(chunk)}\n\n"


def test_empty_stream_like_llama_cpp(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.empty_stream())
    response = post(client, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content == b""


@pytest.mark.parametrize(
    "sample",
    [
        "dashscope/http_stream.txt",
        "llama-cpp/req_forced_stream.response.txt",
        "llama-cpp/req_plain_stream.response.txt",
    ],
)
def test_replay_sse_byte_for_byte(
    server: ScriptedServer, client: httpx.Client, sample: str
) -> None:
    data = (DATA / sample).read_bytes()
    server.queue(Reply.replay(data))
    response = post(client, stream=True)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content == data


def test_replay_json_byte_for_byte(server: ScriptedServer, client: httpx.Client) -> None:
    data = (DATA / "dashscope" / "http_completion.json").read_bytes()
    error = (DATA / "llama-cpp" / "req_round2_sys_none.response.txt").read_bytes()
    server.queue(Reply.replay(data), Reply.replay(error, status=500))
    response = post(client)
    assert response.headers["content-type"] == "application/json"
    assert response.content == data
    failed = post(client)
    assert failed.status_code == 500 and failed.content == error


# --- routing, the script, recording ----------------------------------------------------


@pytest.mark.script_errors
def test_script_ran_out_is_a_readable_500(server: ScriptedServer, client: httpx.Client) -> None:
    response = post(client)
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert "script ran out" in message and "request #1" in message
    assert len(server.errors) == 1 and "script ran out" in server.errors[0]


def test_queue_first_then_handler(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("queued"))
    server.respond_with(echo())
    assert post(client).json()["choices"][0]["message"]["content"] == "queued"
    assert post(client).json()["choices"][0]["message"]["content"] == "What time is it?"
    assert server.remaining == 0
    assert not server.errors


@pytest.mark.script_errors
def test_handler_errors_become_500(server: ScriptedServer, client: httpx.Client) -> None:
    def broken(request: RecordedRequest) -> Reply:
        raise KeyError("oops")

    server.respond_with(broken)
    response = post(client)
    assert response.status_code == 500
    assert "handler raised KeyError" in response.json()["error"]["message"]
    server.respond_with(lambda request: "not a reply")  # type: ignore[arg-type,return-value]
    assert "not a Reply" in post(client).json()["error"]["message"]
    assert len(server.errors) == 2


@pytest.mark.script_errors
def test_a_reply_that_cannot_be_rendered_is_reported(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.queue(Reply.text("x", usage={"tokens": object()}), Reply.text("fine"))
    with pytest.raises(httpx.RemoteProtocolError):
        post(client)
    assert "TypeError" in server.errors[0]
    assert post(client).json()["choices"][0]["message"]["content"] == "fine"


def test_async_handler(server: ScriptedServer, client: httpx.Client) -> None:
    async def handler(request: RecordedRequest) -> Reply:
        await asyncio.sleep(0)
        return Reply.text(f"you sent {len(request.messages)} message(s)")

    server.respond_with(handler)
    assert post(client).json()["choices"][0]["message"]["content"] == "you sent 1 message(s)"


def test_constructor_replies_and_handler() -> None:
    replies = [Reply.text("one")]
    with (
        ScriptedServer(replies=replies, handler=always(Reply.text("more"))) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        contents = [post(client).json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert contents == ["one", "more", "more"]


def test_tool_then_answer_model(server: ScriptedServer, client: httpx.Client) -> None:
    server.respond_with(tool_then_answer(("get_current_time", {}), answer="It is noon."))
    first = post(client).json()["choices"][0]["message"]
    call = first["tool_calls"][0]
    messages = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": first["tool_calls"]},
        {"role": "tool", "tool_call_id": call["id"], "content": "12:00"},
    ]
    second = post(client, messages=messages).json()["choices"][0]["message"]
    assert second["content"] == "It is noon."


def test_paths(server: ScriptedServer, client: httpx.Client) -> None:
    server.respond_with(always(Reply.text("ok")))
    root = server.url
    for path in (
        "/chat/completions",
        "/compatible-mode/v1/chat/completions",
        "/v1/chat/completions/",
    ):
        assert client.post(root + path, json={"messages": []}).status_code == 200
    missing = client.post(root + "/v1/completions", json={})
    assert missing.status_code == 404
    assert "POST .../chat/completions" in missing.json()["error"]["message"]
    wrong_method = client.get("/chat/completions")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert not server.errors


def test_requests_are_recorded(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("a"), Reply.text("b"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    client.post(
        "/chat/completions?trace=1",
        json={"model": "qwen-plus", "messages": USER, "tools": tools, "stream": True},
        headers={"Authorization": "Bearer sk-test", "X-Custom": "1"},
    )
    client.post("/chat/completions", content=b"not json")
    first, second = server.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions?trace=1")
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["AUTHORIZATION"] == "Bearer sk-test"
    assert "x-custom" in first.headers and "X-CUSTOM" in first.headers
    assert first.json()["model"] == "qwen-plus" and first.model == "qwen-plus"
    assert first.messages == USER and first.tools == tools and first.stream is True
    assert (first.number, first.request_id) == (1, "req-1")
    assert second.body == b"not json" and second.messages == [] and second.stream is False
    with pytest.raises(ValueError):
        second.json()
    assert second.received_at >= first.received_at


def test_chunked_request_body_is_read(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("ok"))
    payload = json.dumps({"messages": USER}).encode()
    response = client.post("/chat/completions", content=iter([payload[:5], payload[5:]]))
    assert response.status_code == 200
    assert server.requests[0].headers["transfer-encoding"] == "chunked"
    assert server.requests[0].messages == USER


def test_null_assistant_content_rejected_like_llama_cpp() -> None:
    with (
        ScriptedServer(reject_null_assistant_content=True) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        server.queue(Reply.text("fine"))
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for assistant in (
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "assistant", "tool_calls": [call]},
        ):
            response = post(client, messages=[*USER, assistant])
            assert response.status_code == 500
            assert response.json()["error"]["type"] == "internal_server_error"
        assert server.remaining == 1  # the queued reply waits for a good request
        ok = post(
            client, messages=[*USER, {"role": "assistant", "content": "", "tool_calls": [call]}]
        )
        assert ok.json()["choices"][0]["message"]["content"] == "fine"


def test_keep_alive_reuses_one_connection(server: ScriptedServer, client: httpx.Client) -> None:
    server.respond_with(always(Reply.text("ok")))
    for stream in (False, True, False, True):
        assert post(client, stream=stream).status_code == 200
    assert server.connections_opened == 1
    assert server.open_connections == 1


def test_connection_close_is_honoured(server: ScriptedServer, client: httpx.Client) -> None:
    server.respond_with(always(Reply.text("ok")))
    response = client.post("/chat/completions", json={}, headers={"Connection": "close"})
    assert response.headers["connection"] == "close"
    post(client)
    assert server.connections_opened == 2


# --- faults ----------------------------------------------------------------------------


def test_delay_before_status_line(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("late").with_(delay=0.3))
    started = time.monotonic()
    assert post(client).json()["choices"][0]["message"]["content"] == "late"
    assert time.monotonic() - started >= 0.29


@pytest.mark.script_errors
def test_a_delay_belongs_to_its_reply_only(server: ScriptedServer, client: httpx.Client) -> None:
    # The first reply waits longer than the test may take; the second is answered meanwhile.
    server.queue(Reply.text("late").with_(delay=600), Reply.text("now"))
    waiting: list[BaseException] = []

    def delayed() -> None:
        try:
            with httpx.Client(base_url=server.base_url, timeout=600) as other:
                post(other)
        except httpx.HTTPError as exc:
            waiting.append(exc)

    caller = threading.Thread(target=delayed)
    caller.start()
    server.wait_for_requests(1)
    assert post(client).json()["choices"][0]["message"]["content"] == "now"
    assert caller.is_alive()  # the first reply is still waiting out its delay
    server.stop()  # closes the delayed connection
    caller.join()
    assert isinstance(waiting[0], httpx.RemoteProtocolError)


def test_chunk_delay_spaces_the_events(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("one two three", chunk_size=4).with_(chunk_delay=0.05))
    arrivals: list[float] = []
    started = time.monotonic()
    with client.stream("POST", "/chat/completions", json={"stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
    # first chunk, 4 text chunks, finish chunk, [DONE]: 6 gaps of 50 ms
    assert len(arrivals) == 7
    assert arrivals[-1] - arrivals[0] >= 0.25


def test_cut_stream_mid_tool_call(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(
        Reply.tool_calls(("get_current_weather", {"location": "Singapore"})).with_(cut_after=3)
    )
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        client.stream("POST", "/chat/completions", json={"stream": True}) as response,
    ):
        assert response.status_code == 200
        lines.extend(line for line in response.iter_lines() if line)
    assert len(lines) == 3  # three events got through, then the connection closed
    assert "[DONE]" not in "".join(lines)
    assert all(json.loads(line[6:])["choices"][0]["finish_reason"] is None for line in lines)
    assert server.open_connections == 0


def test_cut_after_every_event_still_misses_the_terminator(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.queue(Reply.text("hi").with_(cut_after=1000))
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, stream=True)


def test_cut_json_body(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("a complete answer").with_(cut_after=10), Reply.text("next"))
    with pytest.raises(httpx.RemoteProtocolError):
        post(client)
    # the client recovers on a fresh connection
    assert post(client).json()["choices"][0]["message"]["content"] == "next"
    assert server.connections_opened == 2


def test_cut_with_rst(server: ScriptedServer) -> None:
    server.queue(Reply.text("a b c d", stream=True).with_(cut_after=2, rst=True))
    sock = raw_exchange(server, {"stream": True})
    with sock, pytest.raises(ConnectionResetError):
        read_all(sock)


def test_reset_sends_rst_and_close_sends_fin(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.reset(), Reply.reset(rst=False))
    sock = raw_exchange(server, {})
    with sock, pytest.raises(ConnectionResetError):
        read_all(sock)
    sock = raw_exchange(server, {})
    with sock:
        assert read_all(sock) == b""  # an orderly close with no response at all
    server.queue(Reply.reset(), Reply.reset(rst=False))
    with pytest.raises(httpx.ReadError):
        post(client)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        post(client)


def _started_since(before: set[threading.Thread]) -> list[str]:
    """The threads alive now that were not in ``before`` (compared by identity: another
    test's leftover thread ending meanwhile changes the count, not this)."""
    return [t.name for t in threading.enumerate() if t not in before]


def test_hang_then_stop_returns_promptly() -> None:
    threads_before = set(threading.enumerate())
    server = ScriptedServer().start()
    server.queue(Reply.hang())
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                post(client)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    server.wait_for_requests(1)
    assert server.open_connections == 1
    server.stop()  # a hang of its own would be a test timeout
    caller.join(30)
    assert not caller.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)  # the hung connection was closed
    assert _started_since(threads_before) == []


def test_hang_fires_the_client_read_timeout(server: ScriptedServer) -> None:
    server.queue(Reply.hang())
    # A hang is forever: only the client's timeout ends it.
    with (
        httpx.Client(base_url=server.base_url, timeout=0.3) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        post(client)


@pytest.mark.parametrize(
    "stalled", [Reply.hang(), Reply.text("a b c d e").with_(hang_after=2)], ids=["hang", "after"]
)
def test_a_client_that_leaves_a_hang_frees_its_connection(
    server: ScriptedServer, stalled: Reply
) -> None:
    # How a test sees that a cancelled or timed-out client really closed its socket.
    server.queue(stalled)
    sock = raw_exchange(server, {"stream": True})
    server.wait_for_requests(1)
    assert server.open_connections == 1
    sock.close()
    wait_until(lambda: server.open_connections == 0)
    server.queue(Reply.text("next"))
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert post(client).json()["choices"][0]["message"]["content"] == "next"


def test_bytes_behind_a_hang_are_never_answered(server: ScriptedServer) -> None:
    server.queue(Reply.hang(), Reply.text("never sent"))
    with raw_exchange(server, {}) as sock:
        server.wait_for_requests(1)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # still hung: nothing is answered behind it
        assert server.open_connections == 1
        assert server.request_count == 1


def test_hang_after_stalls_a_stream(server: ScriptedServer) -> None:
    server.queue(Reply.text("a b c d e").with_(hang_after=2))
    lines: list[str] = []
    with (
        httpx.Client(base_url=server.base_url, timeout=0.3) as client,
        pytest.raises(httpx.ReadTimeout),
        client.stream("POST", "/chat/completions", json={"stream": True}) as response,
    ):
        lines.extend(line for line in response.iter_lines() if line)
    assert len(lines) == 2


def test_split_bytes_frames_each_piece_on_its_own(server: ScriptedServer) -> None:
    reply = Reply.sse([{"choices": [{"index": 0, "delta": {"content": "héllo"}}]}])
    server.queue(reply)
    events = post_raw_stream(server)
    assert len(events) == 2  # unsplit: one HTTP chunk per event, [DONE] included
    body = b"".join(events)

    server.queue(reply.with_(split_bytes=7))
    split = post_raw_stream(server)
    assert b"".join(split) == body
    assert len(split) > 3 and all(len(piece) == 7 for piece in split[:-1])

    # "é" is two bytes in UTF-8: pieces of (position, 1) split the character in two.
    position = body.index("é".encode()) + 1
    server.queue(reply.with_(split_bytes=(position, 1)))
    pieces = post_raw_stream(server)
    assert [len(piece) for piece in pieces] == [position, 1, len(body) - position - 1]
    assert pieces[0].endswith(b"\xc3")
    assert b"".join(pieces) == body


def test_split_bytes_on_a_json_body_arrives_in_time_slices(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.queue(Reply.text("hello").with_(split_bytes=40, chunk_delay=0.05))
    started = time.monotonic()
    response = post(client)
    elapsed = time.monotonic() - started
    pieces = -(-len(response.content) // 40)
    assert pieces >= 4
    assert elapsed >= (pieces - 1) * 0.05 * 0.9
    assert response.json()["choices"][0]["message"]["content"] == "hello"


def test_extra_headers_override_defaults(server: ScriptedServer, client: httpx.Client) -> None:
    server.queue(Reply.text("hi").with_(headers={"X-Request-Id": "custom", "X-Extra": "1"}))
    response = post(client)
    assert response.headers["x-request-id"] == "custom"
    assert response.headers.get_list("x-request-id") == ["custom"]
    assert response.headers["x-extra"] == "1"


def test_with_validates_and_keeps_replies_immutable() -> None:
    base = Reply.text("hi")
    slow = base.with_(delay=0.5)
    assert base.delay == 0.0 and slow.delay == 0.5
    assert slow.with_(cut_after=2).delay == 0.5
    with pytest.raises(ValueError, match="not both"):
        base.with_(cut_after=1).with_(hang_after=1)
    twice = base.with_(headers={"X-A": "1"}).with_(headers={"x-a": "2"})
    assert twice.headers == (("x-a", "2"),)
    with pytest.raises(ValueError, match="delay"):
        base.with_(delay=-1)
    with pytest.raises(ValueError, match="split_bytes"):
        base.with_(split_bytes=[3, 0])
    with pytest.raises(ValueError, match="at least one"):
        Reply.tool_calls()
    with pytest.raises(TypeError, match="name, arguments"):
        Reply.tool_calls(("only-a-name",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Reply objects"):
        ScriptedServer().queue("hi")  # type: ignore[arg-type]


# --- scale and lifecycle ---------------------------------------------------------------


def test_200_concurrent_clients(server: ScriptedServer) -> None:
    server.respond_with(echo())

    async def one(client: httpx.AsyncClient, i: int) -> str:
        response = await client.post(
            "/chat/completions", json={"messages": [{"role": "user", "content": f"n{i}"}]}
        )
        response.raise_for_status()
        content: str = response.json()["choices"][0]["message"]["content"]
        return content

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as c:
            return await asyncio.gather(*(one(c, i) for i in range(200)))

    assert asyncio.run(main()) == [f"n{i}" for i in range(200)]
    assert len(server.requests) == 200
    assert server.connections_opened > 1
    assert not server.errors


def test_concurrent_delays_overlap(server: ScriptedServer) -> None:
    server.respond_with(always(Reply.text("ok").with_(delay=0.5)))
    answered: list[float] = []

    async def ask(client: httpx.AsyncClient) -> None:
        await client.post("/chat/completions", json={})
        answered.append(time.monotonic())

    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            await asyncio.gather(*(ask(client) for _ in range(3)))

    asyncio.run(main())
    # Served at once, not in turn: every request was in before the first answer came out.
    assert max(request.received_at for request in server.requests) < min(answered)


def test_no_thread_or_connection_left_after_stop() -> None:
    threads_before = set(threading.enumerate())
    for _ in range(3):
        with ScriptedServer() as server:
            server.respond_with(always(Reply.text("ok")))
            with httpx.Client(base_url=server.base_url) as client:
                post(client)
                assert _started_since(threads_before) == [f"ScriptedServer:{server.port}"]
        assert server.open_connections == 0
    assert _started_since(threads_before) == []


def test_stop_is_idempotent_and_closes_idle_keep_alive_connections() -> None:
    server = ScriptedServer().start()
    server.queue(Reply.text("ok"))
    with httpx.Client(base_url=server.base_url) as client:
        post(client)
        assert server.open_connections == 1
        server.stop()
        server.stop()
        assert server.open_connections == 0
        with pytest.raises(httpx.HTTPError):
            post(client)


def test_a_stopped_server_refuses_connections() -> None:
    with ScriptedServer() as server:
        base_url = server.base_url
    with httpx.Client(base_url=base_url) as client, pytest.raises(httpx.ConnectError):
        post(client)


def test_start_twice_is_an_error() -> None:
    with ScriptedServer() as server:
        assert (
            repr(server)
            == f"<ScriptedServer {server.base_url} serving: 0 requests, 0 replies queued>"
        )
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    assert "stopped" in repr(server)


def test_clear_requests_keeps_numbering(server: ScriptedServer, client: httpx.Client) -> None:
    server.respond_with(always(Reply.tool_calls(("f", {}))))
    first = post(client).json()["choices"][0]["message"]["tool_calls"][0]["id"]
    server.clear_requests()
    assert server.requests == [] and server.request_count == 1
    response = post(client)
    assert response.headers["x-request-id"] == "req-2"
    assert response.json()["choices"][0]["message"]["tool_calls"][0]["id"] != first
    assert [r.number for r in server.requests] == [2]


def test_recorded_request_built_by_hand() -> None:
    request = RecordedRequest(
        "POST", "/v1/chat/completions", {"Content-Type": "application/json"}, b'{"stream": true}'
    )
    assert request.headers["content-type"] == "application/json"
    assert request.stream is True and request.messages == []
    handler = tool_then_answer(("f", {}))
    reply = handler(request)
    assert reply == Reply.tool_calls(("f", {}))


def test_wait_for_requests_times_out_readably(server: ScriptedServer) -> None:
    with pytest.raises(TimeoutError, match="got 0 requests, expected 1"):
        server.wait_for_requests(1, timeout=0.05)


# --- properties ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[ScriptedServer, httpx.Client]]:
    with ScriptedServer() as s, httpx.Client(base_url=s.base_url, timeout=10) as c:
        yield s, c


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.text(max_size=200),
    chunk_size=st.none() | st.integers(min_value=1, max_value=20),
)
def test_streamed_text_reassembles_to_the_json_text(
    shared: tuple[ScriptedServer, httpx.Client], content: str, chunk_size: int | None
) -> None:
    server, client = shared
    server.respond_with(always(Reply.text(content, chunk_size=chunk_size)))
    assert post(client).json()["choices"][0]["message"]["content"] == content
    chunks = sse_payloads(post(client, stream=True).text)[:-1]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == content


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    arguments=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    style=st.sampled_from(["openai", "dashscope", "llama.cpp"]),
    chunk_size=st.none() | st.integers(min_value=1, max_value=10),
)
def test_streamed_tool_call_reassembles_for_every_style(
    shared: tuple[ScriptedServer, httpx.Client],
    arguments: dict[str, Any],
    style: Any,
    chunk_size: int | None,
) -> None:
    server, client = shared
    reply = Reply.tool_calls(
        ("f", arguments), ("g", "not json"), style=style, chunk_size=chunk_size
    )
    server.respond_with(always(reply))
    chunks = sse_payloads(post(client, stream=True).text)[:-1]
    first, second = assemble_tool_calls(chunks)
    assert first["name"] == "f" and json.loads(first["arguments"]) == arguments
    assert second["name"] == "g" and second["arguments"] == "not json"
    assert first["id"] != second["id"]


# --- throughput ------------------------------------------------------------------------


def test_many_requests_share_one_keep_alive_connection(
    server: ScriptedServer, client: httpx.Client
) -> None:
    # Its speed is measured by `python -m tests.benchmarks.scripted_throughput`, not asserted here.
    server.respond_with(always(Reply.text("ok")))
    for _ in range(100):
        assert post(client).status_code == 200
    assert server.request_count == 100
    assert server.connections_opened == 1


def test_command_line_server() -> None:
    command = [sys.executable, "-m", "agentkit.testing", "--model", "tool-then-answer"]
    command += ["--tool", "get_current_weather", "--arguments", '{"location": "Paris"}']
    command += ["--text", "Sunny."]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            with httpx.Client(base_url=base_url, timeout=10) as client:
                message = post(client).json()["choices"][0]["message"]
                call = message["tool_calls"][0]
                assert call["function"]["name"] == "get_current_weather"
                assert json.loads(call["function"]["arguments"]) == {"location": "Paris"}
                tool_result = {"role": "tool", "tool_call_id": call["id"], "content": "sun"}
                messages = [*USER, message, tool_result]
                answer = post(client, messages=messages).json()["choices"][0]["message"]
                assert answer["content"] == "Sunny."
        finally:
            process.terminate()
            assert process.wait(10) == 0
