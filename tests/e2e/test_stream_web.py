"""Live delivery in the browser (protocol §9.9): one event stream per signed-in page.

The server holds at most ``HAVEN_SSE_MAX_STREAMS`` streams per process (4 with the test
settings) and notices a closed one only at its next heartbeat (15 s), so a page that
opened a stream per screen visit was soon answered 503 and stopped hearing of new
messages. These tests keep the default limit and heartbeat.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, Request, Route, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import (
    counsel_with_invite,
    login,
    logout,
    open_conversation,
    register,
    send_message,
)

EVENTS = re.compile(r"/api/v1/events(\?|$)")
# A conversation's pages (the first fetch and polling); one message by id is live delivery.
MESSAGE_PAGES = re.compile(r"/api/v1/conversations/[^/]+/messages\?")


def back_home(page: Page) -> None:
    """The conversation screen's Back link."""
    page.locator("main > p button.link").click()
    expect(page.locator("#logout")).to_be_visible()


class Requests:
    """The URLs a page asked for, so a test can count the streams it opened."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        self.urls.append(request.url)

    def matching(self, pattern: re.Pattern[str], since: int = 0) -> list[str]:
        """URLs matching `pattern` asked for after the first `since` requests."""
        return [u for u in self.urls[since:] if pattern.search(u)]


def survivor_and_counsel(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> tuple[Page, Page, Requests, str]:
    """A survivor (on her conversation screen) and her counsel signed in on the home screen
    (with the requests of counsel's page recorded, and counsel's username)."""
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    survivor, _ = contexts.page(IPHONE)
    register(survivor, live_server.url, token, "yasmin")
    open_conversation(survivor)
    page, _ = contexts.page(ANDROID)
    seen = Requests(page)
    page.goto(f"{live_server.url}/app/")
    login(page, counsel.account.username, PY_PASSPHRASE)
    expect(page.locator(".member")).to_have_count(2)
    return survivor, page, seen, counsel.account.username


def test_switching_conversations_keeps_one_stream_and_messages_arrive_live(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    survivor, page, seen, username = survivor_and_counsel(contexts, live_server, create_account)

    # Counsel goes back and forth: each visit waits until the screen is live ...
    for _ in range(8):
        open_conversation(page)
        back_home(page)
    # ... and a few more without waiting for anything.
    for _ in range(4):
        page.locator(".case-actions button[data-messages]").first.click()
        page.locator("main > p button.link").click()
    expect(page.locator("#logout")).to_be_visible()
    open_conversation(page)
    assert len(seen.matching(EVENTS)) == 1, seen.matching(EVENTS)

    # The survivor writes; counsel's open screen shows it without a reload, over the
    # stream (one message fetched by id), not by fetching the conversation's pages.
    mark = len(seen.urls)
    send_message(survivor, "Are you there? I have news about the hearing.")
    arrived = page.locator("li.message.theirs", has_text="I have news about the hearing.")
    expect(arrived).to_be_visible(timeout=8_000)
    assert seen.matching(MESSAGE_PAGES, mark) == []
    assert len(seen.matching(EVENTS)) == 1, seen.matching(EVENTS)

    # And the other way, still on the survivor's one stream.
    send_message(page, "Yes, tell me.")
    expect(survivor.locator("li.message.theirs", has_text="Yes, tell me.")).to_be_visible(
        timeout=8_000
    )

    # Signing out closes the stream; the next sign-in opens one new stream, which works.
    back_home(page)
    logout(page)
    login(page, username, PY_PASSPHRASE)
    open_conversation(page)
    back_home(page)
    open_conversation(page)
    assert len(seen.matching(EVENTS)) == 2, seen.matching(EVENTS)
    send_message(survivor, "Thank you.")
    expect(page.locator("li.message.theirs", has_text="Thank you.")).to_be_visible(timeout=8_000)


def test_a_refused_stream_is_retried_and_messages_arrive_meanwhile(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    survivor, page, seen, _ = survivor_and_counsel(contexts, live_server, create_account)

    # The server is full: every stream request is answered 503 busy.
    def busy(route: Route) -> None:
        route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "busy", "message": "too many streams"}}',
        )

    page.route(EVENTS, busy)
    # The page's timers on a clock the test moves: its polls and retries come when told,
    # not after real seconds of waiting.
    page.clock.install()
    page.locator(".case-actions button[data-messages]").first.click()
    expect(page.locator("ol.messages")).to_have_attribute("data-live", "false")
    expect(page.locator("main [role=status].busy")).to_have_text("")

    # The open conversation still gets new messages (fetched about every 10 s).
    send_message(survivor, "Sent while the server was busy.")
    with page.expect_request(EVENTS):  # tried again about 2 s after the refusal
        page.clock.fast_forward(2_000)
    page.clock.fast_forward(8_000)
    expect(
        page.locator("li.message.theirs", has_text="Sent while the server was busy.")
    ).to_be_visible(timeout=25_000)
    tries = len(seen.matching(EVENTS))
    assert tries >= 2, "the refused stream was tried again"

    # Room again: the stream comes back by itself (2 s, 4 s, 8 s … apart) and is live.
    page.unroute(EVENTS, busy)
    page.clock.fast_forward(60_000)
    expect(page.locator("ol.messages")).to_have_attribute("data-live", "true", timeout=45_000)
    send_message(survivor, "And now live again.")
    expect(page.locator("li.message.theirs", has_text="And now live again.")).to_be_visible(
        timeout=8_000
    )
