"""``python -m tests.benchmarks.serve``: what serving a bot costs, and what one process serves.

Three processes on loopback: the scripted model (``python -m agentkit.testing``, a two-round
model: one tool call, then the answer), ``agentkit serve bot.py:desk`` in front of it, and
this process as the client. Figures:

- **overhead**: one two-round conversation through the served endpoint against the same
  conversation in this process, like with like: the whole answer against ``await
  agent.run_async(...)``, the streamed one against ``agent.stream_async(...)`` read to its
  end, with a SQLite store on both sides or on neither (``--overhead keyless key store
  key-store``); beside them a bare HTTP hop (uvicorn with agentkit's protocol answering a
  canned body at once), by httpx and by a raw socket; every case once per sample in a
  rotated order, ratios paired by sample (median and middle half);
- **throughput**: 100 concurrent clients, each asking one question after another, for
  ``--requests`` in all: requests per second and p50/p99 latency, for 1 and 2 workers;
- **memory**: the server's resident memory at rest (after one request), and after 1,000
  stored conversations when the agent has a store (``--store``: one SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from agentkit import Agent, TextDelta, tool

_BOT = textwrap.dedent(
    '''
    import os
    from agentkit import Agent, TextDelta, tool

    @tool
    def get_order(order_id: int) -> str:
        """Look an order up."""
        return f"order {order_id}: shipped"

    options = {}
    if os.environ.get("BENCH_STORE"):
        from agentkit.sessions import SQLiteStore

        options["store"] = SQLiteStore(os.environ["BENCH_STORE"])
    desk = Agent("scripted", [get_order], "You run the order desk.",
                 base_url=os.environ["BENCH_MODEL_URL"], api_key="bench", **options)
    '''
)


@tool
def get_order(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


_SLOW_MODEL = """
from agentkit.testing.models import tool_then_answer

_rounds = tool_then_answer(("get_order", {{"order_id": 1042}}), answer="Shipped.")


def handler(request):
    return _rounds(request).with_(delay={latency!r})
"""


@contextmanager
def _model(latency: float = 0.0) -> Iterator[str]:
    """The scripted two-round model; ``latency``: seconds it waits before each answer."""
    command = [sys.executable, "-m", "agentkit.testing", "--model", "tool-then-answer"]
    command += ["--tool", "get_order", "--arguments", '{"order_id": 1042}', "--text", "Shipped."]
    if latency:
        script = Path(tempfile.mkdtemp(prefix="agentkit-bench-model-")) / "slow.py"
        script.write_text(_SLOW_MODEL.format(latency=latency))
        command = [sys.executable, "-m", "agentkit.testing", "--script", str(script)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            yield process.stdout.readline().strip()
        finally:
            process.terminate()


# What a served whole answer looks like on the wire, answered at once by the bare server.
_CANNED = json.dumps(
    {
        "id": "chatcmpl-0123456789abcdef01234567",
        "object": "chat.completion",
        "created": 0,
        "model": "desk",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Shipped."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "agentkit": {"status": "done", "tool_activity": []},
    },
    separators=(",", ":"),
).encode()


async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    """The least an HTTP server can do for the request: read it, send a canned answer
    (uvicorn with agentkit's protocol, no Starlette, no run)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_CANNED))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _CANNED})


def serve_asgi(app: Any, label: str) -> None:
    """Serve ``app`` as ``agentkit serve`` would (GuardedH11, our bind and loop), no logs."""
    import uvicorn

    from agentkit.cli._serve import _bind
    from agentkit.serve._connections import GuardedH11
    from agentkit.serve._server import _serve

    listener = _bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    print(f"{label}: serving on http://127.0.0.1:{port}/v1 ", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app, http=GuardedH11, log_level="warning", lifespan="off", access_log=False
    )
    _serve(config, listener)


@contextmanager
def _bare() -> Iterator[str]:
    command = [sys.executable, "-m", "tests.benchmarks.serve", "--bare-server"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            found = re.search(r"serving on (http://\S+?)/v1 ", process.stderr.readline())
            assert found, "the bare server did not start"
            threading.Thread(target=process.stderr.read, daemon=True).start()
            yield found.group(1)
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def _served(
    model_url: str, workers: int, store: str | None, key: str | None = None
) -> Iterator[tuple[str, int]]:
    folder = Path(tempfile.mkdtemp(prefix="agentkit-bench-serve-"))
    (folder / "bot.py").write_text(_BOT)
    env = {**os.environ, "BENCH_MODEL_URL": model_url}
    if store:
        env["BENCH_STORE"] = store
    command = [sys.executable, "-m", "agentkit.cli", "serve", f"{folder / 'bot.py'}:desk"]
    command += ["--port", "0", "--workers", str(workers)]  # it binds, and names the port
    if key:
        command += ["--api-key", key]
    # the access log (one line a request, on stdout) goes to a file, as a deployment's would
    log = (folder / "access.log").open("w")
    with (
        subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.PIPE, text=True
        ) as process,
        log,
    ):
        try:
            assert process.stderr is not None
            found = None
            for line in process.stderr:  # ends at EOF if the server exits first
                found = re.search(r"serving .* on (http://\S+?)/v1 ", line)
                if found:
                    break
            assert found, "agentkit serve exited before serving"
            url = found.group(1)
            # the rest of stderr is drained so a worker never blocks on a full pipe
            threading.Thread(target=process.stderr.read, daemon=True).start()
            # the socket listens already: this waits in its backlog until a worker accepts
            assert httpx.get(url + "/healthz", timeout=120).status_code == 200
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(10)


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the workers), in KiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


