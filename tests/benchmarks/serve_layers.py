"""``python -m tests.benchmarks.serve_layers``: what each layer of ``agentkit serve`` costs.

Two views, both in this one process (no second process, no loopback hop):

- **the app around a run**: the same two-round conversation against the scripted model
  (a child process), once with ``await agent.run_async(...)`` and once through the ASGI
  app ``create_app`` builds (guard, access log, Starlette's routing, auth, the body's
  checks, the run, the answer's formatting), called directly with an in-memory request;
  interleaved, paired by round; the difference is the app's own cost per request;
- **each layer alone**, best of ``--repeat`` timings of ``--number`` calls: the guard's
  header checks, reading and checking the body, a shared-key check, formatting a whole
  answer, one SSE frame of a text delta, the access log line (written to a file), and,
  with ``--store``, one stored turn (claim, load, append, release) on a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import timeit
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from agentkit import Agent
from agentkit.serve import create_app

from .serve import BODY, _model, _pct, get_order

QUESTION = "Where is order 1042?"
RAW = json.dumps(BODY).encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(RAW)).encode()),
    (b"accept", b"*/*"),
    (b"user-agent", b"python-httpx/0.28"),
]


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": list(HEADERS),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _through_app(app: Any) -> bytes:
    """One request through the ASGI app, as uvicorn would hand it over."""
    delivered = False
    never = asyncio.Event()
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": RAW, "more_body": False}
        await never.wait()  # the client stays: the disconnect watcher waits here
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(_scope(), receive, send)
    return b"".join(body)


async def _app_cost(model_url: str, rounds: int, batch: int) -> dict[str, list[float]]:
    agent = Agent(
        "scripted", [get_order], "You run the order desk.", base_url=model_url, api_key="bench"
    )
    app = create_app({"desk": agent}, access_log=True)

    async def direct() -> None:
        assert (await agent.run_async(QUESTION)).output == "Shipped."

    async def served() -> None:
        answer = json.loads(await _through_app(app))
        assert answer["choices"][0]["message"]["content"] == "Shipped."

    cases: dict[str, Callable[[], Any]] = {"run_async": direct, "through the app": served}
    times: dict[str, list[float]] = {name: [] for name in cases}
    loop = asyncio.get_running_loop()
    for _ in range(5):
        for case in cases.values():
            await case()
    order = list(cases.items())
    for number in range(rounds):
        for name, case in order[number % 2 :] + order[: number % 2]:
            started = loop.time()
            for _ in range(batch):
                await case()
            times[name].append((loop.time() - started) / batch)
    await agent.aclose()
    return times


def _best(statement: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(statement, number=number, repeat=repeat)) / number


def _layers(number: int, repeat: int, store: bool) -> dict[str, float]:
    from starlette.datastructures import Headers

    from agentkit.serve import _format as fmt
    from agentkit.serve._accesslog import AccessLog, only_ours
    from agentkit.serve._guard import Guard
    from agentkit.serve._identity import SharedKeys
    from agentkit.serve._request import RequestLimits, parse_chat_request, parse_json

    out: dict[str, float] = {}
    guard = Guard(lambda *_: None, check_host=True, allowed_hosts=())  # type: ignore[arg-type]
    scope = _scope()
    out["guard: Host, Origin, Content-Type"] = _best(lambda: guard._refusal(scope), number, repeat)
    limits = RequestLimits()

    def body() -> object:
        return parse_chat_request(
            parse_json(RAW), limits=limits, allowed_roles=(), conversation_header=None
        )

    out["body: JSON, depth and text walk, messages"] = _best(body, number, repeat)
    keys = SharedKeys(["k" * 40])
    headers = Headers(raw=[*HEADERS, (b"authorization", b"Bearer " + b"k" * 40)])
    loop = asyncio.new_event_loop()

    async def authenticate(times: int) -> None:
        for _ in range(times):
            await keys.authenticate(headers, "127.0.0.1")

    out["auth: a shared key"] = (
        min(_timed(lambda: loop.run_until_complete(authenticate(number))) for _ in range(repeat))
        / number
    )
    extension = {"status": "done", "tool_activity": [{"type": "tool_call", "id": "c1"}]}
    usage = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}

    def whole() -> object:
        return fmt.json_response(
            fmt.completion(fmt.Answer("desk"), "Shipped.", "stop", usage, extension)
        )

    out["formatting a whole answer (chat.completion, JSON, Response)"] = _best(
        whole, number, repeat
    )
    answer = fmt.Answer("desk")
    out["formatting one SSE frame of a text delta"] = _best(
        lambda: answer.text_frame("Shipped."), number, repeat
    )
    folder = Path(tempfile.mkdtemp(prefix="agentkit-bench-layers-"))
    access = logging.getLogger("uvicorn.access")
    handler = logging.FileHandler(folder / "access.log")
    handler.addFilter(only_ours)
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    logged = AccessLog(app)

    async def noop(message: Any) -> None:
        return None

    async def log_lines(times: int) -> None:
        for _ in range(times):
            await logged(scope, noop, noop)  # type: ignore[arg-type]

    out["access log: one line, written to a file"] = (
        min(_timed(lambda: loop.run_until_complete(log_lines(number))) for _ in range(repeat))
        / number
    )
    access.removeHandler(handler)
    handler.close()
    if store:
        from agentkit.sessions import SQLiteStore

        stored = SQLiteStore(str(folder / "layers.db"))
        names = iter(range(10**9))
        messages = [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Shipped."},
        ]

        def turn() -> None:
            session = f"c-{next(names)}"
            claim = stored.claim(session)
            stored.load(session)
            stored.append(claim, messages, close_round=True)
            stored.release(claim)

        out["store: one turn on SQLite (claim, load, append, release)"] = _best(
            turn, max(1, number // 100), repeat
        )
        out["store: a new conversation's owner check (owner, exists, claim; one thread trip)"] = (
            _owner_check(stored, loop, max(1, number // 100), repeat)
        )
        stored.close()
    loop.close()
    return out


def _owner_check(store: Any, loop: asyncio.AbstractEventLoop, number: int, repeat: int) -> float:
    """What a stored conversation's first request asks of the store before its run starts,
    on a keyless server: the conversation's owner, whether it exists, and its claim."""
    from agentkit.serve._access import Access
    from agentkit.serve._identity import ANONYMOUS, SharedKeys

    desk = Agent("scripted", [], base_url="http://127.0.0.1:9/v1", api_key="bench", store=store)
    access = Access(SharedKeys([]), {"desk": desk}, None, frozenset())
    names = iter(range(10**9))

    async def checks(times: int) -> None:
        for _ in range(times):
            await access.continue_(f"owned-{next(names)}", "desk", ANONYMOUS)

    return (
        min(_timed(lambda: loop.run_until_complete(checks(number))) for _ in range(repeat)) / number
    )


