"""Every main screen: screenshots and axe-core checks in English, Arabic and Vietnamese, at 390 and 320 px."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import (
    choose_language,
    confirm_recovery_key,
    counsel_with_invite,
    fill_register,
    home_settled,
    invite_token,
    login,
    open_invite,
    read_recovery_key,
)
from tests.e2e.pseudo import PSEUDO_RTL
from tests.e2e.test_links_web import counsel_link

SCREEN_390 = {
    "viewport": {"width": 390, "height": 844},
    "screen": {"width": 390, "height": 844},
    "device_scale_factor": 1,
}
SCREEN_WIDTHS = {
    390: SCREEN_390,
    320: {
        "viewport": {"width": 320, "height": 640},
        "screen": {"width": 320, "height": 640},
        "device_scale_factor": 1,
    },
}
# (language, width): every screen screenshotted and axe-checked in each; 390 px files keep
# their old names ({lang}-{screen}.png), 320 px ones are {lang}-320-{screen}.png.
SHOTS = [(lang, width) for lang in ("en", "ar", "vi") for width in (390, 320)]
AXE = [("es", 390), *SHOTS]
SCREENS = (
    "register",
    "recovery-key",
    "recovery-confirm",
    "home",
    "safety-number",
    "change-passphrase",
    "duress",
    "shares",
    "factors",
    "replace-keys",
    "login",
    "safety-plan",
    "invite-code",
    "intake",
    "intake-return",
    "login-error",
    "recover",
    "share-recover",
    "home-counsel",
    "outcomes",
    "inbox",
    "invite",
    "invite-link",
    "links",
    "link-open",
    "admin-console",
)
RTL_LANGUAGES = ("ar", PSEUDO_RTL)


def walk_every_screen(
    page: Page,
    base_url: str,
    create_account: Callable[..., Any],
    lang: str,
    on_screen: Callable[[str], None],
) -> list[str]:
    """Visit every main screen once, calling ``on_screen(name)`` on each; return the names."""
    seen: list[str] = []

    def at(name: str) -> None:
        expect(page.locator("h1")).to_be_visible()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        seen.append(name)
        on_screen(name)

    counsel, token = counsel_with_invite(create_account)
    open_invite(page, base_url, token)
    choose_language(page, lang)
    assert page.locator("html").get_attribute("dir") == ("rtl" if lang in RTL_LANGUAGES else "ltr")
    at("register")
    name = f"survivor.{lang}"
    fill_register(page, name)
    at("recovery-key")
    key = read_recovery_key(page)
    page.click("main button.primary")
    at("recovery-confirm")
    page.click("text=" + page.locator("main button.link").inner_text())
    confirm_recovery_key(page, key)
    expect(page.locator(".member")).to_have_count(2)
    at("home")
    page.locator(".member button").first.click()
    expect(page.locator("svg.qr")).to_be_visible()
    at("safety-number")
    page.locator("main button.secondary").click()
    expect(page.locator(".member")).to_have_count(2)  # home again before its actions are used
    page.locator(".actions button").first.click()
    expect(page.locator("input[name=current]")).to_be_visible()
    at("change-passphrase")
    page.locator("main button.link").click()
    expect(page.locator(".member")).to_have_count(2)  # home again before its actions are used
    page.click("#open-duress")
    expect(page.locator("#duress-set")).to_be_visible()
    at("duress")
    page.locator("main > p button.link").click()
    expect(page.locator(".member")).to_have_count(2)  # home again before its actions are used
    page.click("#open-shares")  # split recovery (§22): the split form, then its sign-in side
    expect(page.locator("#share-split")).to_be_visible(timeout=30_000)
    at("shares")
    page.locator("main > p button.link").click()
    expect(page.locator(".member")).to_have_count(2)
    page.click("#open-factors")
    expect(page.locator("#factor-start")).to_be_visible()
    expect(page.locator("#passkey-start")).to_be_visible()  # passkeys (§21.8): list and add
    at("factors")
    page.locator("main > p button.link").click()
    expect(page.locator(".member")).to_have_count(2)  # home again before its actions are used
    page.click("#replace-keys")
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    at("replace-keys")
    page.locator("main p button.link").click()
    expect(page.locator(".member")).to_have_count(2)  # home again before its actions are used
    page.click("#logout")
    expect(page.locator("input[name=passphrase]")).to_be_visible()
    at("login")
    page.click("main [data-safety-plan]")
    at("safety-plan")
    page.click("main p button.secondary")
    page.click("#have-invite")
    at("invite-code")
    page.locator("main p button.link").click()
    page.click("#intake-link")  # anonymous intake (§20): the report form, the come-back screen
    at("intake")
    page.click("#intake-have-receipt")
    at("intake-return")
    page.locator("main p button.link").click()
    page.click("#intake-back")
    page.fill("input[name=username]", name)
    page.fill("input[name=passphrase]", "not the right passphrase")
    page.click("form button[type=submit]")
    expect(page.locator(".form-error")).not_to_be_empty(timeout=60_000)
    at("login-error")
    page.locator("main p button.link").click()
    expect(page.locator("input[name=recovery-key]")).to_be_visible()
    at("recover")
    page.click("#lost-both")
    at("share-recover")
    page.locator("main > p button.link").click()
    intake_admin, _ = create_account("admin")  # the counsel on the intake team: its inbox
    intake_admin.post("/intake/team/members", {"user_id": counsel.account.id})
    login(page, counsel.account.username, PY_PASSPHRASE)
    expect(page.locator(".member")).to_have_count(2)
    at("home-counsel")
    page.click("main [data-outcomes]")  # outcome reports (§28.8): the form of this period
    expect(page.locator("main [data-outcome-form]")).to_be_visible()
    at("outcomes")
    page.locator("main > p button.link").click()
    home_settled(page)
    page.click("#open-inbox")
    expect(page.locator("main [aria-busy]")).to_have_count(0)
    at("inbox")
    # Off the team again, so a second walk on the same server sees the same console.
    assert intake_admin.request("DELETE", f"/intake/team/members/{counsel.account.id}").ok
    page.locator("main > p button.link").click()
    expect(page.locator(".member")).to_have_count(2)
    page.locator("main button.primary").first.click()
    at("invite")
    page.locator("main button.primary").click()
    expect(page.locator("#invite-link")).to_be_visible()
    assert len(invite_token(page.locator("#invite-link").input_value())) == 43
    at("invite-link")
    # Outside links (§23): counsel's links screen, then the recipient's page of that link.
    url = counsel_link(counsel, Path(tempfile.mkdtemp()))
    page.locator("main .actions button.primary").click()
    page.locator(".case-actions button").first.click()
    page.click("#open-links")
    expect(page.locator(".link-item")).to_have_count(1)
    expect(page.locator("main form.card")).to_be_visible()
    at("links")
    page.goto(url)
    choose_language(page, lang)
    expect(page.locator("main form.card button[type=submit]")).to_be_visible()
    at("link-open")
    admin, _ = create_account("admin")  # the admin console, loaded in every section
    page.goto(f"{base_url}/app/")
    choose_language(page, lang)
    login(page, admin.account.username, PY_PASSPHRASE)
    page.click("#open-admin")
    expect(page.locator("main [aria-busy]")).to_have_count(0)
    at("admin-console")
    return seen


@pytest.mark.parametrize(("lang", "width"), AXE)
def test_screenshots_and_axe_on_every_screen(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    axe_script: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    lang: str,
    width: int,
) -> None:
    """One walk per language and width: each screen screenshotted (SHOTS) and axe-checked.

    axe-core comes in as an init script, which the page's CSP does not govern, so the CSP
    stays on and any console error (a CSP violation among them) still fails the walk.
    """
    page, watch = contexts.page(IPHONE, **SCREEN_WIDTHS[width])
    page.context.add_init_script(path=str(axe_script))
    prefix = lang if width == 390 else f"{lang}-{width}"
    shots = (lang, width) in SHOTS
    problems: dict[str, list[dict[str, Any]]] = {}

    def check(name: str) -> None:
        if shots:
            page.screenshot(path=str(screenshots / f"{prefix}-{name}.png"), full_page=False)
        found = run_axe(page, name)
        if found:
            problems[name] = found

    seen = walk_every_screen(page, live_server.url, create_account, lang, check)
    assert tuple(seen) == SCREENS
    for name in SCREENS if shots else ():
        assert (screenshots / f"{prefix}-{name}.png").stat().st_size > 2000
    assert problems == {}
    assert watch.console_errors == []
