"""``agentkit.instrument()``: tracing for every agent; OpenTelemetry is loaded only when
it is called (the implementation is :mod:`agentkit.tracing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["instrument"]


def instrument(
    *, capture_content: bool | None = None, tracer_provider: TracerProvider | None = None
) -> None:
    """Trace every agent's runs with OpenTelemetry from now on.

    Spans follow the GenAI semantic conventions (``invoke_agent``, ``chat``,
    ``execute_tool``) and go to ``tracer_provider``, or to the global tracer provider.
    Message content is recorded only with ``capture_content=True`` (or
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``). Undo with
    ``agentkit.tracing.uninstrument()``; one agent alone: ``Agent(..., instrument=True)``.

    Raises:
        ConfigurationError: when OpenTelemetry is not installed (``pip install
            'agentkit[otel]'``).
    """
    from .tracing import instrument as instrument_all

    instrument_all(capture_content=capture_content, tracer_provider=tracer_provider)
