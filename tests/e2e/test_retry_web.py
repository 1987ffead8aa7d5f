"""A busy or full server, as the page sees it (issue 12).

A message send or an upload part answered 503 with Retry-After is sent again after the
advised wait, with the page saying it is retrying; 507 storage_full says nothing was
stored. The server is the real one; Playwright routing only answers the first request in
the server's place with the error it would send (the app's own origin, the one error shape).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Route, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import counsel_with_invite, open_conversation, register
from tests.e2e.test_documents_web import open_documents
from vault.client.documents import Documents
from vault.client.messages import Messenger

SEND = re.compile(r"/api/v1/conversations/[^/]+/messages$")
PARTS = "**/api/v1/documents/*/parts/*"
FINALIZE = "**/api/v1/documents/*/finalize"


def _error(route: Route, status: int, code: str, retry_after: str | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    route.fulfill(
        status=status,
        headers=headers,
        content_type="application/json",
        body=json.dumps({"error": {"code": code, "message": "injected"}}),
    )


def test_a_send_answered_503_is_retried_after_the_advised_wait(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, watch = contexts.page(IPHONE)
    register(page, live_server.url, token, "layla")
    open_conversation(page)
    tries: list[str] = []

    def first_busy(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        tries.append(route.request.post_data or "")
        if len(tries) == 1:
            _error(route, 503, "limiter_unavailable", "3")
        else:
            route.continue_()

    page.route(SEND, first_busy)
    page.clock.install()  # the advised wait passes when the test moves the page's clock
    page.fill("textarea[name=text]", "Sent while the server was busy.")
    page.click("form.compose button[type=submit]")
    status = page.locator("main [role=status].busy")
    expect(status).to_have_text("The server is busy. Sending again in 3 s…")
    page.clock.fast_forward(3_000)
    expect(
        page.locator("li.message.mine", has_text="Sent while the server was busy.")
    ).to_be_visible(timeout=30_000)
    expect(status).to_have_text("")
    expect(page.locator("main [role=alert]").first).to_have_text("")
    # The same bytes twice, stored once.
    assert len(tries) == 2 and tries[0] == tries[1]
    messenger = Messenger(counsel)
    [conv] = messenger.conversations()
    assert [m.text for m in messenger.read(conv["id"])] == ["Sent while the server was busy."]
    assert watch.console_errors == []


def test_an_upload_part_answered_503_is_retried_after_the_advised_wait(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "samira")
    open_documents(page)
    seen: list[str] = []

    def first_part_busy(route: Route) -> None:
        seen.append(route.request.url.rsplit("/", 1)[-1])
        if len(seen) == 1:
            _error(route, 503, "database_unavailable", "3")
        else:
            route.continue_()

    page.route(PARTS, first_part_busy)
    page.clock.install()  # the advised wait passes when the test moves the page's clock
    page.set_input_files(
        "input[name=file]",
        {"name": "visa.pdf", "mimeType": "application/pdf", "buffer": os.urandom(200_000)},
    )
    page.select_option("select[name=doctype]", "passport")
    page.click("form.upload button[type=submit]")
    expect(page.locator("form.upload [role=status]")).to_have_text(
        "The server is busy. Continuing the upload in 3 s…"
    )
    page.clock.fast_forward(3_000)
    expect(page.locator(".document h3", has_text="visa.pdf")).to_be_visible(timeout=60_000)
    assert seen == ["1", "1"], seen


def test_storage_full_says_nothing_was_stored(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "rania")
    open_documents(page)
    page.route(PARTS, lambda route: _error(route, 507, "storage_full", None))
    page.set_input_files(
        "input[name=file]",
        {"name": "lease.pdf", "mimeType": "application/pdf", "buffer": os.urandom(100_000)},
    )
    page.select_option("select[name=doctype]", "passport")
    page.click("form.upload button[type=submit]")
    expect(page.locator("form.upload [role=alert]")).to_have_text(
        "The server has run out of storage space, so nothing was stored. Try again later;"
        " if it keeps happening, tell your organisation."
    )
    expect(page.locator("form.upload [role=status]")).to_have_text("")
    expect(page.locator(".document h3", has_text="lease.pdf")).to_have_count(0)
    assert Documents(counsel).case_documents(counsel.cases()[0]["id"]).documents == []
