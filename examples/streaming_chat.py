"""A streaming chat: the answer appears word by word, tool calls as they happen.

    export DASHSCOPE_API_KEY=sk-...
    python examples/streaming_chat.py                 # chat; an empty line or Ctrl-D ends
    python examples/streaming_chat.py "Is it raining in Hangzhou right now?"

``Agent.stream()`` yields typed events (``agentkit.TextDelta``, ...); a ``match`` on them is all the
user interface needs. Any OpenAI-compatible server works with ``--base-url``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agentkit import (
    Agent,
    AgentKitError,
    ReasoningDelta,
    RunFinished,
    RunResult,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from agentkit.tools import BUILTIN_TOOLS


def chat_turn(agent: Agent[str], messages: list[dict[str, Any]]) -> RunResult[str]:
    """Stream one answer to the terminal and return the finished run."""
    finished: RunResult[str] | None = None
    line = ""  # what the current line shows: "", "reasoning" or "text"
    for event in agent.stream(messages):
        match event:
            case ReasoningDelta(text=text) | TextDelta(text=text):
                kind = "reasoning" if isinstance(event, ReasoningDelta) else "text"
                if line not in ("", kind):
                    print()
                print(f"\033[2m{text}\033[0m" if kind == "reasoning" else text, end="", flush=True)
                line = kind
            case ToolCallStarted(name=name, arguments=arguments):
                if line:
                    print()
                print(f"  [{name} {arguments}]", flush=True)
                line = ""
            case ToolResult(output=output, error=error, duration=duration):
                outcome = "failed" if error else "ok"
                print(f"  [{outcome} in {duration * 1000:.0f} ms: {output}]", flush=True)
            case RunFinished():
                finished = event.result
    print()
    assert finished is not None, "a stream always ends with RunFinished"
    return finished


def main(argv: list[str] | None = None) -> None:
    """Chat with the built-in tools; a question on the command line is asked once."""
    parser = argparse.ArgumentParser(description="A streaming chat with tools.")
    parser.add_argument("question", nargs="*", help="ask this and exit")
    parser.add_argument("--model", default="qwen-plus", help="the model (qwen-plus)")
    parser.add_argument(
        "--base-url",
        help="any OpenAI-compatible server, such as http://localhost:8000/v1 "
        "(default: $AGENTKIT_BASE_URL, else DashScope with $DASHSCOPE_API_KEY)",
    )
    args = parser.parse_args(argv)

    history: list[dict[str, Any]] = []
    instructions = "You are a friendly assistant. Keep answers short."
    questions = [" ".join(args.question)] if args.question else iter(_prompt, "")
    with Agent(args.model, BUILTIN_TOOLS, instructions, base_url=args.base_url) as agent:
        for question in questions:
            history = chat_turn(agent, [*history, {"role": "user", "content": question}]).messages


def _prompt() -> str:
    try:
        return input("\nyou> ").strip()
    except EOFError:
        return ""


if __name__ == "__main__":
    try:
        main()
    except AgentKitError as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
