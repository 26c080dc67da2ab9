"""The chat page in a real browser: Debian's chromium driven by Playwright, against the app on
127.0.0.1 with the scripted model behind it.

With ``CI=true`` a missing browser fails the test; elsewhere the test skips.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit.serve import create_app
from agentkit.testing import ScriptedServer, tool_then_answer

from .conftest import make_desk, sessions_or_skip, uvicorn_serving

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright's own defaults (30 s to launch, to load, to wait for an element; 5 s for an
# expect) are for a quiet machine: each is a bound on a hang here, so a generous one.
WAIT_MS = 120_000
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'


def _browser_or_skip() -> Any:
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed"
    if missing is None and not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser test: {missing}")
        pytest.skip(missing)
    return sync_playwright


def unhurried(page: Any) -> Any:
    """``page`` waiting up to ``WAIT_MS`` for what it waits for (and ``expect`` too)."""
    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    return page


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium (Debian's; Playwright downloads nothing), started once for the
    module: each test opens its pages in contexts of its own (``new_page`` and
    ``new_context`` make a fresh one: no cookie or storage is shared)."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=WAIT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.timeout(240)  # chromium starts slowly on a loaded machine
def test_the_page_streams_the_answer_shows_tools_and_escapes_everything(
    model: ScriptedServer, browser: Any
) -> None:
    from playwright.sync_api import expect

    model.respond_with(
        tool_then_answer(("get_order", {"order_id": 1042}), answer=f"Shipped. {HOSTILE}")
    )
    with uvicorn_serving(create_app({"desk": make_desk(model)}, title="Order desk")) as url:
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = unhurried(context.new_page())
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url + "/")
        assert page.title() == "Order desk"
        page.fill("#input", f"Where is order 1042? {HOSTILE}")
        page.press("#input", "Enter")
        answer = page.locator(".msg.assistant .text").last
        answer.filter(has_text="Shipped.").wait_for(timeout=120_000)
        expect(page.locator("#send")).to_be_enabled()  # a locator: the page's CSP forbids eval
        assert answer.inner_text() == f"Shipped. {HOSTILE}"  # shown as text
        tools = page.locator(".msg.assistant details")
        assert tools.locator("summary").inner_text() == "Tool activity (1 call)"
        assert "order 1042: shipped" not in tools.inner_text()  # folded under the answer
        tools.locator("summary").click()
        assert "order 1042: shipped" in tools.inner_text()
        assert page.locator("#log img, #log script").count() == 0
        assert page.title() == "Order desk"  # no injected script ran
        # the whole page fits a phone's width
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "serve-page.png"), full_page=True)

        page.reload()  # the conversation is kept across reloads
        page.locator(".msg.assistant .text").filter(has_text="Shipped.").wait_for()
        assert page.locator(".msg.user").count() == 1
        context.close()
    assert requested and all(u.startswith(url + "/") for u in requested), requested


@pytest.mark.timeout(240)
def test_the_page_approves_a_pending_call(
    model: ScriptedServer, browser: Any, tmp_path: Path
) -> None:
    sessions = sessions_or_skip()
    from playwright.sync_api import expect

    from agentkit.testing import Reply

    model.queue(Reply.tool_calls(("refund", {"order_id": 1042})), Reply.text("Refunded 1042."))
    desk = make_desk(model, store=sessions.SQLiteStore(str(tmp_path / "desk.db")))
    with uvicorn_serving(create_app({"desk": desk})) as url:
        page = unhurried(browser.new_page(viewport={"width": 390, "height": 844}))
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url + "/")
        expect(page.locator("#agent")).to_have_value("desk")
        page.fill("#input", "Refund order 1042, please.")
        page.press("#input", "Enter")
        pending = page.locator(".pending")
        pending.wait_for(timeout=120_000)
        assert 'refund({"order_id": 1042})' in pending.inner_text()
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "serve-page-approval.png"), full_page=True)
        pending.get_by_role("button", name="Approve").click()
        answer = page.locator(".msg.assistant .text").filter(has_text="Refunded 1042.")
        answer.wait_for(timeout=120_000)
        assert page.locator(".pending").count() == 0
        page.screenshot(path=str(OUTPUT / "serve-page-approved.png"), full_page=True)
        page.close()
    assert model.requests[-1].messages[-1]["content"] == "order 1042: refunded"
    assert requested and all(u.startswith(url + "/") for u in requested), requested


@contextlib.contextmanager
def another_origin(html: str) -> Iterator[str]:
    """A page served from another origin (its own port on 127.0.0.1); yields its URL."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


