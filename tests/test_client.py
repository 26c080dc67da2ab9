"""ChatClient and AsyncChatClient: requests as sent, completions as parsed, the pool.

Everything goes over a real loopback socket to ``agentkit.testing.ScriptedServer``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit import APIConnectionError, AsyncChatClient, ChatClient
from agentkit._errors import ConfigurationError, RequestValidationError
from agentkit._wire import ChatMessage, FunctionCall, ToolCall
from agentkit.testing import Reply, ScriptedServer, echo

DATA = Path(__file__).parent / "data"
USER = [{"role": "user", "content": "Hi"}]
KEY = "sk-test-0123456789abcdef"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY) as chat:
        yield chat


# --- what is sent -------------------------------------------------------------------------


def test_request_line_headers_and_body(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.text("Hello!"))
    completion = client.create(
        model="qwen-plus",
        messages=USER,
        temperature=0.5,
        top_p=None,  # None is left out
        seed=7,
        stop=["\n\n"],
        tools=TOOLS,
        tool_choice="auto",
        parallel_tool_calls=True,
        response_format={"type": "text"},
        max_tokens=64,
        extra_body={"top_k": 20, "enable_thinking": False},
    )
    assert completion.choices[0].message.content == "Hello!"
    request = server.requests[0]
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("agentkit/")
    assert request.json() == {
        "model": "qwen-plus",
        "messages": USER,
        "temperature": 0.5,
        "seed": 7,
        "stop": ["\n\n"],
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": {"type": "text"},
        "max_tokens": 64,
        "stream": False,
        "top_k": 20,
        "enable_thinking": False,
    }


def test_stream_request_asks_for_usage_unless_the_caller_chose(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(Reply.text("a"), Reply.text("b"))
    with client.stream(model="m", messages=USER) as stream:
        stream.until_done()
    with client.stream(model="m", messages=USER, stream_options={"include_usage": False}) as s2:
        s2.until_done()
    first, second = (r.json() for r in server.requests)
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert second["stream_options"] == {"include_usage": False}


def test_create_drops_stream_options_and_refuses_a_contradicting_stream(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(Reply.text("ok"))
    client.create(model="m", messages=USER, stream_options={"include_usage": True}, stream=False)
    assert "stream_options" not in server.requests[0].json()
    with pytest.raises(RequestValidationError, match=r"stream\(\)") as info:
        client.create(model="m", messages=USER, stream=True)
    assert info.value.param == "stream"
    with pytest.raises(RequestValidationError, match="create"):
        client.stream(model="m", messages=USER, stream=False)
    assert len(server.requests) == 1


def test_unknown_parameters_are_refused_before_sending(
    server: ScriptedServer, client: ChatClient
) -> None:
    with pytest.raises(RequestValidationError) as info:
        client.create(model="m", messages=USER, temprature=0.3)
    assert info.value.param == "temprature"
    assert "extra_body" in str(info.value)
    with pytest.raises(RequestValidationError, match="model"):
        client.create(model="", messages=USER)
    with pytest.raises(RequestValidationError, match="messages"):
        client.create(model="m", messages="Hi")  # type: ignore[arg-type]
    with pytest.raises(RequestValidationError, match=r"messages\[1\]"):
        client.create(model="m", messages=[*USER, 42])  # type: ignore[list-item]
    with pytest.raises(RequestValidationError, match="JSON"):
        client.create(model="m", messages=USER, metadata={"when": object()})
    assert server.requests == []


def test_null_assistant_content_is_sent_as_empty_string(server: ScriptedServer) -> None:
    # llama.cpp answers 500 to an assistant message whose content is null or missing.
    server.reject_null_assistant_content = True
    server.queue(Reply.text("It is sunny."))
    round2 = json.loads((DATA / "llama-cpp" / "req_round2_sys_none.request.json").read_text())
    messages = round2["messages"]
    before = copy.deepcopy(messages)
    assert "content" not in messages[2]  # the captured round had no content at all
    with ChatClient(server.base_url) as client:
        answer = client.create(model=round2["model"], messages=messages, tools=round2["tools"])
    assert answer.choices[0].message.content == "It is sunny."
    sent = server.requests[0].json()["messages"]
    assert sent[2]["content"] == ""
    assert sent[2]["tool_calls"] == messages[2]["tool_calls"]
    assert messages == before  # the caller's list and dicts are untouched


def test_null_content_captured_500_is_what_the_fix_avoids(server: ScriptedServer) -> None:
    # the same transcript sent raw (not through the client) gets llama.cpp's captured 500
    server.reject_null_assistant_content = True
    messages: list[dict[str, Any]] = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
    ]
    answer = httpx.post(
        f"{server.base_url}/chat/completions", json={"model": "m", "messages": messages}
    )
    assert answer.status_code == 500
    assert "has no attribute 'content'" in answer.text


def test_assistant_message_models_are_accepted(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.text("ok"))
    previous = ChatMessage(
        content=None,
        reasoning_content="hidden",
        tool_calls=[ToolCall(id="c1", function=FunctionCall(name="f", arguments="{}"))],
    )
    client.create(
        model="m",
        messages=[*USER, previous, {"role": "tool", "tool_call_id": "c1", "content": "done"}],
    )
    sent = server.requests[0].json()["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }


def test_non_ascii_is_sent_as_utf8(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.text("杭州今天下雨。"))
    answer = client.create(model="m", messages=[{"role": "user", "content": "杭州天气？"}])
    assert answer.choices[0].message.content == "杭州今天下雨。"
    assert "杭州天气？".encode() in server.requests[0].body


def test_full_endpoint_url_is_accepted(server: ScriptedServer) -> None:
    server.queue(Reply.text("ok"))
    with ChatClient(server.base_url + "/chat/completions/") as client:
        client.create(model="m", messages=USER)
    assert server.requests[0].path == "/v1/chat/completions"


# --- the seed's own bodies, byte for byte ---------------------------------------------------


def test_seed_http_example(server: ScriptedServer) -> None:
    request = json.loads((DATA / "dashscope" / "http_request.json").read_bytes())
    server.queue(Reply.replay((DATA / "dashscope" / "http_completion.json").read_bytes()))
    with ChatClient(server.base_url, KEY) as client:
        completion = client.create(**request)
    assert server.requests[0].json() == {**request, "stream": False}
    assert completion.id == "chatcmpl-xxx"
    assert completion.model == "qwen-plus"
    assert completion.created == 1715252778
    assert completion.system_fingerprint == ""
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content == (
        "I am a large language model from Alibaba Cloud. My name is Qwen."
    )
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (11, 27)


def test_seed_sdk_completion_with_nulls(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(Reply.replay((DATA / "dashscope" / "sdk_completion.json").read_bytes()))
    completion = client.create(model="qwen-plus", messages=USER)
    message = completion.choices[0].message
    assert message.tool_calls is None
    assert message.content is not None and message.content.endswith("My name is Qwen.")
    assert completion.system_fingerprint is None
    assert completion.usage is not None and completion.usage.completion_tokens == 18


def test_llama_cpp_tool_call_with_legacy_function_call(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(Reply.replay((DATA / "llama-cpp" / "req_forced_sys.response.txt").read_bytes()))
    message = client.create(model="smollm2", messages=USER, tools=TOOLS).choices[0].message
    assert message.content is None
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Sydney"}


def test_legacy_function_call_alone_becomes_a_tool_call(
    server: ScriptedServer, client: ChatClient
) -> None:
    body = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "function_call",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "get_current_time", "arguments": "{}"},
                },
            }
        ],
    }
    server.queue(Reply.raw(json.dumps(body)))
    message = client.create(model="m", messages=USER).choices[0].message
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "get_current_time"
    assert message.tool_calls[0].id.startswith("call_")


def test_text_tool_calls_become_tool_calls(server: ScriptedServer) -> None:
    server.queue(Reply.text_tool_calls(("get_current_weather", {"location": "Singapore"})))
    with ChatClient(server.base_url) as client:
        message = client.create(model="qwen", messages=USER).choices[0].message
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "get_current_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {"location": "Singapore"}
    assert "<tool_call>" not in (message.content or "")


def test_text_tool_calls_can_be_left_as_text(server: ScriptedServer) -> None:
    server.queue(Reply.text_tool_calls(("get_current_weather", {"location": "Singapore"})))
    with ChatClient(server.base_url, parse_text_tool_calls=False) as client:
        message = client.create(model="qwen", messages=USER).choices[0].message
    assert message.tool_calls is None
    assert "<tool_call>" in (message.content or "")


def test_reasoning_and_unknown_fields_are_kept(server: ScriptedServer, client: ChatClient) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": None,
        "model": "qwq",
        "system_fingerprint": None,
        "vendor_field": {"a": 1},
        "choices": [
            {
                "index": 0,
                "finish_reason": None,
                "logprobs": None,
                "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2"},
            }
        ],
    }
    server.queue(Reply.raw(json.dumps(body)))
    completion = client.create(model="qwq", messages=USER)
    assert completion.choices[0].message.reasoning_content == "2+2"
    assert completion.choices[0].finish_reason is None
    assert completion.model_extra == {"vendor_field": {"a": 1}}


# --- the client itself ----------------------------------------------------------------------


def test_one_pooled_connection_for_many_requests(server: ScriptedServer) -> None:
    server.queue(*[Reply.text(str(i)) for i in range(5)])
    server.queue(Reply.text("streamed"))
    with ChatClient(server.base_url) as client:
        for _ in range(5):
            client.create(model="m", messages=USER)
        with client.stream(model="m", messages=USER) as stream:
            stream.until_done()
    assert server.connections_opened == 1


def test_close_and_context_manager(server: ScriptedServer) -> None:
    client = ChatClient(server.base_url)
    client.close()
    with pytest.raises(APIConnectionError) as caught:  # typed, not httpx's RuntimeError
        client.create(model="m", messages=USER)
    assert caught.value.code == "client_closed"
    assert server.requests == []


def test_user_supplied_http_client_is_used_and_left_open(server: ScriptedServer) -> None:
    server.queue(Reply.text("a"), Reply.text("b"))
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]})
    with ChatClient(server.base_url, KEY, http_client=http) as client:
        client.create(model="m", messages=USER)
    assert seen == [f"{server.base_url}/chat/completions"]
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    http.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": USER})
    http.close()
    with pytest.raises(ConfigurationError, match=r"httpx\.Client"):
        ChatClient(server.base_url, http_client=httpx.AsyncClient())  # type: ignore[arg-type]


def test_extra_headers_and_properties(server: ScriptedServer) -> None:
    server.queue(Reply.text("ok"))
    with ChatClient(server.base_url, headers={"X-DashScope-Trace": "1"}, max_retries=5) as c:
        c.create(model="m", messages=USER)
        assert c.max_retries == 5
        assert c.base_url == server.base_url
        assert c.provider.name == "custom"
    assert server.requests[0].headers["x-dashscope-trace"] == "1"
    with pytest.raises(ConfigurationError, match="max_retries"):
        ChatClient(server.base_url, max_retries=-1)


def test_repr_masks_the_key(server: ScriptedServer) -> None:
    with ChatClient(server.base_url, KEY) as client, ChatClient(server.base_url) as keyless:
        assert KEY not in repr(client)
        assert "api_key='***'" in repr(client)
        assert "api_key=None" in repr(keyless)
        assert KEY not in repr(client._protocol)


# --- async parity ---------------------------------------------------------------------------


def test_async_create_sends_the_same_body(server: ScriptedServer) -> None:
    server.queue(Reply.text("sync"), Reply.text("async"))
    params: dict[str, Any] = {"temperature": 0.2, "tools": TOOLS, "extra_body": {"top_k": 5}}
    with ChatClient(server.base_url, KEY) as client:
        sync_answer = client.create(model="m", messages=USER, **dict(params))

    async def main() -> str | None:
        async with AsyncChatClient(server.base_url, KEY) as client:
            answer = await client.create(model="m", messages=USER, **dict(params))
            return answer.choices[0].message.content

    assert sync_answer.choices[0].message.content == "sync"
    assert asyncio.run(main()) == "async"
    first, second = server.requests
    assert first.body == second.body
    assert second.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("spelling", ["pool_limits", "limits"])
def test_async_pool_is_shared_across_concurrent_requests(
    server: ScriptedServer, spelling: str
) -> None:
    server.respond_with(echo())
    pool: dict[str, Any] = {spelling: httpx.Limits(max_connections=4)}

    async def main() -> list[str | None]:
        async with AsyncChatClient(server.base_url, **pool) as c:
            answers = await asyncio.gather(
                *[
                    c.create(model="m", messages=[{"role": "user", "content": f"q{i}"}])
                    for i in range(20)
                ]
            )
        return [a.choices[0].message.content for a in answers]

    if spelling == "limits":  # the old name still sizes the pool, and says the new one
        with pytest.warns(
            DeprecationWarning, match=r"AsyncChatClient\(limits=\) is renamed pool_limits="
        ) as caught:
            assert asyncio.run(main()) == [f"q{i}" for i in range(20)]
        assert caught[0].filename == __file__
    else:
        assert asyncio.run(main()) == [f"q{i}" for i in range(20)]
    assert server.connections_opened <= 4


def test_the_pool_is_given_once() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        ChatClient("http://127.0.0.1:9/v1", "k", pool_limits=httpx.Limits(), limits=httpx.Limits())


def test_async_client_checks_its_http_client(server: ScriptedServer) -> None:
    with pytest.raises(ConfigurationError, match="AsyncClient"):
        AsyncChatClient(server.base_url, http_client=httpx.Client())  # type: ignore[arg-type]
    assert "api_key=None" in repr(AsyncChatClient(server.base_url))
