"""One run as OpenTelemetry spans: ``invoke_agent`` > ``chat`` / ``execute_tool``.

Attribute names are those of the GenAI semantic conventions, written out here so that
the runtime needs only ``opentelemetry-api``; the tests compare them with the
``opentelemetry-semantic-conventions`` constants, so an upstream rename is caught.

Spans are started with an explicit parent, never made current: a run's events are
pulled from generators, and a context attached in one could leak into the caller's code
between two events.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

from .._errors import ConfigurationError
from .._observe import RunInfo, RunObserver, members

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

    from .._calls import PlannedCall
    from .._events import ToolResult
    from .._result import RunResult
    from .._wire import ChatCompletion, Usage

__all__ = ["RunTracer", "load"]

_logger = logging.getLogger("agentkit.tracing")
_P = ParamSpec("_P")
_S = TypeVar("_S")


def _guarded(
    method: Callable[Concatenate[_S, _P], None],
) -> Callable[Concatenate[_S, _P], None]:
    """Tracing never breaks a run: a failure is logged (debug) and the run goes on."""

    @functools.wraps(method)
    def guarded(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception:
            _logger.debug("tracing %s failed", method.__name__, exc_info=True)

    return guarded


# --- the GenAI semantic conventions' names ---------------------------------------------------

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
REQUEST_STREAM = "gen_ai.request.stream"
OUTPUT_TYPE = "gen_ai.output.type"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_STATUS = "http.response.status_code"

# The conventions list no value for DashScope: "{vendor}.{product}", as for gcp.gemini.
DASHSCOPE_PROVIDER = "alibaba_cloud.dashscope"
# Any other OpenAI-compatible server (vLLM, Ollama, llama.cpp, a gateway).
COMPATIBLE_PROVIDER = "openai_compatible"

# agentkit's own span events (the conventions define none for these).
EVENT_RETRY = "agentkit.retry"
EVENT_STREAM_FALLBACK = "agentkit.stream_fallback"
EVENT_APPROVAL = "agentkit.approval"
EVENT_LIMIT = "agentkit.limit"
EVENT_HANDOFF = "agentkit.handoff"
HANDOFF_SOURCE = "agentkit.handoff.source"
HANDOFF_TARGET = "agentkit.handoff.target"

_NUMBER_PARAMS = {
    "temperature": REQUEST_TEMPERATURE,
    "top_p": REQUEST_TOP_P,
    "top_k": REQUEST_TOP_K,
    "presence_penalty": REQUEST_PRESENCE_PENALTY,
    "frequency_penalty": REQUEST_FREQUENCY_PENALTY,
}
_INT_PARAMS = {
    "max_tokens": REQUEST_MAX_TOKENS,
    "max_completion_tokens": REQUEST_MAX_TOKENS,
    "seed": REQUEST_SEED,
    "n": REQUEST_CHOICE_COUNT,
}
_CALL_LIMITS = {"limit": "max_tool_calls", "repeated": "max_repeated_calls"}
# A tool name the model invented is untrusted text (it may spell out an e-mail address):
# spans and their names carry this fixed label instead; with content capture on, the
# invented name is kept in REQUESTED_TOOL_NAME (cut).
UNKNOWN_TOOL = "unknown_tool"
REQUESTED_TOOL_NAME = "agentkit.tool.requested_name"


def load() -> Any:
    """The ``opentelemetry.trace`` module, or a ConfigurationError naming the extra."""
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ConfigurationError(
            "tracing needs OpenTelemetry: pip install 'agentkit[otel]'"
        ) from exc
    return trace


def provider_name(preset: str) -> str:
    """``gen_ai.provider.name`` for an agentkit provider preset."""
    if preset.startswith("dashscope"):
        return DASHSCOPE_PROVIDER
    if preset == "openai":
        return "openai"
    return COMPATIBLE_PROVIDER


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class, as users import it."""
    kind = type(error)
    module = kind.__module__
    if module.startswith("agentkit.") and module.split(".")[1].startswith("_"):
        module = "agentkit"  # agentkit.RateLimitError, not agentkit._errors.RateLimitError
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _request_attributes(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, attribute in _NUMBER_PARAMS.items():
        value = params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[attribute] = float(value)
    for name, attribute in _INT_PARAMS.items():
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            out[attribute] = value
    stop = params.get("stop")
    if isinstance(stop, str):
        out[REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        out[REQUEST_STOP_SEQUENCES] = list(stop)
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in (
        "json_schema",
        "json_object",
    ):
        out[OUTPUT_TYPE] = "json"
    return out


def _usage_attributes(usage: Usage) -> dict[str, int]:
    out = {
        USAGE_INPUT_TOKENS: usage.prompt_tokens,
        USAGE_OUTPUT_TOKENS: usage.completion_tokens,
    }
    if usage.cached_tokens:
        out[USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_tokens
    if usage.cache_creation_tokens:
        out[USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_creation_tokens
    if usage.reasoning_tokens:
        out[USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    return out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    if isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append({"type": "text", "content": part["text"]})
    return parts


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A wire message in the conventions' structured form (role and typed parts)."""
    role = message.get("role", "user")
    if role == "tool":
        return {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": message.get("content"),
                }
            ],
        }
    parts = _text_parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": function.get("arguments"),
            }
        )
    return {"role": role, "parts": parts}


class RunTracer(RunObserver):
    """The spans of one run. Every method guards itself: tracing never breaks a run."""

    def __init__(
        self, info: RunInfo, tracer_provider: TracerProvider | None, *, capture_content: bool
    ) -> None:
        trace = load()
        from agentkit import __version__

        self._trace = trace
        self._tracer = trace.get_tracer("agentkit", __version__, tracer_provider=tracer_provider)
        self._info = info
        self._capture = capture_content
        self._provider = provider_name(info.provider)
        url = urlsplit(info.base_url)
        self._server: dict[str, Any] = {}
        if url.hostname:
            self._server[SERVER_ADDRESS] = url.hostname
            port = url.port or (443 if url.scheme == "https" else 80)
            self._server[SERVER_PORT] = port
        self._chat: Span | None = None
        self._tools: dict[str, Span] = {}
        self._refused: set[str] = set()
        name = info.agent_name
        attributes: dict[str, Any] = {
            OPERATION_NAME: "invoke_agent",
            PROVIDER_NAME: self._provider,
            REQUEST_MODEL: info.model,
            **self._server,
            **_request_attributes(info.params),
        }
        if name:
            attributes[AGENT_NAME] = name
        if info.conversation_id:
            attributes[CONVERSATION_ID] = info.conversation_id
        self._run = self._tracer.start_span(
            f"invoke_agent {name}" if name else "invoke_agent",
            context=self._caller_context(info),
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
        )
        self._parent = trace.set_span_in_context(self._run)
        # every span of the run names its agent (the GenAI conventions' gen_ai.agent.name)
        self._agent: dict[str, Any] = {AGENT_NAME: name} if name else {}

    def _caller_context(self, info: RunInfo) -> Any:
        """A sub-agent's run goes under the caller's ``execute_tool`` span of the call that
        runs it; any other run under the current span (``None``)."""
        caller, call_id = info.caller, info.caller_call_id
        if caller is None or not call_id:
            return None
        for observer in members(caller):
            if isinstance(observer, RunTracer):
                span = observer._tools.get(call_id)
                if span is not None:
                    return self._trace.set_span_in_context(span)
        return None

    # --- model calls ------------------------------------------------------------------

    @_guarded
    def model_call_started(self, turn: int, request: Mapping[str, Any]) -> None:
        try:
            model = request.get("model") or self._info.model
            attributes: dict[str, Any] = {
                OPERATION_NAME: "chat",
                PROVIDER_NAME: self._provider,
                REQUEST_MODEL: model,
                REQUEST_STREAM: self._info.streamed,
                **self._agent,
                **self._server,
                **_request_attributes(request),
            }
            if self._info.conversation_id:
                attributes[CONVERSATION_ID] = self._info.conversation_id
            if self._capture:
                attributes.update(self._input_content(request))
            self._chat = self._tracer.start_span(
                f"chat {model}",
                context=self._parent,
                kind=self._trace.SpanKind.CLIENT,
                attributes=attributes,
            )
        except Exception:
            self._chat = None
            raise

    def _input_content(self, request: Mapping[str, Any]) -> dict[str, str]:
        messages = request.get("messages") or []
        system = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "system"]
        rest = [m for m in messages if isinstance(m, Mapping) and m.get("role") != "system"]
        out = {INPUT_MESSAGES: _json([_message(m) for m in rest])}
        if system:
            out[SYSTEM_INSTRUCTIONS] = _json(_text_parts(system[0].get("content")))
        return out

    @_guarded
    def model_call_finished(self, turn: int, completion: ChatCompletion) -> None:
        span = self._chat
        self._chat = None
        if span is None:
            return
        try:
            attributes: dict[str, Any] = {
                RESPONSE_FINISH_REASONS: [c.finish_reason or "" for c in completion.choices],
            }
            if completion.id:
                attributes[RESPONSE_ID] = completion.id
            if completion.model:
                attributes[RESPONSE_MODEL] = completion.model
            if completion.usage is not None:
                attributes.update(_usage_attributes(completion.usage))
            if self._capture:
                output = []
                for choice in completion.choices:
                    message = choice.message
                    calls = [c.model_dump() for c in message.tool_calls or ()]
                    entry = _message({"role": "assistant", "content": message.content})
                    entry["parts"] += _message({"role": "assistant", "tool_calls": calls})["parts"]
                    entry["finish_reason"] = choice.finish_reason or ""
                    output.append(entry)
                attributes[OUTPUT_MESSAGES] = _json(output)
            span.set_attributes(attributes)
        finally:
            span.end()

    @_guarded
    def stream_fallback(self, turn: int, error: BaseException) -> None:
        target = self._chat or self._run
        target.add_event(
            EVENT_STREAM_FALLBACK,
            {ERROR_TYPE: error_type(error), "agentkit.turn": turn},
        )

    @_guarded
    def retrying(self, error: BaseException, delay: float, attempt: int, max_retries: int) -> None:
        attributes: dict[str, Any] = {
            ERROR_TYPE: error_type(error),
            "agentkit.retry.attempt": attempt,
            "agentkit.retry.max": max_retries,
            "agentkit.retry.delay_s": float(delay),
        }
        status = getattr(error, "status", None)
        if isinstance(status, int) and not isinstance(status, bool):
            attributes[HTTP_STATUS] = status
        (self._chat or self._run).add_event(EVENT_RETRY, attributes)

    # --- tool calls -------------------------------------------------------------------

    def _tool_span(self, call: PlannedCall) -> Span:
        tool = call.tool
        name = call.name if tool is not None else UNKNOWN_TOOL
        attributes: dict[str, Any] = {
            OPERATION_NAME: "execute_tool",
            TOOL_NAME: name,
            TOOL_CALL_ID: call.call_id,
            TOOL_TYPE: "function",
            **self._agent,
        }
        if tool is not None and getattr(tool, "description", None):
            attributes[TOOL_DESCRIPTION] = str(tool.description)
        if self._capture:
            attributes[TOOL_CALL_ARGUMENTS] = call.arguments
            if tool is None:
                attributes[REQUESTED_TOOL_NAME] = call.name[:200]
        span: Span = self._tracer.start_span(
            f"execute_tool {name}",
            context=self._parent,
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
        )
        return span

    @_guarded
    def tool_call_started(self, call: PlannedCall) -> None:
        self._tools[call.call_id] = self._tool_span(call)

    @_guarded
    def tool_call_finished(self, call: PlannedCall, result: ToolResult) -> None:
        span = self._tools.pop(call.call_id, None)
        if span is None:  # never ran: a refused approval, an unknown tool, a limit
            span = self._tool_span(call)
            limit = _CALL_LIMITS.get(call.kind)
            if limit is not None:
                self._run.add_event(EVENT_LIMIT, {"agentkit.limit.name": limit})
        try:
            if self._capture:
                span.set_attribute(TOOL_CALL_RESULT, result.output)
            if result.error is not None:
                kind = self._tool_error_type(call, result)
                span.set_attribute(ERROR_TYPE, kind)
                # The error's text quotes arguments and the tool's exception (an address, an
                # account number): content, so only with capture on; else the kind alone.
                described = result.error if self._capture else kind
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, described))
        finally:
            span.end()

    def _tool_error_type(self, call: PlannedCall, result: ToolResult) -> str:
        # A low-cardinality kind; the message is in the span status.
        if call.call_id in self._refused:
            return "refused"
        if call.kind != "run":
            return call.kind  # unknown_tool, invalid_arguments, repeated, limit, output
        return "timeout" if " timed out after " in (result.error or "") else "tool_error"

    @_guarded
    def approval_pending(self, call: PlannedCall) -> None:
        self._run.add_event(
            EVENT_APPROVAL,
            {TOOL_NAME: call.name, TOOL_CALL_ID: call.call_id, "agentkit.approval.paused": True},
        )

    @_guarded
    def handoff(self, source: str, target: str) -> None:
        # One run, several agents: the event marks the switch, and the model and tool
        # calls after it are the target's (their gen_ai.agent.name says so).
        self._run.add_event(
            EVENT_HANDOFF, {HANDOFF_SOURCE: source, HANDOFF_TARGET: target, AGENT_NAME: target}
        )
        self._agent = {AGENT_NAME: target}

    @_guarded
    def limit_reached(self, limit: str, error: BaseException) -> None:
        self._run.add_event(EVENT_LIMIT, {"agentkit.limit.name": limit})

    @_guarded
    def approval(self, call: PlannedCall, granted: bool) -> None:
        if not granted:
            self._refused.add(call.call_id)
        attributes: dict[str, Any] = {
            TOOL_NAME: call.name,
            TOOL_CALL_ID: call.call_id,
            "agentkit.approval.granted": granted,
        }
        # A person's decision on a resume: who (an id the deployment chose, not content) and when.
        if call.decided_by is not None:
            attributes["agentkit.approval.decided_by"] = call.decided_by
        if call.decided_at is not None:
            attributes["agentkit.approval.decided_at"] = call.decided_at
        self._run.add_event(EVENT_APPROVAL, attributes)

    # --- the run ----------------------------------------------------------------------

    @_guarded
    def run_finished(self, result: RunResult[Any]) -> None:
        try:
            self._run.set_attributes(_usage_attributes(result.usage))
            self._run.set_attribute("agentkit.turns", result.turns)
            if result.status == "paused":  # calls wait for a person's decision
                self._run.set_attribute("agentkit.paused", True)
                # an agent-tool call whose sub-run paused stays open until the resume, which
                # traces it again: its span ends here, marked paused, not left unexported
                for span in self._tools.values():
                    span.set_attribute("agentkit.paused", True)
                    span.end()
                self._tools.clear()
        finally:
            self._run.end()

    @_guarded
    def run_failed(self, error: BaseException) -> None:
        interrupted = isinstance(error, GeneratorExit)
        kind = "cancelled" if interrupted else error_type(error)
        status = self._trace.Status(self._trace.StatusCode.ERROR, kind)
        for span in [*([self._chat] if self._chat else []), *self._tools.values()]:
            span.set_attribute(ERROR_TYPE, kind)
            span.set_status(status)
            span.end()
        self._chat = None
        self._tools.clear()
        if interrupted:
            self._run.set_attribute("agentkit.interrupted", True)
        else:
            self._run.set_attribute(ERROR_TYPE, kind)
            self._run.set_status(status)
        self._run.end()