CROSS_SITE = """<!doctype html><title>a page on another site</title><script>
const target = "%s/v1/chat/completions";
const body = JSON.stringify({model: "desk", messages: [{role: "user", content: "refund all"}]});
window.outcomes = Promise.all([
  // a simple request: no preflight, and before the fix the server ran it
  fetch(target, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body})
    .then(() => "sent", (e) => "failed"),
  // a JSON request: preflighted, and the server answers no preflight
  fetch(target, {method: "POST", headers: {"Content-Type": "application/json"}, body})
    .then((r) => "read " + r.status, (e) => "failed"),
]);
</script>"""


@pytest.mark.timeout(240)
def test_a_page_on_another_origin_cannot_run_the_bot(model: ScriptedServer, browser: Any) -> None:
    model.respond_with(tool_then_answer(("get_order", {"order_id": 1042}), answer="Shipped."))
    with (
        uvicorn_serving(create_app({"desk": make_desk(model)})) as url,
        another_origin(CROSS_SITE % url) as evil,
    ):
        page = unhurried(browser.new_page())
        page.goto(evil)
        outcomes = page.evaluate("window.outcomes")
        page.close()
    assert outcomes == ["sent", "failed"]  # the browser sent the first; nothing was read
    assert not model.requests  # and the bot ran nothing


@pytest.mark.timeout(300)
def test_a_patient_asks_a_receptionist_approves_from_the_queue_and_the_patient_sees_it(
    model: ScriptedServer, browser: Any, tmp_path: Path
) -> None:
    sessions = sessions_or_skip()
    from playwright.sync_api import expect

    from agentkit.serve import StoredKeys
    from agentkit.testing import Reply

    model.queue(
        Reply.tool_calls(("refund", {"order_id": 1042})),
        # slower than the queue's 3 s refresh: the outcome must survive a redraw
        Reply.text(
            "Refund of **1042** is done: see https://example.com/r/1042 and `R-1042`.\n\n"
            "- not [a link](javascript:alert(1))\n- nor <b>html</b>"
        ).with_(delay=5),
    )
    store = sessions.SQLiteStore(str(tmp_path / "desk.db"))
    keys = sessions.KeyTable(store)
    patient, receptionist = keys.add("dana", ["patient"]).key, keys.add("rita", ["staff"]).key
    app = create_app(
        {"desk": make_desk(model, store=store)}, auth=StoredKeys(store), reviewers={"staff"}
    )
    with uvicorn_serving(app) as url:
        requested: list[str] = []
        pages = []
        for key in (patient, receptionist):
            page = unhurried(browser.new_context(viewport={"width": 390, "height": 844}).new_page())
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url + "/")
            page.locator("#keybox.shown").wait_for(timeout=60_000)  # a 401 asks for the key
            page.fill("#key", key)
            page.click("#savekey")
            expect(page.locator("#agent")).to_have_value("desk", timeout=60_000)
            pages.append(page)
        dana, rita = pages
        assert dana.locator("#queue.shown").count() == 0  # a patient has no queue
        dana.fill("#input", "Refund order 1042, please.")
        dana.press("#input", "Enter")
        waiting = dana.locator(".pending")
        waiting.wait_for(timeout=120_000)
        assert "Waiting for a reviewer" in waiting.inner_text()
        assert waiting.get_by_role("button").count() == 0  # the patient cannot decide

        item = rita.locator("#queue .item").filter(has_text="dana")
        item.wait_for(timeout=60_000)
        assert 'refund({"order_id": 1042})' in item.inner_text()
        OUTPUT.mkdir(exist_ok=True)
        rita.screenshot(path=str(OUTPUT / "serve-page-queue.png"), full_page=True)
        item.get_by_role("button", name="Approve").click()
        rita.locator("#queuenote").filter(has_text="Approved dana: refund.").wait_for(
            timeout=180_000
        )

        answer = dana.locator(".msg.assistant .text").filter(has_text="Refund of 1042 is done")
        answer.wait_for(timeout=120_000)
        assert answer.locator("strong").inner_text() == "1042"
        assert answer.locator("code").inner_text() == "R-1042"
        assert answer.locator("a").get_attribute("href") == "https://example.com/r/1042"
        assert answer.locator("li").count() == 2 and answer.locator("b").count() == 0
        assert "[a link](javascript:alert(1))" in answer.inner_text()  # left as text
        dana.screenshot(path=str(OUTPUT / "serve-page-answered.png"), full_page=True)
        rita.locator("#queue .who").filter(has_text="Nothing is waiting.").wait_for(timeout=60_000)
    assert model.requests[-1].messages[-1]["content"] == "order 1042: refunded"
    assert requested and all(u.startswith(url + "/") for u in requested), requested
    store.close()


def test_the_favicon_is_served(desk: Any) -> None:
    import httpx

    with uvicorn_serving(create_app({"desk": desk})) as url:
        for path in ("/favicon.svg", "/favicon.ico"):
            icon = httpx.get(url + path)
            assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
            assert icon.text.startswith("<svg")
