"""A stand-in for ``agentkit.testing.ScriptedServer`` until it lands (stdlib only)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import scripted


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048

    def __init__(self, recorder: Any) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recorder = recorder
        self.lock = threading.Lock()
        self.requests = 0
        self.connections_opened = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections_opened += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        with self.server.lock:
            self.server.requests += 1
        if body.get("stream"):
            self._stream(body)
        else:
            data = json.dumps(scripted.completion(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def _stream(self, body: dict[str, Any]) -> None:
        from .server import FIRST_CHUNK_PAUSE

        events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in scripted.chunks(body)]
        events.append(b"data: [DONE]\n\n")
        pause = body.get("model") == scripted.ANSWER_MODEL
        if pause:
            self.server.recorder.stamp()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, event in enumerate(events):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            if pause and index == 0:
                time.sleep(FIRST_CHUNK_PAUSE)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class InterimServer:
    """The scripted conversation over a threaded stdlib HTTP/1.1 server on 127.0.0.1."""

    def __init__(self, recorder: Any) -> None:
        self._server = _Server(recorder)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> int:
        return self._server.requests

    @property
    def connections_opened(self) -> int:
        return self._server.connections_opened

    def reset_counters(self) -> None:
        with self._server.lock:
            self._server.requests = 0
            self._server.connections_opened = 0

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
