"""DashScope specifics: explicit context cache markers (placement within the documented
rules, the request on the wire, cached tokens back in Usage) and exact host matching
(regional hosts and workspace domains get the preset and the key, look-alikes do not)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkit import PROVIDERS, Agent, ChatClient, ConfigurationError, tool
from agentkit._cache import MAX_CACHE_MARKERS, estimate_tokens, mark_cache_prefix
from agentkit._providers import check_dashscope_request, resolve_api_key, resolve_provider
from agentkit.testing import Reply, ScriptedServer

LONG = "You are a careful assistant who answers about the weather. " * 100  # ~1,500 tokens
SHORT = "Be brief."
EPHEMERAL = {"type": "ephemeral"}


def markers(messages: list[dict[str, Any]]) -> list[int]:
    """Positions of the messages that carry a cache_control marker."""
    found = []
    for position, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list) and any("cache_control" in part for part in content):
            found.append(position)
    return found


# --- placement --------------------------------------------------------------------------


def test_long_system_and_last_user_message_are_marked() -> None:
    messages = [
        {"role": "system", "content": LONG},
        {"role": "user", "content": "Weather in Hangzhou?"},
        {"role": "assistant", "content": "", "tool_calls": []},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
    ]
    original = json.loads(json.dumps(messages))
    out = mark_cache_prefix(messages, None, min_tokens=1024)
    assert markers(out) == [0, 1]
    assert out[0]["content"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    assert out[1]["content"][-1]["cache_control"] == EPHEMERAL
    assert out[2:] == messages[2:]
    assert messages == original  # the caller's transcript is untouched


def test_a_short_prefix_gets_no_marker() -> None:
    messages = [{"role": "system", "content": SHORT}, {"role": "user", "content": "Hi"}]
    assert markers(mark_cache_prefix(messages, None, min_tokens=1024)) == []


def test_tool_definitions_count_toward_the_system_prefix() -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": f"tool_{n}", "description": "Looks a thing up. " * 40},
        }
        for n in range(12)
    ]
    assert estimate_tokens(json.dumps(tools)) >= 1024
    messages = [{"role": "system", "content": SHORT}, {"role": "user", "content": "Hi"}]
    assert markers(mark_cache_prefix(messages, tools, min_tokens=1024)) == [0, 1]


def test_a_short_system_message_but_a_long_question_marks_only_the_question() -> None:
    messages = [{"role": "system", "content": SHORT}, {"role": "user", "content": LONG}]
    assert markers(mark_cache_prefix(messages, None, min_tokens=1024)) == [1]


def test_chinese_text_counts_a_token_a_character() -> None:
    assert estimate_tokens("天气" * 600) == 1200
    messages = [{"role": "system", "content": "天气" * 600}]
    assert markers(mark_cache_prefix(messages, None, min_tokens=1024)) == [0]


def test_never_more_than_four_markers_with_the_callers_own() -> None:
    own = {"type": "text", "text": "x", "cache_control": EPHEMERAL}
    messages = [
        {"role": "system", "content": LONG},
        *({"role": "user", "content": [own]} for _ in range(3)),
        {"role": "user", "content": "last"},
    ]
    out = mark_cache_prefix(messages, None, min_tokens=1024)
    total = sum(
        sum(1 for part in m["content"] if "cache_control" in part)
        for m in out
        if isinstance(m["content"], list)
    )
    assert total == MAX_CACHE_MARKERS
    assert markers(out) == [0, 1, 2, 3]  # the system marker fits, the last user's does not
    full = [{"role": "user", "content": [own]} for _ in range(4)]
    assert mark_cache_prefix([{"role": "system", "content": LONG}, *full], None, min_tokens=1) == [
        {"role": "system", "content": LONG},
        *full,
    ]


def test_list_content_gets_the_marker_on_its_last_text_block() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    messages = [
        {"role": "system", "content": LONG},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
    ]
    out = mark_cache_prefix(messages, None, min_tokens=1024)
    assert out[1]["content"][0]["cache_control"] == EPHEMERAL
    assert "cache_control" not in out[1]["content"][1]
    images_only = [{"role": "system", "content": LONG}, {"role": "user", "content": [image]}]
    assert markers(mark_cache_prefix(images_only, None, min_tokens=1024)) == [0]


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": None}],
        [{"role": "system", "content": ""}, {"role": "user", "content": ""}],
        ["not a dict", {"role": "user", "content": 5}],
    ],
)
def test_odd_transcripts_pass_through(messages: list[Any]) -> None:
    assert mark_cache_prefix(messages, None, min_tokens=0) == messages


def test_marked_requests_pass_dashscopes_own_checks() -> None:
    out = mark_cache_prefix(
        [{"role": "system", "content": LONG}, {"role": "user", "content": "Hi"}],
        None,
        min_tokens=1024,
    )
    check_dashscope_request({"model": "qwen-plus", "messages": out})


# --- the option, on the wire ---------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"Sunny in {city}."


def cached_usage(prompt: int, cached: int, created: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": 10,
        "total_tokens": prompt + 10,
        "prompt_tokens_details": {
            "cached_tokens": cached,
            "cache_creation_input_tokens": created,
            "cache_creation": {"ephemeral_5m_input_tokens": created},
            "cache_type": "ephemeral",
        },
    }


def test_a_run_sends_markers_and_reports_cached_tokens(server: ScriptedServer) -> None:
    server.queue(
        Reply.tool_calls(
            ("get_weather", {"city": "Hangzhou"}),
            usage=cached_usage(1600, 0, 1500),
            style="dashscope",
        ),
        Reply.text("Sunny.", usage=cached_usage(1700, 1500, 0)),
    )
    provider = PROVIDERS["dashscope"].with_context_cache().with_base_url(server.base_url)
    with (
        ChatClient(provider=provider, api_key="sk-cache-test") as client,
        Agent("qwen-plus", [get_weather], LONG, client=client) as agent,
    ):
        result = agent.run("Weather in Hangzhou?")
    for request in server.requests:
        assert markers(request.messages) == [0, 1]
        assert len(request.tools) == 1
    # the transcript keeps the plain system message: markers exist only on the wire
    assert result.messages[0] == {"role": "system", "content": LONG}
    assert result.usage.cached_tokens == 1500
    assert result.usage.cache_creation_tokens == 1500


def test_cache_is_off_by_default_and_dashscopes_alone(server: ScriptedServer) -> None:
    server.queue(Reply.text("ok"))
    provider = PROVIDERS["dashscope"].with_base_url(server.base_url)
    with ChatClient(provider=provider, api_key="sk-cache-test") as client:
        client.create(
            model="qwen-plus",
            messages=[{"role": "system", "content": LONG}, {"role": "user", "content": "Hi"}],
        )
    assert markers(server.requests[0].messages) == []
    with pytest.raises(ConfigurationError, match="no explicit context cache"):
        PROVIDERS["openai"].with_context_cache()
    assert PROVIDERS["custom"].with_context_cache(False).context_cache is False


# --- hosts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "preset"),
    [
        ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "dashscope-intl"),
        ("https://dashscope.aliyuncs.com/compatible-mode/v1", "dashscope-cn"),
        ("https://dashscope-us.aliyuncs.com/compatible-mode/v1", "dashscope-us"),
        ("https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1", "dashscope-hongkong"),
        ("https://dashscope.aliyuncs.com./compatible-mode/v1", "dashscope-cn"),
        (
            "https://ws-3f9a2c.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1",
            "dashscope-workspace",
        ),
        (
            "https://WS-3F9A2C.AP-SOUTHEAST-1.MAAS.ALIYUNCS.COM/compatible-mode/v1",
            "dashscope-workspace",
        ),
        (
            "https://llm-abc123.us-east-1.maas.aliyuncs.com/compatible-mode/v1",
            "dashscope-workspace",
        ),
        (
            "https://trial.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1",
            "dashscope-workspace",
        ),
        # look-alikes: custom servers, never the DashScope key
        ("https://dashscope-evil.aliyuncs.com/compatible-mode/v1", "custom"),
        ("https://dashscopex.aliyuncs.com/v1", "custom"),
        ("https://evil.dashscope.aliyuncs.com/v1", "custom"),
        ("https://dashscope.aliyuncs.com.evil.example/v1", "custom"),
        ("https://ws.ap-southeast-1.maas.aliyuncs.com.evil.example/v1", "custom"),
        ("https://a.b.ap-southeast-1.maas.aliyuncs.com/v1", "custom"),
        ("https://ws.mars-east-1.maas.aliyuncs.com/v1", "custom"),
        ("https://-ws.ap-southeast-1.maas.aliyuncs.com/v1", "custom"),
        ("https://ap-southeast-1.maas.aliyuncs.com/v1", "custom"),
    ],
)
def test_dashscope_hosts_match_exactly(base_url: str, preset: str) -> None:
    provider = resolve_provider(base_url=base_url, env={})
    assert provider.name == preset
    assert provider.base_url == base_url
    key = (
        resolve_api_key(provider, env={"DASHSCOPE_API_KEY": "sk-ds"})
        if preset != "custom"
        else None
    )
    if preset == "custom":
        assert resolve_api_key(provider, env={"DASHSCOPE_API_KEY": "sk-ds"}) is None
        assert provider.check_request is None
    else:
        assert key == "sk-ds"
        assert provider.check_request is check_dashscope_request
        assert provider.context_cache_min_tokens == 1024


def test_workspace_domain_from_the_environment_gets_the_rules() -> None:
    env = {"AGENTKIT_BASE_URL": "https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1"}
    provider = resolve_provider(env=env)
    assert provider.name == "dashscope-workspace"
    assert provider.key_required


def test_the_agent_option_and_the_cli_flag(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentkit.cli import main

    server.queue(Reply.text("one"), Reply.text("two"))
    with Agent(
        "qwen-plus",
        instructions=LONG,
        provider="dashscope",
        base_url=server.base_url,
        api_key="sk-cache-test",
        context_cache=True,
    ) as agent:
        agent.run("Hi")
    assert markers(server.requests[0].messages) == [0, 1]
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-cache-test")
    code = main(
        [
            "chat",
            "--provider",
            "dashscope",
            "--base-url",
            server.base_url,
            "--context-cache",
            "--no-tools",
            "--system",
            LONG,
            "Hi",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert markers(server.requests[1].messages) == [0, 1]


def test_the_agent_option_is_refused_where_it_cannot_work(server: ScriptedServer) -> None:
    with pytest.raises(ConfigurationError, match="no explicit context cache"):
        Agent("gpt-4o-mini", provider="openai", api_key="sk-x", context_cache=True)
    with (
        ChatClient(server.base_url, "sk-x") as client,
        pytest.raises(ConfigurationError, match="needs a client built with it"),
    ):
        Agent("m", client=client, context_cache=True)