BODY = {"model": "desk", "messages": [{"role": "user", "content": "Where is order 1042?"}]}


async def _overhead(
    model_url: str, url: str, bare: str, samples: int, *, key: str | None, store: bool
) -> dict[str, list[float]]:
    """Each case once per sample, in a rotated order, so a slow spell falls on all of them.

    Like with like: the served whole answer against ``run_async``, the served stream
    against ``stream_async`` read to its end (both ask the model for a streamed answer);
    with ``store`` both sides keep the conversation in a SQLite file, a new one per sample
    (the server's file is its own, in its own process).
    """
    options: dict[str, Any] = {}
    if store:
        from agentkit.sessions import SQLiteStore

        folder = Path(tempfile.mkdtemp(prefix="agentkit-bench-direct-"))
        options["store"] = SQLiteStore(str(folder / "direct.db"))
    agent = Agent(
        "scripted",
        [get_order],
        "You run the order desk.",
        base_url=model_url,
        api_key="bench",
        **options,
    )
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    times: dict[str, list[float]] = {name: [] for name in CASES}
    counter = itertools.count()

    def session() -> dict[str, Any]:
        return {"session": f"direct-{next(counter)}"} if store else {}

    def named() -> dict[str, str]:
        if not store:
            return headers
        return {**headers, "X-Agentkit-Conversation": f"served-{next(counter)}"}

    async with httpx.AsyncClient(timeout=30) as client:

        async def direct() -> None:
            result = await agent.run_async("Where is order 1042?", **session())
            assert result.output == "Shipped."

        async def direct_streamed() -> None:
            text = []
            async for event in agent.stream_async("Where is order 1042?", **session()):
                if isinstance(event, TextDelta):
                    text.append(event.text)
            assert "".join(text) == "Shipped."

        async def whole() -> None:
            response = await client.post(url + "/v1/chat/completions", json=BODY, headers=named())
            assert response.json()["choices"][0]["message"]["content"] == "Shipped."

        async def streamed() -> None:
            response = await client.post(
                url + "/v1/chat/completions", json={**BODY, "stream": True}, headers=named()
            )
            assert response.text.endswith("data: [DONE]\n\n"), response.text

        async def hop() -> None:
            response = await client.post(bare + "/v1/chat/completions", json=BODY, headers=named())
            assert response.json()["choices"][0]["message"]["content"] == "Shipped."

        host, port = bare.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        raw = json.dumps(BODY).encode()
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(raw)}\r\n\r\n"
        ).encode() + raw

        async def raw_hop() -> None:
            # the same request in one write, its answer read by hand: the server's side of
            # the hop without httpx's
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
            assert length is not None
            answer = json.loads(await reader.readexactly(int(length.group(1))))
            assert answer["choices"][0]["message"]["content"] == "Shipped."

        every = (direct, whole, direct_streamed, streamed, hop, raw_hop)
        cases = dict(zip(CASES, every, strict=True))
        for _ in range(5):  # warm up
            for case in cases.values():
                await case()
        order = list(cases.items())
        for sample in range(samples):
            turn = sample % len(order)
            for name, case in order[turn:] + order[:turn]:
                started = time.perf_counter()
                await case()
                times[name].append(time.perf_counter() - started)
        writer.close()
    await agent.aclose()
    return times


CASES = (
    "run_async",
    "served",
    "stream_async",
    "served, streamed",
    "bare HTTP hop",
    "bare HTTP hop, raw socket client",
)
RATIOS = (
    ("served / run_async", "served", "run_async"),
    ("served, streamed / stream_async", "served, streamed", "stream_async"),
    ("served, streamed / run_async", "served, streamed", "run_async"),
)
# run_async plus the bare hop: what any server in front of the run would cost at least
FLOOR = "run_async + bare HTTP hop"


def _overhead_table(times: dict[str, list[float]]) -> list[str]:
    """The cases' medians, and the ratios paired by sample (median and middle half)."""
    lines = [
        "| two-round conversation | median, ms | middle half, ms | min, ms |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        lines.append(
            f"| {name} | {statistics.median(values) * 1e3:.2f} | "
            f"{_pct(values, 0.25) * 1e3:.2f}-{_pct(values, 0.75) * 1e3:.2f} | "
            f"{min(values) * 1e3:.2f} |"
        )
    pairs = zip(times["run_async"], times["bare HTTP hop"], strict=True)
    times = {**times, FLOOR: [a + b for a, b in pairs]}
    lines += ["", "| paired ratio | median | middle half |", "|---|---|---|"]
    for label, top, bottom in (*RATIOS, (f"{FLOOR} / run_async", FLOOR, "run_async")):
        ratios = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
        lines.append(
            f"| {label} | {statistics.median(ratios):.2f}x | "
            f"{_pct(ratios, 0.25):.2f}-{_pct(ratios, 0.75):.2f}x |"
        )
    return lines


