"""What tracing costs a run: off, on with no SDK (the API's no-op tracer), on with the SDK.

    python -m tests.benchmarks.tracing [--rounds 40] [--batch 5]

The two-round run of the main benchmark (:mod:`.contenders`), interleaved and paired so
a slow spell on the machine cancels out of the ratios. "off" is the default agent: no
observer is made and OpenTelemetry is not imported (see docs/observability.md). To compare
"off" with a build from before the observer seam, run the main benchmark's ``run`` section
on both (``python -m tests.benchmarks --only run``) and compare the agentkit rows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from . import scripted
from .contenders import Contender, _agentkit_agent
from .measure import check, interleaved_ms, median, paired_ratio
from .server import ServerProcess


def _contender(name: str, agent: Any) -> Contender:
    def run() -> str:
        return str(agent.run(scripted.QUESTION).output)

    return Contender(name, run, close=agent.close)


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.tracing")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=5)
    options = parser.parse_args(argv)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentkit.tracing import Instrumentation

    server = ServerProcess()
    try:
        off = _agentkit_agent(server.url)
        noop = _agentkit_agent(server.url)
        noop._observers = (Instrumentation(tracer_provider=None),)  # the API's no-op tracer
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        sdk = _agentkit_agent(server.url)
        sdk._observers = (Instrumentation(tracer_provider=provider),)
        contenders = [
            _contender("tracing off (default)", off),
            _contender("instrument=True, no SDK installed/configured", noop),
            _contender("instrument=True, SDK + in-memory exporter", sdk),
        ]
        with asyncio.Runner() as loop:
            for contender in contenders:
                check(contender, loop, server, 20)
            exporter.clear()
            samples = interleaved_ms(contenders, loop, rounds=options.rounds, batch=options.batch)
        base = samples[contenders[0].name]
        print("| run | ms per two-round run (median) | vs off (paired) |")
        print("|---|---|---|")
        for contender in contenders:
            mine = samples[contender.name]
            print(f"| {contender.name} | {median(mine):.3f} | {paired_ratio(mine, base):.3f} |")
        for contender in contenders:
            contender.close()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
