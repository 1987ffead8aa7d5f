"""The phone's Back inside the app, the language kept across reloads, focus and bidi (issue 14)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, NEUTRAL, Contexts
from tests.e2e.flows import (
    choose_language,
    confirm_recovery_key,
    counsel_with_invite,
    fill_register,
    login,
    logout,
    open_conversation,
    open_invite,
    read_recovery_key,
    register,
    send_message,
)
from tests.e2e.test_documents_web import png, upload
from vault.client.documents import Documents
from vault.client.messages import Messenger

START = "https://start.example/"


def history_length(page: Page) -> int:
    """How many entries the tab's session history holds."""
    length: int = page.evaluate("history.length")
    return length


def at_home(page: Page) -> None:
    """The home screen is showing, still signed in."""
    expect(page.locator(".case-actions button[data-messages]").first).to_be_visible()
    expect(page.locator("#logout")).to_be_visible()


def assert_back_leads_out(page: Page, server: LiveServer) -> None:
    """On the neutral site; Back reaches the page before the app; Forward never shows the app."""
    page.wait_for_url(NEUTRAL)
    page.go_back()
    page.wait_for_url(START)
    expect(page.locator("h1")).to_have_text("Search")
    for _ in range(2):
        page.go_forward()
        # An entry of the app reached this way sends on at once (to the neutral site, or
        # back where Forward came from) without showing anything.
        page.wait_for_url(lambda url: not url.startswith(server.url))
        expect(page.locator("h1")).to_have_text(re.compile("^(Search|Wikipedia)$"))


def test_back_moves_between_screens_asks_before_losing_a_draft_and_quick_exit_leaves_no_way_back(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    screenshots: Path,
) -> None:
    _, token = counsel_with_invite(create_account)
    # bypass_csp only lets the test inject axe-core; the app's own CSP is tested elsewhere.
    page, _ = contexts.page(IPHONE, bypass_csp=True)
    page.goto(START)
    before = history_length(page)
    register(page, live_server.url, token, "back.button")
    # The app's own entry plus one guard entry, never more however many screens are opened.
    assert history_length(page) == before + 2

    page.locator(".case-actions button[data-case]").first.click()
    expect(page.locator("form.upload")).to_be_visible()
    page.go_back()
    at_home(page)

    open_conversation(page)
    page.go_back()
    at_home(page)
    assert history_length(page) == before + 2

    # A draft: Back asks first; "Stay here" keeps it, "Leave" goes home.
    open_conversation(page)
    page.fill("textarea[name=text]", "half a message")
    page.go_back()
    prompt = page.locator(".nav-prompt[role=alertdialog]")
    expect(prompt).to_contain_text("not sent yet")
    expect(prompt.locator("[data-nav-stay]")).to_be_focused()
    assert run_axe(page, "back-prompt") == []
    page.screenshot(path=str(screenshots / "nav-back-prompt-en-390.png"))
    prompt.locator("[data-nav-stay]").click()
    expect(prompt).to_have_count(0)
    expect(page.locator("textarea[name=text]")).to_have_value("half a message")
    page.go_back()
    expect(prompt).to_be_visible()
    page.go_back()  # Back again closes the question like a dialog
    expect(prompt).to_have_count(0)
    expect(page.locator("textarea[name=text]")).to_have_value("half a message")
    page.go_back()
    prompt.locator("[data-nav-leave]").click()
    at_home(page)
    assert history_length(page) == before + 2

    # Back on the first screen leaves the app for the page before it.
    page.go_back()
    page.wait_for_url(START)
    expect(page.locator("h1")).to_have_text("Search")


