"""The admin console in the browser (issue 20, "Done when"): an admin rotates the data key,
watches the re-encryption finish, retires the old version, disables an account and verifies
the audit chain; the passphrase is asked again once the sign-in is old (protocol §25.1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import choose_language, login
from tests.e2e.test_screens import SCREEN_390
from vault import clock
from vault.client import ApiError
from vault.ops import jobs


@pytest.fixture
def jump() -> Iterator[Callable[[float], None]]:
    """Move the server's clock forward; put it back afterwards."""
    yield clock.jump
    clock.reset()


def run_job(app: Flask, name: str) -> str | None:
    """Run one scheduled job now, as the scheduler would (protocol §26.1)."""
    job = jobs.REGISTRY[name]
    seconds = jobs.period_of(app, job)
    return jobs.run_claimed(app, job, int(time.time() // seconds), seconds)


def confirm(page: Page, button: str) -> None:
    """Press a change's button, then its "Yes"."""
    page.click(button)
    page.click("main [data-confirm=yes]")


def test_admin_rotates_reencrypts_retires_disables_and_verifies(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    screenshots: Path,
    jump: Callable[[float], None],
) -> None:
    admin, _ = create_account("admin", username="console.admin")
    target, _ = create_account("counsel", username="console.counsel")
    target_id = target.account.id
    page, watch = contexts.page(IPHONE, bypass_csp=True, **SCREEN_390)
    page.goto(f"{live_server.url}/app/")
    login(page, "console.admin", PY_PASSPHRASE)
    page.click("#open-admin")
    expect(page.locator("[data-rotate]")).to_have_count(4)

    # Past the recent sign-in window: the console asks for the passphrase, then rotates.
    jump(11 * 60)
    confirm(page, "[data-rotate=data]")
    page.fill("input[name=admin-passphrase]", PY_PASSPHRASE)
    page.click("[data-reauth=submit]")
    expect(page.locator("[data-reencrypt=done]")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-key='data:1'] [data-uses]")).to_have_attribute("data-uses", "0")
    page.locator("[data-admin=keys]").screenshot(path=str(screenshots / "en-admin-reencrypted.png"))

    confirm(page, "[data-retire='data:1']")
    expect(page.locator("[data-key='data:2']")).to_be_visible()
    expect(page.locator("[data-key='data:1']")).to_have_count(0)

    page.click("[data-admin=accounts] summary")
    confirm(page, f"[data-disable='{target_id}']")
    expect(page.locator(f"[data-account='{target_id}'] .badge.danger")).to_be_visible()
    with pytest.raises(ApiError) as ended:
        target.get("/account")
    assert ended.value.status == 401

    # Maintenance lists a job's run once the admin refreshes; the factor policy flips.
    assert run_job(live_server.app, "grant_expiry") == "ok"
    page.click("[data-jobs=refresh]")
    expect(page.locator("[data-job=grant_expiry] [data-outcome=ok]")).to_be_visible()
    page.locator("[data-admin=jobs]").screenshot(path=str(screenshots / "en-admin-jobs.png"))
    confirm(page, "[data-policy-change=require]")  # the tests' server starts with it off
    expect(page.locator("[data-policy=required]")).to_be_visible()

    page.click("[data-verify=audit]")
    expect(page.locator("[data-admin=audit] [data-verified=intact]")).to_be_visible()
    page.screenshot(path=str(screenshots / "en-admin-verified.png"), full_page=True)
    assert run_axe(page, "admin-console en") == []

    choose_language(page, "ar")
    assert page.locator("html").get_attribute("dir") == "rtl"
    expect(page.locator("[data-rotate]")).to_have_count(4)
    page.click("[data-verify=audit]")
    expect(page.locator("[data-admin=audit] [data-verified=intact]")).to_be_visible()
    page.screenshot(path=str(screenshots / "ar-admin-verified.png"), full_page=True)
    assert run_axe(page, "admin-console ar") == []
    assert watch.console_errors == []

    admin.reauth(PY_PASSPHRASE)  # the Python client's session is as old as the page's
    kinds = [e["kind"] for e in admin.get("/admin/audit", limit=50)["entries"]]
    assert admin.get("/admin/factor-policy")["required_for_staff"] is True
    done = [
        "factor_policy_set",
        "account_disabled",
        "server_key_retired",
        "data_reencrypted",
        "server_key_rotated",
    ]
    assert [k for k in kinds if k in done] == done
    assert "reauth" in kinds
