"""What the browser itself keeps after a full scenario and a quick exit (issue 14, item 1).

A persistent Chromium profile, like a real phone's browser rather than an incognito window:
counsel invites, the survivor registers with the invite, signs in, uploads a document,
sends a message and leaves with quick exit; the browser is closed and its profile files
are read (History, Top Sites, Favicons, Web Data, Login Data, the HTTP and code caches,
Service Worker / Local Storage / IndexedDB folders).

Also here: invite links taken on ``hashchange``, the invite code screen, counsel's code,
the two-finger double tap for quick exit, the safety tips and the new screens at 320 and
390 px (screenshots, axe).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, CHROMIUM, CHROMIUM_ARGS, IPHONE, NEUTRAL, Contexts
from tests.e2e.flows import (
    PASSPHRASE,
    confirm_recovery_key,
    counsel_with_invite,
    fill_register,
    login,
    logout,
    open_conversation,
    read_recovery_key,
    send_message,
)
from tests.e2e.test_documents_web import open_documents, png, upload
from tests.e2e.test_safety_web import (
    assert_left_without_trace,
    session_is_ended,
    signed_in_counsel,
)
from vault.client import HavenClient

# web/src/exit.js: two two-finger taps within this many milliseconds leave the page.
TOUCH_WINDOW_MS = 700

USERNAME = "amira.traces"
DOCUMENT = "pasaporte Amira.png"
MESSAGE = "the hearing moved to Tuesday"
# Strings of the app's own script, to tell its text or code from a mere mention of its URL.
DIST_APP_MARKERS = (b"quick-exit", b"invite-code", b"safety.plan", b"haven-witnesses")


def read_rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of one query on a copy of a profile database (absent file or table: none)."""
    if not db.is_file():
        return []
    copy = db.with_name(db.name + ".read")
    shutil.copyfile(db, copy)
    try:
        with sqlite3.connect(copy) as conn:
            try:
                return list(conn.execute(query))
            except sqlite3.OperationalError:
                return []
    finally:
        copy.unlink()


def files_under(*folders: Path) -> Iterator[Path]:
    """Every file below these folders."""
    for folder in folders:
        if folder.is_dir():
            yield from (p for p in folder.rglob("*") if p.is_file())


def holding(folder: Path, needle: bytes) -> list[str]:
    """Files below ``folder`` whose bytes contain ``needle`` (case-insensitive)."""
    low = needle.lower()
    return [
        str(p.relative_to(folder)) for p in files_under(folder) if low in p.read_bytes().lower()
    ]


@pytest.fixture
def phone_profile(
    playwright_session: Playwright, web_build: Path, tmp_path: Path
) -> Iterator[tuple[BrowserContext, Path]]:
    """Chromium with a persistent profile folder and an Android phone's profile."""
    device = {
        k: v for k, v in playwright_session.devices[ANDROID].items() if k != "default_browser_type"
    }
    folder = tmp_path / "profile"
    # No request interception (it would turn the HTTP cache off); instead no host but the
    # test server resolves, so quick exit's neutral site is asked for and never reached.
    offline = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
    context = playwright_session.chromium.launch_persistent_context(
        str(folder), executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, offline], **device
    )
    context.set_default_timeout(30_000)
    try:
        yield context, folder
    finally:
        context.close()


def enter_invite_code(page: Page, server: LiveServer, token: str) -> None:
    """Open the app and type the invite code into "I have an invite code"."""
    page.goto(f"{server.url}/app/")
    page.click("#have-invite")
    page.fill("input[name=invite-code]", token)
    page.click("form button[type=submit]")
    expect(page.locator("input[name=new-passphrase]")).to_be_visible()


def full_scenario(page: Page, server: LiveServer, token: str) -> None:
    """Register with the invite code, sign in again, upload, send a message, quick exit."""
    enter_invite_code(page, server, token)
    fill_register(page, USERNAME)
    confirm_recovery_key(page, read_recovery_key(page))
    expect(page.locator("#logout")).to_be_visible()
    logout(page)
    # Signing in again on a later visit: a fresh page, so no call of the first session is
    # still under way (one answered 401 after the new sign-in would lock the page).
    page.goto(f"{server.url}/app/")
    login(page, USERNAME)
    open_documents(page)
    upload(page, DOCUMENT, png(), "image/png", "passport")
    page.locator("main > .actions button.link").click()
    open_conversation(page)
    send_message(page, MESSAGE)
    # The neutral site is not reachable from the test machine; asking for it is enough.
    with page.expect_request(NEUTRAL):
        page.locator("#quick-exit").tap()


