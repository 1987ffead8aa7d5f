"""Pinned contacts in the browser (protocol §16): the counsel replaces their keys; the
survivor's page, in a fresh session that remembers nothing itself, shows the key change
from the contact book on the server and asks before the next send; the verified badge is
gone until the safety numbers are compared again."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import (
    assert_holds_none_of,
    counsel_with_invite,
    login,
    logout,
    open_conversation,
    register,
    send_message,
)
from tests.e2e.test_documents_web import open_documents, png, upload
from tests.e2e.test_rotation_web import SCREEN_390, back_home
from tests.integration.attacks import forge_key
from vault.client.messages import Messenger


def member_row(page: Page, name: str) -> Any:
    """The home screen's row of one case member."""
    return page.locator(".member[data-user]", has_text=name)


def test_key_change_asks_before_sending_and_drops_the_verified_badge(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    name = counsel.account.username
    page, watch = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    problems: dict[str, Any] = {}

    def at(screen: str) -> None:
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.screenshot(path=str(screenshots / f"en-{screen}.png"))
        found = run_axe(page, f"{screen}-en")
        if found:
            problems[screen] = found

    register(page, live_server.url, token, "amal")
    row = member_row(page, name)
    expect(row).to_be_visible(timeout=30_000)
    expect(row.locator("[data-badge]")).to_have_count(0)

    # She compares the safety number with her counsel and marks it verified.
    page.get_by_role("button", name=f"Safety number with {name}").click()
    expect(page.locator("#safety-not-verified")).to_have_text("Not verified yet.")
    page.click("#mark-verified")
    expect(page.locator("#safety-verified")).to_contain_text("Verified")
    number_before = page.locator("#safety-number").get_attribute("data-number")
    at("safety-verified")
    page.get_by_role("button", name="Back").click()
    expect(row.locator("[data-badge=verified]")).to_have_text("Verified")
    at("home-verified")

    # A fresh session remembers the badge: it lives in the contact book on the server.
    logout(page)
    login(page, "amal")
    expect(row.locator("[data-badge=verified]")).to_have_text("Verified", timeout=30_000)
    logout(page)

    # The counsel replaces their keys (another device, the Python client).
    counsel.rotate_keys(PY_PASSPHRASE)

    login(page, "amal")
    expect(row.locator("[data-badge=key-changed]")).to_have_text("Key changed", timeout=30_000)
    expect(row.locator("[data-badge=verified]")).to_have_count(0)
    at("home-key-changed")

    # The next send stops and asks; nothing goes out until she accepts.
    open_conversation(page)
    page.fill("textarea[name=text]", "Is this still you?")
    page.click("form.compose button[type=submit]")
    notice = page.locator("[data-key-changed]")
    expect(notice).to_contain_text(f"This person's keys changed: {name}")
    expect(page.locator("li.message.mine")).to_have_count(0)
    at("send-key-changed")
    messenger = Messenger(counsel)
    [conv] = messenger.conversations()
    assert messenger.read(conv["id"]) == []
    page.click("[data-accept-keys]")
    expect(page.locator("[data-accepted]")).to_contain_text(f"You accepted the new keys of {name}")
    send_message(page, "Is this still you?")
    assert [m.text for m in messenger.read(conv["id"])] == ["Is this still you?"]

    # Accepted, but not verified: the badge stays off until the numbers are compared again.
    back_home(page)
    expect(row.locator("[data-badge=key-changed]")).to_have_count(0)
    expect(row.locator("[data-badge=verified]")).to_have_count(0)
    page.get_by_role("button", name=f"Safety number with {name}").click()
    expect(page.locator("[data-key-changed]")).to_have_count(0)
    assert page.locator("#safety-number").get_attribute("data-number") != number_before
    expect(page.locator("#safety-not-verified")).to_be_visible()
    at("safety-after-key-change")
    page.click("#mark-verified")
    expect(page.locator("#safety-verified")).to_contain_text("Verified")
    page.get_by_role("button", name="Back").click()
    expect(row.locator("[data-badge=verified]")).to_have_text("Verified")

    assert problems == {}
    for screen in ("safety-verified", "home-verified", "home-key-changed", "send-key-changed"):
        assert (screenshots / f"en-{screen}.png").stat().st_size > 2000
    assert_holds_none_of(page, [name, PY_PASSPHRASE])
    assert watch.console_errors == []


def test_accepting_on_the_safety_screen_and_sharing_asks_too(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    name = counsel.account.username
    page, watch = contexts.page(IPHONE)
    register(page, live_server.url, token, "dalia")
    expect(member_row(page, name)).to_be_visible(timeout=30_000)
    open_documents(page)
    upload(page, "permit.png", png(), "image/png", "national_id")
    back_home(page)
    counsel.rotate_keys(PY_PASSPHRASE)

    # Sharing is a "send" too: it stops and asks.
    open_documents(page)
    page.get_by_role("button", name=f"Share permit.png with {name}").click()
    expect(page.locator("[data-key-changed]")).to_contain_text("keys changed")
    expect(page.locator(".document .grant", has_text=f"Shared with {name}")).to_have_count(0)
    page.click("[data-accept-keys]")
    expect(page.locator("[data-accepted]")).to_be_visible()
    page.get_by_role("button", name=f"Share permit.png with {name}").click()
    expect(page.locator(".document .grant", has_text=f"Shared with {name}")).to_be_visible()
    back_home(page)

    # Counsel rotates again; this time she accepts on the safety-number screen.
    counsel.rotate_keys(PY_PASSPHRASE)
    page.reload()  # a fresh page: only the contact book remembers
    login(page, "dalia")
    expect(member_row(page, name).locator("[data-badge=key-changed]")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name=f"Safety number with {name}").click()
    expect(page.locator("[data-key-changed]")).to_contain_text(re.compile("key changed", re.I))
    page.click("[data-accept-keys]")
    expect(page.locator("[data-key-changed]")).to_have_count(0)
    page.get_by_role("button", name="Back").click()
    expect(member_row(page, name).locator("[data-badge=key-changed]")).to_have_count(0)
    open_conversation(page)
    send_message(page, "Accepted on the safety screen.")
    assert watch.console_errors == []


def test_a_forged_key_at_a_pinned_version_is_refused_before_anything_is_sent(
    app: Flask, contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    name = counsel.account.username
    page, watch = contexts.page(IPHONE)
    register(page, live_server.url, token, "farah")
    expect(member_row(page, name)).to_be_visible(timeout=30_000)  # pinned at version 1
    logout(page)

    # The operator's attack (issue 11, 1): another key pair for the counsel at version 1,
    # correctly self-signed over the username, published in the log with the server's own
    # log key, and the counsel's key row pointed at it.
    forge_key(app, counsel.account.id)

    # A fresh session: the contact book on the server remembers the real version 1.
    login(page, "farah")
    row = member_row(page, name)
    expect(row.locator("[data-badge=refused]")).to_have_text("Keys refused", timeout=30_000)
    page.get_by_role("button", name=f"Safety number with {name}").click()
    expect(page.locator("[data-equivocation]")).to_contain_text("Only the server can do that")
    expect(page.locator("[data-accept-keys]")).to_have_count(0)
    expect(page.locator("#mark-verified")).to_have_count(0)
    page.get_by_role("button", name="Back").click()
    open_conversation(page)
    page.fill("textarea[name=text]", "This must not reach the forged key.")
    page.click("form.compose button[type=submit]")
    expect(page.locator("main .form-error")).to_contain_text("shown before with other keys")
    expect(page.locator("[data-accept-keys]")).to_have_count(0)
    [conv] = counsel.get("/conversations")["conversations"]
    assert counsel.get(f"/conversations/{conv['id']}/messages")["messages"] == []
    assert watch.console_errors == []
