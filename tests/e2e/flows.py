"""What a person does in the web client, step by step, for the browser tests."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from vault.client import HavenClient

PASSPHRASE = "river stone lamp quietly 7"
NEW_PASSPHRASE = "another long phrase for a new day"


def invite_token(link: str) -> str:
    """The token of an invite link."""
    return link.rsplit("invite=", 1)[-1]


def open_invite(page: Page, base_url: str, token: str) -> None:
    """Open an invite link the way a person would: the token in the fragment."""
    page.goto(f"{base_url}/app/#invite={token}")
    expect(page.locator("h1")).to_be_visible()


def choose_language(page: Page, code: str) -> None:
    """Use the language picker."""
    page.select_option("#lang", code)
    expect(page.locator("html")).to_have_attribute("lang", code)


def fill_register(page: Page, username: str, passphrase: str = PASSPHRASE) -> None:
    """Fill in and send the registration form."""
    page.fill("input[name=username]", username)
    page.fill("input[name=new-passphrase]", passphrase)
    page.fill("input[name=passphrase-again]", passphrase)
    page.click("form button[type=submit]")
    expect(page.locator(".key-groups")).to_be_visible(timeout=60_000)


def read_recovery_key(page: Page) -> str:
    """The recovery key shown once, as 13 groups joined by dashes."""
    groups = page.locator(".key-groups li .g").all_inner_texts()
    assert len(groups) == 13
    return "-".join(g.strip() for g in groups)


def confirm_recovery_key(page: Page, recovery_key: str) -> None:
    """Press "written down", then type back the two groups asked for."""
    page.click("main button.primary")
    inputs = page.locator("input[data-group]")
    expect(inputs).to_have_count(2)
    groups = recovery_key.split("-")
    for i in range(2):
        box = inputs.nth(i)
        number = int(box.get_attribute("data-group") or "0")
        box.fill(groups[number - 1])
    page.click("form button[type=submit]")


def register(page: Page, base_url: str, token: str, username: str) -> str:
    """Redeem an invite in the browser up to the home screen; return the recovery key."""
    open_invite(page, base_url, token)
    fill_register(page, username)
    key = read_recovery_key(page)
    confirm_recovery_key(page, key)
    expect(page.locator("#logout")).to_be_visible()
    return key


def login(page: Page, username: str, passphrase: str = PASSPHRASE) -> None:
    """Sign in from the login screen."""
    sign_in(page, username, passphrase)
    signed_in(page)


def signed_in(page: Page) -> None:
    """Wait for the home screen of a sign-in sent with ``sign_in``."""
    expect(page.locator("#logout")).to_be_visible(timeout=60_000)


def home_settled(page: Page) -> None:
    """Wait until a survivor's or counsel's home has its case list: the cases' own buttons
    arrive with it, and the list moves what stands below it (the inbox, the safety plan)."""
    expect(page.locator(".cases-region")).to_have_count(1, timeout=60_000)
    expect(page.locator(".cases-region[aria-busy]")).to_have_count(0, timeout=60_000)


def logout(page: Page) -> None:
    """Sign out from the home screen."""
    page.click("#logout")
    expect(page.locator("input[name=passphrase]")).to_be_visible()


def counsel_with_invite(create_account: Any) -> tuple[HavenClient, str]:
    """A counsel account (Python client) and a fresh survivor invite token from it."""
    counsel, _ = create_account("counsel")
    return counsel, invite_token(counsel.create_invite("survivor"))


READ_STORAGE = """async () => {
    const out = {local: {}, session: {}, idb: [], caches: [], cookie: document.cookie};
    for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i); out.local[k] = localStorage.getItem(k);
    }
    for (let i = 0; i < sessionStorage.length; i++) {
        const k = sessionStorage.key(i); out.session[k] = sessionStorage.getItem(k);
    }
    if (indexedDB.databases) out.idb = (await indexedDB.databases()).map(d => d.name);
    if (self.caches) out.caches = await caches.keys();
    return out;
}"""


def read_storage(page: Page) -> dict[str, Any]:
    """Everything the page's origin keeps in web storage, IndexedDB, Cache Storage, cookies."""
    data: dict[str, Any] = page.evaluate(READ_STORAGE)
    return data


def assert_holds_none_of(page: Page, secrets: list[str]) -> None:
    """No browser storage of this origin holds any of these strings (case-insensitive)."""
    data = read_storage(page)
    cookies = page.context.cookies()
    dump = repr(data).lower() + repr([(c["name"], c["value"]) for c in cookies]).lower()
    for secret in secrets:
        assert secret.lower() not in dump, f"browser storage holds {secret!r}"
    assert data["local"] == {} and data["session"] == {}
    assert data["idb"] == [] and data["caches"] == []
    assert data["cookie"] == "", "no cookie readable by scripts"
    for cookie in cookies:
        assert cookie["httpOnly"], f"cookie {cookie['name']} is readable by scripts"


def visible_text(page: Page) -> str:
    """The page's visible text, whitespace collapsed."""
    return re.sub(r"\\s+", " ", page.locator("body").inner_text())


def sign_in(page: Page, username: str, passphrase: str = PASSPHRASE) -> None:
    """Send the login form without assuming which screen comes next."""
    page.fill("input[name=username]", username)
    page.fill("input[name=passphrase]", passphrase)
    page.click("form button[type=submit]")


def replace_keys(page: Page, passphrase: str = PASSPHRASE) -> str:
    """On the "Replace your keys" screen: re-enter the passphrase, wait for the new
    recovery key, type two of its groups back; return the new key."""
    page.fill("input[name=passphrase]", passphrase)
    page.click("form button[type=submit]")
    expect(page.locator(".key-groups")).to_be_visible(timeout=90_000)
    key = read_recovery_key(page)
    confirm_recovery_key(page, key)
    expect(page.locator("#logout")).to_be_visible()
    return key


def open_conversation(page: Page) -> None:
    """From the home screen to the first case's conversation, live."""
    page.locator(".case-actions button[data-messages]").first.click()
    conversation_live(page)


def conversation_live(page: Page) -> None:
    """Wait until the open conversation's stream is live."""
    expect(page.locator("ol.messages")).to_have_attribute("data-live", "true")


def send_message(page: Page, text: str) -> None:
    """Type and send a message; wait until it shows as mine."""
    page.fill("textarea[name=text]", text)
    page.click("form.compose button[type=submit]")
    expect(page.locator("li.message.mine", has_text=text)).to_be_visible(timeout=30_000)
