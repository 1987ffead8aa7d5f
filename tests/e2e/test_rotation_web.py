"""Replacing a survivor's keys in the browser (protocol §14), and own-key monitoring at login.

A survivor whose key an administrator marked compromised is sent to "Replace your keys" at
sign-in; after the rotation every old message (both directions) and every document still
opens, for her and for her counsel, whose page warns that her safety number changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import (
    NEW_PASSPHRASE,
    PASSPHRASE,
    assert_holds_none_of,
    choose_language,
    counsel_with_invite,
    login,
    open_conversation,
    register,
    replace_keys,
    send_message,
    sign_in,
)
from tests.e2e.test_documents_web import open_documents, png, upload
from tests.e2e.test_safety_web import session_is_ended
from vault.client import ApiError, HavenClient
from vault.client.messages import Messenger
from vault.protocol.encoding import b64decode, b64encode

SCREEN_390: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "screen": {"width": 390, "height": 844},
    "device_scale_factor": 1,
}

# Records every text the rotation's progress line shows, so a test can check "n of total".
WATCH_PROGRESS = """() => {
    window.__progress = [];
    new MutationObserver(() => {
        const line = document.querySelector('#rotate-status');
        if (line && line.textContent) window.__progress.push(line.textContent);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def survivor_id(counsel: HavenClient) -> str:
    """The survivor's account id in the counsel's (only) case."""
    [case] = counsel.cases()
    return str(next(m["user_id"] for m in case["members"] if m["role"] == "survivor"))


def mark_compromised(create_account: Callable[..., Any], user_id: str) -> None:
    """An administrator marks the account's current key compromised, over the API."""
    boss, _ = create_account("admin")
    answer = boss.post(f"/admin/accounts/{user_id}/compromised")
    assert answer["key"]["status"] == "compromised"


def back_home(page: Page) -> None:
    """From the conversation or documents screen back to the home screen."""
    page.locator("main button.link", has_text=re.compile(r"^\s*Back\s*$")).last.click()
    expect(page.locator("#logout")).to_be_visible()


def view_image(page: Page, name: str) -> None:
    """View an image document in the page and wait until it decoded."""
    page.get_by_role("button", name=f"View {name}").click()
    expect(page.locator(".viewer img.preview")).to_be_visible()
    page.wait_for_function("() => document.querySelector('.viewer img').naturalWidth === 48")


def test_survivor_replaces_compromised_keys_and_everything_stays_readable(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    counsel_name = counsel.account.username

    # Before: a document shared with counsel and messages both ways.
    survivor, survivor_watch = contexts.page(IPHONE)
    old_recovery = register(survivor, live_server.url, token, "rania")
    open_documents(survivor)
    upload(survivor, "id card.png", png(), "image/png", "national_id")
    survivor.get_by_role("button", name=f"Share id card.png with {counsel_name}").click()
    expect(
        survivor.locator(".document .grant", has_text=f"Shared with {counsel_name}")
    ).to_be_visible()
    back_home(survivor)
    open_conversation(survivor)
    send_message(survivor, "Before: my phone is still mine.")

    page, counsel_watch = contexts.page(ANDROID)
    page.goto(f"{live_server.url}/app/")
    login(page, counsel_name, PY_PASSPHRASE)
    expect(page.locator(".member")).to_have_count(2)
    page.get_by_role("button", name="Safety number with rania").click()
    number_before = page.locator("#safety-number").get_attribute("data-number")
    page.get_by_role("button", name="Back").click()
    open_conversation(page)
    expect(page.locator("li.message.theirs")).to_contain_text("Before: my phone is still mine.")
    send_message(page, "Before: counsel here.")
    expect(survivor.locator("li.message.theirs")).to_contain_text(
        "Before: counsel here.", timeout=15_000
    )
    back_home(page)

    # The phone is taken: an administrator marks the survivor's key compromised, which
    # ends her sessions. Counsel sees that her keys are being replaced and cannot send.
    mark_compromised(create_account, survivor_id(counsel))
    page.get_by_role("button", name="Safety number with rania").click()
    page.get_by_role("button", name="Back").click()
    expect(page.locator(".member[data-user] .badge.warn")).to_have_text("Waiting for new keys")
    open_conversation(page)
    page.fill("textarea[name=text]", "This cannot go out yet.")
    page.click("form.compose button[type=submit]")
    expect(page.locator("main .form-error")).to_contain_text("replacing their keys")
    page.fill("textarea[name=text]", "")
    back_home(page)

    # She signs in again (another device) and is sent straight to "Replace your keys".
    survivor.goto(f"{live_server.url}/app/")
    sign_in(survivor, "rania")
    expect(survivor.locator("h1")).to_have_text("Replace your keys", timeout=60_000)
    expect(survivor.locator("[data-forced=true]")).to_contain_text(
        "marked the keys on your account as unsafe"
    )
    survivor.evaluate(WATCH_PROGRESS)
    new_recovery = replace_keys(survivor)
    assert new_recovery != old_recovery
    expect(survivor.locator(".notice")).to_contain_text("Your keys were replaced")
    expect(survivor.locator("#must-rotate")).to_have_count(0)
    progress = survivor.evaluate("window.__progress")
    assert any(re.fullmatch(r"Locked to your new keys: (\d+) of \1", p) for p in progress), progress
    assert any(p.startswith("Checking your new keys in the public key log") for p in progress), (
        progress
    )

    # Her old messages, both directions, and her document still open.
    open_conversation(survivor)
    expect(survivor.locator("li.message.mine")).to_contain_text("Before: my phone is still mine.")
    expect(survivor.locator("li.message.theirs")).to_contain_text("Before: counsel here.")
    expect(survivor.locator("li.message .error-box")).to_have_count(0)
    back_home(survivor)
    open_documents(survivor)
    view_image(survivor, "id card.png")
    back_home(survivor)
    open_conversation(survivor)

    # Counsel still reads everything; the page warns that her keys changed and asks
    # before the next send (§16), which goes out once counsel accepts the new keys.
    page.get_by_role("button", name="Safety number with rania").click()
    page.get_by_role("button", name="Back").click()  # home again, members checked afresh
    expect(page.locator(".member[data-user] .badge.warn")).to_have_text("Key changed")
    page.get_by_role("button", name="Safety number with rania").click()
    expect(page.locator(".warn-box")).to_contain_text("key changed")
    assert page.locator("#safety-number").get_attribute("data-number") != number_before
    page.get_by_role("button", name="Back").click()
    open_conversation(page)
    expect(page.locator("li.message.theirs")).to_contain_text("Before: my phone is still mine.")
    expect(page.locator("li.message.mine")).to_contain_text("Before: counsel here.")
    expect(page.locator("li.message .error-box")).to_have_count(0)
    page.fill("textarea[name=text]", "After: your new keys work.")
    page.click("form.compose button[type=submit]")
    expect(page.locator("[data-key-changed]")).to_contain_text("This person's keys changed: rania")
    page.click("[data-accept-keys]")
    expect(page.locator("[data-accepted]")).to_be_visible()
    send_message(page, "After: your new keys work.")
    expect(
        survivor.locator("li.message.theirs", has_text="After: your new keys work.")
    ).to_be_visible(timeout=15_000)
    send_message(survivor, "After: thank you.")
    expect(page.locator("li.message.theirs", has_text="After: thank you.")).to_be_visible(
        timeout=15_000
    )
    back_home(page)
    expect(page.locator(".member[data-user] .badge.warn")).to_have_count(0)
    open_documents(page)
    view_image(page, "id card.png")

    # The server holds version 2, and only the new recovery key opens the account.
    keys = counsel.get(f"/users/{survivor_id(counsel)}/keys")
    assert keys["current_version"] == 2
    assert [k["status"] for k in keys["keys"]] == ["compromised", "current"]
    with pytest.raises(ApiError):
        HavenClient(live_server.url, witnesses=live_server.witnesses).recover(
            "rania", old_recovery, NEW_PASSPHRASE
        )
    HavenClient(live_server.url, witnesses=live_server.witnesses).recover(
        "rania", new_recovery, NEW_PASSPHRASE
    )
    assert survivor_watch.console_errors == [] and counsel_watch.console_errors == []


def test_replace_keys_from_settings_signs_out_the_lost_phone(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, watch = contexts.page(IPHONE)
    register(page, live_server.url, token, "lina")
    open_conversation(page)
    send_message(page, "Written before the phone was lost.")
    back_home(page)

    # The "lost phone": another browser signed in to the same account.
    lost, _ = contexts.page(ANDROID)
    lost.goto(f"{live_server.url}/app/")
    login(lost, "lina")
    lost_cookies = [dict(c) for c in lost.context.cookies()]

    page.get_by_role("button", name="Replace my keys (lost or taken phone)").click()
    expect(page.locator("h1")).to_have_text("Replace your keys")
    expect(page.locator("[data-forced]")).to_have_count(0)
    page.fill("input[name=passphrase]", "not the passphrase at all")
    page.click("form button[type=submit]")
    expect(page.locator("main .form-error")).to_contain_text(
        "current passphrase is wrong", timeout=60_000
    )
    replace_keys(page)
    assert session_is_ended(lost, live_server, lost_cookies)

    open_conversation(page)
    expect(page.locator("li.message.mine")).to_contain_text("Written before the phone was lost.")
    # The Python client reads what she wrote with her old key, and what it sends now is
    # sealed to her new key.
    messenger = Messenger(counsel)
    [conv] = messenger.conversations()
    assert [m.text for m in messenger.read(conv["id"])] == ["Written before the phone was lost."]
    messenger.send(conv["id"], "Sent to your new keys.")
    expect(page.locator("li.message.theirs")).to_contain_text(
        "Sent to your new keys.", timeout=15_000
    )
    back_home(page)

    # Quick exit from the screen with the passphrase typed: nothing of it stays behind.
    page.get_by_role("button", name="Replace my keys (lost or taken phone)").click()
    page.fill("input[name=passphrase]", PASSPHRASE)
    cookies = [dict(c) for c in page.context.cookies()]
    for _ in range(3):
        page.keyboard.press("Shift")
    page.wait_for_url("https://www.wikipedia.org/")
    assert session_is_ended(page, live_server, cookies)
    assert watch.console_errors == []


def test_idle_lock_forgets_the_new_recovery_key(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    page.clock.install()
    register(page, live_server.url, token, "noor")
    page.get_by_role("button", name="Replace my keys (lost or taken phone)").click()
    page.fill("input[name=passphrase]", PASSPHRASE)
    page.click("form button[type=submit]")
    expect(page.locator(".key-groups")).to_be_visible(timeout=90_000)
    groups = page.locator(".key-groups li .g").all_inner_texts()
    page.clock.run_for(6 * 60 * 1000)
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("5 minutes")
    body = page.locator("body").inner_text()
    assert not any(g in body for g in groups)
    assert_holds_none_of(page, ["-".join(groups), PASSPHRASE])
    # The passphrase still opens the account, now at key version 2.
    login(page, "noor")
    expect(page.locator("#must-rotate")).to_have_count(0)


def test_a_key_in_my_name_that_i_never_made_refuses_sign_in(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    client, _ = create_account("counsel")
    assert client.account is not None
    page, _ = contexts.page(IPHONE)

    def forge(route: Route) -> None:
        answer = route.fetch()
        data = answer.json()
        entry = next(e for e in data["entries"] if e["kind"] == "publish")
        raw = bytearray(b64decode(entry["data"]))
        raw[-130] ^= 1  # in the X25519 key: a second version 1 in my name, not the one I hold
        data["entries"].append(
            {**entry, "index": entry["index"] + 1000, "data": b64encode(bytes(raw))}
        )
        route.fulfill(response=answer, json=data)

    page.route("**/api/v1/directory/mine", forge)
    page.goto(f"{live_server.url}/app/")
    sign_in(page, client.account.username, PY_PASSPHRASE)
    expect(page.get_by_role("alert")).to_contain_text("keys in your name", timeout=60_000)
    expect(page.locator("#logout")).to_have_count(0)
    page.unroute("**/api/v1/directory/mine")
    login(page, client.account.username, PY_PASSPHRASE)


@pytest.mark.parametrize("lang", ["en", "es", "ar"])
def test_rotation_screens_screenshots_and_axe(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    lang: str,
) -> None:
    counsel, token = counsel_with_invite(create_account)
    # CSP is bypassed in this context only, so axe-core can be injected as a script tag.
    page, watch = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    name = f"rotate.{lang}"
    register(page, live_server.url, token, name)
    mark_compromised(create_account, survivor_id(counsel))
    problems: dict[str, Any] = {}

    def at(screen: str) -> None:
        expect(page.locator("h1")).to_be_visible()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        if lang != "es":
            page.screenshot(path=str(screenshots / f"{lang}-{screen}.png"))
        found = run_axe(page, f"{screen}-{lang}")
        if found:
            problems[screen] = found

    page.goto(f"{live_server.url}/app/")
    choose_language(page, lang)
    sign_in(page, name)
    expect(page.locator("[data-forced=true]")).to_be_visible(timeout=60_000)
    at("rotate-forced")
    page.locator("main p button.link").click()  # not now
    expect(page.locator("#must-rotate")).to_be_visible()
    at("home-must-rotate")
    page.locator("#must-rotate button").click()
    expect(page.locator("[data-forced=true]")).to_be_visible()
    page.fill("input[name=passphrase]", PASSPHRASE)
    page.click("form button[type=submit]")
    expect(page.locator(".key-groups")).to_be_visible(timeout=90_000)
    at("recovery-key-new")
    page.click("main button.primary")
    expect(page.locator("input[data-group]")).to_have_count(2)
    at("recovery-confirm-new")
    page.locator("main p button.link").click()  # show the key again
    key = "-".join(g.strip() for g in page.locator(".key-groups li .g").all_inner_texts())
    page.click("main button.primary")
    inputs = page.locator("input[data-group]")
    for i in range(2):
        box = inputs.nth(i)
        box.fill(key.split("-")[int(box.get_attribute("data-group") or "0") - 1])
    page.click("form button[type=submit]")
    expect(page.locator("main .notice")).to_be_visible()
    at("home-keys-replaced")
    page.locator("#replace-keys").click()
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    at("rotate")
    assert problems == {}
    if lang != "es":
        for screen in (
            "rotate-forced",
            "home-must-rotate",
            "recovery-key-new",
            "home-keys-replaced",
            "rotate",
        ):
            assert (screenshots / f"{lang}-{screen}.png").stat().st_size > 2000
    assert watch.console_errors == []
