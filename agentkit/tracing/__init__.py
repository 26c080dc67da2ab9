"""OpenTelemetry tracing of agent runs, following the GenAI semantic conventions.

Needs the ``otel`` extra (``pip install 'agentkit[otel]'``, which brings
``opentelemetry-api``); ``import agentkit`` never loads it. Spans go to the globally
configured tracer provider, so any exporter works (OTLP to Jaeger, Langfuse, Phoenix,
Logfire; the console)::

    import agentkit.tracing

    agentkit.tracing.instrument()              # every agent's runs
    agent = Agent("qwen-plus", tools, instrument=True)   # or one agent's

Each run is an ``invoke_agent {name}`` span with a ``chat {model}`` child per model call
and an ``execute_tool {tool}`` child per tool call. Message content is left out unless
``capture_content=True`` (or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``).
See ``docs/observability.md``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from .._observe import (
    RunInfo,
    RunObserver,
    add_global_observer,
    provide_instrumentation,
    remove_global_observer,
)

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["CAPTURE_CONTENT_ENV", "Instrumentation", "instrument", "uninstrument"]

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The environment variable the GenAI conventions name for opting in to message content."""

_CONTENT_ON = frozenset({"true", "1", "yes", "span_only", "span_and_event"})


class Instrumentation:
    """Traces runs with OpenTelemetry: an observer factory for ``Agent(observers=[...])``.

    Args:
        capture_content: record messages, tool arguments and tool results on spans
            (``None``: as ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says; off
            when unset). They may hold personal data: see ``docs/observability.md``.
        tracer_provider: where spans go (``None``: the global tracer provider, looked up
            at each run, so one configured later is used).

    Raises:
        ConfigurationError: when OpenTelemetry is not installed (the ``otel`` extra).
    """

    def __init__(
        self,
        *,
        capture_content: bool | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        from ._otel import load

        load()  # a missing extra is reported here, not in the middle of a run
        self.capture_content = capture_content
        self.tracer_provider = tracer_provider

    def _capturing(self) -> bool:
        if self.capture_content is not None:
            return self.capture_content
        return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CONTENT_ON

    def __call__(self, info: RunInfo) -> RunObserver | None:
        """The observer (and the ``invoke_agent`` span) of one run; ``None`` (the run goes
        on untraced, the failure logged) when the tracer provider fails."""
        from ._otel import RunTracer

        try:
            return RunTracer(info, self.tracer_provider, capture_content=self._capturing())
        except Exception:
            logging.getLogger("agentkit.tracing").warning(
                "tracing this run failed; it runs untraced", exc_info=True
            )
            return None

    def __repr__(self) -> str:
        return f"Instrumentation(capture_content={self.capture_content!r})"


_default: Instrumentation | None = None


def default_factory() -> Instrumentation:
    """The instrumentation ``Agent(instrument=True)`` and :func:`instrument` share (so an
    agent traced both ways gets one set of spans)."""
    global _default
    if _default is None:
        _default = Instrumentation()
    else:
        from ._otel import load

        load()  # the extra may be gone since (a test, a broken environment): say so now
    return _default


def instrument(
    *, capture_content: bool | None = None, tracer_provider: TracerProvider | None = None
) -> None:
    """Trace every agent's runs with OpenTelemetry from now on (``agentkit.instrument``, the
    old name, still works and warns).

    Spans follow the GenAI semantic conventions (``invoke_agent``, ``chat``,
    ``execute_tool``) and go to ``tracer_provider``, or to the global tracer provider.
    Message content is recorded only with ``capture_content=True`` (or
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``). Undo with
    :func:`uninstrument`; one agent alone: ``Agent(..., instrument=True)``.

    Raises:
        ConfigurationError: when OpenTelemetry is not installed (``pip install
            'agentkit[otel]'``).
    """
    shared = default_factory()
    shared.capture_content = capture_content
    shared.tracer_provider = tracer_provider
    add_global_observer(shared)


def uninstrument() -> None:
    """Stop tracing every agent's runs (agents built with ``instrument=True`` still are)."""
    if _default is not None:
        remove_global_observer(_default)


# Agent(instrument=True) asks the core's registry; this ring fills it in when imported.
provide_instrumentation(default_factory)
