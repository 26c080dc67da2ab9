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
    "AgentKitError": "errors",
    "ConfigurationError": "errors",
    "RequestValidationError": "errors",
    "ToolDefinitionError": "errors",
    "APIError": "errors",
    "APIStatusError": "errors",
    "BadRequestError": "errors",
    "ContentModerationError": "errors",
    "AuthenticationError": "errors",
    "PermissionDeniedError": "errors",
    "NotFoundError": "errors",
    "RateLimitError": "errors",
    "QuotaExceededError": "errors",
    "ServerError": "errors",
    "APIConnectionError": "errors",
    "APITimeoutError": "errors",
    "IncompleteStreamError": "errors",
    "InvalidResponseError": "errors",
    "RunError": "errors",
    "MaxTurnsExceeded": "errors",
    "ToolCallLimitExceeded": "errors",
    "ToolFailureLimitExceeded": "errors",
    "RepeatedToolCallError": "errors",
    "OutputTruncatedError": "errors",
    "OutputValidationError": "errors",
    "ToolRetry": "errors",
    # tools
    "tool": "function_tool",
    "Tool": "function_tool",
    "ToolArgumentsError": "errors",
    "RunContext": "context",
    # client
    "ChatClient": "client",
    "AsyncChatClient": "client",
    "Provider": "providers",
    "PROVIDERS": "providers",
    # agent
    "Agent": "agent",
    "Hooks": "agent",
    "PlannedCall": "loop",
    "RunResult": "result",
    "Usage": "wire",
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
    from .agent import Agent, Hooks
    from .client import AsyncChatClient, ChatClient
    from .context import RunContext
    from .errors import (
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
    from .function_tool import Tool, tool
    from .loop import PlannedCall
    from .providers import PROVIDERS, Provider
    from .result import RunResult
    from .wire import Usage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
