"""An agent's configuration: its options checked once, and what each run is set up from.

:class:`AgentConfig` takes ``Agent``'s keywords, refuses what cannot work (with a
``ConfigurationError`` that says what to write instead), resolves the provider and the key,
and derives the loop settings once. Per run it answers the questions a run's setup asks:
this run's limits, the settings for this run's tools (the agent's own and its sources'),
the first messages (instructions, prompt) and a new :class:`~agentkit._loop.RunLoop`. It
does no I/O and owns no resource (that is :mod:`agentkit._runtime`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict

from ._client import AsyncChatClient, ChatClient
from ._context import Principal, RunContext
from ._deprecation import warn_deprecated
from ._errors import ConfigurationError
from ._hooks import Hooks
from ._loop import RunLoop
from ._loop_settings import LoopSettings, OutputMode
from ._loop_text import clean_data, clean_text
from ._observe import ObserverFactory
from ._providers import Provider, resolve_api_key, resolve_provider
from ._records import ModelSettings, RunLimits, loop_limits, split_options
from ._session import Summarizer
from ._sources import ToolSource
from ._steps import Approver
from ._store import Store
from ._tool import Tool, tool

if TYPE_CHECKING:
    from ._agent import Agent
    from ._handoff import Handoff

__all__ = ["AgentConfig", "AgentOptions", "Instructions", "Prompt", "new_messages"]

Prompt: TypeAlias = str | Sequence[Mapping[str, Any]]
"""A user prompt, or a whole transcript of wire-format messages (e.g. ``RunResult.messages``
with a new user message appended)."""

Instructions: TypeAlias = "str | Callable[[RunContext[Any]], str] | None"
"""The system message: a text, or a function of the run's context that returns one."""


class AgentOptions(TypedDict, total=False):
    """The keyword options of :class:`~agentkit.Agent` (see its docstring for each one)."""

    client: ChatClient | AsyncChatClient | None
    base_url: str | None
    api_key: str | None
    provider: str | Provider | None
    max_turns: int
    output_mode: Literal["auto", "json_schema", "tool"]
    max_output_retries: int
    max_tool_calls: int | None
    tool_timeout: float | None
    max_tool_output_chars: int | None
    max_repeated_calls: int
    max_tool_failures: int
    on_truncated: Literal["raise", "return"]
    parallel_tool_calls_limit: int
    limits: RunLimits | None
    settings: ModelSettings | None
    hooks: Hooks | None
    approve: Approver | None
    run_timeout: float | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None
    stop: str | list[str] | list[int] | list[list[int]] | None
    presence_penalty: float | None
    tool_choice: str | dict[str, Any] | None
    parallel_tool_calls: bool | None
    extra_body: Mapping[str, Any] | None
    params: Mapping[str, Any] | None
    name: str | None
    instrument: bool
    context_cache: bool
    observers: Sequence[ObserverFactory]
    store: Store | None
    session_wait: float
    context_budget: int | None
    summarize: Summarizer | None
    handoffs: Sequence[Agent[Any] | Handoff]


