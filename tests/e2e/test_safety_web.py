"""Leaving safely: quick exit (button and Shift ×3), Back shows nothing, idle lock, storage."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, NEUTRAL, Contexts
from tests.e2e.flows import assert_holds_none_of, counsel_with_invite, login, register


def session_is_ended(page: Page, server: LiveServer, cookies: list[dict[str, Any]]) -> bool:
    """Whether the server refuses the session these cookies carried (polls a few seconds).

    It waits through ``page``, not with ``time.sleep``: Playwright runs the context's route
    handler only while this thread is inside a Playwright call, so a sign-out the page sent
    just before stayed held in the route, unsent, for as long as the test slept.
    """
    jar = {c["name"]: c["value"] for c in cookies}
    assert jar, "the browser had a session cookie"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = requests.get(f"{server.url}/api/v1/account", cookies=jar, timeout=10)
        if answer.status_code == 401:
            return True
        page.wait_for_timeout(200)
    return False


def signed_in_counsel(
    contexts: Contexts, server: LiveServer, create_account: Callable[..., Any], device: str
) -> tuple[Page, str]:
    """A counsel signed in in a fresh page that came from another site first."""
    client, _ = create_account("counsel")
    page, _ = contexts.page(device)
    page.goto("https://start.example/")
    page.goto(f"{server.url}/app/")
    login(page, client.account.username, PY_PASSPHRASE)
    return page, client.account.username


def assert_left_without_trace(
    page: Page, server: LiveServer, cookies: list[dict[str, Any]]
) -> None:
    """On the neutral site; Back leads to the site before, not to Haven; session ended."""
    page.wait_for_url(NEUTRAL)
    expect(page.locator("h1")).to_have_text("Wikipedia")
    page.go_back()
    assert not page.url.startswith(server.url), f"Back returned to {page.url}"
    expect(page.locator("h1")).to_have_text("Search")
    assert page.title() == "Search"
    assert session_is_ended(page, server, cookies)


@pytest.mark.parametrize("device", [IPHONE, ANDROID])
def test_quick_exit_button_leaves_nothing_on_back_and_ends_the_session(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any], device: str
) -> None:
    page, _ = signed_in_counsel(contexts, live_server, create_account, device)
    cookies = page.context.cookies()
    page.locator("#quick-exit").tap() if device == ANDROID else page.click("#quick-exit")
    assert_left_without_trace(page, live_server, cookies)


def test_shift_pressed_three_times_exits(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    page, _ = signed_in_counsel(contexts, live_server, create_account, IPHONE)
    cookies = page.context.cookies()
    # Two Shifts, another key, one Shift: not three in a row, so nothing happens.
    for key in ("Shift", "Shift", "a", "Shift"):
        page.keyboard.press(key)
    expect(page.locator("#logout")).to_be_visible()
    for _ in range(3):
        page.keyboard.press("Shift")
    assert_left_without_trace(page, live_server, cookies)


def test_quick_exit_link_works_before_any_script_runs(
    contexts: Contexts, live_server: LiveServer
) -> None:
    context, _ = contexts.new(IPHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/app/")
    link = page.locator("#quick-exit")
    assert link.get_attribute("href") == NEUTRAL
    link.click()
    page.wait_for_url(NEUTRAL)


def test_idle_lock_drops_keys_and_returns_to_login(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    client, _ = create_account("counsel")
    page, _ = contexts.page(IPHONE)
    page.clock.install()
    page.goto(f"{live_server.url}/app/")
    login(page, client.account.username, PY_PASSPHRASE)
    cookies = page.context.cookies()
    page.clock.run_for(4 * 60 * 1000)
    expect(page.locator("#logout")).to_be_visible()
    page.click("main h1")  # activity restarts the count
    page.clock.run_for(4 * 60 * 1000)
    expect(page.locator("#logout")).to_be_visible()
    page.clock.run_for(70 * 1000)
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("5 minutes")
    assert client.account.username not in page.locator("body").inner_text()
    assert session_is_ended(page, live_server, cookies)
    assert_holds_none_of(page, [client.account.username, PY_PASSPHRASE])


def test_quick_exit_is_first_in_tab_order_on_every_screen(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    first_tabbable = """() => {
        const all = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
            .filter(e => e.tabIndex >= 0 && !e.disabled && e.offsetParent !== null);
        return all[0] && all[0].id;
    }"""
    page.goto(f"{live_server.url}/app/#invite={token}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "quick-exit"
    assert page.evaluate(first_tabbable) == "quick-exit"
    register(page, live_server.url, token, "tab.order")
    assert page.evaluate(first_tabbable) == "quick-exit"
    page.locator(".member button").first.click()
    assert page.evaluate(first_tabbable) == "quick-exit"
    page.click("#quick-exit")
    page.wait_for_url(NEUTRAL)
    assert counsel.account is not None


def test_idle_lock_when_the_page_stays_hidden(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    client, _ = create_account("counsel")
    page, _ = contexts.page(ANDROID)
    page.clock.install()
    page.goto(f"{live_server.url}/app/")
    login(page, client.account.username, PY_PASSPHRASE)
    set_hidden = """hidden => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
        Object.defineProperty(document, 'visibilityState',
            {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
        document.dispatchEvent(new Event('visibilitychange'));
    }"""
    page.evaluate(set_hidden, True)
    # Background tabs barely run timers: jump ahead without running the 5-second checks.
    page.clock.set_system_time(page.evaluate("Date.now()") + 6 * 60 * 1000)
    expect(page.locator("#logout")).to_be_attached()
    page.evaluate(set_hidden, False)
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("5 minutes")