def test_what_the_browser_profile_keeps_after_a_scenario_and_quick_exit(
    phone_profile: tuple[BrowserContext, Path],
    live_server: LiveServer,
    create_account: Callable[..., Any],
) -> None:
    context, folder = phone_profile
    _, token = counsel_with_invite(create_account)
    page = context.pages[0] if context.pages else context.new_page()
    full_scenario(page, live_server, token)
    context.close()  # the profile's databases are written out on closing
    origin = live_server.url
    profile = folder / "Default"

    # What may not be anywhere in the profile, in any file.
    for secret in (token, PASSPHRASE, USERNAME, DOCUMENT, MESSAGE):
        assert holding(folder, secret.encode()) == [], f"the profile keeps {secret!r}"

    # History. Expected to remain: the visits to /app/ (a page cannot delete history
    # entries; the browser records the address when it commits the navigation, before any
    # script runs), titled with the neutral "Notes" or, after quick exit blanked the
    # title, with the bare address.
    urls = read_rows(profile / "History", "SELECT url, title, visit_count FROM urls")
    ours = [(url, title, count) for url, title, count in urls if url.startswith(origin)]
    assert {url for url, _, _ in ours} == {f"{origin}/app/"}, ours
    address = f"{origin}/app/".split("://", 1)[1]
    assert {title for _, title, _ in ours} <= {"Notes", address, ""}, ours
    assert sum(count for _, _, count in ours) >= 1
    assert read_rows(profile / "History", "SELECT term FROM keyword_search_terms") == []

    # Top Sites: when the browser has made a tile of the app (it does so from visit counts,
    # which a page cannot change), the tile is the bare /app/ address with a neutral title.
    for url, title in read_rows(profile / "Top Sites", "SELECT url, title FROM top_sites"):
        if url.startswith(origin):
            assert url == f"{origin}/app/" and "haven" not in title.lower()

    # Favicons: the page declares an empty icon, so no icon of this origin is kept.
    mapped = read_rows(profile / "Favicons", "SELECT page_url FROM icon_mapping")
    assert [m for m in mapped if m[0].startswith(origin)] == []
    icons = read_rows(profile / "Favicons", "SELECT url FROM favicons")
    assert [i for i in icons if i[0].startswith(origin)] == []

    # Web Data: no autocomplete entry from the app's fields (username, invite code...).
    assert read_rows(profile / "Web Data", "SELECT name, value FROM autofill") == []

    # Login Data: no saved login, and no save offer shown at all (`stats` records an offer
    # that was shown and dismissed).
    assert read_rows(profile / "Login Data", "SELECT origin_url FROM logins") == []
    assert read_rows(profile / "Login Data", "SELECT origin_domain FROM stats") == []

    # HTTP cache and code cache: none of the app's own files (they are served no-store).
    # Expected to remain: libsodium, cached as immutable from this origin; it is a public
    # library naming nothing of the service, and the origin is in History anyway.
    http_cache = list(files_under(profile / "Cache"))
    for needle in (
        b"haven",
        b"/assets/app-",
        b"/assets/kdf-",
        b"/assets/icon-",
        b"/assets/manifest-",
    ):
        found = [str(p) for p in http_cache if needle in p.read_bytes().lower()]
        assert found == [], f"{needle!r} in the browser's HTTP cache: {found}"
    for entry in http_cache:
        names = set(re.findall(rb"/assets/([a-z0-9]+)-[0-9a-f]{16}", entry.read_bytes()))
        assert names <= {b"sodium"}, (entry, names)
    # Code cache: compiled code only for libsodium. Expected to remain: a small entry per
    # script the page ran, keyed by the script's address (Chromium writes it whatever the
    # Cache-Control; a page that runs scripts from URLs cannot avoid it). It holds neither
    # the script's text nor its compiled code.
    app_text = sorted(DIST_APP_MARKERS)
    for entry in files_under(profile / "Code Cache"):
        data = entry.read_bytes()
        names = set(re.findall(rb"/assets/([a-z0-9]+)-[0-9a-f]{16}", data))
        if names - {b"sodium"}:
            assert len(data) < 8192, (entry, names, len(data))
            assert not any(marker in data for marker in app_text), (entry, names)
        assert b"haven" not in data.lower(), entry

    # In-page storage: nothing of this origin in Local Storage, Session Storage, IndexedDB,
    # Service Worker or Cache Storage folders.
    stores = [
        profile / name
        for name in (
            "Local Storage",
            "Session Storage",
            "IndexedDB",
            "Service Worker",
            "WebStorage",
        )
    ]
    port = origin.rsplit(":", 1)[1].encode()
    assert [
        str(p) for p in files_under(*stores) if b"127.0.0.1" + b":" + port in p.read_bytes()
    ] == []
    assert [str(p) for p in files_under(*stores) if b"127.0.0.1_" + port in str(p).encode()] == []