class AgentConfig:
    """An agent's options, checked, and the loop settings derived from them once."""

    def __init__(
        self,
        model: str,
        tools: Iterable[Tool[..., Any] | Callable[..., Any] | ToolSource],
        *,
        output_type: type[Any] | None,
        client: ChatClient | AsyncChatClient | None,
        base_url: str | None,
        api_key: str | None,
        provider: str | Provider | None,
        output_mode: Literal["auto", "json_schema", "tool"],
        on_truncated: Literal["raise", "return"],
        limits: RunLimits | None,
        settings: ModelSettings | None,
        params: Mapping[str, Any] | None,
        context_cache: bool,
        store: Store | None,
        session_wait: float,
        context_budget: int | None,
        summarize: Summarizer | None,
        flat: Mapping[str, Any],
        name: str | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model must be a non-empty string, e.g. 'qwen-plus'")
        limits, wire = split_options(flat, limits, settings)
        if output_type is not None and not (
            isinstance(output_type, type) and hasattr(output_type, "model_validate_json")
        ):
            raise ConfigurationError("output_type must be a pydantic model class")
        if isinstance(tools, Tool | ToolSource) or callable(tools):
            raise ConfigurationError("tools must be a list of tools, e.g. tools=[get_weather]")
        if client is not None and not isinstance(client, ChatClient | AsyncChatClient):
            raise ConfigurationError("client must be a ChatClient or an AsyncChatClient")

        if client is not None:
            chosen = client.provider
            key = None
            if context_cache and not chosen.context_cache:
                raise ConfigurationError(
                    "context_cache=True needs a client built with it: "
                    "ChatClient(provider=PROVIDERS['dashscope'].with_context_cache(), ...)"
                )
        else:
            chosen = resolve_provider(provider, base_url)
            if context_cache:
                chosen = chosen.with_context_cache()  # refused for a provider without one
            key = _key_if_set(chosen, api_key)
        mode: OutputMode = "text"
        if output_type is not None:
            if output_mode == "auto":
                mode = "json_schema" if chosen.json_schema_output else "tool"
            elif output_mode in ("json_schema", "tool"):
                mode = output_mode
            else:
                raise ConfigurationError("output_mode must be 'auto', 'json_schema' or 'tool'")

        wire.update(params or {})
        for reserved in ("model", "messages", "stream", "tools"):
            if reserved in wire:
                raise ConfigurationError(f"{reserved!r} is set by the agent, not by params")
        if store is not None and not isinstance(store, Store):
            raise ConfigurationError("store must be a session store, e.g. SQLiteStore('bot.db')")
        if context_budget is not None and context_budget < 1:
            raise ConfigurationError("context_budget must be a positive number of tokens")

        self.model = model
        self.session_wait = session_wait
        self.context_budget = context_budget
        self.summarize = summarize
        self.provider = chosen
        self.api_key = key
        items = list(tools)
        self.sources = [item for item in items if isinstance(item, ToolSource)]
        self.tools: list[Tool[..., Any]] = [
            item if isinstance(item, Tool) else tool(item)
            for item in items
            if not isinstance(item, ToolSource)
        ]
        self.limits = limits
        self.parallel_limit = limits.parallel_tool_calls_limit
        self._options: dict[str, Any] = dict(
            params=wire,
            **loop_limits(limits),
            output_type=output_type,
            output_mode=mode,
            on_truncated=on_truncated,
            provider=chosen,
            agent=name,
        )
        self.settings = LoopSettings(model, self.tools, **self._options)
        # the sources' tool lists of the last run and the settings derived from them
        self.sourced: tuple[list[Sequence[Tool[..., Any]]], LoopSettings] | None = None
        # the settings of the last handoff graph this agent ran in (_handoff.Team.settings)
        self.team_settings: tuple[Any, LoopSettings] | None = None

    # -- limits ---------------------------------------------------------------------------

    def run_limits(self, max_turns: int | None, limits: RunLimits | None) -> RunLimits | None:
        """This run's limits, when ``max_turns=`` or ``limits=`` overrides the agent's."""
        if max_turns is not None and limits is None:
            warn_deprecated(
                "max_turns= on a run is deprecated: pass "
                f"limits=RunLimits(max_turns={max_turns!r}) (dataclasses.replace(agent.limits, "
                f"max_turns={max_turns!r}) keeps the agent's other limits); it will be removed "
                "before 0.1.0"
            )
        if limits is None:
            if max_turns is None:
                return None
            return dataclasses.replace(self.limits, max_turns=max_turns)
        if not isinstance(limits, RunLimits):
            raise ConfigurationError("limits must be a RunLimits record")
        if max_turns is not None:
            raise ConfigurationError(
                "max_turns is given both as a keyword and in limits=; give it in one place"
            )
        if limits.parallel_tool_calls_limit != self.parallel_limit:
            raise ConfigurationError(
                "parallel_tool_calls_limit sizes the agent's thread pool and cannot change "
                "for one run; keep the agent's value in a run's limits="
            )
        return limits

    def limited(
        self, settings: LoopSettings, limits: RunLimits | None
    ) -> tuple[LoopSettings, int | None]:
        """The settings and turn cap for a run under ``limits`` (``None``: the agent's)."""
        if limits is None or limits == self.limits:
            return settings, None
        if dataclasses.replace(limits, max_turns=self.limits.max_turns) == self.limits:
            return settings, limits.max_turns
        options = {**self._options, **loop_limits(limits)}
        return LoopSettings(self.model, list(settings.tools.values()), **options), None

    # -- tools ----------------------------------------------------------------------------

    def settings_for(self, found: list[Sequence[Tool[..., Any]]] | None) -> LoopSettings:
        """The settings for a run whose sources returned ``found`` (none: the agent's own).

        Derived again only when a source returned a different tool list than last time.
        """
        if not found:
            return self.settings
        cached = self.sourced
        if cached is not None and all(a is b for a, b in zip(cached[0], found, strict=True)):
            return cached[1]
        owners: dict[str, object] = {t.name: "a @tool" for t in self.tools}
        merged = list(self.tools)
        for source, tools in zip(self.sources, found, strict=True):
            for item in tools:
                owner = owners.setdefault(item.name, source)
                if owner is not source:
                    raise ConfigurationError(
                        f"two tools are named {item.name!r}: one from {source!r} and one from "
                        f"{owner!s}; give the source a prefix (e.g. prefix='crm') or rename one"
                    )
                merged.append(item)
        settings = LoopSettings(self.model, merged, **self._options)
        self.sourced = (found, settings)
        return settings

    # -- the first messages ---------------------------------------------------------------

    def system_messages(
        self,
        instructions: Instructions,
        context: Any,
        summary: str | None,
        principal: Principal | None = None,
    ) -> list[dict[str, Any]]:
        """The system message of a run (with the summary of turns left out, if any)."""
        if callable(instructions):
            instructions = instructions(RunContext(deps=context, principal=principal))
            if not isinstance(instructions, str):
                raise ConfigurationError("an instructions function must return a str")
        if summary:
            summary = f"Summary of the earlier conversation:\n{summary}"
            instructions = f"{instructions}\n\n{summary}" if instructions else summary
        return [] if instructions is None else [{"role": "system", "content": instructions}]

    def messages_for(
        self,
        instructions: Instructions,
        prompt: Prompt,
        context: Any = None,
        principal: Principal | None = None,
    ) -> list[dict[str, Any]]:
        """The transcript a run without a session starts from."""
        if callable(instructions):
            instructions = self.system_messages(instructions, context, None, principal)[0][
                "content"
            ]
        if isinstance(prompt, str):
            user = {"role": "user", "content": clean_text(prompt)}
            if instructions is None:
                return [user]
            return [{"role": "system", "content": instructions}, user]
        messages: list[dict[str, Any]] = []
        for message in prompt:
            if not isinstance(message, Mapping) or "role" not in message:
                raise ConfigurationError(
                    "a transcript is a list of message dicts, each with a 'role'; got "
                    f"{type(message).__name__}"
                )
            messages.append(clean_data(message if isinstance(message, dict) else dict(message)))
        if not messages:
            raise ConfigurationError("the transcript is empty: nothing to send")
        if instructions is not None and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": instructions})
        return messages

    def new_loop(
        self,
        messages: list[dict[str, Any]],
        settings: LoopSettings,
        limits: RunLimits | None,
        *,
        deps: Any,
        principal: Principal | None,
        tools_with_stream: bool,
    ) -> RunLoop:
        """A loop over ``messages`` under this run's ``limits``."""
        settings, turns = self.limited(settings, limits)
        return RunLoop(
            settings,
            messages,
            deps=deps,
            principal=principal,
            max_turns=turns,
            tools_with_stream=tools_with_stream,
        )


def _key_if_set(provider: Provider, api_key: str | None) -> str | None:
    """The key, checked now; ``None`` when none is set yet: the first request resolves it
    again and, still missing, raises the same ``ConfigurationError`` naming the variable
    to set. So a bot's file imports with no key (``agentkit tools bot.py``, pytest)."""
    try:
        return resolve_api_key(provider, api_key)
    except ConfigurationError:
        if api_key is not None or (provider.api_key_env and os.environ.get(provider.api_key_env)):
            raise  # a key was given and cannot be sent: say so where it was given
        return None


def new_messages(prompt: Prompt | None) -> list[dict[str, Any]]:
    """What a prompt adds to a stored conversation: a user message, or new user/assistant
    messages (the stored conversation and the instructions are the agent's to add)."""
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "content": clean_text(prompt)}]
    messages = []
    for message in prompt:
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise ConfigurationError(
                "on a session, prompt is a user message (str) or new user/assistant message "
                "dicts; the stored conversation and the instructions are added by the agent"
            )
        messages.append(clean_data(dict(message)))
    if not messages:
        raise ConfigurationError("the prompt is empty: nothing to send")
    return messages


def run_deps(deps: Any, context: Any) -> Any:
    """The run's dependencies, given as ``deps=`` (what ``RunContext.deps`` reads) or by
    their older name ``context=``."""
    if context is None:
        return deps
    if deps is not None:
        raise ConfigurationError("pass deps= (context= is its older name), not both")
    warn_deprecated(
        "context= is deprecated: pass deps= (run(prompt, deps=...)); it goes before 0.1.0"
    )
    return context
