"""agentkit: multi-round function calling against OpenAI-compatible Chat Completions APIs.

Public names are imported lazily, so ``import agentkit`` stays light: the HTTP client,
pydantic models and jsonschema load the first time a name that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__: str  # one source, agentkit/_version.py, read on first use (see __getattr__)

# The export table: every public name, imported from the module that defines it. Type
# checkers read these lines; at run time they never execute. Instead, the first lookup of
# a name reads the table from this module's compiled code (see _exports) and imports only
# the module that name needs (PEP 562). Write each name as ``Name as Name``.
if TYPE_CHECKING:
    from ._agent import Agent as Agent
    from ._agent import Approver as Approver
    from ._agent import Hooks as Hooks
    from ._calls import PlannedCall as PlannedCall
    from ._client import AsyncChatClient as AsyncChatClient
    from ._client import ChatClient as ChatClient
    from ._context import Principal as Principal
    from ._context import RunContext as RunContext
    from ._errors import AgentKitError as AgentKitError
    from ._errors import APIConnectionError as APIConnectionError
    from ._errors import APIError as APIError
    from ._errors import APIStatusError as APIStatusError
    from ._errors import APITimeoutError as APITimeoutError
    from ._errors import AuthenticationError as AuthenticationError
    from ._errors import BadRequestError as BadRequestError
    from ._errors import ConfigurationError as ConfigurationError
    from ._errors import ContentModerationError as ContentModerationError
    from ._errors import DeadlineExceededError as DeadlineExceededError
    from ._errors import HandoffLimitError as HandoffLimitError
    from ._errors import IncompleteStreamError as IncompleteStreamError
    from ._errors import InvalidResponseError as InvalidResponseError
    from ._errors import MaxTurnsExceededError as MaxTurnsExceededError
    from ._errors import NotFoundError as NotFoundError
    from ._errors import OutputTruncatedError as OutputTruncatedError
    from ._errors import OutputValidationError as OutputValidationError
    from ._errors import PermissionDeniedError as PermissionDeniedError
    from ._errors import QuotaExceededError as QuotaExceededError
    from ._errors import RateLimitError as RateLimitError
    from ._errors import RepeatedToolCallError as RepeatedToolCallError
    from ._errors import RequestValidationError as RequestValidationError
    from ._errors import ResponseTooLargeError as ResponseTooLargeError
    from ._errors import RunError as RunError
    from ._errors import RunTimeoutError as RunTimeoutError
    from ._errors import ServerError as ServerError
    from ._errors import ToolArgumentsError as ToolArgumentsError
    from ._errors import ToolCallLimitExceededError as ToolCallLimitExceededError
    from ._errors import ToolDefinitionError as ToolDefinitionError
    from ._errors import ToolFailureLimitExceededError as ToolFailureLimitExceededError
    from ._errors import ToolRetry as ToolRetry
    from ._errors import ToolThreadsExhaustedError as ToolThreadsExhaustedError
    from ._events import AgentEvent as AgentEvent
    from ._events import HandedOff as HandedOff
    from ._events import ModelRoundFinished as ModelRoundFinished
    from ._events import ReasoningDelta as ReasoningDelta
    from ._events import RunFinished as RunFinished
    from ._events import StreamDelta as StreamDelta
    from ._events import SubAgentEvent as SubAgentEvent
    from ._events import TextDelta as TextDelta
    from ._events import ToolCallArgumentsDelta as ToolCallArgumentsDelta
    from ._events import ToolCallStarted as ToolCallStarted
    from ._events import ToolResult as ToolResult
    from ._handoff import Handoff as Handoff
    from ._observe import ObserverFactory as ObserverFactory
    from ._observe import RunInfo as RunInfo
    from ._observe import RunObserver as RunObserver
    from ._pricing import ModelPrice as ModelPrice
    from ._providers import PROVIDERS as PROVIDERS
    from ._providers import Provider as Provider
    from ._records import ModelSettings as ModelSettings
    from ._records import RunLimits as RunLimits
    from ._result import PendingCall as PendingCall
    from ._result import RunResult as RunResult
    from ._retry import RetryEvent as RetryEvent
    from ._retry import RetryPolicy as RetryPolicy
    from ._session import ResumeError as ResumeError
    from ._sources import ToolSource as ToolSource
    from ._store import SchemaVersionError as SchemaVersionError
    from ._store import SessionBusyError as SessionBusyError
    from ._store import SessionCorruptError as SessionCorruptError
    from ._store import SessionError as SessionError
    from ._store import SessionNotFoundError as SessionNotFoundError
    from ._store import Store as Store
    from ._tool import Tool as Tool
    from ._tool import tool as tool
    from ._wire import Usage as Usage

_table: dict[str, str] | None = None


def _exports() -> dict[str, str]:
    """Public name -> the submodule that defines it, read once from the table above.

    The ``if TYPE_CHECKING:`` block is compiled though it never runs, so its imports are in
    this module's code object, whatever loaded it (source, ``.pyc`` only, a zip, a frozen
    app): each ``IMPORT_NAME`` of a private submodule is followed by its ``IMPORT_FROM``s.
    """
    global _table
    if _table is None:
        import dis

        code = __spec__.loader.get_code(__name__)  # type: ignore[union-attr]
        table: dict[str, str] = {}
        module = ""
        for instruction in dis.get_instructions(code):
            if instruction.opname == "IMPORT_NAME":
                module = instruction.argval
            elif instruction.opname == "IMPORT_FROM" and _exported_from(module):
                table[instruction.argval] = module
        _table = table
    return _table


def _exported_from(module: str) -> bool:
    # the core's private submodules (never the product ring: tests/test_architecture.py)
    return module.startswith("_") and not module.startswith("__")  # not __future__


def _load_tracing() -> Any:
    """The tracing ring, imported (it registers ``Agent(instrument=True)``'s observer
    factory with the core's registry when it loads). The package's surface is the one place
    outside the ring that names it; the core reaches it only through here."""
    from . import tracing

    return tracing


# Hidden from type checkers: a module-level __getattr__ would make every attribute of
# agentkit valid to them, misspellings included; they read the table above instead.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            value: Any = sorted(_exports())
        elif name == "__version__":
            from ._version import __version__ as value
        else:
            module = _exports().get(name)
            if module is None:
                from ._errors import RENAMED, renamed

                if name in RENAMED:  # an old name: warns at each use, so never cached
                    return renamed(__name__, name, __getattr__(RENAMED[name]))
                if name == "instrument":  # moved to the ring: warns at each use too
                    from ._deprecation import warn_deprecated

                    warn_deprecated(
                        "agentkit.instrument is deprecated: use agentkit.tracing.instrument "
                        "(import agentkit.tracing); the old name will be removed before 0.1.0"
                    )
                    return _load_tracing().instrument
                raise AttributeError(f"module 'agentkit' has no attribute {name!r}")
            from importlib import import_module

            value = getattr(import_module(f".{module}", __name__), name)
        globals()[name] = value  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_exports()})
