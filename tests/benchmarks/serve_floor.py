"""``python -m tests.benchmarks.serve_floor``: the served conversation against its floors,
in wall time and in CPU time, with the load it was measured under.

The same processes as ``python -m tests.benchmarks.serve`` (the scripted model, ``agentkit
serve`` in front of it, this process as the client), plus three servers that answer a
canned body at once, one process each:

- **socket**: an asyncio protocol that finds the end of the request by its
  ``content-length`` and writes the answer (as little as an HTTP server can do; the
  scripted model's own server is of this kind);
- **h11**: the same with h11 parsing the request and framing the answer, no uvicorn;
- **uvicorn**: uvicorn with agentkit's protocol (``GuardedH11``) and a bare ASGI app.

Each is asked by httpx (the client the served figures use), and the socket server also by a
raw socket sending the request in one write. Every case runs ``--block`` times in a row,
the cases in an order rotated each round, for ``--rounds`` rounds: wall time per call,
and per block the CPU time every process used (``/proc/<pid>/task/*/schedstat``: the time
on a CPU, and the time spent runnable but waiting for one, which is the machine's load).

Why CPU time: on a shared machine the wall times carry everyone else's work. The processes
of one conversation take turns (the client waits for the server, the server for the
model), so on an idle machine a conversation's wall time is close to the CPU time all of
them use for it, plus a few wake-ups. The CPU ratios are what an idle machine would show.
The last lines set the served ratios against issue 19's targets (1.25x whole, 1.35x
streamed) and the floors any server in front of the run starts from with this client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from agentkit import Agent, TextDelta

from .serve import _CANNED, BODY, _pct, _served, bare_app, get_order, serve_asgi

_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(
    _CANNED
)
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


class _SocketBare(asyncio.Protocol):
    """Reads a request up to the end of its ``content-length`` body and answers the canned
    body: no parsing beyond that."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            found = _LENGTH.search(self.buffer, 0, end)
            size = end + 4 + (int(found.group(1)) if found else 0)
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            self.transport.write(_HEAD + _CANNED)


class _H11Bare(asyncio.Protocol):
    """h11 parses the request and frames the canned answer; nothing else."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import h11

        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.h11 = h11
        self.connection = h11.Connection(h11.SERVER)

    def data_received(self, data: bytes) -> None:
        h11 = self.h11
        connection = self.connection
        connection.receive_data(data)
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.EndOfMessage):
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(_CANNED))),
                ]
                out = connection.send(h11.Response(status_code=200, headers=headers)) or b""
                out += connection.send(h11.Data(data=_CANNED)) or b""
                out += connection.send(h11.EndOfMessage()) or b""
                self.transport.write(out)
                connection.start_next_cycle()


def _frames() -> list[bytes]:
    """The frames of a served stream of the benchmark's conversation, as ``agentkit serve``
    sends them: the role, the tool call, its result, the text, the end."""
    from agentkit.serve import _format as fmt

    answer = fmt.Answer("desk")
    call = {
        "type": "tool_call",
        "id": "call_1_0",
        "name": "get_order",
        "arguments": '{"order_id": 1042}',
    }
    result = {
        "type": "tool_result",
        "id": "call_1_0",
        "name": "get_order",
        "output": "order 1042: shipped",
        "error": None,
    }
    end = answer.chunk({}, finish_reason="stop", extension={"status": "done"})
    return [
        fmt.data(answer.chunk({"role": "assistant", "content": ""})),
        fmt.comment(call),
        fmt.comment(result),
        answer.text_frame("Shipped."),
        fmt.data(end) + fmt.done(),
    ]


async def _uvicorn_app(scope: Any, receive: Any, send: Any) -> None:
    """The bare ASGI app: the canned answer, or (``/v1/stream``) the canned stream's frames,
    each in its own turn of the loop as a served stream's are."""
    if scope["path"] != "/v1/stream":
        await bare_app(scope, receive, send)
        return
    while (await receive()).get("more_body", False):
        pass
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for frame in _FRAMES:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        await asyncio.sleep(0)  # the next event comes in a later turn
    await send({"type": "http.response.body", "body": b"", "more_body": False})


