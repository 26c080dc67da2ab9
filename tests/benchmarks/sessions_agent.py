"""The cost of a session on a two-round run (a tool call, then the answer), in-process.

Used by ``python -m tests.benchmarks.sessions --agent``: the same Agent and scripted server,
runs interleaved (none, then each store, round after round) so a slow spell hits all alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from agentkit import Agent, tool
from agentkit.testing import Reply, ScriptedServer


@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


def agent_cost(stores: list[tuple[str, Callable[[], Any]]], repeats: int) -> None:
    """Print the median two-round run with no session and with a session on each store."""
    with ScriptedServer() as server:
        server.respond_with(
            lambda request: (
                Reply.text("It shipped.")
                if request.json()["messages"][-1]["role"] == "tool"
                else Reply.tool_calls(("get_order", {"order_id": 1042}))
            )
        )
        opened = [(name, make()) for name, make in stores]
        agents = [("no session", None), *opened]
        runners = []
        for name, store in agents:
            agent = Agent(
                "m",
                [get_order],
                "You run the order desk.",
                base_url=server.base_url,
                api_key="sk-bench",
                store=store,
            )
            runners.append((name, agent, store is not None))
        samples: dict[str, list[float]] = {name: [] for name, _, _ in runners}
        try:
            for n in range(repeats + 5):
                for name, agent, on_session in runners:
                    started = time.perf_counter()
                    if on_session:
                        agent.run("Where is order 1042?", session=f"bench-{n}")
                    else:
                        agent.run("Where is order 1042?")
                    if n >= 5:  # warm-up rounds are left out
                        samples[name].append(time.perf_counter() - started)
        finally:
            for _, agent, _ in runners:
                agent.close()
            for _, store in opened:
                store.close()
    base = statistics.median(samples["no session"])
    print("| two-round run | median | cost of the session |")
    print("|---|---|---|")
    for name, values in samples.items():
        median = statistics.median(values)
        extra = "" if name == "no session" else f"+{(median - base) * 1000:.2f} ms"
        print(f"| {name} | {median * 1000:.2f} ms | {extra} |")
