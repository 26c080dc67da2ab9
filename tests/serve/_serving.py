"""``agentkit serve`` as a real process, on a port it bound itself (``--port 0``).

The server binds and listens before it prints its "serving ... on http://HOST:PORT/v1"
line, so the port is read from that line and is never free for another process to take
in between; a request sent at once waits in the listening socket's backlog until a worker
accepts it, so no polling is needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx

_SERVING = re.compile(r"serving .* on (http://\S+?)/v1 ")


@contextmanager
def serving(
    argv: Sequence[str], env: Mapping[str, str], *, ready_timeout: float = 150
) -> Iterator[str]:
    """Run ``agentkit serve *argv --port 0`` and yield its base URL once it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentkit.cli", "serve", *argv, "--port", "0"],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    said: list[str] = []
    try:
        url = None
        for line in process.stderr:  # ends at EOF if the server exits before serving
            said.append(line)
            found = _SERVING.search(line)
            if found:
                url = found.group(1)
                break
        assert url is not None, "agentkit serve exited before serving:\n" + "".join(said)
        # Drain the rest, so a chatty server never blocks on a full pipe.
        threading.Thread(target=said.extend, args=(process.stderr,), daemon=True).start()
        # Accepted once a worker has started: the one wait for readiness, with no polling.
        health = httpx.get(url + "/healthz", timeout=ready_timeout)
        assert health.status_code == 200, "".join(said)
        yield url
    finally:
        process.terminate()
        process.wait(60)
