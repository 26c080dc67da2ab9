"""The scripted server's Batch API (``/v1/files``, ``/v1/batches``) in the documented format:
upload, create, the statuses from validating to completed, failed or expired, the output and
error files, DashScope's free ``batch-test-model``."""

from __future__ import annotations

import json
from typing import Any

import httpx

from agentkit.testing import RecordedRequest, Reply, ScriptedServer


def _line(custom_id: str, content: str, model: str = "qwen-plus") -> dict[str, Any]:
    url = "/v1/chat/ds-test" if model == "batch-test-model" else "/v1/chat/completions"
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"model": model, "messages": [{"role": "user", "content": content}]},
    }


def _upload(http: httpx.Client, lines: list[dict[str, Any]]) -> str:
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    answer = http.post(
        "files",
        files={"file": ("input.jsonl", content, "application/jsonl")},
        data={"purpose": "batch"},
    )
    assert answer.status_code == 200, answer.text
    info = answer.json()
    assert info["object"] == "file" and info["purpose"] == "batch"
    assert info["bytes"] == len(content) and info["id"].startswith("file-batch-")
    return str(info["id"])


def _finish(http: httpx.Client, batch_id: str) -> tuple[list[str], dict[str, Any]]:
    statuses = []
    while True:
        batch = http.get(f"batches/{batch_id}").json()
        statuses.append(batch["status"])
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return statuses, batch


def _jsonl(http: httpx.Client, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in http.get(f"files/{file_id}/content").text.splitlines()]


def test_a_batch_goes_from_validating_to_completed_with_output_and_error_files(
    server: ScriptedServer,
) -> None:
    def model(request: RecordedRequest) -> Reply:
        text = request.messages[-1]["content"]
        return Reply.error(500, "boom") if text == "fail" else Reply.text(text.upper())

    server.respond_with(model)
    with httpx.Client(base_url=server.base_url + "/") as http:
        file_id = _upload(http, [_line("a", "hello"), _line("b", "fail"), _line("c", "bye")])
        created = http.post(
            "batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ).json()
        assert created["status"] == "validating" and created["object"] == "batch"
        assert created["output_file_id"] is None and created["error_file_id"] is None
        statuses, batch = _finish(http, created["id"])
        assert statuses == ["in_progress", "finalizing", "completed"]
        assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
        assert batch["completed_at"] is not None
        output = _jsonl(http, batch["output_file_id"])
        assert [line["custom_id"] for line in output] == ["a", "c"]
        first = output[0]
        assert first["error"] is None and first["response"]["status_code"] == 200
        assert first["response"]["body"]["choices"][0]["message"]["content"] == "HELLO"
        (error,) = _jsonl(http, batch["error_file_id"])
        assert error["custom_id"] == "b" and error["response"]["status_code"] == 500
        assert error["error"]["message"] == "boom"
        assert http.get("batches").json()["data"][0]["id"] == created["id"]
    assert [line.custom_id for line in server.batches.lines] == ["a", "b", "c"]


def test_batch_test_model_answers_without_the_script(server: ScriptedServer) -> None:
    with httpx.Client(base_url=server.base_url + "/") as http:
        file_id = _upload(http, [_line("1", "hi", "batch-test-model")])
        created = http.post(
            "batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/ds-test",
                "completion_window": "24h",
            },
        ).json()
        _, batch = _finish(http, created["id"])
        (line,) = _jsonl(http, batch["output_file_id"])
    assert line["response"]["body"]["model"] == "batch-test-model"
    assert line["response"]["body"]["choices"][0]["message"]["content"] == "This is a test result."


def test_invalid_lines_fail_the_batch_and_bad_requests_are_refused(
    server: ScriptedServer,
) -> None:
    with httpx.Client(base_url=server.base_url + "/") as http:
        repeated = _upload(http, [_line("x", "a"), _line("x", "b")])
        created = http.post(
            "batches",
            json={
                "input_file_id": repeated,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ).json()
        statuses, batch = _finish(http, created["id"])
        assert statuses == ["failed"]
        assert "custom_id 'x' repeats" in batch["errors"]["data"][0]["message"]
        assert batch["errors"]["data"][0]["line"] == 2

        assert http.post("batches", json={"input_file_id": "file-nope"}).status_code == 400
        wrong = http.post(
            "files", files={"file": ("a.jsonl", b"{}")}, data={"purpose": "fine-tune"}
        )
        assert wrong.status_code == 400 and "purpose" in wrong.text
        assert http.get("batches/batch_404").status_code == 404
        assert http.get("files/file-404/content").status_code == 404
        assert http.delete(f"files/{repeated}").json()["deleted"] is True
    assert server.batches.lines == []


def test_an_expired_batch_runs_none_of_its_lines(server: ScriptedServer) -> None:
    server.batches.expire_next = True
    with httpx.Client(base_url=server.base_url + "/") as http:
        file_id = _upload(http, [_line("a", "hello")])
        created = http.post(
            "batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ).json()
        statuses, batch = _finish(http, created["id"])
        assert statuses == ["in_progress", "expired"]
        (error,) = _jsonl(http, batch["error_file_id"])
    assert error["error"]["code"] == "batch_expired"
    assert server.batches.lines == []
