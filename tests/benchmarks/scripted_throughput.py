"""The scripted server's speed: requests per second for a small JSON reply.

    python -m tests.benchmarks.scripted_throughput

One keep-alive httpx client, 1,000 requests after 50 to warm up. Measured, not asserted:
this used to be a test with a floor of 200 requests/s, which a busy shared machine missed.
"""

from __future__ import annotations

import time

import httpx

from agentkit.testing import Reply, ScriptedServer, always

COUNT = 1000
BODY = {"model": "qwen-plus", "messages": [{"role": "user", "content": "Hi"}]}


def main() -> None:
    with (
        ScriptedServer() as server,
        httpx.Client(base_url=server.base_url, timeout=10) as client,
    ):
        server.respond_with(always(Reply.text("ok")))
        for _ in range(50):
            client.post("/chat/completions", json=BODY)
        started = time.perf_counter()
        for _ in range(COUNT):
            client.post("/chat/completions", json=BODY)
        rate = COUNT / (time.perf_counter() - started)
        assert server.connections_opened == 1
    print(f"scripted server: {rate:.0f} requests/s (small JSON, one keep-alive httpx client)")


if __name__ == "__main__":
    main()
