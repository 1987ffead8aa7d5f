"""Passkeys in the browser (protocol §21.8, §21.9) with Chromium's virtual authenticator: a
counsel's passkey as second factor, and a survivor's PRF passkey as her whole way in."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE, LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import home_settled, sign_in
from vault.client.documents import Documents


class LocalhostServer(LiveServer):
    """The live server named by host name: browsers refuse WebAuthn on an IP address."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.url = f"http://localhost:{self.server.server_port}"
        app.config["HAVEN_PUBLIC_URL"] = self.url
        app.config["HAVEN_PUBLIC_ORIGIN"] = self.url
        app.config["HAVEN_WEBAUTHN_RP_ID"] = "localhost"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The default policy: counsel and admins need a second factor."""
    return make_app(HAVEN_FACTOR_REQUIRE_STAFF="true")


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app served at http://localhost:PORT."""
    with LocalhostServer(app) as server:
        yield server


def authenticator(page: Page) -> None:
    """A platform authenticator with user verification and PRF, answering by itself."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "ctap2Version": "ctap2_1",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "hasPrf": True,
        "automaticPresenceSimulation": True,
    }
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})


def add_passkey(page: Page, name: str) -> None:
    """Name and add a passkey on the factors screen; wait until it is listed."""
    page.click("#passkey-start")
    page.fill("#passkey-add input[name=passkey-name]", name)
    page.click("#passkey-add button[type=submit]")
    expect(page.locator("#passkeys .passkey-name")).to_have_text([name], timeout=60_000)


def test_counsel_enrols_a_passkey_and_needs_it_at_the_next_sign_in(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
) -> None:
    create_account("counsel", username="counsel.pk")
    page, watch = contexts.page(IPHONE, bypass_csp=True)
    authenticator(page)
    page.goto(f"{live_server.url}/app/")
    sign_in(page, "counsel.pk", PASSPHRASE)
    expect(page.locator("#factor-required")).to_be_visible(timeout=60_000)
    add_passkey(page, "Work phone")
    expect(page.locator("#passkeys .passkey")).to_contain_text("opens your account")
    assert run_axe(page, "passkeys") == []
    page.locator(".passkey button.link").click()
    page.fill(".passkey-rename input", "Office phone")
    page.click(".passkey-rename button[type=submit]")
    expect(page.locator("#passkeys .passkey-name")).to_have_text(["Office phone"])

    page.locator("main > p button.link").last.click()
    home_settled(page)
    page.click("#logout")
    sign_in(page, "counsel.pk", PASSPHRASE)
    expect(page.locator("#passkey-factor")).to_be_visible(timeout=60_000)
    expect(page.locator("#logout")).to_have_count(0)
    assert run_axe(page, "passkey-factor") == []
    page.click("#passkey-factor")
    expect(page.locator("#logout")).to_be_visible(timeout=60_000)
    assert watch.console_errors == []


def test_survivor_signs_in_with_her_passkey_alone_until_she_removes_it(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
) -> None:
    counsel, _ = create_account("counsel")
    survivor, _ = create_account("survivor", username="amal", invited_by=counsel)
    case_id = survivor.cases()[0]["id"]
    data = io.BytesIO(b"birth certificate scan")
    Documents(survivor).upload(case_id, data, doc_type="passport", name="acte.txt")
    page, watch = contexts.page(IPHONE)
    authenticator(page)
    page.goto(f"{live_server.url}/app/")
    sign_in(page, "amal", PASSPHRASE)
    home_settled(page)
    page.click("#open-factors", timeout=60_000)
    add_passkey(page, "My phone")
    expect(page.locator("#passkeys .passkey")).to_contain_text("opens your account")
    page.locator("main > p button.link").last.click()
    home_settled(page)
    page.click("#logout")

    # No username, no passphrase: the passkey and the phone's screen lock.
    page.click("#passkey-sign-in")
    expect(page.locator("#logout")).to_be_visible(timeout=60_000)
    page.locator(".case-actions button").first.click()
    expect(page.locator(".document h3", has_text="acte.txt")).to_be_visible(timeout=60_000)

    page.locator("main > .actions button.link").click()
    home_settled(page)
    page.click("#open-factors")
    page.click(".passkey-remove")
    expect(page.locator("#passkeys")).to_have_count(0)
    expect(page.get_by_text("No passkeys yet.")).to_be_visible()
    page.locator("main > p button.link").last.click()
    home_settled(page)
    page.click("#logout")
    page.click("#passkey-sign-in")
    expect(page.locator("#passkey-sign-in + p")).to_have_text("This passkey was not accepted.")
    expect(page.locator("#logout")).to_have_count(0)
    assert watch.console_errors == []
