"""Accounts in the browser: register from an invite, log out, log in elsewhere, recover."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import (
    NEW_PASSPHRASE,
    PASSPHRASE,
    assert_holds_none_of,
    counsel_with_invite,
    login,
    logout,
    register,
)
from vault.client import HavenClient
from vault.protocol import safety


def test_register_logout_login_elsewhere_and_recover(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, watch = contexts.page(IPHONE)
    recovery_key = register(page, live_server.url, token, "amira.web")
    assert page.url == f"{live_server.url}/app/", "the invite token left the URL"
    expect(page.locator(".member-name", has_text=counsel.account.username)).to_be_visible()

    # The browser's safety number is the Python client's, byte for byte.
    survivor = HavenClient(live_server.url, witnesses=live_server.witnesses)
    survivor.login("amira.web", PASSPHRASE)
    me, other = survivor.account, counsel.account
    assert me is not None and other is not None
    expected = safety.safety_number(
        safety.fingerprint(me.id, 1, me.public_keys.x25519, me.public_keys.ed25519),
        safety.fingerprint(other.id, 1, other.public_keys.x25519, other.public_keys.ed25519),
    )
    page.get_by_role("button", name=f"Safety number with {other.username}").click()
    expect(page.locator("#safety-number")).to_have_attribute("data-number", expected)
    expect(page.locator("svg.qr")).to_be_visible()
    page.get_by_role("button", name="Back").click()

    logout(page)
    assert_holds_none_of(page, ["amira.web", PASSPHRASE, recovery_key, other.username])

    phone2, _ = contexts.page(ANDROID)
    phone2.goto(f"{live_server.url}/app/")
    login(phone2, "amira.web")
    expect(phone2.locator(".member-name", has_text=other.username)).to_be_visible()

    phone3, _ = contexts.page(IPHONE)
    phone3.goto(f"{live_server.url}/app/")
    phone3.get_by_role("button", name="Use your recovery key").click()
    phone3.fill("input[name=username]", "amira.web")
    phone3.fill("input[name=recovery-key]", recovery_key.lower().replace("-", " "))
    phone3.fill("input[name=new-passphrase]", NEW_PASSPHRASE)
    phone3.fill("input[name=passphrase-again]", NEW_PASSPHRASE)
    phone3.click("form button[type=submit]")
    expect(phone3.locator("#logout")).to_be_visible(timeout=60_000)
    expect(phone3.locator(".notice")).to_be_visible()

    # The new passphrase works everywhere, the old one nowhere.
    HavenClient(live_server.url, witnesses=live_server.witnesses).login("amira.web", NEW_PASSPHRASE)
    logout(phone3)
    phone3.fill("input[name=username]", "amira.web")
    phone3.fill("input[name=passphrase]", PASSPHRASE)
    phone3.click("form button[type=submit]")
    expect(phone3.get_by_role("alert")).to_contain_text("wrong", timeout=60_000)
    assert watch.console_errors == []


def test_language_picker_switches_direction_and_keeps_what_was_typed(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(ANDROID, locale="es-ES")
    page.goto(f"{live_server.url}/app/#invite={token}")
    # The browser's preferred language is used first.
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1")).to_have_text("Cree su cuenta")
    page.fill("input[name=username]", "typed.before")
    page.select_option("#lang", "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("h1")).to_have_text("أنشئ حسابك")
    assert page.input_value("input[name=username]") == "typed.before"
    assert page.title() == "ملاحظات"
    page.select_option("#lang", "en")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    expect(page.locator("#quick-exit")).to_have_text("Quick exit")
    assert page.input_value("input[name=username]") == "typed.before"
