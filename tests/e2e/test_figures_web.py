"""Outcome reports and private figures in the browser (issue 19, protocol §28): counsel reports
a case's outcomes in the page, the survivor's Python client opens the true answers, an admin
releases the period's figures, sees them drawn with their intervals, and exports a CSV that
carries the privacy parameters and no identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import choose_language, login
from vault.client import ApiError
from vault.client.figures import Figures

TRUTH = {
    "t_visa": "filed",
    "u_visa": "preparing",
    "protective_order": "obtained",
    "referral": "mental_health",
    "language": "ht",
}


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with a suppression threshold two reports can pass."""
    return make_app(HAVEN_FIGURES_SUPPRESS_BELOW="2")


def test_counsel_reports_in_the_page_and_an_admin_releases_draws_and_exports(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    screenshots: Path,
) -> None:
    counsel, _ = create_account("counsel", username="figures.counsel")
    survivor, _ = create_account("survivor", username="figures.client", invited_by=counsel)
    other, _ = create_account("survivor", username="figures.other", invited_by=counsel)
    admin, _ = create_account("admin", username="figures.admin")
    case_id = survivor.cases()[0]["id"]
    other_case = other.cases()[0]["id"]
    period = Figures(counsel).schema()["period"]
    # A second report through the Python client, so the outcome figures pass the threshold.
    Figures(counsel).report(other_case, {**TRUTH, "language": "es"})

    page, watch = contexts.page(IPHONE, bypass_csp=True)
    page.goto(f"{live_server.url}/app/")
    login(page, "figures.counsel", PY_PASSPHRASE)
    page.click(f'[data-outcomes="{case_id}"]')
    form = page.locator(f'form[data-outcome-form="{period}"]')
    expect(form).to_be_visible()
    for name, value in TRUTH.items():
        form.locator(f"select[name={name}]").select_option(value)
    form.locator("button[type=submit]").click()
    done = page.locator(f'[data-outcome="{period}"]')
    expect(done).to_contain_text(f"Outcomes reported for {period}")
    expect(done.locator("[data-answer=referral]")).to_have_text("Mental health")
    expect(done.locator("[data-answer=language]")).to_have_text("Haitian Creole")
    expect(page.locator(f'form[data-outcome-form="{period}"]')).to_have_count(0)
    page.screenshot(path=str(screenshots / "en-outcomes-reported.png"), full_page=True)
    assert run_axe(page, "outcomes en") == []
    # The survivor's own client opens what the page sealed: the true answers, not the sent ones.
    (opened,) = Figures(survivor).outcomes(case_id)
    assert (opened.period, opened.answers) == (period, TRUTH)

    admin_page, admin_watch = contexts.page(IPHONE, bypass_csp=True)
    admin_page.goto(f"{live_server.url}/app/")
    login(admin_page, "figures.admin", PY_PASSPHRASE)
    admin_page.click("#open-admin")
    section = admin_page.locator('[data-admin="figures.releases"]')
    expect(section.locator("[data-budget-left]")).to_have_attribute("data-budget-left", "4")
    section.locator(f'[data-release-figures="{period}"]').click()
    admin_page.click("main [data-confirm=yes]")
    section = admin_page.locator('[data-admin="figures.releases"]')
    expect(section.locator("[data-release]")).to_have_count(1)
    expect(section.locator("[data-budget-left]")).to_have_attribute(
        "data-budget-left", re.compile(r"^3\.2")
    )
    # Six central figures, each a bar with its whisker or "too few to show"; the outcomes as groups.
    for name in ("cases_opened", "messages_sent", "intake_reports"):
        fig = section.locator(f'[data-fig="{name}"]')
        expect(fig).to_contain_text("ε 0.1")
        assert fig.locator("svg[role=img]").count() + fig.locator("[data-suppressed]").count() == 1
    t_visa = section.locator('[data-fig="outcome.t_visa"]')
    expect(t_visa.locator("svg[role=img]")).to_have_count(5)
    expect(t_visa).to_contain_text("2 reports")
    expect(t_visa).to_contain_text("randomized response")
    text = section.inner_text()
    for identity in ("figures.counsel", "figures.client", "figures.other", case_id, other_case):
        assert identity not in text

    with admin_page.expect_download() as download:
        section.locator("[data-export=csv]").click()
    csv = Path(download.value.path()).read_bytes().decode("utf-8")
    header, *rows = csv.strip().split("\r\n")
    assert header.split(",")[4:7] == ["kind", "mechanism", "epsilon"]
    assert any(
        r.startswith(f"{period},") and ",cases_opened,central,discrete_laplace,0.1," in r
        for r in rows
    )
    assert sum(",outcome.t_visa,local,randomized_response,1,,,2," in r for r in rows) == 5
    for identity in ("figures.", case_id, other_case, counsel.account.id, survivor.account.id):
        assert identity not in csv
    with admin_page.expect_download() as download:
        section.locator("[data-export=json]").click()
    assert '"confidence": 0.95' in Path(download.value.path()).read_text(encoding="utf-8")

    admin_page.screenshot(path=str(screenshots / "en-admin-figures.png"), full_page=True)
    assert run_axe(admin_page, "admin-figures en") == []
    # Once the period's budget is spent, the page says so and nothing more is released.
    for _ in range(10):
        try:
            Figures(admin).release(period)
        except ApiError as error:
            assert error.code == "budget_exhausted"
            break
    section.locator(f'[data-release-figures="{period}"]').click()
    admin_page.click("main [data-confirm=yes]")
    expect(section.locator(".form-error")).to_have_text(
        "The privacy budget for this period is spent."
    )
    count = len(Figures(admin).releases(period)["releases"])
    choose_language(admin_page, "ar")
    assert admin_page.locator("html").get_attribute("dir") == "rtl"
    newest = section.locator("details[open][data-release]")
    expect(newest.locator('[data-fig="outcome.t_visa"] svg[role=img]')).to_have_count(5)
    section.screenshot(path=str(screenshots / "ar-admin-figures.png"))
    assert run_axe(admin_page, "admin-figures ar") == []
    assert len(Figures(admin).releases(period)["releases"]) == count
    assert watch.console_errors == [] and admin_watch.console_errors == []
