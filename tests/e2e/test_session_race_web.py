"""A call still under way from an earlier sign-in must not end the next one in the same page.

Found by the persistent-profile work: signing out and in again on one page was sometimes
thrown back to "Your session ended", because a request of the first session answered 401
after the second sign-in and locked the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import Route, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import counsel_with_invite, login, logout, register


def test_a_401_for_the_previous_sign_in_does_not_lock_the_next_one(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "race.survivor")
    logout(page)

    held: list[Route] = []

    def hold_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)  # answered below, after the next sign-in

    page.route("**/api/v1/cases/*/member-requests", hold_first)
    with page.expect_request("**/api/v1/cases/*/member-requests"):
        login(page, "race.survivor")
    # The route handler runs as Playwright dispatches the request; let it.
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1, "the home screen asks for membership requests"
    logout(page)
    login(page, "race.survivor")

    # The first session's request reaches the real server now: its session has ended.
    first = held[0]
    answer = first.fetch()
    assert answer.status == 401
    with page.expect_event("requestfinished", lambda r: r.url == first.request.url):
        first.fulfill(response=answer)
    page.evaluate("() => new Promise((done) => setTimeout(done, 0))")
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator("input[name=passphrase]")).to_have_count(0)
