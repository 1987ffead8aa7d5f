"""Split recovery in the browser (protocol §22): a survivor who lost passphrase and recovery
key regains her account and every document with her counsel's and her trusted person's
shares, with a new passphrase, and her counsel sees that it happened."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import (
    NEW_PASSPHRASE,
    PASSPHRASE,
    counsel_with_invite,
    login,
    logout,
    register,
    replace_keys,
)
from tests.e2e.test_documents_web import open_documents
from tests.integration.documents_fixtures import fast_documents
from vault.client import HavenClient


def test_counsel_and_a_printed_share_give_her_account_back(
    app: Flask,
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
) -> None:
    app.config["HAVEN_SHARE_RECOVERY_WAIT_SECONDS"] = 0  # the wait itself: test_shares.py
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    page, watch = contexts.page(IPHONE)
    recovery = register(page, live_server.url, token, "lina.web")
    mine = HavenClient(live_server.url, witnesses=live_server.witnesses)
    mine.login("lina.web", PASSPHRASE)
    case_id = mine.cases()[0]["id"]
    fast_documents(mine).upload(
        case_id, io.BytesIO(b"protective order"), doc_type="passport", name="order.pdf"
    )

    # She splits her recovery key: share 2 to her counsel, share 3 printed for a friend.
    page.click("#open-shares")
    page.fill("#share-split input[name=recovery-key]", recovery)
    page.click("#share-split button[type=submit]")
    printed = page.locator("#printed-share")
    expect(printed).to_contain_text("HS1-", timeout=60_000)
    expect(page.locator("#printed-share-out svg.qr")).to_be_visible()
    share_text = printed.inner_text()
    page.screenshot(path=str(screenshots / "shares-split-iphone.png"), full_page=True)
    page.get_by_role("button", name="Back").click()
    logout(page)

    # Both lost: from the sign-in screen she starts a recovery with a new passphrase.
    page.get_by_role("button", name="Forgot your passphrase? Use your recovery key").click()
    page.click("#lost-both")
    page.fill("#share-start input[name=username]", "lina.web")
    page.fill("#share-start input[name=new-passphrase]", NEW_PASSPHRASE)
    page.fill("#share-start input[name=passphrase-again]", NEW_PASSPHRASE)
    page.click("#share-start button[type=submit]")
    expect(page.locator("[data-share-request=waiting]")).to_be_visible(timeout=60_000)

    # Her counsel replaced their keys meanwhile (the share follows them, §22.4), then sees
    # the request in the app and releases the share.
    lawyer, _ = contexts.page(ANDROID)
    lawyer.goto(f"{live_server.url}/app/")
    login(lawyer, counsel.account.username, PY_PASSPHRASE)
    lawyer.click("#replace-keys")
    replace_keys(lawyer, PY_PASSPHRASE)
    lawyer.click("#open-shares")
    expect(lawyer.locator("[data-held='lina.web'] [data-share-request=waiting]")).to_be_visible()
    lawyer.click("[data-release='lina.web']")
    expect(lawyer.locator(".notice[role=status]")).to_contain_text("Share released")
    # (The page releases only a share sealed to the key version it holds: version 2 now.)

    # The trusted person types the printed share on her phone; she finishes.
    page.fill("#share-enter input[name=printed-share]", share_text.lower())
    page.click("#share-enter button[type=submit]")
    expect(page.locator("#share-recovery-state")).to_contain_text("2 of 2", timeout=60_000)
    page.screenshot(path=str(screenshots / "shares-recover-iphone.png"), full_page=True)
    page.click("#share-finish button[type=submit]")
    expect(page.locator("#logout")).to_be_visible(timeout=60_000)
    open_documents(page)
    expect(page.locator(".doc-list")).to_contain_text("order.pdf")

    # Her counsel sees that it happened; her old passphrase no longer opens the account.
    lawyer.get_by_role("button", name="Back").click()
    lawyer.click("#open-shares")
    expect(lawyer.locator("[data-held='lina.web'] [data-share-request=completed]")).to_be_visible()
    HavenClient(live_server.url, witnesses=live_server.witnesses).login("lina.web", NEW_PASSPHRASE)
    assert watch.console_errors == []
