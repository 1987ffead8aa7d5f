"""Languages in the browser: the phone's language first, catalogs fetched only when chosen, pinned."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Request, Route, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, WEB, Contexts
from tests.e2e.flows import counsel_with_invite

CATALOG = re.compile(r"/assets/([a-z]{2,3})-[0-9a-f]{16}\.json$")


def _title(code: str) -> str:
    """register.title in one catalog."""
    catalog = json.loads((WEB / "src" / "i18n" / f"{code}.json").read_text(encoding="utf-8"))
    return str(catalog["register.title"])


def test_phone_language_is_used_and_only_the_chosen_catalogs_are_fetched(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, watch = contexts.page(ANDROID, locale="pt-BR")
    fetched: list[str] = []

    def record(request: Request) -> None:
        found = CATALOG.search(request.url)
        if found:
            fetched.append(found.group(1))

    page.on("request", record)
    page.goto(f"{live_server.url}/app/#invite={token}")
    expect(page.locator("html")).to_have_attribute("lang", "pt")
    expect(page.locator("h1")).to_have_text(_title("pt"))
    page.select_option("#lang", "vi")
    expect(page.locator("h1")).to_have_text(_title("vi"))
    page.select_option("#lang", "en")
    expect(page.locator("h1")).to_have_text(_title("en"))
    page.select_option("#lang", "pt")
    expect(page.locator("h1")).to_have_text(_title("pt"))
    # English is in the app bundle; Portuguese was fetched once, then kept in the page.
    assert fetched == ["pt", "vi"]
    assert watch.console_errors == []


def test_a_catalog_that_fails_its_integrity_check_is_not_used(
    contexts: Contexts, live_server: LiveServer, create_account: Callable[..., Any]
) -> None:
    _, token = counsel_with_invite(create_account)
    page, _ = contexts.page(ANDROID, locale="en-US")

    def tampered(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace(_title("ru"), "Tampered")
        route.fulfill(status=200, content_type="application/json", body=body)

    page.route(re.compile(re.escape(live_server.url) + r"/assets/ru-[0-9a-f]{16}\.json$"), tampered)
    page.goto(f"{live_server.url}/app/#invite={token}")
    expect(page.locator("h1")).to_have_text(_title("en"))
    with page.expect_response(CATALOG):
        page.select_option("#lang", "ru")
    # Refused by Subresource Integrity: the page stays in English, and the picker says so.
    expect(page.locator("#lang")).to_have_value("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text(_title("en"))
    page.select_option("#lang", "fr")
    expect(page.locator("h1")).to_have_text(_title("fr"))


@pytest.mark.parametrize(("locale", "code"), [("zh-CN", "zh"), ("fil-PH", "tl"), ("ht-HT", "ht")])
def test_phone_language_tag_picks_its_catalog(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    locale: str,
    code: str,
) -> None:
    _, token = counsel_with_invite(create_account)
    page, watch = contexts.page(ANDROID, locale=locale)
    page.goto(f"{live_server.url}/app/#invite={token}")
    expect(page.locator("html")).to_have_attribute("lang", code)
    expect(page.locator("h1")).to_have_text(_title(code))
    expect(page.locator("#lang")).to_have_value(code)
    assert watch.console_errors == []
