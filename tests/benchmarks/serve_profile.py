"""``python -m tests.benchmarks.serve_profile``: where a served request's time goes.

Runs ``agentkit serve`` under cProfile against the scripted model, sends ``--requests``
two-round conversations one after another (``--stream``: streamed; ``--key``: with an API
key; ``--store``: each a new stored conversation on SQLite), stops the server with Ctrl-C
so that it writes its profile, and prints the server's own time per request grouped by
package (the run's HTTP client, uvicorn and h11, Starlette, agentkit's serve layer, the
core...) and the serve layer's functions. cProfile slows Python code several times over
and counts waiting in a system call as that call's time: read the proportions, and the
benchmark (``python -m tests.benchmarks.serve``) for the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx

from .serve import _BOT, BODY, _model

_START_UP = ("compile", "exec", "marshal", "__build_class__", "importlib")


def _group(path: str, function: str) -> str:
    if any(part in path or part in function for part in _START_UP) or "_parser.py" in path:
        return "start-up (imports, once per process)"
    if path == "~":
        return "waiting in epoll" if "poll" in function else f"builtin {function[:50]}"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    for part in ("serve", "sessions"):
        if f"/agentkit/{part}/" in path:
            return f"agentkit.{part}"
    if "/agentkit/" in path:
        return "agentkit core"
    if "/python3." in path:
        return "stdlib " + path.rsplit("/", 1)[1]
    return path


def report(profile: str, requests: int, top: int) -> list[str]:
    """The profile's own time per request, by package and by serve function."""
    raw = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    groups: collections.Counter[str] = collections.Counter()
    serve: list[tuple[float, float, float, str]] = []
    for (path, line, function), (_, calls, own, cumulative, _) in raw.items():
        groups[_group(path, function)] += own
        if "/agentkit/serve/" in path:
            name = f"{path.rsplit('/agentkit/', 1)[1]}:{line} {function}"
            serve.append((own, cumulative, calls, name))
    lines = [f"{'own us/request':>15}  package"]
    for name, own in groups.most_common(top):
        lines.append(f"{own / requests * 1e6:15.0f}  {name}")
    lines += ["", f"{'own us/req':>11} {'cum us/req':>11} {'calls/req':>9}  agentkit.serve"]
    for own, cumulative, calls, name in sorted(serve, reverse=True)[:top]:
        lines.append(
            f"{own / requests * 1e6:11.1f} {cumulative / requests * 1e6:11.1f} "
            f"{calls / requests:9.1f}  {name}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Profile the server and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--key", action="store_true")
    parser.add_argument("--store", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="agentkit-bench-profile-"))
    (folder / "bot.py").write_text(_BOT)
    profile = folder / "serve.prof"
    with _model() as model_url:
        env = {**os.environ, "BENCH_MODEL_URL": model_url}
        if args.store:
            env["BENCH_STORE"] = str(folder / "desk.db")
        command = [sys.executable, "-m", "cProfile", "-o", str(profile)]
        command += ["-m", "agentkit.cli", "serve", f"{folder / 'bot.py'}:desk", "--port", "0"]
        if args.key:
            command += ["--api-key", "bench-key"]
        log = (folder / "access.log").open("w")
        with (
            subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.PIPE, text=True
            ) as process,
            log,
        ):
            assert process.stderr is not None
            found = None
            for line in process.stderr:
                found = re.search(r"serving .* on (http://\S+?)/v1 ", line)
                if found:
                    break
            assert found, "agentkit serve exited before serving"
            threading.Thread(target=process.stderr.read, daemon=True).start()
            asyncio.run(_ask(found.group(1), args.requests, args.stream, args.key, args.store))
            process.send_signal(signal.SIGINT)  # cProfile writes its file as it exits
            process.wait(60)
    print("\n".join(report(str(profile), args.requests, args.top)))


async def _ask(url: str, requests: int, stream: bool, key: bool, store: bool) -> None:
    names = itertools.count()
    headers = {"Authorization": "Bearer bench-key"} if key else {}
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(requests):
            named = {"X-Agentkit-Conversation": f"c-{next(names)}"} if store else {}
            response = await client.post(
                url + "/v1/chat/completions",
                json={**BODY, "stream": stream},
                headers={**headers, **named},
            )
            assert response.status_code == 200, response.text


if __name__ == "__main__":
    main()
