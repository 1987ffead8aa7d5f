"""Anonymous intake in the browser (protocol §20): a reporter with no account submits from a
phone and keeps her receipt; the team's counsel reads and replies with the Python client; she
comes back in a fresh browser with the receipt alone, reads the reply and answers with a
message and a photo."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import FilePayload, Page, Request, Route, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, NEUTRAL, Contexts
from tests.e2e.flows import assert_holds_none_of
from vault.client.intake import Inbox
from vault.protocol import intake as pin

TEXT = "My employer keeps my passport and I work at the Lotus nail salon"
REPLY = "We can help. Is Thursday safe?"
ANSWER = "Thursday after nine works"
PHOTO = os.urandom(70_000)  # two chunks of §8.2


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with an easy proof of work."""
    return make_app(HAVEN_INTAKE_POW_BITS="8")


def record_requests(page: Page, sent: list[str]) -> None:
    """Keep the URL and body of every request the page and its workers send."""

    def seen(request: Request) -> None:
        try:
            body = request.post_data or ""
        except UnicodeDecodeError:
            body = ""
        sent.append(f"{request.url}\n{body}")

    page.context.on("request", seen)


def assert_sent_none_of(sent: list[str], receipt: str) -> None:
    """Neither the receipt nor any two of its words in a row, however joined, in a request."""
    pairs = [
        f"{a}{sep}{b}" for a, b in pairwise(receipt.split()) for sep in ("", " ", "+", "%20", '","')
    ]
    for item in sent:
        low = item.lower()
        assert receipt not in low
        for pair in pairs:
            assert pair not in low, f"the receipt's words {pair!r} left the page"


def cookies_cleared(page: Page, url: str) -> bool:
    """Whether the browser drops its cookies for the server (polls a few seconds)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if page.context.cookies(url) == []:
            return True
        page.wait_for_timeout(200)
    return False


def test_reporter_submits_counsel_replies_reporter_returns_with_receipt_and_answers(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
) -> None:
    admin, _ = create_account("admin", username="admin1")
    counsel, _ = create_account("counsel", username="intake.lawyer")
    assert counsel.account is not None
    admin.post("/intake/team/members", {"user_id": counsel.account.id})
    sent: list[str] = []

    # CSP is bypassed in these contexts only, so axe-core can be injected as a script tag.
    page, _ = contexts.page(IPHONE, bypass_csp=True)
    record_requests(page, sent)
    page.goto(f"{live_server.url}/app/")
    page.click("#intake-link")
    page.fill("textarea[name=intake-text]", TEXT)
    page.fill("input[name=intake-language]", "es")
    page.fill("input[name=intake-way]", "text message only")
    page.fill("input[name=intake-time]", "after 21:00")
    page.locator("input[name=intake-danger][value=yes]").check()
    assert page.context.cookies() == [], "no cookie before the first submit"
    page.click("#intake-form button[type=submit]")
    words = page.locator("#intake-receipt li .g")
    expect(words).to_have_count(12, timeout=90_000)
    receipt = " ".join(words.all_inner_texts())
    assert run_axe(page, "intake-receipt") == []
    page.click("#intake-receipt-done")
    for field in page.locator("input[data-word]").all():
        field.fill(receipt.split()[int(field.get_attribute("data-word") or 0) - 1])
    page.click("main form button[type=submit]")
    expect(page.locator("#intake-thread li")).to_have_count(1, timeout=60_000)
    expect(page.locator("#intake-receipt")).to_have_count(0)
    assert_holds_none_of(page, [receipt])

    inbox = Inbox(counsel)
    [listed] = inbox.reports()
    [first] = inbox.read(listed["id"])
    assert first.content == pin.Report(TEXT, "es", "text message only", "after 21:00", "yes")
    inbox.reply(listed["id"], REPLY)

    back, _ = contexts.page(ANDROID, bypass_csp=True)
    record_requests(back, sent)
    back.goto(f"{live_server.url}/app/#intake")
    back.click("#intake-have-receipt")
    back.fill("textarea[name=intake-receipt-words]", receipt.upper())
    back.click("main form button[type=submit]")
    thread = back.locator("#intake-thread li")
    expect(thread).to_have_count(2, timeout=90_000)
    expect(thread.nth(1)).to_contain_text(REPLY)
    back.fill("textarea[name=intake-reply]", ANSWER)
    parts: list[str] = []

    def cut_once(route: Route) -> None:
        """The first attempt at the part is cut off: the upload resumes."""
        parts.append(route.request.url.rsplit("/", 1)[-1])
        if len(parts) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    back.route("**/api/v1/intake/session/attachments/*/parts/*", cut_once)
    back.set_input_files(
        "input[name=intake-file]",
        files=FilePayload(name="passport.jpg", mimeType="image/jpeg", buffer=PHOTO),
    )
    back.click("main form button[type=submit]")
    expect(thread).to_have_count(4, timeout=60_000)
    assert parts == ["1", "1"], parts
    assert run_axe(back, "intake-thread") == []
    with back.expect_download() as download:
        back.click("[data-attachment]")
    assert download.value.suggested_filename == "passport.jpg"
    assert Path(download.value.path()).read_bytes() == PHOTO
    assert_holds_none_of(back, [receipt])
    assert back.context.cookies(live_server.url) != []
    back.click("#quick-exit")
    back.wait_for_url(NEUTRAL)
    assert cookies_cleared(back, live_server.url), "quick exit ends her intake session here"

    *_, attached, answered = inbox.read(listed["id"])
    assert answered.content == ANSWER
    assert isinstance(attached.content, pin.Attachment)
    assert attached.content.name == "passport.jpg" and attached.content.mime_type == "image/jpeg"
    assert inbox.fetch(listed["id"], attached.content) == PHOTO
    assert_sent_none_of(sent, receipt)
