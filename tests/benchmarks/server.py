"""The scripted loopback server, run in a child process, and its handle in the parent.

The server runs in its own process so that its CPU time does not share the benchmark's
interpreter (and its GIL) with the contenders. The parent talks to it over the child's
stdin and stdout, one line per command:

- ``stats``: a JSON object with ``requests``, ``connections_opened`` and
  ``peak_open_connections`` (the most open at once) since the last reset;
- ``reset``: zero the counters;
- ``stamps``: a JSON list of the monotonic times (ns) at which the server began sending each
  streamed answer since the last ``stamps``; ``time.monotonic_ns()`` is one system-wide
  clock on Linux, so the parent can subtract it from its own readings.

End of input stops the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import scripted

REPO_ROOT = Path(__file__).resolve().parents[2]

CHUNK_GAP = 0.01
"""Seconds between the events of the streamed answer that times the first text event, so
a client that buffers the stream instead of yielding as bytes arrive shows it."""


class _Recorder:
    """What the child tells the parent about: streamed-answer start times."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stream_starts: list[int] = []

    def stamp(self) -> None:
        now = time.monotonic_ns()
        with self.lock:
            self.stream_starts.append(now)

    def take_stamps(self) -> list[int]:
        with self.lock:
            stamps, self.stream_starts = self.stream_starts, []
        return stamps


class _Scripted:
    """``agentkit.testing.ScriptedServer`` answering from :mod:`.scripted`, with counters
    that the parent can reset."""

    def __init__(self, recorder: _Recorder) -> None:
        from agentkit.testing import ScriptedServer

        self._recorder = recorder
        # Replies are immutable and depend only on these keys: build each once.
        self._replies: dict[tuple[str, bool, bool], Any] = {}
        self._server = ScriptedServer(handler=self._reply).start()
        self.url = self._server.base_url
        self._requests_at_reset = 0
        self._connections_at_reset = 0
        self.peak_open_connections = 0
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample_open_connections, daemon=True)
        self._sampler.start()

    def _sample_open_connections(self) -> None:
        # The server counts connections opened but keeps no peak of those open at once;
        # a look every 5 ms is cheap, and pooled connections live far longer than that.
        while not self._stop_sampling.wait(0.005):
            open_now = self._server.open_connections
            if open_now > self.peak_open_connections:
                self.peak_open_connections = open_now

    def _reply(self, request: Any) -> Any:
        body = request.json()
        key = (str(body.get("model")), scripted.wants_answer(body), bool(body.get("stream")))
        reply = self._replies.get(key)
        if reply is None:
            reply = self._replies[key] = self._build(body)
        if key[2] and key[0] == scripted.ANSWER_MODEL:
            self._recorder.stamp()  # the server writes the status line next
        return reply

    @staticmethod
    def _build(body: dict[str, Any]) -> Any:
        from agentkit.testing import Reply

        if not body.get("stream"):
            return Reply.raw(json.dumps(scripted.completion(body)))
        reply = Reply.sse(scripted.chunks(body))
        if body.get("model") == scripted.ANSWER_MODEL:
            reply = reply.with_(chunk_delay=CHUNK_GAP)
        return reply

    @property
    def requests(self) -> int:
        return self._server.request_count - self._requests_at_reset

    @property
    def connections_opened(self) -> int:
        return self._server.connections_opened - self._connections_at_reset

    def reset_counters(self) -> None:
        self._server.clear_requests()  # the server records every request; keep it small
        self._requests_at_reset = self._server.request_count
        self._connections_at_reset = self._server.connections_opened
        self.peak_open_connections = self._server.open_connections

    def stop(self) -> None:
        self._stop_sampling.set()
        self._sampler.join()
        self._server.stop()


def _start_server(recorder: _Recorder) -> _Scripted:
    """Start the scripted server in this process."""
    return _Scripted(recorder)


def _serve() -> None:
    recorder = _Recorder()
    server = _start_server(recorder)
    print(f"URL {server.url}", flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                reply: Any = {
                    "requests": server.requests,
                    "connections_opened": server.connections_opened,
                    "peak_open_connections": server.peak_open_connections,
                }
            elif command == "reset":
                server.reset_counters()
                reply = "ok"
            elif command == "stamps":
                reply = recorder.take_stamps()
            else:
                reply = {"error": f"unknown command {command!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        server.stop()


class ServerProcess:
    """The scripted server running in a child process; use as a context manager."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO_ROOT,
            env=env,
            text=True,
            bufsize=1,
        )
        assert self._process.stdout is not None
        first = self._process.stdout.readline().split()
        if len(first) != 2 or first[0] != "URL":
            self.close()
            raise RuntimeError(f"the benchmark server did not start: {first!r}")
        self.url: str = first[1]
        """The server's base URL, ending in ``/v1``."""

    def _ask(self, command: str) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())

    def stats(self) -> dict[str, int]:
        """Requests and connections the server saw since the last :meth:`reset`."""
        result: dict[str, int] = self._ask("stats")
        return result

    def reset(self) -> None:
        """Zero the request and connection counters."""
        self._ask("reset")

    def stamps(self) -> list[int]:
        """Monotonic ns at which each streamed answer began, since the last call."""
        result: list[int] = self._ask("stamps")
        return result

    def close(self) -> None:
        """Stop the server and wait for the child to exit."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if __name__ == "__main__":
    _serve()