_FRAMES = _frames()


def _serve_protocol(kind: str) -> None:
    if kind == "uvicorn":
        serve_asgi(_uvicorn_app, "uvicorn")
        return
    factory: Callable[[], asyncio.Protocol] = _SocketBare if kind == "socket" else _H11Bare

    async def main() -> None:
        # asyncio sets TCP_NODELAY on every TCP connection it accepts
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"{kind}: serving on http://127.0.0.1:{port}/v1 ", file=sys.stderr, flush=True)
        await server.serve_forever()

    asyncio.run(main())


@contextmanager
def _process(command: list[str], pattern: str, stream: str) -> Iterator[tuple[str, int]]:
    """A child process and the URL it prints; stops it at the end."""
    where = {stream: subprocess.PIPE}
    with subprocess.Popen(command, text=True, **where) as process:  # type: ignore[call-overload]
        try:
            pipe = process.stdout if stream == "stdout" else process.stderr
            found = None
            for line in pipe:
                found = re.search(pattern, line)
                if found:
                    break
            assert found, f"{command} exited before serving"
            threading.Thread(target=pipe.read, daemon=True).start()
            yield found.group(1), process.pid
        finally:
            process.terminate()
            process.wait(10)


def _pids_of(pid: int) -> list[int]:
    """``pid`` and its descendants (``agentkit serve``'s workers)."""
    pids = [pid]
    for each in pids:
        children = Path(f"/proc/{each}/task/{each}/children")
        if children.exists():
            pids += [int(child) for child in children.read_text().split()]
    return pids


def _schedstat(pid: int) -> tuple[int, int]:
    """Nanoseconds on a CPU and runnable-but-waiting, over the threads of ``pid`` and of
    its children (this process's children are the others: not counted as its own)."""
    own = pid == os.getpid()
    ran = waited = 0
    for each in [pid] if own else _pids_of(pid):
        for task in Path(f"/proc/{each}/task").iterdir():
            try:
                fields = (task / "schedstat").read_text().split()
            except OSError:  # a thread that just ended
                continue
            ran += int(fields[0])
            waited += int(fields[1])
    # a running thread's time on a CPU is brought up to date only at the next tick or
    # switch; the process clock is exact (the others are asleep when read)
    return (time.process_time_ns() if own else ran), waited


CASES = (
    "run_async",
    "served",
    "stream_async",
    "served, streamed",
    "hop: httpx -> socket",
    "hop: httpx -> h11",
    "hop: httpx -> uvicorn",
    "hop, streamed: httpx -> uvicorn",
    "hop: raw socket -> socket",
    "nothing",
)
FLOORS = ("hop: httpx -> socket", "hop: httpx -> h11", "hop: httpx -> uvicorn")
STREAMED_HOP = "hop, streamed: httpx -> uvicorn"


