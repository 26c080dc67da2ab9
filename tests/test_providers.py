"""Provider presets: resolution, API keys, and DashScope's rules checked before sending."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit import PROVIDERS, ChatClient, Provider
from agentkit._errors import ConfigurationError, RequestValidationError
from agentkit._providers import check_dashscope_request, resolve_api_key, resolve_provider
from agentkit.testing import Reply, ScriptedServer

SINGAPORE = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
BEIJING = "https://dashscope.aliyuncs.com/compatible-mode/v1"
USER = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DASHSCOPE_API_KEY",
        "DASHSCOPE_BASE_URL",
        "OPENAI_API_KEY",
        "AGENTKIT_BASE_URL",
        "AGENTKIT_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


# --- resolution ---------------------------------------------------------------------------


def test_default_is_dashscope_singapore() -> None:
    provider = resolve_provider(env={})
    assert provider.name == "dashscope-intl"
    assert provider.base_url == SINGAPORE
    assert provider.api_key_env == "DASHSCOPE_API_KEY"
    assert provider.check_request is check_dashscope_request


@pytest.mark.parametrize(
    ("name", "base_url", "env_var"),
    [
        ("dashscope", SINGAPORE, "DASHSCOPE_API_KEY"),
        ("dashscope-intl", SINGAPORE, "DASHSCOPE_API_KEY"),
        ("dashscope-singapore", SINGAPORE, "DASHSCOPE_API_KEY"),
        ("dashscope-cn", BEIJING, "DASHSCOPE_API_KEY"),
        ("dashscope-beijing", BEIJING, "DASHSCOPE_API_KEY"),
        ("DashScope-CN", BEIJING, "DASHSCOPE_API_KEY"),
        ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    ],
)
def test_named_presets(name: str, base_url: str, env_var: str) -> None:
    provider = resolve_provider(name, env={})
    assert provider.base_url == base_url
    assert provider.api_key_env == env_var
    assert provider.key_required


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_provider("dashscope-mars", env={})
    assert "dashscope-mars" in str(info.value)
    assert "dashscope-cn" in str(info.value) and "openai" in str(info.value)


@pytest.mark.parametrize(
    ("base_url", "preset"),
    [
        (BEIJING, "dashscope-cn"),
        (SINGAPORE, "dashscope-intl"),
        ("https://DASHSCOPE-INTL.aliyuncs.com/compatible-mode/v1/", "dashscope-intl"),
        ("https://api.openai.com/v1", "openai"),
        ("http://localhost:11434/v1", "custom"),  # Ollama
        ("http://localhost:8080/v1", "custom"),  # llama.cpp
        ("http://10.0.0.5:8000/v1", "custom"),  # vLLM
    ],
)
def test_base_url_picks_the_rules(base_url: str, preset: str) -> None:
    provider = resolve_provider(base_url=base_url, env={})
    assert provider.name == preset
    assert provider.base_url == base_url
    assert (provider.check_request is check_dashscope_request) == preset.startswith("dashscope")


def test_environment_base_url_is_used_when_none_is_given() -> None:
    env = {"AGENTKIT_BASE_URL": BEIJING}
    assert resolve_provider(env=env).name == "dashscope-cn"
    assert resolve_provider(env=env).base_url == BEIJING
    custom = resolve_provider(env={"AGENTKIT_BASE_URL": " http://127.0.0.1:9/v1 "})
    assert custom.name == "custom"
    assert custom.base_url == "http://127.0.0.1:9/v1"
    # A custom server named in the environment reads agentkit's key variable, optionally,
    # and never a provider's key.
    assert resolve_api_key(custom, env={"AGENTKIT_API_KEY": "k", "DASHSCOPE_API_KEY": "d"}) == "k"
    assert resolve_api_key(custom, env={"DASHSCOPE_API_KEY": "d"}) is None
    # The argument and a named provider win over the environment.
    assert resolve_provider(base_url=SINGAPORE, env=env).name == "dashscope-intl"
    assert resolve_provider("openai", env=env).base_url == "https://api.openai.com/v1"
    # The argument never reads agentkit's key variable.
    argument = resolve_provider(base_url="http://127.0.0.1:9/v1", env={})
    assert resolve_api_key(argument, env={"AGENTKIT_API_KEY": "k"}) is None


def test_environment_base_url_without_a_scheme_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"^AGENTKIT_BASE_URL must be an http"):
        resolve_provider(env={"AGENTKIT_BASE_URL": "127.0.0.1:8131/v1"})


def test_the_deprecated_dashscope_base_url_still_works_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match=r"DASHSCOPE_BASE_URL is deprecated.*AGENTKIT_BASE_URL"):
        custom = resolve_provider(env={"DASHSCOPE_BASE_URL": "http://127.0.0.1:9/v1"})
    assert (custom.name, custom.base_url) == ("custom", "http://127.0.0.1:9/v1")
    assert resolve_api_key(custom, env={"DASHSCOPE_API_KEY": "k"}) == "k"  # as it used to
    with pytest.warns(FutureWarning):
        assert resolve_provider(env={"DASHSCOPE_BASE_URL": BEIJING}).name == "dashscope-cn"
    # The new variable wins, silently.
    both = {"DASHSCOPE_BASE_URL": BEIJING, "AGENTKIT_BASE_URL": "http://127.0.0.1:9/v1"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_provider(env=both).base_url == "http://127.0.0.1:9/v1"


def test_a_server_named_in_the_environment_works_with_no_key_at_all(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKIT_BASE_URL", server.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-dashscope-secret")
    server.queue(Reply.text("ok"), Reply.text("ok"))
    with ChatClient() as client:
        assert client.provider.name == "custom"
        client.create(model="m", messages=USER)
    assert "authorization" not in server.requests[0].headers
    monkeypatch.setenv("AGENTKIT_API_KEY", "sk-for-this-server")
    with ChatClient() as client:
        client.create(model="m", messages=USER)
    assert server.requests[1].headers["authorization"] == "Bearer sk-for-this-server"


def test_explicit_preset_with_base_url_keeps_the_rules() -> None:
    provider = resolve_provider("dashscope", base_url="http://proxy.internal/v1", env={})
    assert provider.base_url == "http://proxy.internal/v1"
    assert provider.check_request is check_dashscope_request
    mine = Provider(name="mine", base_url="http://a/v1", tools_with_stream=False)
    assert resolve_provider(mine, env={}) is mine
    assert resolve_provider(mine, base_url="http://b/v1", env={}).tools_with_stream is False


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigurationError, match="http"):
        resolve_provider(base_url="localhost:8080/v1", env={})


def test_presets_are_data() -> None:
    assert PROVIDERS["dashscope"] is PROVIDERS["dashscope-intl"]
    assert PROVIDERS["dashscope-beijing"] is PROVIDERS["dashscope-cn"]
    assert PROVIDERS["dashscope"].tools_with_stream is True
    assert PROVIDERS["openai"].json_schema_output is True
    assert PROVIDERS["custom"].key_required is False
    with pytest.raises(AttributeError):
        PROVIDERS["openai"].base_url = "http://elsewhere"  # type: ignore[misc]


# --- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "variable"),
    [
        ("dashscope", "DASHSCOPE_API_KEY"),
        ("dashscope-cn", "DASHSCOPE_API_KEY"),
        ("openai", "OPENAI_API_KEY"),
    ],
)
def test_missing_key_names_the_variable_before_any_request(
    server: ScriptedServer, preset: str, variable: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        ChatClient(server.base_url, provider=preset)
    assert variable in str(info.value)
    assert server.requests == []


def test_key_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = PROVIDERS["openai"]
    assert resolve_api_key(provider, "arg", env={"OPENAI_API_KEY": "env"}) == "arg"
    assert resolve_api_key(provider, None, env={"OPENAI_API_KEY": "env"}) == "env"
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        resolve_api_key(provider, None, env={"OPENAI_API_KEY": "  "})


def test_custom_server_goes_without_a_key_and_never_gets_the_dashscope_key(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-dashscope-secret")
    server.queue(Reply.text("ok"))
    with ChatClient(server.base_url) as client:
        assert client.provider.name == "custom"
        client.create(model="m", messages=USER)
    assert "authorization" not in server.requests[0].headers


def test_key_from_environment_is_sent(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-from-env")
    server.queue(Reply.text("ok"))
    with ChatClient(server.base_url, provider="dashscope") as client:
        client.create(model="qwen-plus", messages=USER)
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"


# --- DashScope's rules --------------------------------------------------------------------


def _check(**body: Any) -> None:
    check_dashscope_request({"model": "qwen-plus", "messages": USER, **body})


def _param_of(**body: Any) -> str | None:
    with pytest.raises(RequestValidationError) as info:
        _check(**body)
    assert info.value.param is not None
    assert info.value.param in str(info.value)
    return info.value.param


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10))
def test_temperature_range(value: float) -> None:
    if 0 <= value < 2:
        _check(temperature=value)
    else:
        assert _param_of(temperature=value) == "temperature"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-3, max_value=3))
def test_top_p_range(value: float) -> None:
    if 0 < value <= 1:
        _check(top_p=value)
    else:
        assert _param_of(top_p=value) == "top_p"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=5))
def test_presence_penalty_range(value: float) -> None:
    if -2 <= value <= 2:
        _check(presence_penalty=value)
    else:
        assert _param_of(presence_penalty=value) == "presence_penalty"


def test_range_edges() -> None:
    _check(temperature=0, top_p=1, presence_penalty=-2)
    _check(presence_penalty=2)
    assert _param_of(temperature=2) == "temperature"
    assert _param_of(top_p=0) == "top_p"
    assert _param_of(temperature=math.nan) == "temperature"
    assert _param_of(temperature="0.5") == "temperature"
    assert _param_of(top_p=True) == "top_p"


@given(st.integers(min_value=-3, max_value=8))
def test_n_range(n: int) -> None:
    if 1 <= n <= 4:
        _check(n=n)
    else:
        assert _param_of(n=n) == "n"


def test_n_must_be_one_with_tools() -> None:
    _check(n=1, tools=TOOLS)
    _check(n=3)
    assert _param_of(n=2, tools=TOOLS) == "n"


@pytest.mark.parametrize(
    "stop",
    ["Hello", ["Hello", "Weather"], [108386, 104307], [[108386, 103924], [35946, 101243]], []],
)
def test_stop_shapes_accepted(stop: Any) -> None:
    _check(stop=stop)


@pytest.mark.parametrize(
    "stop",
    [["Hello", 104307], [[1, 2], "x"], [[1, 2], 3], [True], [1.5], 42, [["a"]]],
)
def test_stop_never_mixes_or_misshapes(stop: Any) -> None:
    assert _param_of(stop=stop) == "stop"


def test_system_only_first() -> None:
    _check(messages=[{"role": "system", "content": "s"}, *USER])
    late = [*USER, {"role": "system", "content": "s"}]
    with pytest.raises(RequestValidationError) as info:
        check_dashscope_request({"model": "m", "messages": late})
    assert info.value.param == "messages"
    assert "messages[1]" in str(info.value)


def test_thinking_rules() -> None:
    _check(enable_thinking=True, stream=True, tool_choice="auto")
    _check(enable_thinking=False, stream=False, tool_choice="required")
    assert _param_of(enable_thinking=True, stream=False) == "enable_thinking"
    assert _param_of(enable_thinking=True, stream=True, tool_choice="required") == "tool_choice"
    named = {"type": "function", "function": {"name": "f"}}
    assert _param_of(enable_thinking=True, stream=True, tool_choice=named) == "tool_choice"


@pytest.mark.parametrize("legacy", ["functions", "function_call"])
def test_legacy_function_fields_refused(legacy: str) -> None:
    assert _param_of(**{legacy: [] if legacy == "functions" else "auto"}) == legacy


# --- the rules apply through the client, before anything is sent ----------------------------


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"temperature": 2.0}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"n": 5}, "n"),
        ({"n": 2, "tools": TOOLS}, "n"),
        ({"stop": ["Hello", 104307]}, "stop"),
        ({"extra_body": {"enable_thinking": True}}, "enable_thinking"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"extra_body": {"temperature": 3}}, "temperature"),  # extra_body is checked too
        ({"enable_thinking": True}, "enable_thinking"),  # a vendor extra outside extra_body
    ],
)
def test_dashscope_client_refuses_before_sending(
    server: ScriptedServer, params: dict[str, Any], param: str
) -> None:
    with (
        ChatClient(server.base_url, "sk-test", provider="dashscope") as client,
        pytest.raises(RequestValidationError) as info,
    ):
        client.create(model="qwen-plus", messages=USER, **params)
    assert info.value.param == param
    assert param in str(info.value)
    assert server.requests == []


def test_thinking_through_extra_body_streams_fine(server: ScriptedServer) -> None:
    server.queue(Reply.text("42", reasoning="think"))
    with ChatClient(server.base_url, "sk-test", provider="dashscope") as client:
        with pytest.raises(RequestValidationError) as info:
            client.stream(
                model="qwen3-32b",
                messages=USER,
                tools=TOOLS,
                tool_choice="required",
                extra_body={"enable_thinking": True},
            )
        assert info.value.param == "tool_choice"
        stream = client.stream(
            model="qwen3-32b", messages=USER, extra_body={"enable_thinking": True}
        )
        with stream:
            completion = stream.until_done()
    assert completion.choices[0].message.reasoning_content == "think"
    assert len(server.requests) == 1
    assert server.requests[0].json()["enable_thinking"] is True


def test_custom_server_has_no_dashscope_rules(server: ScriptedServer) -> None:
    server.queue(Reply.text("ok"))
    with ChatClient(server.base_url) as client:
        client.create(
            model="m", messages=[*USER, {"role": "system", "content": "late"}], temperature=2.5, n=8
        )
    assert server.requests[0].json()["temperature"] == 2.5
