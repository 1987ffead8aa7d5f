"""Home on slow data, in real Chromium: its buttons stay where they are while the case list
arrives, so a tap made during loading lands on the button the person saw."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import Route, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import SMALL, Contexts
from tests.e2e.flows import home_settled, login

CASES = "**/api/v1/cases"


def test_home_actions_do_not_move_when_the_case_list_arrives(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, _ = create_account("counsel")
    survivor, _ = create_account("survivor", invited_by=counsel)
    assert survivor.account is not None
    page, _ = contexts.page(SMALL)
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)  # the case list waits until the test lets it through

    page.route(CASES, hold)
    page.goto(f"{live_server.url}/app/")
    with page.expect_request(CASES):
        login(page, survivor.account.username, PY_PASSPHRASE)
    expect(page.locator(".cases-region[aria-busy]")).to_have_count(1)
    first = page.locator("main .actions button").first
    before = first.bounding_box()

    for route in held:
        route.continue_()
    page.unroute(CASES, hold)
    home_settled(page)
    expect(page.locator(".case-actions button[data-case]")).to_have_count(1)
    assert first.bounding_box() == before