async def _measure(
    model_url: str, served: str, bare: dict[str, str], pids: dict[str, int], rounds: int, block: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """Wall time per call; CPU per call by process; run-queue wait per call, all processes."""
    agent = Agent(
        "scripted", [get_order], "You run the order desk.", base_url=model_url, api_key="bench"
    )
    wall: dict[str, list[float]] = {name: [] for name in CASES}
    cpu: dict[str, dict[str, list[float]]] = {name: {p: [] for p in pids} for name in CASES}
    queued: dict[str, list[float]] = {name: [] for name in CASES}
    async with httpx.AsyncClient(timeout=30) as client:

        async def direct() -> None:
            result = await agent.run_async("Where is order 1042?")
            assert result.output == "Shipped."

        async def direct_streamed() -> None:
            text = [
                e.text
                async for e in agent.stream_async("Where is order 1042?")
                if isinstance(e, TextDelta)
            ]
            assert "".join(text) == "Shipped."

        async def whole() -> None:
            response = await client.post(served + "/v1/chat/completions", json=BODY)
            assert response.json()["choices"][0]["message"]["content"] == "Shipped."

        async def streamed() -> None:
            response = await client.post(
                served + "/v1/chat/completions", json={**BODY, "stream": True}
            )
            assert response.text.endswith("data: [DONE]\n\n"), response.text

        def hop(url: str) -> Callable[[], Awaitable[None]]:
            async def one() -> None:
                response = await client.post(url + "/v1/chat/completions", json=BODY)
                assert response.json()["choices"][0]["message"]["content"] == "Shipped."

            return one

        async def bare_stream() -> None:
            response = await client.post(
                bare["uvicorn"] + "/v1/stream", json={**BODY, "stream": True}
            )
            assert response.text.endswith("data: [DONE]\n\n"), response.text

        host, port = bare["socket"].removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        raw = json.dumps(BODY).encode()
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(raw)}\r\n\r\n"
        ).encode() + raw

        async def raw_hop() -> None:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            assert length is not None
            answer = json.loads(await reader.readexactly(int(length.group(1))))
            assert answer["choices"][0]["message"]["content"] == "Shipped."

        async def nothing() -> None:
            # the block's own cost (reading /proc, the loop), taken off every case's CPU
            await asyncio.sleep(0)

        every = (
            direct,
            whole,
            direct_streamed,
            streamed,
            hop(bare["socket"]),
            hop(bare["h11"]),
            hop(bare["uvicorn"]),
            bare_stream,
            raw_hop,
            nothing,
        )
        order = list(zip(CASES, every, strict=True))
        for _, case in order:  # warm up
            for _ in range(10):
                await case()
        for turn in range(rounds):
            start = turn % len(order)
            for name, case in order[start:] + order[:start]:
                before = {p: _schedstat(pid) for p, pid in pids.items()}
                for _ in range(block):
                    started = time.perf_counter()
                    await case()
                    wall[name].append(time.perf_counter() - started)
                after = {p: _schedstat(pid) for p, pid in pids.items()}
                for p in pids:
                    cpu[name][p].append((after[p][0] - before[p][0]) / block / 1e9)
                waits = sum(after[p][1] - before[p][1] for p in pids)
                queued[name].append(waits / block / 1e9)
        writer.close()
    await agent.aclose()
    return wall, cpu, queued


