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
            raise BatchError(f"the Batch API at {self._http.base_url} failed: {exc!r}") from None
        if response.status_code >= 400:
            raise BatchError(
                f"the Batch API answered {method} /{path} with {response.status_code}: "
                f"{response.text[:500]}"
            )
        return response

    async def upload(self, lines: list[dict[str, Any]], name: str) -> str:
        """Upload ``lines`` as a JSONL file for a batch; returns the file id."""
        content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        response = await self._call(
            "POST",
            "files",
            files={"file": (name, content.encode(), "application/jsonl")},
            data={"purpose": "batch"},
        )
        return str(response.json()["id"])

    async def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> str:
        """Create a batch of the uploaded file; returns the batch id."""
        response = await self._call(
            "POST",
            "batches",
            json={
                "input_file_id": file_id,
                "endpoint": endpoint,
                "completion_window": "24h",
                "metadata": metadata,
            },
        )
        return str(response.json()["id"])

    async def wait(self, batch_id: str) -> dict[str, Any]:
        """Poll the batch with backoff until it ends; returns its last state."""
        polling = self.polling
        started = polling.clock()
        delay = polling.delays()
        while True:
            batch: dict[str, Any] = (await self._call("GET", f"batches/{batch_id}")).json()
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
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
