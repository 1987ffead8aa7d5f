"""Outside links in the browser (protocol §23): a survivor shares two documents by link, a
recipient with no account opens and verifies them, the opens run out, the history names
them, and a revoked link stops at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import assert_holds_none_of, counsel_with_invite, register
from tests.e2e.test_documents_web import open_documents, png, upload
from vault.client import HavenClient
from vault.client.documents import Documents
from vault.client.links import Links

RECIPIENT = "Victim-witness unit"
LINK_PASSPHRASE = "river stones at dawn 1987"


def make_link(page: Page, names: list[str], opens: int, passphrase: str = "") -> str:
    """On the links screen: choose documents, recipient, 3 days, opens; return the URL."""
    for name in names:
        page.get_by_label(name, exact=True).check()
    page.fill("input[name=recipient]", RECIPIENT)
    page.fill("input[name=days]", "3")
    page.fill("input[name=opens]", str(opens))
    page.fill("input[name=link-passphrase]", passphrase)
    page.click("form.card button[type=submit]")
    url = page.locator("input.link-url")
    expect(url).to_be_visible(timeout=60_000)
    return url.input_value()


def open_as_recipient(contexts: Contexts, url: str, passphrase: str = "") -> Page:
    """A fresh context (no account, no cookie) on the link; submit the passphrase if asked."""
    page, _ = contexts.page(ANDROID)
    page.goto(url)
    expect(page.locator("main form.card, [data-gone]").first).to_be_visible(timeout=60_000)
    if page.locator("[data-gone]").count() == 0:
        if passphrase:
            page.fill("input[name=link-passphrase]", passphrase)
        page.click("main form.card button[type=submit]")
    return page


def test_survivor_shares_two_documents_by_link_recipient_verifies_opens_run_out_revoke_stops(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    tmp_path: Path,
) -> None:
    _, token = counsel_with_invite(create_account)
    survivor, survivor_watch = contexts.page(IPHONE)
    register(survivor, live_server.url, token, "amira")
    open_documents(survivor)
    files = {"pasaporte Amira.png": png(), "orden de protección.pdf": b"%PDF-1.7 orden\n" * 500}
    upload(survivor, "pasaporte Amira.png", files["pasaporte Amira.png"], "image/png", "passport")
    upload(
        survivor,
        "orden de protección.pdf",
        files["orden de protección.pdf"],
        "application/pdf",
        "protective_order",
    )
    survivor.click("#open-links")
    url = make_link(survivor, list(files), 2, LINK_PASSPHRASE)
    assert "#link=" in url
    expect(survivor.locator(".link-item[data-state=active]")).to_contain_text(RECIPIENT)

    for number in (1, 2):
        page = open_as_recipient(contexts, url, LINK_PASSPHRASE)
        expect(page.locator("[data-verified]").first).to_be_visible(timeout=60_000)
        expect(page.locator(".link-file")).to_have_count(2)
        if number == 1:
            assert "#link=" not in page.url  # the fragment left the address bar at once
            expect(page.locator(".link-file").first).to_contain_text("Verified")
            for name, data in files.items():
                with page.expect_download() as info:
                    page.get_by_role("button", name=f"Save {name}").click()
                download = info.value
                assert download.suggested_filename == name
                saved = tmp_path / f"got-{number}-{name}"
                download.save_as(saved)
                assert saved.read_bytes() == data
            assert_holds_none_of(page, [url.split("#link=")[1], LINK_PASSPHRASE])
    third = open_as_recipient(contexts, url, LINK_PASSPHRASE)
    expect(third.locator("[data-gone]")).to_be_visible(timeout=60_000)

    survivor.locator("main p button.link").click()  # back to the documents
    expect(survivor.locator(".doc-list")).not_to_have_attribute("aria-busy", "true")
    survivor.get_by_role("button", name="Who opened my documents").click()
    opened = survivor.locator("li[data-kind=link_open]")
    expect(opened).to_have_count(4, timeout=60_000)  # two opens of two documents
    expect(opened.first).to_contain_text(f"Opened by the link for {RECIPIENT}")

    # A revoked link stops at once: the recipient already has the page open.
    survivor.locator("main p button.link").click()
    expect(survivor.locator(".doc-list")).not_to_have_attribute("aria-busy", "true")
    survivor.click("#open-links")
    second = make_link(survivor, ["pasaporte Amira.png"], 1)
    waiting, _ = contexts.page(ANDROID)
    waiting.goto(second)
    expect(waiting.locator("main form.card button[type=submit]")).to_be_visible(timeout=60_000)
    survivor.locator(".link-item[data-state=active]").first.get_by_role(
        "button", name="Revoke"
    ).click()
    expect(survivor.locator(".link-item[data-state=revoked]")).to_have_count(1)
    waiting.click("main form.card button[type=submit]")
    expect(waiting.locator("[data-gone]")).to_be_visible(timeout=60_000)
    assert survivor_watch.console_errors == []


def counsel_link(counsel: HavenClient, folder: Path) -> str:
    """A live link (no passphrase) to a document counsel uploads with the Python client."""
    case_id = counsel.cases()[0]["id"]
    source = folder / "formulario I-914.pdf"
    source.write_bytes(b"%PDF-1.7 I-914\n" * 100)
    doc = Documents(counsel).upload(case_id, source, doc_type="immigration_form")
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    return Links(counsel).create(case_id, [doc.id], "Court clerk", expires, 1).url