def _tables(
    wall: dict[str, list[float]],
    cpu: dict[str, dict[str, list[float]]],
    queued: dict[str, list[float]],
) -> list[str]:
    ms = 1e3
    us = 1e6
    # what a block of calls doing nothing used: the measurement's own cost, and each
    # process's idle work (timers), taken off every case
    base = {p: statistics.median(values) for p, values in cpu.pop("nothing").items()}
    cpu = {
        name: {p: [v - base[p] for v in values] for p, values in per.items()}
        for name, per in cpu.items()
    }
    idle = statistics.median(queued.pop("nothing"))
    queued = {name: [v - idle for v in values] for name, values in queued.items()}
    wall.pop("nothing")
    lines = [
        "| case | wall median, ms | middle half, ms | min, ms | CPU, all processes, ms "
        "| run-queue wait, ms |",
        "|---|---|---|---|---|---|",
    ]
    total = {
        name: [sum(values) for values in zip(*cpu[name].values(), strict=True)] for name in cpu
    }
    for name in cpu:
        values = wall[name]
        lines.append(
            f"| {name} | {statistics.median(values) * ms:.2f} | "
            f"{_pct(values, 0.25) * ms:.2f}-{_pct(values, 0.75) * ms:.2f} | "
            f"{min(values) * ms:.2f} | {statistics.median(total[name]) * ms:.2f} | "
            f"{statistics.median(queued[name]) * ms:.2f} |"
        )
    processes = list(next(iter(cpu.values())))
    lines += [
        "",
        "| CPU per call, median, us | " + " | ".join(processes) + " |",
        "|---|" + "---|" * len(processes),
    ]
    for name in cpu:
        cells = " | ".join(f"{statistics.median(cpu[name][p]) * us:.0f}" for p in processes)
        lines.append(f"| {name} | {cells} |")

    def ratio(top: str, bottom: str, plus: str | None = None) -> tuple[str, str]:
        # wall: medians of the cases (each case's calls are in blocks, so not paired);
        # CPU: the medians of the per-block totals
        w_top = statistics.median(wall[top]) + (statistics.median(wall[plus]) if plus else 0)
        c_top = statistics.median(total[top]) + (statistics.median(total[plus]) if plus else 0)
        return (
            f"{w_top / statistics.median(wall[bottom]):.2f}x",
            f"{c_top / statistics.median(total[bottom]):.2f}x",
        )

    lines += ["", "| ratio | wall (medians) | CPU (medians) |", "|---|---|---|"]
    rows: list[tuple[str, str, str, str | None]] = [
        ("served / run_async", "served", "run_async", None),
        ("served, streamed / stream_async", "served, streamed", "stream_async", None),
    ]
    rows += [(f"(run_async + {hop}) / run_async", "run_async", "run_async", hop) for hop in FLOORS]
    rows += [
        (f"(stream_async + {hop}) / stream_async", "stream_async", "stream_async", hop)
        for hop in (FLOORS[0], STREAMED_HOP)
    ]
    for label, top, bottom, plus in rows:
        w, c = ratio(top, bottom, plus)
        lines.append(f"| {label} | {w} | {c} |")
    lines.append("")
    for what, served, direct, hops, target in (
        ("whole", "served", "run_async", FLOORS, 1.25),
        ("streamed", "served, streamed", "stream_async", (FLOORS[0], STREAMED_HOP), 1.35),
    ):
        # issue 19's targets, in CPU: the served ratio against them, and the floors any
        # server in front of the run starts from with this client
        base = statistics.median(total[direct])
        got = statistics.median(total[served]) / base
        floors = ", ".join(
            f"{hop.split(': ', 1)[1]} {(base + statistics.median(total[hop])) / base:.2f}x"
            for hop in hops
        )
        verdict = "met" if got <= target else "not met"
        lines.append(f"target {target:.2f}x ({what}): {got:.2f}x, {verdict}; floors: {floors}")
    return lines


@contextmanager
def _everything() -> Iterator[tuple[str, str, dict[str, str], dict[str, int]]]:
    with ExitStack() as stack:
        model, model_pid = stack.enter_context(
            _process(
                [
                    sys.executable,
                    "-m",
                    "agentkit.testing",
                    "--model",
                    "tool-then-answer",
                    "--tool",
                    "get_order",
                    "--arguments",
                    '{"order_id": 1042}',
                    "--text",
                    "Shipped.",
                ],
                r"(http://\S+?)/v1",  # its stdout is the URL alone
                "stdout",
            )
        )
        bare: dict[str, str] = {}
        pids = {"client": os.getpid(), "model": model_pid}
        for kind in ("socket", "h11"):
            command = [sys.executable, "-m", "tests.benchmarks.serve_floor", "--bare", kind]
            url, pid = stack.enter_context(
                _process(command, r"serving on (http://\S+?)/v1 ", "stderr")
            )
            bare[kind], pids[f"{kind} server"] = url, pid
        command = [sys.executable, "-m", "tests.benchmarks.serve_floor", "--bare", "uvicorn"]
        url, pid = stack.enter_context(_process(command, r"serving on (http://\S+?)/v1 ", "stderr"))
        bare["uvicorn"], pids["uvicorn server"] = url, pid
        url, server_pid = stack.enter_context(_served(model, 1, None))
        pids["agentkit serve"] = server_pid
        yield model, url, bare, pids


def main(argv: list[str] | None = None) -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=20, help="calls of a case in a row")
    parser.add_argument("--bare", choices=("socket", "h11", "uvicorn"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        _serve_protocol(args.bare)
        return
    with _everything() as (model, url, bare, pids):
        load = os.getloadavg()
        wall, cpu, queued = asyncio.run(_measure(model, url, bare, pids, args.rounds, args.block))
        after = os.getloadavg()
    print(f"load average (1 min) {load[0]:.1f} before, {after[0]:.1f} after; {os.cpu_count()} CPUs")
    print()
    print("\n".join(_tables(wall, cpu, queued)))


if __name__ == "__main__":
    main()
