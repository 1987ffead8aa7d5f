"""Issue 16's whole journey in the browser: an anonymous reporter on a phone sends a report
with a photo and keeps her receipt; the team's counsel reads it, saves the photo and replies in
the web inbox; she comes back in a fresh browser with the receipt, reads the reply and
answers; counsel invites her from the inbox; she registers with the invite, agrees to move
the conversation, and it goes on in her case. Then nothing of the report, its file's name or
her address is found in the database, MinIO's files or the server's log, and the receipt was
in no request the pages sent."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import FilePayload, expect

from tests.conftest import PASSPHRASE, LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import confirm_recovery_key, fill_register, login, read_recovery_key
from tests.e2e.test_intake_web import app, assert_sent_none_of, record_requests  # noqa: F401
from tests.leaks import assert_stored_nowhere
from tests.services import MinioServer
from vault.client.documents import Documents
from vault.client.intake import Inbox
from vault.client.messages import Messenger

TEXT = "They took my passport at the Orchid laundry on Dock Street"
PHOTO_NAME = "orchid-dormitory-door.jpg"
PHOTO = os.urandom(70_000)  # two chunks of §8.2
REPLY = "We can help. Is Friday safe to talk?"
ANSWER = "Friday after ten is safe"
LAST = "I am in my case now"


def test_report_reply_return_invite_register_move_and_nothing_left_behind(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    minio: MinioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    admin, _ = create_account("admin", username="admin1")
    counsel, _ = create_account("counsel", username="intake.lawyer")
    assert counsel.account is not None
    admin.post("/intake/team/members", {"user_id": counsel.account.id})
    sent: list[str] = []

    # An anonymous report with a photo, from a phone.
    phone, _ = contexts.page(IPHONE)
    record_requests(phone, sent)
    phone.goto(f"{live_server.url}/app/")
    phone.click("#intake-link")
    phone.fill("textarea[name=intake-text]", TEXT)
    photo = FilePayload(name=PHOTO_NAME, mimeType="image/jpeg", buffer=PHOTO)
    phone.set_input_files("#intake-form input[name=intake-file]", files=photo)
    phone.click("#intake-form button[type=submit]")
    words = phone.locator("#intake-receipt li .g")
    expect(words).to_have_count(12, timeout=90_000)
    receipt = " ".join(words.all_inner_texts())
    expect(phone.locator("[role=alert]")).to_have_count(0)

    # Counsel reads it in the web inbox, saves the photo, replies.
    desk, _ = contexts.page(IPHONE)
    desk.goto(f"{live_server.url}/app/")
    login(desk, "intake.lawyer", PASSPHRASE)
    desk.click("#open-inbox")
    desk.locator("[data-open-report]").click()
    expect(desk.locator("[data-seq='1']")).to_contain_text(TEXT, timeout=60_000)
    expect(desk.locator("[data-seq='2']")).to_contain_text(PHOTO_NAME)
    with desk.expect_download() as download:
        desk.click("[data-inbox-attachment='2']")
    assert download.value.suggested_filename == PHOTO_NAME
    assert Path(download.value.path()).read_bytes() == PHOTO
    desk.fill("textarea[name=inbox-reply]", REPLY)
    desk.click("[data-inbox-reply] button[type=submit]")
    expect(desk.locator("[data-seq='3']")).to_contain_text(REPLY)

    # She comes back in a fresh browser with the receipt alone and answers.
    back, _ = contexts.page(ANDROID)
    record_requests(back, sent)
    back.goto(f"{live_server.url}/app/#intake")
    back.click("#intake-have-receipt")
    back.fill("textarea[name=intake-receipt-words]", receipt)
    back.click("main form button[type=submit]")
    thread = back.locator("#intake-thread li")
    expect(thread).to_have_count(3, timeout=90_000)
    expect(thread.nth(2)).to_contain_text(REPLY)
    back.fill("textarea[name=intake-reply]", ANSWER)
    back.click("main form button[type=submit]")
    expect(thread).to_have_count(4, timeout=60_000)

    # Counsel invites her from the inbox: the invite goes as a reply.
    desk.click("[data-invite-reporter]")
    expect(desk.locator("[data-seq='4']")).to_contain_text(ANSWER, timeout=60_000)
    expect(desk.locator("[data-seq='5']")).to_contain_text("#invite=")

    # She follows it, registers, and agrees to move the conversation into her case.
    back.click("#intake-refresh")
    expect(thread).to_have_count(5, timeout=60_000)
    back.click("[data-intake-join]")
    fill_register(back, "maria.l")
    confirm_recovery_key(back, read_recovery_key(back))
    back.click("#intake-move")
    moved = back.locator("ol.messages li.message")
    expect(moved).to_have_count(5, timeout=120_000)
    back.fill("textarea[name=text]", LAST)
    back.click("form.compose button[type=submit]")
    expect(back.locator("li.message.mine", has_text=LAST)).to_be_visible(timeout=30_000)

    [conversation] = Messenger(counsel).conversations()
    texts = [m.text for m in Messenger(counsel).read(conversation["id"])][::-1]
    assert texts[0].startswith(f"[intake #1, reporter] {TEXT}")
    assert texts[1] == f"[intake #2, reporter] attached {PHOTO_NAME} ({len(PHOTO)} bytes)"
    assert texts[2] == f"[intake #3, intake.lawyer] {REPLY}"
    assert texts[3] == f"[intake #4, reporter] {ANSWER}"
    assert texts[-1] == LAST
    [document] = Documents(counsel).case_documents(conversation["case_id"]).documents
    assert document.info.name == PHOTO_NAME
    assert Inbox(counsel).reports() == []  # withdrawn: shredded

    # The server's own log lines: the test's HTTP clients (urllib3) and the dev server's
    # access lines (werkzeug) are not the app's; production's access lines are
    # vault/ops/logs.py's, which never carry an intake caller's address.
    logged = [r for r in caplog.records if r.name.startswith("vault")]
    needles = {"report text": TEXT, "file name": PHOTO_NAME, "address": "127.0.0.1"}
    assert_stored_nowhere(
        live_server.app, minio, logged, {k: v.encode() for k, v in needles.items()}
    )
    assert_sent_none_of(sent, receipt)
