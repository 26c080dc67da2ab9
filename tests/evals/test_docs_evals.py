"""docs/evals.md tells the truth: its Python blocks run, in order, against a scripted shop
model on loopback, and the suites they build score what the page says."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from agentkit.testing import RecordedRequest, Reply, ScriptedServer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "evals.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shop_model(request: RecordedRequest) -> Reply:
    messages = request.messages
    first = str(messages[0].get("content", ""))
    if first.startswith("You are playing a customer"):
        if any(m["role"] == "assistant" for m in messages):
            return Reply.text("[GIVE UP]")
        return Reply.text("Refund order 77 now.")
    if first.startswith("Judge the support"):
        return Reply.text(json.dumps({"passed": "not on your account" in first, "reason": "ok"}))
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    said = str(messages[last_user]["content"]).lower()
    if any(m["role"] == "tool" for m in messages[last_user:]):
        return Reply.text("Done: one charge refunded.")
    if "77" in said:
        return Reply.text("Order 77 is not on your account, sorry.")
    if "refund" in said:
        return Reply.tool_calls(("issue_refund", {"order_id": 1042}))
    return Reply.text("I see two charges. Shall I refund one of them?")


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ScriptedServer]:
    with ScriptedServer(handler=shop_model) as server:
        monkeypatch.setenv("AGENTKIT_BASE_URL", server.base_url)
        monkeypatch.chdir(tmp_path)
        yield server
        assert not server.errors


def test_the_pages_python_runs_and_scores_what_it_says(shop: ScriptedServer) -> None:
    page = PAGE.read_text(encoding="utf-8")
    module = ModuleType("docs_evals")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        for match in _FENCE.finditer(page):
            if match.group(1) != "python":
                continue
            before = page[: match.start()].rstrip()
            if before.endswith("-->") and "no-run:" in before.rsplit("<!--", 1)[-1]:
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(match.group(2), "evals.md", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    report = module.__dict__["report"]
    assert report.pass_hat(4) == 1.0
    assert Path("report.html").exists() and Path("report.json").exists()
    # the suite with the simulated customer and the judge
    both = module.__dict__["suite"].run(k=2)
    assert [s.passes for s in both.scenarios] == [2, 2]
    assert both.scenarios[1].attempts[0].checks[1].detail == "ok"
