"""Documents in the browser: upload with resume, share, view, download, history, checklist."""

from __future__ import annotations

import datetime as dt
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import (
    assert_holds_none_of,
    choose_language,
    counsel_with_invite,
    login,
    logout,
    register,
)
from vault.client.documents import Documents
from vault.client.messages import Messenger
from vault.protocol.encoding import b64decode, b64encode

SCREEN_390: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "screen": {"width": 390, "height": 844},
    "device_scale_factor": 1,
}


def png(width: int = 48, height: int = 32) -> bytes:
    """A small real PNG (a passport-coloured gradient)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((20 + x * 4, 40 + y * 5, 120)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def open_documents(page: Page) -> None:
    """From the home screen to the first case's documents."""
    page.locator(".case-actions button").first.click()
    expect(page.locator("form.upload")).to_be_visible()
    expect(page.locator(".doc-list")).not_to_have_attribute("aria-busy", "true")


def upload(page: Page, name: str, data: bytes, mime: str, doc_type: str, expires: str = "") -> None:
    """Choose a file, a type and an expiry, send it, wait until it is listed."""
    page.set_input_files("input[name=file]", {"name": name, "mimeType": mime, "buffer": data})
    page.select_option("select[name=doctype]", doc_type)
    if expires:  # YYYY-MM-DD into the day, month and year boxes
        year, month, day = expires.split("-")
        page.fill("input[name=expires-day]", day)
        page.fill("input[name=expires-month]", month)
        page.fill("input[name=expires-year]", year)
    page.click("form.upload button[type=submit]")
    expect(page.locator(".document h3", has_text=name)).to_be_visible(timeout=60_000)


def test_survivor_uploads_shares_counsel_views_and_downloads(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    tmp_path: Path,
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    counsel_name = counsel.account.username
    survivor, survivor_watch = contexts.page(IPHONE)
    register(survivor, live_server.url, token, "amira")
    open_documents(survivor)
    image = png()
    expires = (dt.date.today() + dt.timedelta(days=60)).isoformat()
    upload(survivor, "pasaporte Amira.png", image, "image/png", "passport", expires)
    item = survivor.locator(".document", has_text="pasaporte Amira.png")
    expect(item.locator(".doc-meta")).to_contain_text("Passport")
    item.get_by_role("button", name=f"Share pasaporte Amira.png with {counsel_name}").click()
    expect(
        survivor.locator(".document .grant", has_text=f"Shared with {counsel_name}")
    ).to_be_visible()

    # The Python reference client opens what the browser made: same bytes, same checks.
    docs = Documents(counsel)
    case_id = counsel.cases()[0]["id"]
    listing = docs.case_documents(case_id)
    assert listing.refused == []
    [opened] = listing.documents
    assert opened.info.name == "pasaporte Amira.png"
    assert opened.info.doc_type == "passport" and opened.info.expires_on is not None
    assert opened.info.expires_on.isoformat() == expires
    got = docs.download(opened.id, tmp_path / "py.png")
    assert (tmp_path / "py.png").read_bytes() == image, got

    # The survivor opens the case's conversation and waits there.
    survivor.locator("main > .actions button.link").click()
    survivor.locator(".case-actions button[data-messages]").click()
    expect(survivor.locator("ol.messages")).to_have_attribute("data-live", "true")

    # Counsel in a second browser context.
    page, watch = contexts.page(ANDROID)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_server.url}/app/")
    login(page, counsel_name, PY_PASSPHRASE)
    open_documents(page)
    checklist = page.locator(".checklist")
    expect(checklist.locator("[data-item=identity]")).to_have_attribute("data-state", "expiring")
    expect(checklist.locator("[data-item=birth]")).to_have_attribute("data-state", "missing")
    expect(checklist.locator("[data-item=protection]")).to_have_attribute("data-state", "missing")
    expect(checklist.locator("[data-item=immigration]")).to_have_attribute("data-state", "missing")
    doc = page.locator(".document", has_text="pasaporte Amira.png")
    expect(doc.locator(".doc-meta")).to_contain_text("from amira")
    # The uploader's key was checked in the key-transparency log before the document showed.
    assert any("/api/v1/directory/proofs/inclusion" in url for url in requested)
    doc.get_by_role("button", name="View pasaporte Amira.png").click()
    img = page.locator(".viewer img.preview")
    expect(img).to_be_visible()
    assert (img.get_attribute("src", timeout=5000) or "").startswith("blob:")
    page.wait_for_function("() => document.querySelector('.viewer img').naturalWidth === 48")
    with page.expect_download() as info:
        doc.get_by_role("button", name="Download pasaporte Amira.png").click()
    download = info.value
    assert download.suggested_filename == "pasaporte Amira.png"
    assert Path(download.path()).read_bytes() == image
    expect(doc.locator("[role=status]")).to_contain_text("Checked and saved")

    # Counsel replies; the survivor sees it arrive live, verified and decrypted.
    page.locator("main > .actions button.link").click()
    page.locator(".case-actions button[data-messages]").click()
    expect(page.locator("ol.messages")).to_have_attribute("data-live", "true")
    page.fill("textarea[name=text]", "Received your passport — thank you. Está bien.")
    page.click("form.compose button[type=submit]")
    expect(page.locator("li.message.mine")).to_contain_text("Received your passport")
    reply = survivor.locator("li.message.theirs")
    expect(reply).to_contain_text("Received your passport — thank you. Está bien.", timeout=15_000)
    expect(reply.locator(".meta")).to_contain_text(counsel_name)
    survivor.fill("textarea[name=text]", "Gracias")
    survivor.click("form.compose button[type=submit]")
    expect(page.locator("li.message.theirs")).to_contain_text("Gracias", timeout=15_000)

    # The Python reference client verifies and opens what the browsers sent, and the
    # browser opens what it sends.
    messenger = Messenger(counsel)
    [conv] = messenger.conversations()
    texts = [m.text for m in messenger.read(conv["id"])]
    assert texts == ["Gracias", "Received your passport — thank you. Está bien."]
    messenger.send(conv["id"], "Sent from the counsel CLI.")
    expect(survivor.locator("li.message.theirs").last).to_contain_text(
        "Sent from the counsel CLI.", timeout=15_000
    )

    # The survivor sees who opened it.
    survivor.locator("main p button.link").click()
    survivor.locator(".case-actions button[data-case]").click()
    survivor.locator("main .actions button", has_text="Who opened my documents").click()
    events = survivor.locator(".events")
    expect(events.locator("[data-kind=download]").first).to_contain_text(
        f"{counsel_name} saved a copy of pasaporte Amira.png"
    )
    expect(events.locator("[data-purpose=view]")).to_contain_text(
        f"{counsel_name} viewed pasaporte Amira.png in the app"
    )
    expect(events.locator("[data-kind=grant]")).to_contain_text("You shared pasaporte Amira.png")

    # Revoking: the counsel no longer sees it.
    survivor.locator("main button.link").click()
    survivor.get_by_role(
        "button", name=f"Stop sharing pasaporte Amira.png with {counsel_name}"
    ).click()
    expect(
        survivor.get_by_role("button", name=f"Share pasaporte Amira.png with {counsel_name}")
    ).to_be_visible()
    assert docs.case_documents(case_id).documents == []

    survivor.locator("main > .actions button.link").click()
    logout(survivor)
    assert_holds_none_of(survivor, ["pasaporte", "amira.png", "passport"])
    assert watch.console_errors == [] and survivor_watch.console_errors == []