def test_quick_exit_after_moving_around_and_reloading_leaves_no_way_back(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    page.goto(START)
    before = history_length(page)
    register(page, live_server.url, token, "exit.after.back")
    open_conversation(page)
    page.go_back()
    at_home(page)
    page.click("#quick-exit")
    # The neutral site took the app's entry; the guard above it stays only as a Forward
    # entry that sends straight back to the neutral site.
    page.wait_for_url(NEUTRAL)
    assert history_length(page) == before + 2
    assert_back_leads_out(page, live_server)

    # After a reload the entry below is an earlier page of the app: Back skips it too.
    survivor_name = "exit.after.back"
    page.goto(START)
    page.goto(f"{live_server.url}/app/")
    login(page, survivor_name)
    page.reload()
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    login(page, survivor_name)
    page.click("#quick-exit")
    assert_back_leads_out(page, live_server)


def test_language_kept_across_reloads_and_forgotten_after_sign_out_and_quick_exit(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    client, _ = create_account("counsel")
    assert client.account is not None
    page, _ = contexts.page(IPHONE, locale="en-US")
    page.goto(START)
    page.goto(f"{live_server.url}/app/")
    choose_language(page, "ar")
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert page.locator("#lang").input_value() == "ar"
    login(page, client.account.username, PY_PASSPHRASE)
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "ar")

    # Sign-out forgets it: the next reload follows the browser's language again.
    login(page, client.account.username, PY_PASSPHRASE)
    logout(page)
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # Quick exit forgets it too: opening the app again starts from the browser's language.
    choose_language(page, "es")
    login(page, client.account.username, PY_PASSPHRASE)
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    login(page, client.account.username, PY_PASSPHRASE)
    page.click("#quick-exit")
    page.wait_for_url(NEUTRAL)
    page.goto(f"{live_server.url}/app/")
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.evaluate("history.state === null || !('lang' in history.state)")


FOCUS_BOX = """() => {
    const el = document.activeElement;
    if (!el || el === document.body || el === document.documentElement) return null;
    const bar = document.getElementById('bar');
    if (bar.contains(el)) return {inBar: true, id: el.id};
    const box = el.getBoundingClientRect();
    const label = el.getAttribute('aria-label') || el.textContent || el.name || el.id || '';
    return {inBar: false, what: el.tagName + ' ' + label.trim().slice(0, 40),
            top: box.top, bottom: box.bottom, height: box.height,
            barBottom: bar.getBoundingClientRect().bottom};
}"""


def tab_through(page: Page, key: str, screen: str) -> int:
    """Press ``key`` until focus comes back to the bar; every stop must be below the bar."""
    stops = 0
    for _ in range(120):
        page.keyboard.press(key)
        box = page.evaluate(FOCUS_BOX)
        if box is None:
            continue
        if box["inBar"]:
            if stops:
                return stops
            continue
        stops += 1
        assert box["height"] > 0, f"{screen}: {box['what']} has no box"
        assert box["top"] >= box["barBottom"] - 0.5, (
            f"{screen} ({key}): {box['what']} is under the quick-exit bar: {box}"
        )
    raise AssertionError(f"{screen}: focus never came back to the bar")


def test_focus_is_never_hidden_under_the_quick_exit_bar(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    tmp_path: Path,
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "focus.order")
    page.locator(".case-actions button[data-case]").first.click()
    for n in range(2):
        upload(page, f"paper-{n}.png", png(), "image/png", "passport")
    page.go_back()
    open_conversation(page)
    for n in range(4):
        send_message(page, f"message number {n}")
    page.go_back()
    at_home(page)
    for width, height in ((320, 568), (390, 664)):
        page.set_viewport_size({"width": width, "height": height})
        for screen in ("documents", "conversation"):
            if screen == "documents":
                page.locator(".case-actions button[data-case]").first.click()
                expect(page.locator(".document")).to_have_count(2)
            else:
                open_conversation(page)
                expect(page.locator("li.message")).to_have_count(4)
            forwards = tab_through(page, "Tab", f"{screen} at {width}px")
            backwards = tab_through(page, "Shift+Tab", f"{screen} at {width}px")
            assert forwards >= 5 and backwards == forwards, (forwards, backwards)
            page.go_back()
            at_home(page)


def test_after_an_upload_focus_is_on_its_share_button_and_back_closes_the_viewer(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "focus.upload")
    page.locator(".case-actions button[data-case]").first.click()
    upload(page, "permit.png", png(), "image/png", "visa_permit")
    share = page.get_by_role("button", name=f"Share permit.png with {counsel.account.username}")
    expect(share).to_be_focused()
    expect(page.locator("form.upload [role=status]")).to_have_text(
        "Uploaded: permit.png. You can share it now."
    )
    # Its optional end date (the year box, last of day/month/year) is one Shift+Tab away;
    # sharing is one press.
    page.keyboard.press("Shift+Tab")
    expect(
        page.locator(".document", has_text="permit.png").get_by_role("textbox", name="Year")
    ).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator(".document .grant", has_text="Shared with")).to_be_visible()

    # The document viewer closes with Back, like a dialog; the next Back goes home.
    page.get_by_role("button", name="View permit.png").click()
    expect(page.locator(".viewer img.preview")).to_be_visible()
    page.go_back()
    expect(page.locator(".viewer img")).to_have_count(0)
    expect(page.locator("form.upload")).to_be_visible()
    page.go_back()
    at_home(page)


BOX = """el => { const r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, lines: el.getClientRects().length}; }"""


def box(locator: Any) -> dict[str, float]:
    """The element's box in the viewport and how many line boxes it spans."""
    expect(locator).to_be_visible()
    found: dict[str, float] = locator.evaluate(BOX)
    return found


