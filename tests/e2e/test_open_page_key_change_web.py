"""A contact replaces their keys while the survivor's page is reading them (protocol §12.5
step 4): the page read the case with the old record, and the log it reads next shows a newer
one. That is a key change, shown and asked about like any other, not a log violation; once
she accepts, her message goes out sealed to the new keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import Route, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import (
    counsel_with_invite,
    login,
    logout,
    open_conversation,
    register,
    send_message,
)
from vault.client.messages import Messenger


def test_keys_replaced_between_the_case_and_the_log_show_as_a_key_change(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    name, cid = counsel.account.username, counsel.account.id
    page, watch = contexts.page(IPHONE)
    register(page, live_server.url, token, "noor")
    row = page.locator(".member[data-user]", has_text=name)
    expect(row).to_be_visible(timeout=30_000)
    expect(row.locator("[data-badge]")).to_have_count(0)
    logout(page)

    # Signed in again, her page reads the case (old keys), then the counsel's log history:
    # the counsel's other device replaces their keys in between.
    rotated: list[str] = []

    def rotate_then_answer(route: Route) -> None:
        if not rotated:
            rotated.append(counsel.rotate_keys(PY_PASSPHRASE))
        route.continue_()

    page.route(f"**/api/v1/users/{cid}/keys", rotate_then_answer)
    login(page, "noor")
    expect(row.locator("[data-badge=key-changed]")).to_have_text("Key changed", timeout=30_000)
    expect(row.locator("[data-badge=invalid], [data-badge=refused]")).to_have_count(0)
    assert rotated

    open_conversation(page)
    page.fill("textarea[name=text]", "Is this still you?")
    page.click("form.compose button[type=submit]")
    expect(page.locator("[data-key-changed]")).to_contain_text(
        f"This person's keys changed: {name}"
    )
    page.click("[data-accept-keys]")
    send_message(page, "Is this still you?")
    messenger = Messenger(counsel)
    [conv] = messenger.conversations()
    assert [m.text for m in messenger.read(conv["id"])] == ["Is this still you?"]
    assert counsel.account.keys.version == 2
    assert watch.console_errors == []