def test_upload_resumes_after_a_dropped_connection(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "nadia")
    open_documents(page)
    # Two parts of 80 chunks: the second one's first attempt is cut off.
    data = os.urandom(6 * 1024 * 1024)
    seen: list[str] = []

    def cut_second_part(route: Route) -> None:
        url = route.request.url
        seen.append(url.rsplit("/", 1)[-1])
        if url.endswith("/parts/2") and seen.count("2") == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/v1/documents/*/parts/*", cut_second_part)
    workers: list[str] = []
    page.on("worker", lambda worker: workers.append(worker.url))
    upload(page, "scan.pdf", data, "application/pdf", "police_report")
    assert seen == ["1", "2", "2"], seen
    # Hashed and encrypted in the document worker (§8.12): one per pass, again on resume.
    assert len([w for w in workers if "/assets/parts-" in w]) == 4, workers
    docs = Documents(counsel)
    case_id = counsel.cases()[0]["id"]
    assert docs.case_documents(case_id).documents == []  # not shared with counsel


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_document_screens_screenshots(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    lang: str,
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    counsel_name = counsel.account.username
    # CSP is bypassed in these contexts only, so axe-core can be injected as a script tag;
    # the other tests view documents under the real CSP.
    page, watch = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    register(page, live_server.url, token, f"docs.{lang}")
    choose_language(page, lang)
    open_documents(page)
    page.screenshot(path=str(screenshots / f"{lang}-documents-empty.png"))
    assert run_axe(page, f"documents-empty-{lang}") == []
    soon = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    upload(page, "passport.png", png(), "image/png", "passport", soon)
    upload(
        page,
        "birth.pdf",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "application/pdf",
        "birth_certificate",
    )
    for name in ("passport.png", "birth.pdf"):
        page.locator(".document", has_text=name).locator(".grant button").click()
        expect(page.locator(".document", has_text=name).locator(".grant > span")).to_have_count(1)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(screenshots / f"{lang}-documents.png"))
    page.locator(".document", has_text="passport.png").locator(".actions button").first.click()
    expect(page.locator(".viewer img")).to_be_visible()
    page.locator(".viewer h2").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / f"{lang}-document-view.png"))
    assert run_axe(page, f"document-view-{lang}") == []
    page.locator("main > .actions button").first.click()  # who opened my documents
    expect(page.locator(".events li").first).to_be_visible()
    page.screenshot(path=str(screenshots / f"{lang}-history.png"))
    assert run_axe(page, f"history-{lang}") == []
    page.locator("main p button.link").click()  # back to documents
    page.locator("main > .actions button.link").click()  # home
    page.locator(".case-actions button[data-messages]").click()
    expect(page.locator("ol.messages")).to_have_attribute("data-live", "true")
    page.select_option("select[name=timer]", "86400")
    expect(page.locator("main [role=status]").first).not_to_be_empty()
    page.fill(
        "textarea[name=text]",
        "مرحبا — I uploaded my passport." if lang == "ar" else "I uploaded my passport.",
    )
    page.click("form.compose button[type=submit]")
    expect(page.locator("li.message.mine")).to_have_count(1)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(screenshots / f"{lang}-conversation.png"))
    assert run_axe(page, f"conversation-{lang}") == []

    counsel_page, counsel_watch = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    counsel_page.goto(f"{live_server.url}/app/")
    choose_language(counsel_page, lang)
    login(counsel_page, counsel_name, PY_PASSPHRASE)
    open_documents(counsel_page)
    expect(counsel_page.locator(".document")).to_have_count(2)
    expect(counsel_page.locator("[data-item=birth]")).to_have_attribute("data-state", "present")
    counsel_page.evaluate("document.activeElement && document.activeElement.blur()")
    counsel_page.screenshot(path=str(screenshots / f"{lang}-documents-counsel.png"))
    assert run_axe(counsel_page, f"documents-counsel-{lang}") == []
    counsel_page.locator("main > .actions button.link").click()
    expect(counsel_page.locator("[data-unread='1']")).to_be_visible()
    counsel_page.screenshot(path=str(screenshots / f"{lang}-home-unread.png"))
    assert run_axe(counsel_page, f"home-unread-{lang}") == []
    counsel_page.locator(".case-actions button[data-messages]").click()
    expect(counsel_page.locator("li.message.theirs")).to_have_count(1)
    expect(counsel_page.locator("li.message.theirs .meta")).to_contain_text(f"docs.{lang}")
    for name in (
        "documents-empty",
        "documents",
        "document-view",
        "history",
        "documents-counsel",
        "conversation",
        "home-unread",
    ):
        assert (screenshots / f"{lang}-{name}.png").stat().st_size > 2000
    assert watch.console_errors == [] and counsel_watch.console_errors == []


def test_a_key_missing_from_the_log_hides_the_document(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    counsel_name = counsel.account.username
    page, _ = contexts.page(IPHONE)
    register(page, live_server.url, token, "leila")
    open_documents(page)
    upload(page, "id.png", png(), "image/png", "national_id")
    page.locator(".document .grant button").click()
    expect(page.locator(".document .grant > span")).to_have_count(1)

    other, _ = contexts.page(ANDROID)

    own_index = counsel.get("/account")["account"]["public_keys"]["log_index"]

    def lie(route: Route) -> None:
        answer = route.fetch()
        data = answer.json()
        if f"index={own_index}&" in route.request.url:
            route.fulfill(response=answer, json=data)
            return
        raw = bytearray(b64decode(data["proof"][0]))
        raw[0] ^= 1  # a proof that does not lead from the record's entry to the root
        data["proof"][0] = b64encode(bytes(raw))
        route.fulfill(response=answer, json=data)

    # The log lies about every key but the counsel's own (a log that lies about one's own
    # key refuses the sign-in: tests/e2e/test_rotation_web.py).
    other.route("**/api/v1/directory/proofs/inclusion*", lie)
    other.goto(f"{live_server.url}/app/")
    login(other, counsel_name, PY_PASSPHRASE)
    expect(other.locator(".member[data-user] .badge.danger")).to_have_text("Keys do not verify")
    open_documents(other)
    expect(other.locator(".doc-list .error-box")).to_contain_text("failed the security check")
    expect(other.locator(".document")).to_have_count(0)
