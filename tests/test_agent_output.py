"""Structured output: ``output_type`` through response_format JSON Schema or a final-answer tool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field

from agentkit import Agent, ChatClient, OutputValidationError, RunLimits, RunResult, tool
from agentkit._events import RunFinished
from agentkit._loop_settings import FINAL_RESULT_TOOL
from agentkit.testing import Reply, ScriptedServer

KEY = "sk-output-test"


class Forecast(BaseModel):
    """A weather forecast."""

    city: str
    temperature_c: float
    conditions: list[str] = Field(default_factory=list)


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"{city}: 21 C, sunny, light wind"


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ChatClient]:
    with ChatClient(server.base_url, KEY) as made:
        yield made


ANSWER = {"city": "Oslo", "temperature_c": 21, "conditions": ["sunny", "light wind"]}
EXPECTED = Forecast(city="Oslo", temperature_c=21.0, conditions=["sunny", "light wind"])


# --- response_format JSON Schema ---------------------------------------------------------------


def test_json_schema_output(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Oslo"})),
        Reply.text(json.dumps(ANSWER)),
    )
    # A custom server (vLLM, OpenAI...) supports json_schema: "auto" picks it.
    with Agent("m", [get_weather], client=client, output_type=Forecast) as agent:
        result = agent.run("Forecast for Oslo?")
    assert result.output == EXPECTED
    for request in server.requests:
        response_format = request.json()["response_format"]
        assert response_format["type"] == "json_schema"
        assert response_format["json_schema"]["name"] == "Forecast"
        assert response_format["json_schema"]["schema"] == Forecast.model_json_schema()
        assert [t["function"]["name"] for t in request.tools] == ["get_weather"]
    assert result.messages[-1] == {"role": "assistant", "content": json.dumps(ANSWER)}


def test_an_invalid_answer_is_fed_back_then_accepted(
    server: ScriptedServer, client: ChatClient
) -> None:
    server.queue(
        Reply.text('{"city": "Oslo", "temperature_c": "warm"}'),
        Reply.text(json.dumps(ANSWER)),
    )
    with Agent("m", client=client, output_type=Forecast) as agent:
        result = agent.run("Forecast for Oslo?")
    correction = server.requests[1].messages[-1]
    assert correction["role"] == "user"
    assert "temperature_c" in correction["content"]
    assert result.output == EXPECTED
    assert result.turns == 2


def test_output_retries_are_bounded(server: ScriptedServer, client: ChatClient) -> None:
    server.respond_with(lambda request: Reply.text("It is warm in Oslo."))
    with (
        Agent(
            "m", client=client, output_type=Forecast, limits=RunLimits(max_output_retries=2)
        ) as agent,
        pytest.raises(OutputValidationError) as caught,
    ):
        agent.run("Forecast for Oslo?")
    assert len(server.requests) == 3  # the first answer and two retries
    messages = caught.value.messages
    assert messages is not None and messages[-1]["role"] == "assistant"


# --- the final-answer tool ---------------------------------------------------------------------


def test_final_result_tool_when_the_provider_has_no_json_schema(server: ScriptedServer) -> None:
    # DashScope's preset says json_schema is not supported: "auto" uses the tool.
    server.queue(
        Reply.tool_calls(("get_weather", {"city": "Oslo"})),
        Reply.tool_calls((FINAL_RESULT_TOOL, ANSWER, "final-1")),
    )
    with Agent(
        "qwen-plus",
        [get_weather],
        base_url=server.base_url,
        provider="dashscope",
        api_key=KEY,
        output_type=Forecast,
    ) as agent:
        result = agent.run("Forecast for Oslo?")
    assert result.output == EXPECTED
    request = server.requests[0]
    assert "response_format" not in request.json()
    final_tool = request.tools[-1]["function"]
    assert final_tool["name"] == FINAL_RESULT_TOOL
    assert final_tool["parameters"] == Forecast.model_json_schema()
    # The transcript stays resendable: the final call has its tool message.
    assert result.messages[-1] == {
        "role": "tool",
        "tool_call_id": "final-1",
        "name": FINAL_RESULT_TOOL,
        "content": "Final result accepted.",
    }


def test_an_invalid_final_result_is_fed_back(server: ScriptedServer, client: ChatClient) -> None:
    server.queue(
        Reply.tool_calls((FINAL_RESULT_TOOL, {"city": "Oslo"})),
        Reply.tool_calls((FINAL_RESULT_TOOL, ANSWER)),
    )
    with Agent("m", client=client, output_type=Forecast, output_mode="tool") as agent:
        result = agent.run("Forecast for Oslo?")
    feedback = server.requests[1].messages[-1]
    assert feedback["role"] == "tool" and feedback["name"] == FINAL_RESULT_TOOL
    assert "temperature_c" in feedback["content"]
    assert result.output == EXPECTED


def test_structured_output_in_run_async_and_stream(server: ScriptedServer) -> None:
    server.respond_with(lambda request: Reply.text(json.dumps(ANSWER)))

    async def main() -> RunResult[Forecast]:
        async with Agent("m", base_url=server.base_url, api_key=KEY, output_type=Forecast) as agent:
            return await agent.run_async("Forecast for Oslo?")

    assert asyncio.run(main()).output == EXPECTED
    with Agent("m", base_url=server.base_url, api_key=KEY, output_type=Forecast) as agent:
        final = list(agent.stream("Forecast for Oslo?"))[-1]
    assert isinstance(final, RunFinished) and final.result.output == EXPECTED


def test_output_type_must_be_a_pydantic_model() -> None:
    from agentkit import ConfigurationError

    with pytest.raises(ConfigurationError):
        Agent("m", base_url="http://127.0.0.1:9/v1", output_type=dict)
