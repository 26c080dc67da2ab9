"""The Batch API of the scripted server: ``/v1/files`` and ``/v1/batches`` in OpenAI's and
DashScope's compatible format.

A batch's lines are answered by the server's own script (the queue, then the handler), as
chat requests would be, so a scripted model serves real-time and batch requests alike. Each
``GET /v1/batches/{id}`` moves a batch one status on (``validating``, ``in_progress``,
``finalizing``, ``completed``; every ``polls_per_status`` polls); its lines are answered on
the way to ``finalizing``. With ``hold_from = N`` the N-th batch created and those after it
stay ``in_progress`` (a slow batch) until ``hold_from`` is ``None`` again. Lines with
``model: "batch-test-model"`` get DashScope's fixed test answer without the script.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from .recorded import RecordedRequest, _Headers
from .render import render
from .replies import Reply

__all__ = ["BatchAPI", "BatchLine"]

ENDPOINTS = ("/v1/chat/completions", "/v1/chat/ds-test")
TEST_MODEL = "batch-test-model"
_STEPS = {"validating": "in_progress", "in_progress": "finalizing", "finalizing": "completed"}


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One line of a batch as the server answered it: its batch, ``custom_id``, the request
    (a :class:`RecordedRequest` of the line's body) and the status code it got."""

    batch_id: str
    custom_id: str
    request: RecordedRequest
    status: int


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any] | None
    created_at: int
    status: str = "validating"
    polls: int = 0
    times: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"total": 0, "completed": 0, "failed": 0}
    )

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + 86400,
            "request_counts": dict(self.counts),
            "metadata": self.metadata,
        }
        for stage in ("in_progress", "finalizing", "completed", "failed", "expired"):
            data[f"{stage}_at"] = self.times.get(stage)
        for stage in ("cancelling", "cancelled"):
            data[f"{stage}_at"] = self.times.get(stage)
        return data


Answer = Callable[[RecordedRequest], Awaitable[Reply]]