def test_an_invite_link_opened_in_a_tab_that_shows_the_app_is_taken(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, watch = contexts.page(ANDROID)
    page.goto(f"{live_server.url}/app/")
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    # Only the fragment changes: no new page load, a hashchange event.
    page.evaluate("() => { window.notReloaded = true; }")
    page.goto(f"{live_server.url}/app/#invite={token}")
    expect(page.locator("input[name=new-passphrase]")).to_be_visible()
    assert page.evaluate("() => window.notReloaded === true")
    assert page.url == f"{live_server.url}/app/"
    expect(page.locator("#screen-title")).to_be_focused()
    fill_register(page, "hash.change")
    confirm_recovery_key(page, read_recovery_key(page))
    expect(page.locator("#logout")).to_be_visible()
    # Another (here malformed) invite opened while signed in: the keys go, the session
    # ends, and the registration screen says the invite is not valid.
    cookies = page.context.cookies()
    page.goto(f"{live_server.url}/app/#invite=not-a-token")
    expect(page.locator("main .error-box")).to_be_visible()
    assert session_is_ended(page, live_server, cookies)
    assert watch.console_errors == []


def test_invite_code_screen_takes_a_code_or_a_whole_link_and_refuses_others(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, watch = contexts.page(ANDROID)
    page.goto(f"{live_server.url}/app/")
    page.click("#have-invite")
    page.fill("input[name=invite-code]", "short")
    page.click("form button[type=submit]")
    expect(page.locator("input[name=invite-code]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_contain_text("not a valid invite code")
    page.fill("input[name=invite-code]", f"  {live_server.url}/app/#invite={token}\n")
    page.click("form button[type=submit]")
    expect(page.locator("input[name=new-passphrase]")).to_be_visible()
    assert page.locator("input[name=username]").get_attribute("autocomplete") == "off"
    for box in page.locator("input[type=password]").all():
        assert box.get_attribute("autocomplete") == "one-time-code"
    fill_register(page, "by.code")
    confirm_recovery_key(page, read_recovery_key(page))
    expect(page.locator("#logout")).to_be_visible()
    assert counsel.account is not None
    assert watch.console_errors == []


def test_counsel_sees_the_invite_code_and_the_address_to_send(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, _ = create_account("counsel")
    assert counsel.account is not None
    page, _ = contexts.page(IPHONE)
    page.goto(f"{live_server.url}/app/")
    login(page, counsel.account.username, PY_PASSPHRASE)
    page.get_by_role("button", name="Invite a client").click()
    page.get_by_role("button", name="Create invite link").click()
    code = page.locator("#invite-code")
    expect(code).to_be_focused()
    link = page.locator("#invite-link").input_value()
    assert link.endswith(f"#invite={code.input_value()}")
    expect(page.locator("#invite-code-hint")).to_contain_text(f"{live_server.url}/app/")
    survivor = HavenClient(live_server.url, witnesses=live_server.witnesses)
    survivor.register(code.input_value(), "from.code", "a survivor passphrase")


def two_finger_tap(page: Page) -> None:
    """Two fingers down together and up again, as the touch screen reports it."""
    box = page.locator("main h1").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    points = [{"x": box["x"] + 10, "y": y}, {"x": box["x"] + 60, "y": y}]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


@pytest.mark.parametrize("device", [ANDROID, IPHONE])
def test_a_two_finger_double_tap_is_quick_exit(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any], device: str
) -> None:
    page, _ = signed_in_counsel(contexts, live_server, create_account, device)
    page.clock.install()
    cookies = page.context.cookies()
    # One finger tapping twice, or a single two-finger tap (a pinch starts so): nothing.
    heading = page.locator("main h1").bounding_box()
    assert heading is not None
    page.touchscreen.tap(heading["x"] + 10, heading["y"] + 10)
    page.touchscreen.tap(heading["x"] + 10, heading["y"] + 10)
    two_finger_tap(page)
    page.clock.run_for(TOUCH_WINDOW_MS + 200)
    two_finger_tap(page)
    expect(page.locator("#logout")).to_be_visible()
    page.clock.run_for(TOUCH_WINDOW_MS + 200)
    # Twice within the window: the page is left as with the button.
    two_finger_tap(page)
    two_finger_tap(page)
    assert_left_without_trace(page, live_server, cookies)


def test_safety_tips_are_one_tap_from_sign_in_registration_and_home(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, watch = contexts.page(ANDROID)
    page.goto(f"{live_server.url}/app/")
    page.click("main [data-safety-plan]")
    expect(page.locator("h1")).to_have_text("Staying safe on this phone")
    for key in ("private", "pass", "exit", "left", "chrome", "samsung", "safari", "device"):
        expect(page.locator(f"[data-plan={key}]")).not_to_be_empty()
    expect(page.locator("[data-plan=exit]")).to_contain_text("two fingers")
    page.get_by_role("button", name="Back").click()
    expect(page.locator("input[name=passphrase]")).to_be_visible()

    # At registration, the note and the tips; Back returns to the same invite.
    page.goto(f"{live_server.url}/app/#invite={token}")
    expect(page.locator("#register-safety")).to_contain_text("Safety tips")
    page.click("#register-safety [data-safety-plan]")
    page.select_option("#lang", "es")
    expect(page.locator("h1")).to_have_text("Cómo protegerse en este teléfono")
    page.select_option("#lang", "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.select_option("#lang", "en")
    page.get_by_role("button", name="Back").click()
    fill_register(page, "safety.tips")
    confirm_recovery_key(page, read_recovery_key(page))

    # Signed in: from home, and Back returns home.
    page.click("main [data-safety-plan]")
    expect(page.locator("[data-plan=left]")).to_be_visible()
    page.get_by_role("button", name="Back").click()
    expect(page.locator("#logout")).to_be_visible()
    assert watch.console_errors == []


@pytest.mark.parametrize("lang", ["en", "ar", "es"])
@pytest.mark.parametrize("width", [320, 390])
def test_new_screens_at_320_and_390_px_screenshots_and_axe(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    screenshots: Path,
    lang: str,
    width: int,
) -> None:
    # CSP is bypassed in this context only, so axe-core can be injected as a script tag.
    size = {"width": width, "height": 844}
    page, watch = contexts.page(ANDROID, bypass_csp=True, viewport=size, screen=size)
    _, token = counsel_with_invite(create_account)
    problems: dict[str, Any] = {}

    def at(name: str) -> None:
        expect(page.locator("h1")).to_be_visible()
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name}: horizontal scrolling at {width} px ({scroll})"
        page.screenshot(path=str(screenshots / f"{lang}-{name}-{width}.png"), full_page=True)
        found = run_axe(page, name)
        if found:
            problems[name] = found

    page.goto(f"{live_server.url}/app/")
    page.select_option("#lang", lang)
    at("login")
    page.click("main [data-safety-plan]")
    at("safety-plan")
    page.locator("main p button.secondary").click()
    page.click("#have-invite")
    at("invite-code")
    page.fill("input[name=invite-code]", "not a code")
    page.click("form button[type=submit]")
    expect(page.locator(".field-error")).to_be_visible()
    at("invite-code-error")
    page.fill("input[name=invite-code]", token)
    page.click("form button[type=submit]")
    expect(page.locator("#register-safety")).to_be_visible()
    at("register")
    assert problems == {}
    assert watch.console_errors == []


def test_an_invite_link_stays_in_history_which_is_why_codes_exist(
    phone_profile: tuple[BrowserContext, Path],
    live_server: LiveServer,
    create_account: Callable[..., Any],
) -> None:
    context, folder = phone_profile
    _, token = counsel_with_invite(create_account)
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(f"{live_server.url}/app/#invite={token}")
    expect(page.locator("input[name=new-passphrase]")).to_be_visible()
    # The page took the fragment out of the address at once...
    assert page.url == f"{live_server.url}/app/"
    fill_register(page, "by.link")
    confirm_recovery_key(page, read_recovery_key(page))
    with page.expect_request(NEUTRAL):
        page.locator("#quick-exit").tap()
    context.close()
    # ...but the browser had recorded the link when the navigation committed. Expected to
    # remain for links (docs/threat-model.md): the token, spent now, in History.
    urls = read_rows(folder / "Default" / "History", "SELECT url FROM urls")
    assert (f"{live_server.url}/app/#invite={token}",) in urls
