"""The batch backend: every open conversation's next model request goes into one JSONL file
on the Batch API at half the price; tools run locally between rounds.

Conversations run as they do locally, but their HTTP client (the ``http_client=`` an agent
factory takes) parks each request instead of sending it. Once every open conversation is
parked or finished, the parked requests become one batch per model; when it ends, each
request gets its line's response and the conversations go on to their next round. A line
that failed (a server error, an expired batch) goes into the next batch, up to
``line_retries`` times.

A state file keeps the ids of the batches under way and every response received, keyed by
a ``custom_id`` that names the conversation, the request's number in it and a digest of
its body. An eval started again replays its conversations: requests already answered get
their stored response, requests in a batch under way wait for that batch, so nothing is paid
twice. The file is removed when the suite finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._batchapi import BatchClient, Polling
from ._conversation import Attempt
from ._errors import BatchError, SuiteError
from ._local import gather_attempts, refuse_unroutable

if TYPE_CHECKING:
    from ._suite import Job, Progress, Suite

__all__ = ["BatchBackend"]

TEST_MODEL = "batch-test-model"
TEST_ENDPOINT = "/v1/chat/ds-test"
CHAT_ENDPOINT = "/v1/chat/completions"
STATE_FORMAT = "agentkit.evals.batch/1"
_QUOTA_MARKERS = ("quota", "arrearage", "overdue", "billing")


class BatchBackend:
    """Run a suite's conversations through an OpenAI-compatible Batch API (DashScope's by
    default), each round of every open conversation in one batch, at the batch price.

    Args:
        base_url: the Batch API's root (default: ``AGENTKIT_BASE_URL``, else DashScope).
        api_key: its key (default: the provider's variable, ``DASHSCOPE_API_KEY``).
        state: the state file that makes a killed eval resumable; removed at the end.
        polling: how often a batch is asked for its status (:class:`Polling`).
        line_retries: how many more batches a failed line goes into.
        price_factor: what the batch price is of the real-time one (DashScope: half).
    """

    name = "batch"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        state: str | Path = ".agentkit-eval-batch.json",
        polling: Polling | None = None,
        line_retries: int = 2,
        price_factor: float = 0.5,
    ) -> None:
        from .._providers import resolve_api_key, resolve_provider

        provider = resolve_provider(None, base_url)
        self.base_url = provider.base_url
        self._api_key = resolve_api_key(provider, api_key)
        self.state_path = Path(state)
        self.polling = polling or Polling()
        self.line_retries = line_retries
        self.price_factor = price_factor

    def check(self, suite: Suite) -> None:
        """Refuse a suite whose agent factories cannot hand their requests to the batch."""
        refuse_unroutable(suite, "the batch backend")

    async def run(self, suite: Suite, jobs: Sequence[Job], progress: Progress) -> list[Attempt]:
        """Run every job, round by round, through batches; resume from the state file."""
        fingerprint = _fingerprint(suite, jobs)
        state = _State.load(self.state_path, fingerprint)
        client = BatchClient(self.base_url, self._api_key, self.polling)
        gatherer = _Gatherer(state, len(jobs))
        opened: list[httpx.AsyncClient] = []

        def tracked(finished: int, total: int, attempt: Attempt) -> None:
            gatherer.finished = finished
            gatherer.changed.set()
            progress(finished, total, attempt)

        def http_for(job: Job) -> httpx.AsyncClient:
            made = httpx.AsyncClient(
                transport=_Transport(gatherer, f"s{job.scenario}a{job.attempt}")
            )
            opened.append(made)
            return made

        conversations = asyncio.ensure_future(
            gather_attempts(suite, jobs, tracked, len(jobs), http_for)
        )
        try:
            while not conversations.done():
                waiter = asyncio.ensure_future(gatherer.changed.wait())
                await asyncio.wait({conversations, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                gatherer.changed.clear()
                if not conversations.done() and gatherer.all_parked():
                    await self._round(gatherer, client, state)
            attempts = conversations.result()
        finally:
            if not conversations.done():
                conversations.cancel()
                await asyncio.gather(conversations, return_exceptions=True)
            for made in opened:
                await made.aclose()
            await client.aclose()
        state.remove()
        return attempts

    async def _round(self, gatherer: _Gatherer, client: BatchClient, state: _State) -> None:
        parked = list(gatherer.parked.values())
        gatherer.parked.clear()
        under_way = state.under_way()
        batches = {under_way[p.custom_id] for p in parked if p.custom_id in under_way}
        fresh: dict[str, list[_Parked]] = {}
        for item in parked:
            if item.custom_id not in under_way:
                fresh.setdefault(item.model, []).append(item)
        for model, items in fresh.items():
            endpoint = TEST_ENDPOINT if model == TEST_MODEL else CHAT_ENDPOINT
            lines = [
                {"custom_id": p.custom_id, "method": "POST", "url": endpoint, "body": p.body}
                for p in items
            ]
            file_id = await client.upload(lines, f"agentkit-eval-{len(state.pending)}.jsonl")
            batch_id = await client.create(file_id, endpoint, {"source": "agentkit eval"})
            state.pending[batch_id] = {
                "input_file_id": file_id,
                "custom_ids": [p.custom_id for p in items],
            }
            state.save()
            batches.add(batch_id)
        failures: dict[str, tuple[int, Any]] = {}
        for found in await asyncio.gather(*(_collect(client, state, b) for b in batches)):
            failures.update(found)
        for item in parked:
            answer = state.results.get(item.custom_id)
            if answer is not None:
                item.resolve(200, answer)
                continue
            status, body = failures.get(item.custom_id, (0, None))
            item.tries += 1
            if _retryable(status, body) and item.tries <= self.line_retries:
                gatherer.parked[item.custom_id] = item  # into the next batch
            else:
                answer = (status or 502, body or _error_body(status, "the batch line failed"))
                gatherer.failed[item.digest] = answer
                item.resolve(*answer)
        if gatherer.parked:
            gatherer.changed.set()


async def _collect(client: BatchClient, state: _State, batch_id: str) -> dict[str, tuple[int, Any]]:
    """Wait for a batch; store its answers in the state; return its failed lines."""
    batch = await client.wait(batch_id)
    entry = state.pending.get(batch_id, {})
    if batch.get("status") == "failed":
        state.pending.pop(batch_id, None)
        state.save()
        errors = (batch.get("errors") or {}).get("data") or []
        said = "; ".join(str(e.get("message")) for e in errors[:3]) or "no reason given"
        raise BatchError(f"batch {batch_id} failed: {said}", batch_id=batch_id)
    failures: dict[str, tuple[int, Any]] = {}
    for line in await client.lines(batch.get("output_file_id")):
        response = line.get("response") or {}
        if response.get("status_code") == 200 and isinstance(response.get("body"), dict):
            state.results[str(line.get("custom_id"))] = response["body"]
    for line in await client.lines(batch.get("error_file_id")):
        response = line.get("response") or {}
        error = line.get("error") or {}
        body = response.get("body") or _error_body(
            0, str(error.get("message") or "failed"), error.get("code")
        )
        failures[str(line.get("custom_id"))] = (int(response.get("status_code") or 0), body)
    for custom_id in entry.get("custom_ids", ()):
        if custom_id not in state.results and custom_id not in failures:
            failures[custom_id] = (0, _error_body(0, f"batch {batch_id} ended without it"))
    state.pending.pop(batch_id, None)
    state.save()
    return failures


def _retryable(status: int, body: Any) -> bool:
    text = json.dumps(body).lower() if body is not None else ""
    if status == 429:
        return not any(marker in text for marker in _QUOTA_MARKERS)
    return status in (0, 408) or status >= 500


def _error_body(status: int, message: str, code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "batch_error", "code": code or status}}


@dataclass(eq=False)
class _Parked:
    custom_id: str
    digest: str
    model: str
    body: dict[str, Any]
    future: asyncio.Future[tuple[int, Any]]
    tries: int = 0

    def resolve(self, status: int, body: Any) -> None:
        if not self.future.done():
            self.future.set_result((status, body))


class _Gatherer:
    """The requests parked until the next batch, and who is still talking."""

    def __init__(self, state: _State, total: int) -> None:
        self.state = state
        self.total = total
        self.finished = 0
        self.parked: dict[str, _Parked] = {}
        self.changed = asyncio.Event()
        # the final answer to a request whose lines kept failing, by conversation and body:
        # the agent's client may send it again, and it gets the same answer at once
        self.failed: dict[str, tuple[int, Any]] = {}

    def all_parked(self) -> bool:
        """Whether every open conversation waits on a parked request."""
        return bool(self.parked) and len(self.parked) >= self.total - self.finished

    async def ask(self, custom_id: str, digest: str, body: dict[str, Any]) -> tuple[int, Any]:
        """The response to a request: stored already, or once its batch has ended."""
        stored = self.state.results.get(custom_id)
        if stored is not None:
            return 200, stored
        failed = self.failed.get(digest)
        if failed is not None:
            return failed
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        model = str(body.get("model", ""))
        self.parked[custom_id] = _Parked(custom_id, digest, model, body, future)
        self.changed.set()
        try:
            return await future
        finally:
            if not future.done():  # the conversation was cancelled
                self.parked.pop(custom_id, None)


class _Transport(httpx.AsyncBaseTransport):
    """One conversation's HTTP transport: a chat request is parked for the next batch."""

    def __init__(self, gatherer: _Gatherer, key: str) -> None:
        self._gatherer = gatherer
        self._key = key
        self._count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return httpx.Response(404, json=_error_body(404, "not a chat request"))
        body = json.loads(await request.aread())
        if body.get("stream"):
            return httpx.Response(
                400, json=_error_body(400, "the batch backend sends no streamed requests")
            )
        self._count += 1
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(canonical).hexdigest()[:16]
        status, payload = await self._gatherer.ask(
            f"{self._key}r{self._count}-{digest}", f"{self._key}-{digest}", body
        )
        return httpx.Response(status, json=payload, request=request)


@dataclass
class _State:
    """The state file: batches under way and every response received."""

    path: Path
    fingerprint: str
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> _State:
        if not path.exists():
            # first written once a batch is created (paid for): a state that cannot be
            # kept then would make the next try create the same batch again
            if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
                raise SuiteError(
                    f"the batch state file {str(path)!r} cannot be written: its folder "
                    f"{str(path.parent)!r} does not exist or is not writable"
                )
            return cls(path, fingerprint)
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise SuiteError(f"cannot read the batch state file {str(path)!r}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise SuiteError(f"{str(path)!r} is not an agentkit batch state file")
        if data.get("suite") != fingerprint:
            raise SuiteError(
                f"the batch state file {str(path)!r} belongs to another suite or -k; remove "
                "it (its batches are then not resumed) or pass another state path"
            )
        pending, results = data.get("pending"), data.get("results")
        if not (
            isinstance(pending, dict)
            and isinstance(results, dict)
            and all(
                isinstance(entry, dict)
                and isinstance(entry.get("custom_ids"), list)
                and all(isinstance(cid, str) for cid in entry["custom_ids"])
                for entry in pending.values()
            )
            and all(isinstance(body, dict) for body in results.values())
        ):
            # checked here, before any request: a KeyError mid-run would say nothing useful
            raise SuiteError(
                f"the batch state file {str(path)!r} is damaged (its batches or answers are "
                "not what agentkit wrote); remove it (its batches are then not resumed) or "
                "pass another state path"
            )
        return cls(path, fingerprint, dict(pending), dict(results))

    def under_way(self) -> dict[str, str]:
        """custom_id -> the id of the batch it is in."""
        return {cid: bid for bid, entry in self.pending.items() for cid in entry["custom_ids"]}

    def save(self) -> None:
        data = {
            "format": STATE_FORMAT,
            "suite": self.fingerprint,
            "pending": self.pending,
            "results": self.results,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(data), "utf-8")
        os.replace(temporary, self.path)  # a kill mid-write leaves the old file whole

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _fingerprint(suite: Suite, jobs: Sequence[Job]) -> str:
    names = [scenario.name for scenario in suite.scenarios]
    text = json.dumps([names, [(job.scenario, job.attempt) for job in jobs]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
