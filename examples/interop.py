"""agentkit tools in other frameworks: the official openai SDK and LangChain.

A ``Tool`` is its schema plus a strict validator, so it travels: ``to_openai()`` is the
JSON every OpenAI-compatible API accepts, and ``validate_json`` + ``call`` run whatever
call comes back, whichever library received it. Here the same two built-in tools serve a
hand-written openai SDK loop and a LangChain ``bind_tools`` loop.

    pip install -e ".[interop]"              # from the repository: openai and langchain-openai
    export DASHSCOPE_API_KEY=sk-...
    python examples/interop.py "What's the time in Tokyo and the weather in Osaka?"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from agentkit import Tool, ToolArgumentsError, ToolRetry
from agentkit.tools import get_current_time, get_current_weather

TOOLS: dict[str, Tool[..., Any]] = {t.name: t for t in (get_current_time, get_current_weather)}
DASHSCOPE_URL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
MAX_ROUNDS = 10


def run_tool_call(name: str, arguments: str) -> str:
    """Validate a model's tool call and run it; every failure becomes text for the model."""
    tool = TOOLS.get(name)
    if tool is None:
        return f"There is no tool named {name!r}; use one of {sorted(TOOLS)}."
    try:
        output = tool.call(tool.validate_json(arguments))
    except (ToolArgumentsError, ToolRetry) as exc:  # readable, names the bad field
        return str(exc)
    return output if isinstance(output, str) else json.dumps(output)


def with_openai(question: str, model: str, base_url: str, api_key: str) -> str:
    """The multi-round loop written against the openai SDK, running agentkit tools."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key)
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(MAX_ROUNDS):
        tools: Any = [t.to_openai() for t in TOOLS.values()]
        reply = client.chat.completions.create(model=model, messages=messages, tools=tools)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append({**message.model_dump(exclude_none=True), "content": message.content or ""})
        for call in message.tool_calls:
            if call.type != "function":
                continue  # the SDK's "custom" tools: not sent here
            output = run_tool_call(call.function.name, call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    raise RuntimeError(f"no final answer after {MAX_ROUNDS} rounds")


def with_langchain(question: str, model: str, base_url: str, api_key: str) -> str:
    """The same loop with LangChain's ``ChatOpenAI.bind_tools``, running agentkit tools."""
    from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model=model, base_url=base_url, api_key=api_key)  # type: ignore[arg-type]
    llm = chat.bind_tools([t.to_openai() for t in TOOLS.values()])
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(MAX_ROUNDS):
        reply = llm.invoke(messages)
        messages.append(reply)
        calls = [(c["id"], c["name"], json.dumps(c["args"])) for c in reply.tool_calls]
        # LangChain sets calls whose arguments are not JSON aside; agentkit explains them.
        calls += [(c["id"], c["name"] or "", c["args"] or "") for c in reply.invalid_tool_calls]
        if not calls:
            return reply.text
        for call_id, name, arguments in calls:
            messages.append(ToolMessage(run_tool_call(name, arguments), tool_call_id=call_id))
    raise RuntimeError(f"no final answer after {MAX_ROUNDS} rounds")


def main(argv: list[str] | None = None) -> None:
    """Ask the same question through both libraries."""
    parser = argparse.ArgumentParser(description="agentkit tools in openai and LangChain.")
    parser.add_argument("question", nargs="*", help="what to ask (a time question by default)")
    parser.add_argument("--model", default="qwen-plus", help="the model (qwen-plus)")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("AGENTKIT_BASE_URL", DASHSCOPE_URL),
        help="any OpenAI-compatible server (default: $AGENTKIT_BASE_URL, else DashScope)",
    )
    args = parser.parse_args(argv)

    question = " ".join(args.question) or "What time is it in Tokyo?"
    api_key = os.environ.get("DASHSCOPE_API_KEY") or "unused"  # local servers need none
    print("openai SDK:", with_openai(question, args.model, args.base_url, api_key))
    print("LangChain: ", with_langchain(question, args.model, args.base_url, api_key))


if __name__ == "__main__":
    try:
        main()
    except ImportError as exc:  # openai or langchain-openai is not installed
        sys.exit(
            f"this example needs openai and langchain-openai ({exc}); from the repository:\n"
            '  pip install -e ".[interop]"'
        )
