"""agentkit: multi-round function calling against OpenAI-compatible Chat Completions APIs.

Public names are imported lazily, so ``import agentkit`` stays light: the HTTP client,
pydantic models and jsonschema load the first time a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562).
_EXPORTS: dict[str, str] = {
    # errors
    "AgentKitError": "_errors",
    "ConfigurationError": "_errors",
    "RequestValidationError": "_errors",
    "ToolDefinitionError": "_errors",
    "APIError": "_errors",
    "APIStatusError": "_errors",
    "BadRequestError": "_errors",
    "ContentModerationError": "_errors",
    "AuthenticationError": "_errors",
    "PermissionDeniedError": "_errors",
    "NotFoundError": "_errors",
    "RateLimitError": "_errors",
    "QuotaExceededError": "_errors",
    "ServerError": "_errors",
    "APIConnectionError": "_errors",
    "APITimeoutError": "_errors",
    "IncompleteStreamError": "_errors",
    "InvalidResponseError": "_errors",
    "RunError": "_errors",
    "MaxTurnsExceeded": "_errors",
    "ToolCallLimitExceeded": "_errors",
    "ToolFailureLimitExceeded": "_errors",
    "RepeatedToolCallError": "_errors",
    "OutputTruncatedError": "_errors",
    "OutputValidationError": "_errors",
    "ToolRetry": "_errors",
    # tools
    "tool": "_tool",
    "Tool": "_tool",
    "ToolArgumentsError": "_errors",
    "RunContext": "_context",
    # client
    "ChatClient": "_client",
    "AsyncChatClient": "_client",
    "Provider": "_providers",
    "PROVIDERS": "_providers",
    # agent
    "Agent": "_agent",
    "Hooks": "_agent",
    "PlannedCall": "_loop",
    "RunResult": "_result",
    "Usage": "_wire",
    "ModelPrice": "_pricing",
}

# Written out (not computed from _EXPORTS) so type checkers see what is exported.
__all__ = [
    "PROVIDERS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Agent",
    "AgentKitError",
    "AsyncChatClient",
    "AuthenticationError",
    "BadRequestError",
    "ChatClient",
    "ConfigurationError",
    "ContentModerationError",
    "Hooks",
    "IncompleteStreamError",
    "InvalidResponseError",
    "MaxTurnsExceeded",
    "ModelPrice",
    "NotFoundError",
    "OutputTruncatedError",
    "OutputValidationError",
    "PermissionDeniedError",
    "PlannedCall",
    "Provider",
    "QuotaExceededError",
    "RateLimitError",
    "RepeatedToolCallError",
    "RequestValidationError",
    "RunContext",
    "RunError",
    "RunResult",
    "ServerError",
    "Tool",
    "ToolArgumentsError",
    "ToolCallLimitExceeded",
    "ToolDefinitionError",
    "ToolFailureLimitExceeded",
    "ToolRetry",
    "Usage",
    "tool",
]

if TYPE_CHECKING:
    from ._agent import Agent, Hooks
    from ._client import AsyncChatClient, ChatClient
    from ._context import RunContext
    from ._errors import (
        AgentKitError,
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConfigurationError,
        ContentModerationError,
        IncompleteStreamError,
        InvalidResponseError,
        MaxTurnsExceeded,
        NotFoundError,
        OutputTruncatedError,
        OutputValidationError,
        PermissionDeniedError,
        QuotaExceededError,
        RateLimitError,
        RepeatedToolCallError,
        RequestValidationError,
        RunError,
        ServerError,
        ToolArgumentsError,
        ToolCallLimitExceeded,
        ToolDefinitionError,
        ToolFailureLimitExceeded,
        ToolRetry,
    )
    from ._loop import PlannedCall
    from ._pricing import ModelPrice
    from ._providers import PROVIDERS, Provider
    from ._result import RunResult
    from ._tool import Tool, tool
    from ._wire import Usage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
