"""The new states of existing screens in English, Arabic and Vietnamese at 390 and 320 px.

`test_screens.py` walks every screen; the states added for issue 14 — the recovery key as
a code for a trusted person, the upload form's file and date controls, the question before
Back loses a draft — are reached here, each screenshotted to var/screenshots and checked by
axe in each language and width.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import (
    choose_language,
    confirm_recovery_key,
    counsel_with_invite,
    fill_register,
    open_conversation,
    open_invite,
    read_recovery_key,
)

SIZES = ({"width": 390, "height": 844}, {"width": 320, "height": 640})


@pytest.mark.parametrize("lang", ["en", "ar", "vi"])
def test_new_states_in_each_language_and_width(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    lang: str,
) -> None:
    page, _ = contexts.page(IPHONE, bypass_csp=True)  # axe-core is added as a script

    def shoot(name: str) -> None:
        for size in SIZES:
            page.set_viewport_size(size)
            page.evaluate("document.activeElement && document.activeElement.blur()")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= size["width"], f"{name} in {lang} is {width}px wide"
            page.screenshot(path=str(screenshots / f"{lang}-{size['width']}-state-{name}.png"))
            assert run_axe(page, f"{name}-{lang}-{size['width']}") == [], name

    _, token = counsel_with_invite(create_account)
    open_invite(page, live_server.url, token)
    choose_language(page, lang)
    fill_register(page, f"states.{lang}")
    key = read_recovery_key(page)
    toggle = page.locator("#recovery-qr-toggle")
    toggle.click()
    expect(page.locator("#recovery-qr svg.qr")).to_be_visible()
    shoot("recovery-code")
    toggle.click()
    confirm_recovery_key(page, key)
    expect(page.locator("#logout")).to_be_visible()

    page.locator(".case-actions button[data-case]").first.click()
    expect(page.locator("form.upload")).to_be_visible()
    shoot("upload-controls")

    page.go_back()
    open_conversation(page)
    page.fill("textarea[name=text]", "draft")
    page.go_back()
    prompt = page.locator(".nav-prompt[role=alertdialog]")
    expect(prompt).to_be_visible()
    shoot("back-prompt")
    prompt.locator("[data-nav-stay]").click()
    expect(page.locator("textarea[name=text]")).to_have_value("draft")