def test_arabic_lines_isolate_latin_usernames_file_names_and_dates(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    tmp_path: Path,
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    counsel_name = counsel.account.username
    file_name = "passport-scan-amira.png"
    page, _ = contexts.page(IPHONE, viewport={"width": 320, "height": 640})
    open_invite(page, live_server.url, token)
    choose_language(page, "ar")
    fill_register(page, "amira.latin")
    confirm_recovery_key(page, read_recovery_key(page))
    expect(page.locator("#logout")).to_be_visible()

    page.locator(".case-actions button[data-case]").first.click()
    upload(page, file_name, png(), "image/png", "passport")
    page.locator(".document .grants button").first.click()
    grant = page.locator(".document .grant span").first
    expect(grant).to_contain_text(counsel_name)
    # "Shared with NAME": in Arabic the Latin name ends the line, at its left.
    assert box(grant.locator("bdi")).get("left", 0) <= box(grant)["left"] + 1
    page.screenshot(path=str(screenshots / "nav-bidi-documents-ar-320.png"), full_page=True)

    docs = Documents(counsel)
    case_id = counsel.cases()[0]["id"]
    [opened] = docs.case_documents(case_id).documents
    docs.download(opened.id, tmp_path / "copy.png")

    page.go_back()
    open_conversation(page)
    page.locator("details.attach summary").click()
    page.locator("input[name=attach]").first.check()
    page.fill("textarea[name=text]", "مرفق")
    page.click("form.compose button[type=submit]")
    link = page.locator("li.message.mine .attachments .attachment-label")
    name_box = box(link.locator("bdi"))
    label_box = box(link)
    # One line; the Latin name left of "Open" (فتح), which begins the right-to-left line.
    assert name_box["lines"] == 1
    assert abs(name_box["top"] - label_box["top"]) < 4
    assert label_box["bottom"] - label_box["top"] < 30
    assert name_box["right"] < label_box["right"] - 10

    messenger = Messenger(counsel)
    [conv] = messenger.conversations()
    messenger.send(conv["id"], "Hello from counsel")
    meta = page.locator("li.message.theirs .meta")
    expect(meta).to_contain_text(counsel_name)
    who, when = meta.locator(":scope > bdi").nth(0), meta.locator(":scope > bdi").nth(1)
    expect(who).to_have_text(counsel_name)
    # "NAME · TIME": the name comes first, so in Arabic it stands at the right.
    assert box(who)["left"] > box(when)["right"]
    page.screenshot(path=str(screenshots / "nav-bidi-conversation-ar-320.png"), full_page=True)

    page.go_back()
    page.locator(".case-actions button[data-case]").first.click()
    page.locator("main > .actions button").first.click()
    line = page.locator(".events [data-kind=download] span").first
    expect(line).to_contain_text(counsel_name)
    actor = line.locator("bdi", has_text=counsel_name)
    doc = line.locator("bdi", has_text=file_name)
    page.screenshot(path=str(screenshots / "nav-bidi-history-ar-320.png"), full_page=True)
    # "{actor} فتح {doc}": on the first line the actor stands right, the start of the file
    # name left, the verb between them (the name may wrap onto the next line).
    first = box(actor)
    doc_start = doc.evaluate(
        "(e, top) => [...e.getClientRects()].filter(r => Math.abs(r.top - top) < 2)[0].right",
        first["top"],
    )
    assert first["left"] > doc_start + 10


def test_back_during_an_upload_asks_first(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "slow.upload")
    page.locator(".case-actions button[data-case]").first.click()
    expect(page.locator("form.upload")).to_be_visible()
    held: list[Route] = []
    # The parts wait unanswered, so the upload is still running when Back is pressed.

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/api/v1/documents/*/parts/*", hold)
    page.set_input_files(
        "input[name=file]", {"name": "big.png", "mimeType": "image/png", "buffer": png()}
    )
    page.click("form.upload button[type=submit]")
    expect(page.locator("form.upload progress")).to_be_visible()
    page.go_back()
    prompt = page.locator(".nav-prompt[role=alertdialog]")
    expect(prompt).to_contain_text("still uploading")
    prompt.locator("[data-nav-stay]").click()
    expect(page.locator("form.upload progress")).to_be_visible()
    page.unroute("**/api/v1/documents/*/parts/*", hold)
    for route in held:
        # A part whose request the page gave up on meanwhile is sent again by the client.
        with contextlib.suppress(PlaywrightError):
            route.continue_()
    expect(page.locator(".document h3", has_text="big.png")).to_be_visible(timeout=60_000)
    # Done: Back goes home without asking.
    page.go_back()
    at_home(page)