def _timed(work: Callable[[], object]) -> float:
    started = timeit.default_timer()
    work()
    return timeit.default_timer() - started


def main(argv: list[str] | None = None) -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=60, help="paired rounds of the app")
    parser.add_argument("--batch", type=int, default=5, help="conversations per round")
    parser.add_argument("--number", type=int, default=20_000, help="calls per layer timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings per layer (best)")
    parser.add_argument("--store", action="store_true", help="also a stored SQLite turn")
    args = parser.parse_args(argv)
    with _model() as model_url:
        times = asyncio.run(_app_cost(model_url, args.rounds, args.batch))
    direct, app = times["run_async"], times["through the app"]
    added = [a - d for a, d in zip(app, direct, strict=True)]
    print("| two-round conversation, in one process | median, ms | middle half, ms |")
    print("|---|---|---|")
    for name, values in times.items():
        print(
            f"| {name} | {statistics.median(values) * 1e3:.3f} | "
            f"{_pct(values, 0.25) * 1e3:.3f}-{_pct(values, 0.75) * 1e3:.3f} |"
        )
    print(
        f"| the app's own cost (paired difference) | {statistics.median(added) * 1e3:.3f} | "
        f"{_pct(added, 0.25) * 1e3:.3f}-{_pct(added, 0.75) * 1e3:.3f} |"
    )
    print()
    print("| layer | per request, us (best) |")
    print("|---|---|")
    for name, seconds in _layers(args.number, args.repeat, args.store).items():
        print(f"| {name} | {seconds * 1e6:.1f} |")


if __name__ == "__main__":
    main()
