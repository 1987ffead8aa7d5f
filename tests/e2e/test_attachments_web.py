"""Documents attached to messages in the browser (§9.8), and deleting a document (§8.8)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, NEUTRAL, Contexts
from tests.e2e.flows import (
    assert_holds_none_of,
    choose_language,
    counsel_with_invite,
    login,
    open_conversation,
    register,
    send_message,
)
from tests.e2e.test_documents_web import open_documents, png, upload
from vault.client.documents import Documents

SCREEN_390: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "screen": {"width": 390, "height": 844},
    "device_scale_factor": 1,
}


def home_from_documents(page: Page) -> None:
    """The documents screen's Back link."""
    page.locator("main > .actions button.link").click()
    expect(page.locator("#logout")).to_be_visible()


def home_from_conversation(page: Page) -> None:
    """The conversation screen's Back link."""
    page.locator("main > p button.link").click()
    expect(page.locator("#logout")).to_be_visible()


def test_attach_a_document_counsel_opens_it_then_the_owner_deletes_it(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    survivor, survivor_watch = contexts.page(IPHONE)
    register(survivor, live_server.url, token, "salma")
    open_documents(survivor)
    upload(survivor, "police report.png", png(), "image/png", "police_report")
    home_from_documents(survivor)

    # Not shared yet: attaching it to a message shares it with everyone in the conversation.
    docs = Documents(counsel)
    case_id = counsel.cases()[0]["id"]
    assert docs.case_documents(case_id).documents == []
    open_conversation(survivor)
    survivor.locator("details.attach summary").click()
    survivor.get_by_label("police report.png").check()
    expect(survivor.locator(".attach-count")).to_have_text("(1 chosen)")
    send_message(survivor, "Here is the police report.")
    mine = survivor.locator("li.message.mine", has_text="Here is the police report.")
    expect(mine.get_by_role("button", name="Open police report.png")).to_be_visible()
    expect(survivor.locator(".attach-count")).to_have_text("")
    [shared] = docs.case_documents(case_id).documents
    assert shared.info.name == "police report.png"

    # Counsel, in another browser, opens it from the message.
    page, counsel_watch = contexts.page(ANDROID)
    page.goto(f"{live_server.url}/app/")
    login(page, counsel.account.username, PY_PASSPHRASE)
    open_conversation(page)
    message = page.locator("li.message.theirs", has_text="Here is the police report.")
    message.get_by_role("button", name="Open police report.png").click()
    expect(page.locator(".viewer img.preview")).to_be_visible()
    page.wait_for_function("() => document.querySelector('.viewer img').naturalWidth === 48")
    page.get_by_role("button", name="Back to messages").click()
    expect(page.locator("ol.messages")).to_have_attribute("data-live", "true")

    # The owner deletes it, after a confirm step that can be cancelled.
    home_from_conversation(survivor)
    open_documents(survivor)
    item = survivor.locator(".document", has_text="police report.png")
    ask = item.get_by_role("button", name="Delete police report.png")
    ask.click()
    keep = item.get_by_role("button", name="Keep it")
    expect(keep).to_be_focused()
    expect(item.get_by_role("group")).to_contain_text("Delete police report.png for everyone?")
    keep.click()
    expect(item.get_by_role("group")).to_have_count(0)
    expect(ask).to_be_focused()
    ask.click()
    item.get_by_role("button", name="Delete for everyone").click()
    expect(survivor.locator(".document")).to_have_count(0)
    expect(survivor.locator("#docs-status")).to_have_text("Deleted: police report.png")
    assert docs.case_documents(case_id).documents == []

    # The message stays; its attachment is gone for everyone.
    home_from_conversation(page)
    open_conversation(page)
    expect(page.locator("li.message.theirs [data-attachment]")).to_contain_text(
        "no longer available"
    )
    assert survivor_watch.console_errors == [] and counsel_watch.console_errors == []

    # Quick exit from the conversation: nothing of it is left in the browser's storage.
    page.click("#quick-exit")
    page.wait_for_url(NEUTRAL)
    page.goto(f"{live_server.url}/app/")
    assert_holds_none_of(page, ["police report", "Here is the police report", "salma"])


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_attachment_and_delete_screens(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    lang: str,
) -> None:
    _, token = counsel_with_invite(create_account)
    # CSP is bypassed in this context only, so axe-core can be injected as a script tag.
    page, watch = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    register(page, live_server.url, token, f"attach.{lang}")
    choose_language(page, lang)
    open_documents(page)
    upload(page, "passport.png", png(), "image/png", "passport")
    home_from_documents(page)
    open_conversation(page)
    page.locator("details.attach summary").click()
    page.locator("input[name=attach]").check()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(screenshots / f"{lang}-conversation-attach.png"))
    assert run_axe(page, f"conversation-attach-{lang}") == []
    send_message(page, "مرفق" if lang == "ar" else "Attached.")
    expect(page.locator("li.message.mine [data-attachment] button")).to_be_visible()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(screenshots / f"{lang}-conversation-attachment.png"))
    assert run_axe(page, f"conversation-attachment-{lang}") == []
    page.locator("li.message.mine [data-attachment] button").click()
    expect(page.locator(".viewer img.preview")).to_be_visible()
    page.locator(".document .actions button").nth(2).click()  # delete
    expect(page.locator(".document [role=group]")).to_be_visible()
    page.screenshot(path=str(screenshots / f"{lang}-document-delete.png"))
    assert run_axe(page, f"document-delete-{lang}") == []
    for name in ("conversation-attach", "conversation-attachment", "document-delete"):
        assert (screenshots / f"{lang}-{name}.png").stat().st_size > 2000
    assert watch.console_errors == []
