"""Second factors in the browser (protocol §21): a counsel is sent to TOTP set-up after
sign-in, keeps the recovery codes shown once, and needs a code at the next sign-in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE, LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import home_settled
from vault import clock
from vault.accounts.factors import TOTP_PERIOD


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with the default policy: counsel and admins need a second factor."""
    return make_app(HAVEN_FACTOR_REQUIRE_STAFF="true")


@pytest.fixture
def jump() -> Iterator[Callable[[float], None]]:
    """Move the server's clock forward; put it back afterwards."""
    yield clock.jump
    clock.reset()


def code(secret: str, steps_from_now: int = 0) -> str:
    """The TOTP code of a time step relative to the server's clock."""
    return pyotp.TOTP(secret).generate_otp(int(clock.time() // TOTP_PERIOD) + steps_from_now)


def sign_in(page: Page, username: str) -> None:
    """Username and passphrase on the sign-in screen."""
    page.fill("input[name=username]", username)
    page.fill("input[name=passphrase]", PASSPHRASE)
    page.click("form button[type=submit]")


def test_counsel_sets_up_totp_when_sent_and_needs_a_code_next_time(
    jump: Callable[[float], None],
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
) -> None:
    create_account("counsel", username="counsel.totp")
    page, watch = contexts.page(IPHONE, bypass_csp=True)
    page.goto(f"{live_server.url}/app/")
    sign_in(page, "counsel.totp")
    expect(page.locator("#factor-required")).to_be_visible(timeout=60_000)
    page.click("#factor-start")
    expect(page.locator("svg.qr")).to_be_visible()
    secret = page.locator("#factor-secret").inner_text()
    assert run_axe(page, "factor-setup") == []
    page.fill("input[name=code]", code(secret, -3))
    page.click("#factor-confirm button[type=submit]")
    expect(page.locator(".field-error")).to_have_text("The code is wrong or has expired.")
    # The next step's code (inside the window): the same string stays inside it for at
    # least a minute, so the reuse below is refused as used, not as expired, under load.
    used = code(secret, 1)
    page.fill("input[name=code]", used)
    page.click("#factor-confirm button[type=submit]")
    expect(page.locator("#factor-codes li")).to_have_count(10)
    assert run_axe(page, "factor-codes") == []
    page.click("#factor-codes-done")
    expect(page.locator("#factor-on")).to_be_visible()
    # Her role must keep it: no way to turn it off here.
    expect(page.locator("#factor-remove")).to_have_count(0)

    page.locator("main > p button.link").click()
    home_settled(page)
    page.click("#logout")
    sign_in(page, "counsel.totp")
    expect(page.locator("input[name=code]")).to_be_visible(timeout=60_000)
    expect(page.locator("#logout")).to_have_count(0)
    assert run_axe(page, "factor-sign-in") == []
    page.fill("input[name=code]", used)
    page.click("form button[type=submit]")
    expect(page.locator(".field-error")).to_have_text(
        "This code was already used. Wait for the next one."
    )
    # Two steps on, a fresh code is later than the used one whenever the test runs.
    jump(2 * TOTP_PERIOD)
    page.fill("input[name=code]", code(secret))
    page.click("form button[type=submit]")
    expect(page.locator("#logout")).to_be_visible()
    assert watch.console_errors == []