class BatchAPI:
    """The files and batches one scripted server holds (its ``batches`` attribute)."""

    def __init__(self, answer: Answer, number: Callable[[], int]) -> None:
        self._answer = answer
        self._number = number
        self._ids = itertools.count(1)
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.lines: list[BatchLine] = []
        self.polls_per_status = 1
        self.expire_next = False
        self.hold_from: int | None = None

    # -- routing ---------------------------------------------------------------------------

    async def reply(self, request: RecordedRequest, path: str) -> Reply:
        """The answer to a request under ``/files`` or ``/batches``."""
        parts = path.split("/")
        tail = parts[parts.index("files") if "files" in parts else parts.index("batches") :]
        method = request.method
        if tail == ["files"]:
            if method == "POST":
                return self._upload(request)
            if method == "GET":
                return _json({"object": "list", "data": [f.info() for f in self.files.values()]})
        elif tail[0] == "files" and len(tail) in (2, 3):
            found = self.files.get(tail[1])
            if found is None:
                return _not_found("file", tail[1])
            if len(tail) == 3 and tail[2] == "content" and method == "GET":
                return Reply.raw(found.content, content_type="application/jsonl")
            if len(tail) == 2 and method == "GET":
                return _json(found.info())
            if len(tail) == 2 and method == "DELETE":
                del self.files[found.id]
                return _json({"id": found.id, "object": "file", "deleted": True})
        elif tail == ["batches"]:
            if method == "POST":
                return self._create(request)
            if method == "GET":
                return _json({"object": "list", "data": [b.info() for b in self.batches.values()]})
        elif tail[0] == "batches" and len(tail) in (2, 3):
            batch = self.batches.get(tail[1])
            if batch is None:
                return _not_found("batch", tail[1])
            if len(tail) == 2 and method == "GET":
                await self._advance(batch)
                return _json(batch.info())
            if len(tail) == 3 and tail[2] == "cancel" and method == "POST":
                if batch.status in ("validating", "in_progress"):
                    batch.status = "cancelled"
                    batch.times["cancelling"] = batch.times["cancelled"] = int(time.time())
                return _json(batch.info())
        return Reply.error(404, f"no route for {method} {request.path}", code="not_found")

    # -- files -----------------------------------------------------------------------------

    def _upload(self, request: RecordedRequest) -> Reply:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return Reply.error(400, "upload a file as multipart/form-data", code="invalid_file")
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + request.body
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = (part.get_filename(), payload)
        if "file" not in fields:
            return Reply.error(400, "the form has no 'file' field", code="invalid_file")
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose != "batch":
            return Reply.error(400, "purpose must be 'batch'", code="invalid_purpose")
        filename, content = fields["file"]
        created = _File(
            f"file-batch-{next(self._ids)}",
            filename or "input.jsonl",
            purpose,
            content,
            int(time.time()),
        )
        self.files[created.id] = created
        return _json(created.info())

    def _add_file(self, name: str, lines: list[dict[str, Any]]) -> str:
        content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        made = _File(f"file-batch-{next(self._ids)}", name, "batch_output", content.encode(), 0)
        self.files[made.id] = made
        return made.id

    # -- batches ---------------------------------------------------------------------------

    def _create(self, request: RecordedRequest) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return Reply.error(400, "the body is not JSON", code="invalid_json")
        if not isinstance(body, dict):
            return Reply.error(400, "the body is not a JSON object", code="invalid_json")
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return Reply.error(400, f"no file {file_id!r}", code="invalid_file_id")
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            return Reply.error(400, f"endpoint must be one of {ENDPOINTS}", param="endpoint")
        if body.get("completion_window") != "24h":
            return Reply.error(400, "completion_window must be '24h'", param="completion_window")
        batch = _Batch(
            f"batch_{next(self._ids)}",
            str(file_id),
            str(endpoint),
            "24h",
            body.get("metadata"),
            int(time.time()),
        )
        self.batches[batch.id] = batch
        return _json(batch.info())

    async def _advance(self, batch: _Batch) -> None:
        nxt = _STEPS.get(batch.status)
        if nxt is None:
            return
        hold = self.hold_from
        if hold is not None and batch.status == "in_progress" and self._position(batch) >= hold:
            return  # held under way, as a slow batch is
        batch.polls += 1
        if batch.polls < self.polls_per_status:
            return
        batch.polls = 0
        if batch.status == "validating":
            lines, errors = _parse_lines(self.files[batch.input_file_id].content, batch.endpoint)
            if errors:
                batch.status, batch.errors = "failed", errors
                batch.times["failed"] = int(time.time())
                return
            batch.counts["total"] = len(lines)
        elif batch.status == "in_progress":
            await self._process(batch)
            if batch.status == "expired":
                return
        batch.status = nxt
        batch.times[nxt] = int(time.time())

    def _position(self, batch: _Batch) -> int:
        return list(self.batches).index(batch.id) + 1

    async def _process(self, batch: _Batch) -> None:
        lines, _ = _parse_lines(self.files[batch.input_file_id].content, batch.endpoint)
        outputs: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        expire, self.expire_next = self.expire_next, False
        for line in lines:
            number = self._number()
            body = json.dumps(line["body"]).encode()
            request = RecordedRequest(
                "POST",
                line["url"],
                _Headers([("content-type", "application/json")]),
                body,
                number=number,
                received_at=time.monotonic(),
            )
            if expire:
                failures.append(
                    _line_error(line["custom_id"], number, 0, "batch_expired", "not run")
                )
                continue
            if request.model == TEST_MODEL:
                reply = Reply.text("This is a test result.", model=TEST_MODEL)
            else:
                reply = await self._answer(request)
            rendered = render(reply, request)
            status = rendered.status or 500
            self.lines.append(BatchLine(batch.id, line["custom_id"], request, status))
            try:
                payload = json.loads(rendered.pieces[0]) if rendered.pieces else None
            except ValueError:
                payload = None
            if status == 200 and isinstance(payload, dict) and not rendered.streamed:
                outputs.append(
                    {
                        "id": f"batch_req_{number}",
                        "custom_id": line["custom_id"],
                        "response": {
                            "status_code": 200,
                            "request_id": f"req-{number}",
                            "body": payload,
                        },
                        "error": None,
                    }
                )
            else:
                error = (payload or {}).get("error") if isinstance(payload, dict) else None
                error = error if isinstance(error, dict) else {}
                failures.append(
                    _line_error(
                        line["custom_id"],
                        number,
                        status,
                        str(error.get("code") or "server_error"),
                        str(error.get("message") or "the line failed"),
                        payload,
                    )
                )
        batch.counts.update(completed=len(outputs), failed=len(failures))
        if outputs:
            batch.output_file_id = self._add_file(f"{batch.id}_output.jsonl", outputs)
        if failures:
            batch.error_file_id = self._add_file(f"{batch.id}_error.jsonl", failures)
        if expire:
            batch.status = "expired"
            batch.times["expired"] = int(time.time())


def _parse_lines(
    content: bytes, endpoint: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            errors.append(_validation(number, "the line is not JSON"))
            continue
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            errors.append(_validation(number, "the line has no custom_id"))
        elif line["custom_id"] in seen:
            errors.append(_validation(number, f"custom_id {line['custom_id']!r} repeats"))
        elif line.get("method") != "POST" or line.get("url") != endpoint:
            errors.append(_validation(number, f"method must be POST and url {endpoint}"))
        elif not isinstance(line.get("body"), dict):
            errors.append(_validation(number, "the line has no body object"))
        else:
            seen.add(line["custom_id"])
            lines.append(line)
    if not lines and not errors:
        errors.append(_validation(None, "the file has no lines"))
    return lines, errors


def _validation(line: int | None, message: str) -> dict[str, Any]:
    return {"code": "invalid_request", "message": message, "param": None, "line": line}


def _line_error(
    custom_id: str,
    number: int,
    status: int,
    code: str,
    message: str,
    body: Any = None,
) -> dict[str, Any]:
    return {
        "id": f"batch_req_{number}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req-{number}", "body": body},
        "error": {"code": code, "message": message},
    }


def _json(data: dict[str, Any]) -> Reply:
    return Reply.raw(json.dumps(data), content_type="application/json")


def _not_found(kind: str, name: str) -> Reply:
    return Reply.error(404, f"no {kind} {name!r}", code="not_found")
