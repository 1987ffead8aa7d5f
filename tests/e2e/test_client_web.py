"""The served client: integrity, caching, weight, small screens, keyboard; counsel and keys."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from playwright.sync_api import expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, SMALL, Contexts
from tests.e2e.flows import (
    NEW_PASSPHRASE,
    PASSPHRASE,
    counsel_with_invite,
    invite_token,
    login,
    register,
)
from vault.accounts import services as accounts
from vault.accounts.models import User, UserKey
from vault.client import ApiError, HavenClient
from vault.db import database
from vault.protocol import keys as pkeys
from vault.webapp.views import cache_control


def count_requests(app: Flask, prefix: str) -> list[str]:
    """Record every request path starting with ``prefix`` that reaches the server from now on."""
    seen: list[str] = []
    inner = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(prefix):
            seen.append(path)
        return inner(environ, start_response)  # type: ignore[no-any-return]

    app.wsgi_app = counting  # type: ignore[method-assign]
    return seen


def test_page_pins_every_script_and_stylesheet_with_sri(
    web_build: Path, live_server: LiveServer
) -> None:
    page = requests.get(f"{live_server.url}/app/", timeout=10)
    assert page.status_code == 200
    html = page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self' 'wasm-unsafe-eval'" in page.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert len(scripts) == 2
    for tag in scripts + re.findall(r"<link\b[^>]*stylesheet[^>]*>", html):
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/]{64}"', tag), tag
        assert re.search(r'(src|href)="/assets/', tag), tag
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    assert "http" not in html.replace('href="https://www.wikipedia.org/"', "")
    for asset in re.findall(r'"(/assets/[^"]+)"', html):
        answer = requests.get(f"{live_server.url}{asset}", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == cache_control(asset.rsplit("/", 1)[-1])
    files = [p for p in (web_build / "assets").iterdir()]
    assert not [p for p in files if p.suffix == ".map"]
    for script in (web_build / "assets").glob("*.js"):
        assert b"sourceMappingURL" not in script.read_bytes()
    hashes = (web_build / "asset-hashes.txt").read_text()
    for script in (web_build / "assets").glob("*.js"):
        assert script.name in hashes


def test_libsodium_is_fetched_once_and_then_cached(
    app: Flask, contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    client, _ = create_account("counsel")
    sodium = count_requests(app, "/")
    # No request interception here: interception would turn the HTTP cache off.
    page, watch = contexts.page(ANDROID, stub_outside=False)
    page.goto(f"{live_server.url}/app/")
    login(page, client.account.username, PY_PASSPHRASE)
    page.click("#logout")
    login(page, client.account.username, PY_PASSPHRASE)
    page.reload()
    login(page, client.account.username, PY_PASSPHRASE)
    assert len([p for p in sodium if p.startswith("/assets/sodium-")]) == 1, " ".join(sodium)
    assert watch.console_errors == []
    assert watch.outside == []


def test_usable_at_320_px_with_44_px_targets_and_keyboard_only(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, _ = contexts.page(SMALL)
    assert page.viewport_size is not None and page.viewport_size["width"] == 320
    small_targets = """() => [...document.querySelectorAll('a[href], button, input, select, textarea')]
        .filter(e => e.offsetParent !== null)
        .map(e => {
            const target = e.type === 'checkbox' ? e.closest('.check-row') : e;
            const r = target.getBoundingClientRect();
            return {what: e.outerHTML.slice(0, 60), w: r.width, h: r.height};
        })
        .filter(r => r.w < 44 || r.h < 44)"""

    def check_screen() -> None:
        expect(page.locator("h1")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, f"horizontal scrolling at 320 px ({width})"
        assert page.evaluate(small_targets) == []

    page.goto(f"{live_server.url}/app/#invite={token}")
    check_screen()
    # Keyboard only: Tab to each field, type, Enter.
    page.keyboard.press("Tab")  # quick exit
    page.keyboard.press("Tab")  # language
    page.keyboard.press("Tab")  # safety tips
    page.keyboard.press("Tab")
    page.keyboard.type("keyboard.only")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSPHRASE)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSPHRASE)
    page.keyboard.press("Enter")
    expect(page.locator(".key-groups")).to_be_visible(timeout=60_000)
    check_screen()
    groups = [g.strip() for g in page.locator(".key-groups .g").all_inner_texts()]
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Show as a code for someone you trust"
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "I have written it down"
    page.keyboard.press("Enter")
    check_screen()
    page.keyboard.press("Tab")
    for _ in range(2):
        number = int(page.evaluate("document.activeElement.dataset.group"))
        page.keyboard.type(groups[number - 1].lower())
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator(".member")).to_have_count(2)
    check_screen()
    page.locator(".member button").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("svg.qr")).to_be_visible()
    check_screen()
    assert counsel.account is not None


def test_counsel_creates_an_invite_that_a_survivor_redeems(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, _ = create_account("counsel")
    page, _ = contexts.page(IPHONE)
    page.goto(f"{live_server.url}/app/")
    login(page, counsel.account.username, PY_PASSPHRASE)
    expect(page.locator(".empty")).to_be_visible()
    page.get_by_role("button", name="Invite a client").click()
    page.get_by_role("button", name="Create invite link").click()
    link = page.locator("#invite-link").input_value()
    assert "#invite=" in link
    survivor = HavenClient(live_server.url, witnesses=live_server.witnesses)
    survivor.register(
        f"{live_server.url}/app/#invite={invite_token(link)}", "new.client", "a survivor passphrase"
    )
    page.get_by_role("button", name="Done").click()
    expect(page.locator(".member-name", has_text="new.client")).to_be_visible()
    # The link was shown once: it is nowhere on the home screen.
    assert invite_token(link) not in page.content()


def test_change_passphrase_in_the_browser(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, _ = contexts.page(ANDROID)
    register(page, live_server.url, token, "changer")
    page.get_by_role("button", name="Change passphrase").click()
    page.fill("input[name=current]", "not my passphrase at all")
    page.fill("input[name=new-passphrase]", NEW_PASSPHRASE)
    page.fill("input[name=passphrase-again]", NEW_PASSPHRASE)
    page.click("form button[type=submit]")
    expect(page.locator(".form-error")).to_contain_text(
        "current passphrase is wrong", timeout=60_000
    )
    page.fill("input[name=current]", PASSPHRASE)
    page.click("form button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("Passphrase changed", timeout=60_000)
    expect(page.locator(".member")).to_have_count(2)
    HavenClient(live_server.url, witnesses=live_server.witnesses).login("changer", NEW_PASSPHRASE)
    try:
        HavenClient(live_server.url, witnesses=live_server.witnesses).login("changer", PASSPHRASE)
        raise AssertionError("the old passphrase still works")
    except ApiError as err:
        assert err.status == 401
    assert counsel.account is not None


def test_warning_when_a_contacts_key_changes(
    app: Flask, contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "watcher")
    name = counsel.account.username
    button = page.get_by_role("button", name=f"Safety number with {name}")
    button.click()
    before = page.locator("#safety-number").get_attribute("data-number")
    expect(page.locator(".warn-box")).to_have_count(0)
    page.get_by_role("button", name="Back").click()

    # The counsel's account gets a new key version, logged as a key rotation publishes it.
    with app.app_context():
        db = database(app).sessions()
        user = db.get(User, counsel.account.id)
        assert user is not None
        fresh = pkeys.KeyPairs.generate(version=2).public(name)
        key = UserKey(
            user_id=user.id,
            version=2,
            x25519=fresh.x25519,
            ed25519=fresh.ed25519,
            signature=fresh.signature,
        )
        db.add(key)
        user.key_version = 2
        db.flush()
        accounts.publish_key(db, app.extensions["haven.keyring"], key)
        db.commit()
        db.close()

    page.get_by_role("button", name="Change passphrase").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator(".badge.warn")).to_have_text("Key changed")
    button.click()
    expect(page.locator(".warn-box")).to_contain_text("key changed")
    after = page.locator("#safety-number").get_attribute("data-number")
    assert after != before
    page.get_by_role("button", name="Accept the new keys").click()
    expect(page.locator(".warn-box")).to_have_count(0)
