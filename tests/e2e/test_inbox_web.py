"""The intake team's inbox in the browser (issue 16): an admin puts a counsel on the team in
the console; a reporter (Python client) submits; the counsel reads, replies and marks the
report handled in the web app; the reporter reads the reply with her receipt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, Route, expect

from tests.conftest import PASSPHRASE, LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import login
from tests.e2e.test_screens import SCREEN_390
from vault.client import HavenClient
from vault.client.intake import Inbox, Reporter
from vault.protocol import intake as pin

REPORT = pin.Report("They took my passport at the Lotus salon", language="es", danger="yes")
REPLY = "We can meet tomorrow; reply here."
COLLEAGUE = "A colleague of mine speaks Spanish."


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with an easy proof of work."""
    return make_app(HAVEN_INTAKE_POW_BITS="4")


def test_counsel_works_a_report_in_the_inbox(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    screenshots: Path,
) -> None:
    admin, _ = create_account("admin", username="intake.admin")
    counsel, _ = create_account("counsel", username="intake.counsel")
    colleague, _ = create_account("counsel", username="intake.colleague")
    late, _ = create_account("counsel", username="intake.late")
    counsel_id = counsel.account.id
    page, watch = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    page.goto(f"{live_server.url}/app/")

    login(page, admin.account.username, PASSPHRASE)
    page.click("#open-admin")
    page.click("details.admin-candidates summary")
    page.click(f"[data-intake-add='{counsel_id}']")
    page.click("main [data-confirm=yes]")
    expect(page.locator(f"[data-intake-remove='{counsel_id}']")).to_be_visible()
    assert [m["user_id"] for m in admin.get("/intake/team")["members"]] == [counsel_id]
    admin.post("/intake/team/members", {"user_id": colleague.account.id})
    # Signing out in the browser would end every session of the admin, the Python one too.
    page, watch2 = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    page.goto(f"{live_server.url}/app/")

    reporter = Reporter(HavenClient(live_server.url, witnesses=live_server.witnesses))
    receipt = reporter.submit(REPORT)
    Inbox(colleague).reply(receipt.report_id, COLLEAGUE)  # checked against the key log

    login(page, counsel.account.username, PASSPHRASE)
    page.click("#open-inbox")
    row = page.locator(f"[data-state=new] [data-report='{receipt.report_id}']")
    row.locator("[data-open-report]").click()
    expect(page.locator("[data-seq='1']")).to_contain_text(REPORT.text)
    expect(page.locator("[data-seq='2']")).to_contain_text(COLLEAGUE)
    expect(page.locator("[data-seq='2']")).to_contain_text("intake.colleague")
    expect(page.locator("[data-refused]")).to_have_count(0)
    assert run_axe(page, "intake-report en") == []
    page.screenshot(path=str(screenshots / "en-intake-report.png"), full_page=True)

    page.fill("textarea[name=inbox-reply]", REPLY)
    page.click("[data-inbox-reply] button[type=submit]")
    expect(page.locator("[data-seq='3']")).to_contain_text(REPLY)
    page.click("[data-assign=me]")
    expect(page.locator("[data-status=assigned]")).to_be_visible()
    page.click("[data-handled]")
    expect(page.locator("[data-status=handled]")).to_be_visible()
    expect(page.locator("[data-refused]")).to_have_count(0)

    # A member who joins after the report arrived reads it once the counsel shares its key.
    admin.post("/intake/team/members", {"user_id": late.account.id})
    page.click("main > p button.link")
    page.locator(f"[data-report='{receipt.report_id}'] [data-open-report]").click()
    page.click(".inbox-share summary")
    with page.expect_response(lambda r: r.url.endswith("/keys")) as shared:
        page.click(f"[data-share='{late.account.id}']")
    assert shared.value.status == 204
    assert Inbox(late).read(receipt.report_id)[0].content == REPORT

    # A server that alters a member's signature: that entry is refused, never shown as text.
    def forge(route: Route) -> None:
        answer = route.fetch().json()
        entries = answer["report"]["entries"]
        entries[1]["signature"] = entries[2]["signature"]  # well-formed, another entry's
        route.fulfill(json=answer)

    page.route(f"**/api/v1/intake/reports/{receipt.report_id}", forge)
    page.click("main > p button.link")
    page.locator(f"[data-report='{receipt.report_id}'] [data-open-report]").click()
    expect(page.locator("[data-seq='2'] [data-refused]")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text(COLLEAGUE)
    expect(page.locator("[data-seq='3']")).to_contain_text(REPLY)

    back = Reporter(HavenClient(live_server.url, witnesses=live_server.witnesses))
    thread = back.come_back(receipt.receipt)
    colleague_id = colleague.account.id
    assert [(e.author_id, e.content) for e in thread[1:]] == [
        (colleague_id, COLLEAGUE),
        (counsel_id, REPLY),
    ]
    for seen in (watch, watch2):
        assert seen.outside == [] and seen.console_errors == []