async def _throughput(url: str, total: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        remaining = total

        async def one_client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.post(url + "/v1/chat/completions", json=BODY)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return total / wall, latencies


async def _conversations(url: str, count: int, clients: int) -> int:
    """``count`` new stored conversations, ``clients`` at a time; how many failed."""
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        queue = list(range(count))
        failed = 0

        async def one_client() -> None:
            nonlocal failed
            while queue:
                number = queue.pop()
                named = {"X-Agentkit-Conversation": f"customer-{number}"}
                try:
                    response = await client.post(
                        url + "/v1/chat/completions", json=BODY, headers=named
                    )
                except httpx.TransportError:
                    failed += 1
                    continue
                failed += response.status_code != 200

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return failed


async def _direct_throughput(model_url: str, total: int, clients: int) -> tuple[float, list[float]]:
    """The same load with ``run_async`` in this process: the floor the served figures sit on."""
    agent = Agent(
        "scripted", [get_order], "You run the order desk.", base_url=model_url, api_key="bench"
    )
    latencies: list[float] = []
    remaining = total

    async def one_client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await agent.run_async("Where is order 1042?")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    wall = time.perf_counter() - started
    await agent.aclose()
    return total / wall, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


VARIANTS = {
    "keyless": (False, False),
    "key": (True, False),
    "store": (False, True),
    "key-store": (True, True),
}


def main(argv: list[str] | None = None) -> None:
    """Run the three sections and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=100, help="overhead samples per case")
    parser.add_argument("--requests", type=int, default=2000, help="throughput requests")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients")
    parser.add_argument("--store", action="store_true", help="also 1,000 stored conversations")
    parser.add_argument(
        "--overhead",
        nargs="+",
        choices=sorted(VARIANTS),
        default=["keyless"],
        help="the servers the overhead is measured on (default: keyless)",
    )
    parser.add_argument("--only-overhead", action="store_true", help="skip throughput and memory")
    parser.add_argument(
        "--model-latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="the scripted model waits this long before each answer (default: none)",
    )
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.overhead = [VARIANTS[name] for name in args.overhead]

    if args.bare_server:
        serve_asgi(bare_app, "bare")
        return
    bare: str | None = None
    with _model(args.model_latency / 1e3) as model_url, ExitStack() as stack:
        for keyed, stored in args.overhead:
            bare = stack.enter_context(_bare()) if bare is None else bare
            key = "bench-key" if keyed else None
            store = None
            if stored:
                store = str(Path(tempfile.mkdtemp(prefix="agentkit-bench-store-")) / "desk.db")
            with _served(model_url, 1, store, key) as (url, _):
                times = asyncio.run(
                    _overhead(model_url, url, bare, args.samples, key=key, store=stored)
                )
            title = ("with a key" if keyed else "keyless") + (", SQLite store" if stored else "")
            print(f"#### Overhead, {title}")
            print()
            print("\n".join(_overhead_table(times)))
            print()
        if args.only_overhead:
            return
        print()
        print(f"| {args.clients} concurrent clients | requests/s | p50, ms | p99, ms |")
        print("|---|---|---|---|")
        asyncio.run(_direct_throughput(model_url, 200, args.clients))  # warm up
        rate, latencies = asyncio.run(_direct_throughput(model_url, args.requests, args.clients))
        print(
            f"| run_async in the client's process | {rate:.0f} | "
            f"{_pct(latencies, 0.5) * 1e3:.0f} | {_pct(latencies, 0.99) * 1e3:.0f} |"
        )
        for workers in (1, 2):
            with _served(model_url, workers, None) as (url, _):
                asyncio.run(_throughput(url, 200, args.clients))  # warm up
                rate, latencies = asyncio.run(_throughput(url, args.requests, args.clients))
            print(
                f"| served, {workers} worker{'s' if workers > 1 else ''} | {rate:.0f} | "
                f"{_pct(latencies, 0.5) * 1e3:.0f} | "
                f"{_pct(latencies, 0.99) * 1e3:.0f} |"
            )
        print()
        print("| server memory (1 worker) | RSS, MiB |")
        print("|---|---|")
        store = None
        if args.store:
            store = str(Path(tempfile.mkdtemp(prefix="agentkit-bench-store-")) / "desk.db")
        with _served(model_url, 1, store) as (url, pid):
            asyncio.run(_throughput(url, 1, 1))
            print(f"| at rest, after one request | {_rss_kib(pid) / 1024:.1f} |")
            asyncio.run(_throughput(url, args.requests, args.clients))
            print(f"| after {args.requests} stateless requests | {_rss_kib(pid) / 1024:.1f} |")
            if store:
                failed = asyncio.run(_conversations(url, 1000, args.clients))
                note = f" ({failed} failed)" if failed else ""
                print(f"| after 1,000 stored conversations{note} | {_rss_kib(pid) / 1024:.1f} |")


if __name__ == "__main__":
    main()
