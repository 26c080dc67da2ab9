"""Real clients against the served app on 127.0.0.1, with the scripted model behind it:
the ``openai`` SDK, agentkit's own ``ChatClient``, and raw httpx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from agentkit import AsyncChatClient, ChatClient
from agentkit.serve import create_app
from agentkit.testing import Reply, ScriptedServer, echo, tool_then_answer

from .conftest import uvicorn_serving

openai = pytest.importorskip("openai")

ORDER = ("get_order", {"order_id": 1042})


def sse_events(raw: str) -> list[str]:
    """The events of an SSE body, comments included, in order."""
    return [event for event in raw.split("\n\n") if event]


def test_openai_sdk_whole_answer_runs_the_tools_on_the_server(
    model: ScriptedServer, served: str
) -> None:
    model.respond_with(tool_then_answer(ORDER, answer="Order 1042 has shipped."))
    client = openai.OpenAI(base_url=served + "/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="desk", messages=[{"role": "user", "content": "Where is order 1042?"}]
    )
    assert completion.choices[0].message.content == "Order 1042 has shipped."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    extension = (completion.model_extra or {})["agentkit"]
    assert [(a["type"], a["name"]) for a in extension["tool_activity"]] == [
        ("tool_call", "get_order"),
        ("tool_result", "get_order"),
    ]
    assert extension["tool_activity"][1]["output"] == "order 1042: shipped"
    # the tool ran on the server: the model's second request carries its result
    sent = model.requests[1].messages[-1]
    assert sent["role"] == "tool" and sent["content"] == "order 1042: shipped"
    assert sent["tool_call_id"] == extension["tool_activity"][0]["id"]


def test_openai_sdk_streamed_answer_arrives_as_content_deltas(
    model: ScriptedServer, served: str
) -> None:
    model.respond_with(tool_then_answer(ORDER, answer="Order 1042 has shipped today."))
    client = openai.OpenAI(base_url=served + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="desk",
        messages=[{"role": "user", "content": "Where is order 1042?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Order 1042 has shipped today."
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_openai_sdk_sends_history_statelessly(model: ScriptedServer, served: str) -> None:
    model.respond_with(echo())
    client = openai.OpenAI(base_url=served + "/v1", api_key="unused", max_retries=0)
    history: list[Any] = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    completion = client.chat.completions.create(model="desk", messages=history)
    assert completion.choices[0].message.content == "What is my name?"
    sent = model.requests[0].messages
    assert sent[0] == {"role": "system", "content": "You run the order desk."}
    assert sent[1:] == history


def test_agentkit_chat_client_talks_to_an_agentkit_bot(model: ScriptedServer, served: str) -> None:
    model.respond_with(tool_then_answer(ORDER, answer="Shipped."))
    with ChatClient(base_url=served + "/v1", api_key="unused", max_retries=0) as client:
        whole = client.create(model="desk", messages=[{"role": "user", "content": "1042?"}])
        assert whole.choices[0].message.content == "Shipped."
        with client.stream(model="desk", messages=[{"role": "user", "content": "1042?"}]) as s:
            text = "".join(getattr(delta, "text", "") for delta in s)
        assert text == "Shipped."
        assert s.completion.choices[0].finish_reason == "stop"


def test_raw_sse_follows_the_seed_format_with_tool_comments(
    model: ScriptedServer, served: str
) -> None:
    model.respond_with(tool_then_answer(ORDER, answer="Shipped."))
    response = httpx.post(
        served + "/v1/chat/completions",
        json={"model": "desk", "stream": True, "messages": [{"role": "user", "content": "?"}]},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "data: [DONE]"
    comments = [json.loads(e.removeprefix(": agentkit ")) for e in events if e.startswith(":")]
    assert [(c["type"], c["name"]) for c in comments] == [
        ("tool_call", "get_order"),
        ("tool_result", "get_order"),
    ]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1] if e.startswith("data")]
    first = chunks[0]
    assert set(first) >= {"id", "object", "created", "model", "choices", "usage"}
    assert first["object"] == "chat.completion.chunk" and first["model"] == "desk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["agentkit"]["status"] == "done"


def test_two_users_at_once_each_get_only_their_own_answer(
    model: ScriptedServer, served: str
) -> None:
    async def slow_echo(request: Any) -> Reply:
        await asyncio.sleep(0.01)  # keeps the runs overlapping
        return echo()(request)

    model.respond_with(slow_echo)

    async def ask(client: httpx.AsyncClient, who: int) -> tuple[int, str]:
        body = {
            "model": "desk",
            "stream": who % 2 == 0,
            "messages": [{"role": "user", "content": f"secret of user {who}"}],
        }
        response = await client.post(served + "/v1/chat/completions", json=body)
        if body["stream"]:
            text = "".join(
                json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                for e in sse_events(response.text)
                if e.startswith("data: {") and json.loads(e[6:])["choices"]
            )
        else:
            text = response.json()["choices"][0]["message"]["content"]
        return who, text

    async def main() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(ask(client, who) for who in range(40)))

    for who, text in asyncio.run(main()):
        assert text == f"secret of user {who}"
    assert len(model.requests) == 40


def test_the_model_key_never_reaches_a_client(model: ScriptedServer, served: str) -> None:
    from .conftest import MODEL_KEY

    model.respond_with(
        lambda request: Reply.error(
            401, f"Incorrect API key provided: {MODEL_KEY} (Bearer {MODEL_KEY})"
        )
    )
    for stream in (False, True):
        response = httpx.post(
            served + "/v1/chat/completions",
            json={
                "model": "desk",
                "stream": stream,
                "messages": [{"role": "user", "content": "?"}],
            },
        )
        assert MODEL_KEY not in response.text
        assert "sk-model" not in response.text
        if stream:
            error = json.loads(sse_events(response.text)[-1][6:])["error"]
        else:
            assert response.status_code == 502
            error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "model_error"


def test_a_run_that_fails_midstream_ends_with_an_error_event_and_no_done(
    model: ScriptedServer, served: str
) -> None:
    model.queue(Reply.text("partial answer that is cut", stream=True).with_(cut_after=3))
    model.respond_with(lambda request: Reply.error(503, "down"))
    response = httpx.post(
        served + "/v1/chat/completions",
        json={"model": "desk", "stream": True, "messages": [{"role": "user", "content": "?"}]},
        timeout=60,
    )
    events = sse_events(response.text)
    assert "data: [DONE]" not in events
    assert json.loads(events[-1][6:])["error"]["type"] == "server_error"


def test_agentkit_async_client_streams_from_the_bot(model: ScriptedServer, served: str) -> None:
    model.respond_with(echo())

    async def main() -> str:
        async with (
            AsyncChatClient(base_url=served + "/v1", api_key="x", max_retries=0) as c,
            c.stream(model="desk", messages=[{"role": "user", "content": "hi"}]) as stream,
        ):
            return "".join([getattr(d, "text", "") async for d in stream])

    assert asyncio.run(main()) == "hi"


@pytest.mark.parametrize("streamed", [False, True])
def test_two_agents_served_side_by_side(model: ScriptedServer, streamed: bool) -> None:
    from .conftest import make_desk

    model.respond_with(echo())
    app = create_app({"desk": make_desk(model), "other": make_desk(model)})
    with uvicorn_serving(app) as url:
        listed = httpx.get(url + "/v1/models").json()
        assert [m["id"] for m in listed["data"]] == ["desk", "other"]
        response = httpx.post(
            url + "/v1/chat/completions",
            json={
                "model": "other",
                "stream": streamed,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert response.status_code == 200
