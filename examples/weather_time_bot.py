"""The weather-and-time bot: DashScope's function-calling example, rebuilt on agentkit.

The two tools are real (Open-Meteo weather, time in any zone), and the model may call them
over as many rounds as it needs; agentkit runs the loop the original wrote by hand.

    export DASHSCOPE_API_KEY=sk-...
    python examples/weather_time_bot.py "What's the weather in Singapore, and the time there?"
    python examples/weather_time_bot.py      # asks for questions; an empty line ends

Any OpenAI-compatible server works: ``--base-url http://localhost:8000/v1 --model NAME``
(or ``AGENTKIT_BASE_URL``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from agentkit import Agent, AgentKitError
from agentkit.tools import get_current_time, get_current_weather


def make_agent(model: str = "qwen-plus", base_url: str | None = None) -> Agent[str]:
    """The bot: Qwen (or any model) with the two tools of the original example."""
    return Agent(
        model,
        tools=[get_current_time, get_current_weather],
        instructions="You are a helpful assistant. Use the tools for the weather and the time.",
        base_url=base_url,
    )


def main(argv: list[str] | None = None) -> None:
    """Answer the question on the command line, or each question typed at the prompt."""
    parser = argparse.ArgumentParser(description="Ask about the weather and the time.")
    parser.add_argument("question", nargs="*", help="ask this and exit")
    parser.add_argument("--model", default="qwen-plus", help="the model (qwen-plus)")
    parser.add_argument(
        "--base-url",
        help="any OpenAI-compatible server, such as http://localhost:8000/v1 "
        "(default: $AGENTKIT_BASE_URL, else DashScope with $DASHSCOPE_API_KEY)",
    )
    args = parser.parse_args(argv)

    questions = [" ".join(args.question)] if args.question else _ask()
    history: list[dict[str, Any]] = []  # the conversation goes on from one question to the next
    with make_agent(args.model, args.base_url) as agent:
        for question in questions:
            result = agent.run([*history, {"role": "user", "content": question}])
            _show_rounds(result.messages[len(history) :])
            print(f"Final answer: {result.output}")
            print(f"({result.turns} model calls, {result.usage.total_tokens} tokens)\n")
            history = result.messages


def _ask() -> Iterator[str]:
    with suppress(EOFError):  # Ctrl-D ends, as an empty line does
        while question := input("Please enter your query: ").strip():
            yield question


def _show_rounds(messages: list[dict[str, Any]]) -> None:
    """Print each tool call and its result, as the original example did."""
    for message in messages:
        for call in message.get("tool_calls") or []:
            print(f"-> {call['function']['name']}({call['function']['arguments']})")
        if message["role"] == "tool":
            print(f"<- {message['content']}")


if __name__ == "__main__":
    try:
        main()
    except AgentKitError as exc:  # a missing key, a quota error...: one clear line
        sys.exit(f"{type(exc).__name__}: {exc}")
