"""The duress passphrase in the browser: set it, sign in with it, see only the decoy."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Response, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, IPHONE, Contexts
from tests.e2e.flows import PASSPHRASE, counsel_with_invite, login, logout, register
from tests.integration.documents_fixtures import fast_documents
from vault.client import HavenClient
from vault.client.messages import Messenger

DURESS = "grocery list for saturday 12"
API = "/api/v1/"


def api_answers(page: Page) -> list[Response]:
    """Record every API answer the page receives (read once the flow is done)."""
    seen: list[Response] = []
    page.on("response", lambda r: seen.append(r) if API in r.url else None)
    return seen


def bodies(answers: list[Response]) -> dict[str, bytes]:
    """The body of every recorded answer but live streams, by method and URL."""
    out: dict[str, bytes] = {}
    for r in answers:
        if "text/event-stream" in (r.headers.get("content-type") or ""):
            continue
        out[f"{r.request.method} {r.url} #{len(out)}"] = r.body()
    return out


def only(answers: list[Response], path: str) -> Response:
    """The single recorded answer for this API path."""
    found = [r for r in answers if r.url.endswith(API + path)]
    assert len(found) == 1, [r.url for r in answers]
    return found[0]


def test_duress_sign_in_opens_the_decoy_and_nothing_of_the_real_case(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
) -> None:
    counsel, token = counsel_with_invite(create_account)
    page, watch = contexts.page(IPHONE)
    register(page, live_server.url, token, "nadia.web")

    # The real case holds a document and a conversation with counsel.
    real = HavenClient(live_server.url, witnesses=live_server.witnesses)
    real.login("nadia.web", PASSPHRASE)
    assert real.account is not None and counsel.account is not None
    case_id = real.cases()[0]["id"]
    doc = fast_documents(real).upload(
        case_id, io.BytesIO(b"I-914 draft"), doc_type="immigration_form", name="i914-draft.pdf"
    )
    talk = Messenger(real).create_conversation(case_id, [counsel.account.id])
    Messenger(real).send(talk.id, "my hearing is next week")

    # She sets the duress passphrase from her signed-in account, the alert off for now.
    page.click("#open-duress")
    page.fill("#duress-set input[name=current]", PASSPHRASE)
    page.fill("#duress-set input[name=new-passphrase]", DURESS)
    page.fill("#duress-set input[name=passphrase-again]", DURESS)
    page.click("#duress-set button[type=submit]")
    expect(page.locator("#duress-on")).to_be_visible(timeout=60_000)
    expect(page.locator("#duress-alert")).not_to_be_checked()

    # She fills the decoy with something ordinary (no alert yet), then turns the alert on.
    decoy_client = HavenClient(live_server.url, witnesses=live_server.witnesses)
    decoy_client.login("nadia.web", DURESS)
    decoy_case = decoy_client.cases()[0]["id"]
    fast_documents(decoy_client).upload(
        decoy_case, io.BytesIO(b"flour, eggs"), doc_type="other", name="recipes.txt"
    )
    page.set_viewport_size({"width": 320, "height": 640})
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.screenshot(path=str(screenshots / "en-duress-set-320.png"), full_page=True)
    page.check("#duress-alert")
    expect(page.locator("#duress-alert-status")).not_to_be_empty()
    assert real.get("/account/duress")["duress"]["alert_counsel"] is True
    page.locator("main > p button.link").click()
    # Changing the passphrase would turn it off: the change screen says so.
    page.get_by_role("button", name="Change passphrase").click()
    expect(page.locator("#duress-warning")).to_be_visible()
    page.locator("main > p button.link").click()
    logout(page)

    # Signing in with the real passphrase on one phone, the duress one on another.
    real_phone, _ = contexts.page(ANDROID)
    real_answers = api_answers(real_phone)
    real_phone.goto(f"{live_server.url}/app/")
    login(real_phone, "nadia.web")
    expect(real_phone.locator(".member")).to_have_count(2)

    phone, decoy_watch = contexts.page(ANDROID)
    answers = api_answers(phone)
    phone.goto(f"{live_server.url}/app/")
    login(phone, "nadia.web", DURESS)
    expect(phone.locator(".whoami")).to_contain_text("nadia.web")
    expect(phone.locator(".member")).to_have_count(1)
    phone.locator(".case-actions button").first.click()
    expect(phone.locator(".document h3", has_text="recipes.txt")).to_be_visible(timeout=60_000)
    expect(phone.locator(".document h3", has_text="i914-draft.pdf")).to_have_count(0)
    phone.locator("main button.link").last.click()
    phone.click("#open-duress")
    expect(phone.locator("#duress-set")).to_be_visible()

    # Pre-login and login answers look the same for both passphrases.
    for path in ("auth/prelogin", "auth/login"):
        a, b = only(real_answers, path), only(answers, path)
        assert a.status == b.status == 200
        assert len(a.body()) == len(b.body())
        assert sorted(a.json()) == sorted(b.json())
    assert only(real_answers, "auth/prelogin").body() == only(answers, "auth/prelogin").body()
    assert sorted(only(real_answers, "auth/login").json()["account"]) == sorted(
        only(answers, "auth/login").json()["account"]
    )

    # Nothing of the real case reached the decoy's page.
    received = bodies(answers)
    assert received
    secrets = [real.account.id, case_id, doc.id, talk.id, counsel.account.id]
    secrets.append(counsel.account.username)
    for where, body in received.items():
        for secret in secrets:
            assert secret.encode() not in body, f"{secret} reached the decoy page in {where}"

    # Counsel was alerted, silently: the warning is on her case in counsel's page.
    events = counsel.get(f"/cases/{case_id}/events")["events"]
    assert [e["kind"] for e in events].count("duress_alert") == 1
    lawyer, _ = contexts.page(IPHONE)
    lawyer.goto(f"{live_server.url}/app/")
    login(lawyer, counsel.account.username, PY_PASSPHRASE)
    expect(lawyer.locator(f'[data-duress-alert="{case_id}"]')).to_be_visible(timeout=30_000)
    lawyer.screenshot(path=str(screenshots / "en-duress-alert-counsel.png"))
    expect(phone.locator("[data-duress-alert]")).to_have_count(0)
    assert watch.console_errors == [] and decoy_watch.console_errors == []
