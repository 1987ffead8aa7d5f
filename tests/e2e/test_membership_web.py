"""Case membership by consent in the page: a counsel asks, the survivor approves, then removes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import login


def test_counsel_asks_and_the_survivor_approves_in_the_page(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    screenshots: Path,
) -> None:
    counsel, _ = create_account("counsel")
    survivor, _ = create_account("survivor", invited_by=counsel)
    colleague, _ = create_account("counsel")
    case_id = survivor.cases()[0]["id"]
    assert colleague.cases() == []

    asking, asking_watch = contexts.page(IPHONE, bypass_csp=True)
    asking.goto(f"{live_server.url}/app/")
    login(asking, counsel.account.username, PY_PASSPHRASE)
    form = asking.locator(f'form[data-add-colleague="{case_id}"]')
    form.locator("input").fill(colleague.account.username)
    form.locator("button[type=submit]").click()
    expect(form.locator("[role=status]")).to_contain_text("Waiting for your client's approval")
    assert run_axe(asking, "home-counsel-request") == []
    asking.screenshot(path=str(screenshots / "en-membership-requested.png"))
    # Not let in yet: the colleague sees no case.
    assert colleague.cases() == []

    page, watch = contexts.page(IPHONE, bypass_csp=True)
    page.goto(f"{live_server.url}/app/")
    login(page, survivor.account.username, PY_PASSPHRASE)
    request = page.locator(".member-request")
    expect(request).to_have_count(1)
    expect(request).to_contain_text(colleague.account.username)
    expect(page.locator(".member")).to_have_count(2)
    assert run_axe(page, "home-survivor-requests") == []
    page.screenshot(path=str(screenshots / "en-membership-pending.png"))
    page.get_by_role("button", name=f"Approve {colleague.account.username}").click()
    expect(page.locator(".notice")).to_contain_text("Approved")
    expect(page.locator(".member")).to_have_count(3)
    expect(page.locator(".member-request")).to_have_count(0)
    expect(page.locator(f'.member[data-user="{colleague.account.id}"]')).to_be_visible()
    assert [c["id"] for c in colleague.cases()] == [case_id]
    # The survivor can take them out again, after a second confirmation.
    page.get_by_role("button", name=f"Remove {colleague.account.username} from this case").click()
    confirm = page.locator(f'[data-remove-confirm="{colleague.account.id}"]')
    expect(confirm).to_be_focused()
    assert run_axe(page, "home-survivor-remove") == []
    confirm.click()
    expect(page.locator(".notice")).to_contain_text("Removed")
    expect(page.locator(".member")).to_have_count(2)
    assert colleague.cases() == []
    # The history names both steps.
    page.locator(f'button[data-case="{case_id}"]').click()
    page.get_by_role("button", name="Who opened my documents").click()
    expect(page.locator('li.event[data-kind="member_request"]')).to_have_count(1)
    expect(page.locator('li.event[data-kind="member_add"]')).to_have_count(1)
    expect(page.locator('li.event[data-kind="member_remove"]')).to_have_count(1)
    assert watch.console_errors == [] and asking_watch.console_errors == []
