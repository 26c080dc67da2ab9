"""A small client of the OpenAI-compatible Batch API (DashScope's ``/v1/files`` and
``/v1/batches``): upload a JSONL file, create a batch, poll it with backoff, read its output
and error files."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ._errors import BatchError

__all__ = ["BatchClient", "Polling"]

TERMINAL = ("completed", "failed", "expired", "cancelled")


class Polling:
    """How often a batch is asked for its status: ``first`` seconds, then each wait
    ``factor`` times longer up to ``most``; ``timeout`` seconds in all (by ``clock``) before
    ``BatchError``. ``sleep`` and ``clock`` are injectable for tests."""

    def __init__(
        self,
        first: float = 2.0,
        factor: float = 1.5,
        most: float = 60.0,
        timeout: float = 26 * 3600.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if first <= 0 or factor < 1 or most < first:
            raise ValueError("polling needs first > 0, factor >= 1 and most >= first")
        self.first, self.factor, self.most, self.timeout = first, factor, most, timeout
        self.sleep, self.clock = sleep, clock

    def delays(self) -> Callable[[], float]:
        """A fresh backoff sequence: each call gives the next wait."""
        wait = self.first / self.factor

        def step() -> float:
            nonlocal wait
            wait = min(self.most, wait * self.factor)
            return wait

        return step


class BatchClient:
    """The Batch API at ``base_url`` with ``api_key`` (sent as a bearer token, never shown)."""

    def __init__(
        self, base_url: str, api_key: str | None, polling: Polling, timeout: float = 60.0
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._key = api_key
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout
        )
        self.polling = polling

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BatchError(
                self._masked(f"the Batch API at {self._http.base_url} failed: {exc!r}")
            ) from None
        if response.status_code >= 400:
            raise BatchError(
                self._masked(
                    f"the Batch API answered {method} /{path} with {response.status_code}: "
                    f"{response.text[:500]}"
                )
            )
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._call(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BatchError(
                self._masked(
                    f"the Batch API answered {method} /{path} with something that is not a "
                    f"JSON object: {response.text[:200]!r}"
                )
            )
        return data

    def _masked(self, text: str) -> str:
        """Never a key in an error, even one a server echoed."""
        return text.replace(self._key, "***") if self._key else text

    async def upload(self, lines: list[dict[str, Any]], name: str) -> str:
        """Upload ``lines`` as a JSONL file for a batch; returns the file id."""
        content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        made = await self._json(
            "POST",
            "files",
            files={"file": (name, content.encode(), "application/jsonl")},
            data={"purpose": "batch"},
        )
        return _id(made, "file")

    async def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> str:
        """Create a batch of the uploaded file; returns the batch id."""
        made = await self._json(
            "POST",
            "batches",
            json={
                "input_file_id": file_id,
                "endpoint": endpoint,
                "completion_window": "24h",
                "metadata": metadata,
            },
        )
        return _id(made, "batch")

    async def wait(self, batch_id: str) -> dict[str, Any]:
        """Poll the batch with backoff until it ends; returns its last state."""
        polling = self.polling
        started = polling.clock()
        delay = polling.delays()
        while True:
            batch = await self._json("GET", f"batches/{batch_id}")
            if batch.get("status") in TERMINAL:
                return batch
            if polling.clock() - started > polling.timeout:
                raise BatchError(
                    f"batch {batch_id} is still {batch.get('status')} after "
                    f"{polling.timeout:.0f} s; run the eval again to go on waiting",
                    batch_id=batch_id,
                )
            await polling.sleep(delay())

    async def lines(self, file_id: str | None) -> list[dict[str, Any]]:
        """The JSON lines of an output or error file (none for ``None``)."""
        if not file_id:
            return []
        response = await self._call("GET", f"files/{file_id}/content")
        lines = []
        for line in response.text.splitlines():
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise BatchError(f"file {file_id} has a line that is not a JSON object")
            lines.append(parsed)
        return lines


def _id(made: dict[str, Any], kind: str) -> str:
    found = made.get("id")
    if not isinstance(found, str) or not found:
        raise BatchError(f"the Batch API made a {kind} but gave no id for it")
    return found
