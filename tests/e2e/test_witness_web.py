"""Witnessed heads in the browser (protocol §15): the page takes the witness policy the
operator configured, accepts cosigned heads, and refuses a key that only a split view
(a forked database behind the same log key and origin) shows."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.e2e.conftest import IPHONE, Contexts
from tests.e2e.flows import counsel_with_invite, login, logout, register
from tests.e2e.test_contacts_web import member_row
from tests.integration.attacks import forge_key
from tests.services import PostgresServer
from vault.db import database


@pytest.fixture
def app(make_witnessed_app: Callable[..., Flask]) -> Flask:
    """The app, its key log cosigned by the session's litewitness."""
    return make_witnessed_app()


def test_the_page_accepts_cosigned_heads_and_refuses_a_key_only_a_split_view_shows(
    contexts: Contexts,
    app: Flask,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    make_witnessed_app: Callable[..., Flask],
    postgres: PostgresServer,
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    name = counsel.account.username
    page, watch = contexts.page(IPHONE)
    register(page, live_server.url, token, "noor")
    row = member_row(page, name)
    expect(row).to_be_visible(timeout=30_000)
    expect(row.locator("[data-badge]")).to_have_count(0)
    policy = json.loads(
        page.locator('meta[name="haven-witnesses"]').get_attribute("content") or "{}"
    )
    assert policy["quorum"] == 1 and policy["origin"] == app.config["HAVEN_LOG_ORIGIN"]
    logout(page)

    # The operator copies the database and serves the copy with the same log key and origin.
    real = app.config["HAVEN_DATABASE_URL"].rsplit("/", 1)[1]
    database(app).engine.dispose()
    copy = f"t_{secrets.token_hex(6)}"
    postgres.execute(f"CREATE DATABASE {copy} TEMPLATE {real}")
    # The real log moves on (and is cosigned); in the copy the operator forges the counsel's
    # next key version. The copy's log is now a fork that no witness will cosign.
    create_account("survivor", username="another-client", invited_by=counsel)
    fork = make_witnessed_app(HAVEN_DATABASE_URL=postgres.url(copy))
    forge_key(fork, counsel.account.id, version=2)

    with LiveServer(fork) as forked:
        split = Contexts(contexts.pw, contexts.browser, forked)
        try:
            victim, seen = split.page(IPHONE)
            victim.goto(f"{forked.url}/app/")
            login(victim, "noor")
            # The forged key is past the newest cosigned checkpoint: refused, never pinned.
            badge = member_row(victim, name).locator("[data-badge]")
            expect(badge).to_have_attribute("data-badge", "invalid", timeout=30_000)
            expect(member_row(victim, name).locator("[data-badge=key-changed]")).to_have_count(0)
            assert seen.outside == [] and seen.console_errors == []
        finally:
            split.close()

    # The real server's page still accepts everything it shows.
    login(page, "noor")
    expect(member_row(page, name)).to_be_visible(timeout=30_000)
    expect(member_row(page, name).locator("[data-badge]")).to_have_count(0)
    assert watch.console_errors == []
