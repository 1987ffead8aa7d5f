"""Fifty open pages live on one event-tier process (protocol §9.13, docs/deploy.md).

Caddy in front, as deployed: ``/api/v1/events`` goes to the event tier (gunicorn, one
gevent worker), everything else to the app tier (gunicorn gthread, ``HAVEN_TIER=app``), on
one PostgreSQL and one Redis. Today's gthread process holds 4 streams; here 50 pages in
13 browser contexts all keep their stream on the one event-tier process, every page shows
a new message without a reload, and none falls back to polling (web/src/live.js polls the
open conversation's pages only while its stream is not live).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, Playwright, expect

from tests.conftest import FAST_SERVER_HASH, PASSPHRASE
from tests.e2e.conftest import ANDROID, Contexts
from tests.e2e.flows import conversation_live, sign_in, signed_in
from tests.e2e.test_stream_web import EVENTS, MESSAGE_PAGES, Requests
from tests.integration.event_tier import EventTierProcess
from tests.integration.messages_fixtures import AppProcess
from tests.services import MinioServer, RedisServer, free_port, wait_for
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.client import HavenClient, WitnessPolicy
from vault.client.messages import Messenger
from vault.db import database
from vault.protocol.encoding import b64encode

PAGES = 50
# Chromium keeps at most 6 HTTP/1.1 connections per host in a context, and each page's
# stream holds one: 4 pages per context leave room for the pages' other requests.
PER_CONTEXT = 4
CADDY = Path.home() / ".cache" / "haven-tools" / "caddy-v2.10.2" / "caddy"


@dataclass
class Deployment:
    """Caddy in front of an app tier and an event tier."""

    url: str
    app: Flask
    events: EventTierProcess


def _caddyfile(port: int, app_port: int, events_port: int) -> str:
    return f"""{{
	admin off
	auto_https off
}}
http://127.0.0.1:{port} {{
	handle /api/v1/events {{
		reverse_proxy 127.0.0.1:{events_port} {{
			flush_interval -1
		}}
	}}
	handle {{
		reverse_proxy 127.0.0.1:{app_port}
	}}
}}
"""


@pytest.fixture
def deployment(
    make_app: Callable[..., Flask],
    database_url: str,
    tmp_path: Path,
    minio: MinioServer,
    redis_server: RedisServer,
    web_build: Path,
) -> Iterator[Deployment]:
    """Caddy, the app tier and one event-tier process on the same settings."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    shared = {
        "HAVEN_TESTING": "true",
        "HAVEN_DATABASE_URL": database_url,
        "HAVEN_KEYS_DIR": str(tmp_path / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_REDIS_URL": redis_server.url,
        "HAVEN_PUBLIC_URL": url,
        # Fifty sign-ins from one address in a few minutes.
        "HAVEN_LIMIT_LOGIN_IP": "1000/minute",
        "HAVEN_LIMIT_LOGIN_ACCOUNT": "1000/minute",
        "HAVEN_LIMIT_PRELOGIN": "1000/minute",
        # The counsel's pages go straight to the conversation, not to second-factor set-up.
        "HAVEN_FACTOR_REQUIRE_STAFF": "false",
        **FAST_SERVER_HASH,
        **minio.settings(f"t-{secrets.token_hex(6)}"),
    }
    app = make_app(**shared)
    # One app-tier worker is enough for four sign-ins at a time, and starts in half the time.
    app_tier = AppProcess({**shared, "HAVEN_TIER": "app"}, workers=1, log=tmp_path / "app.log")
    events = EventTierProcess(shared, workers=1, log=tmp_path / "events.log")
    app_tier.start(wait=False)
    events.start(wait=False)
    config = tmp_path / "Caddyfile"
    config.write_text(_caddyfile(port, app_tier.port, events.port), encoding="utf-8")
    with (tmp_path / "caddy.log").open("wb") as caddy_log:
        caddy = subprocess.Popen(
            [str(CADDY), "run", "--config", str(config), "--adapter", "caddyfile"],
            stdout=subprocess.DEVNULL,
            stderr=caddy_log,
        )
    try:
        app_tier.wait()
        events.wait()
        wait_for(lambda: _answers(f"{url}/healthz"), "caddy")
        yield Deployment(url, app, events)
    finally:
        caddy.terminate()
        caddy.wait(timeout=30)
        events.stop()
        app_tier.stop()


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _invite(app: Flask, role: str) -> str:
    with app.app_context():
        db = database(app).sessions()
        try:
            _, token = accounts.create_invite(db, Role(role), None, 24)
        finally:
            db.close()
    return b64encode(token)


@pytest.mark.timeout(1200)
def test_fifty_pages_stay_live_on_one_event_tier_process(
    playwright_session: Playwright, browser: Browser, deployment: Deployment
) -> None:
    url = deployment.url
    unwitnessed = WitnessPolicy.unwitnessed()
    counsel = HavenClient(url, witnesses=unwitnessed)
    counsel.register(_invite(deployment.app, "counsel"), "counsel.live", PASSPHRASE)
    survivor = HavenClient(url, witnesses=unwitnessed)
    survivor.register(counsel.create_invite("survivor"), "survivor.live", PASSPHRASE)
    case = survivor.cases()[0]
    assert counsel.account is not None and survivor.account is not None
    cid = Messenger(survivor).create_conversation(case["id"], [counsel.account.id]).id

    contexts = Contexts(playwright_session, browser, SimpleNamespace(url=url))  # type: ignore[arg-type]
    pages: list[tuple[Page, Requests, str]] = []
    try:
        for first in range(0, PAGES, PER_CONTEXT):
            # One account per context (pages of a context share its cookie). The context's
            # pages load and sign in side by side, each deriving its keys in its own worker.
            context, _ = contexts.new(ANDROID)
            who = "counsel.live" if first // PER_CONTEXT % 2 == 0 else "survivor.live"
            batch = [context.new_page() for _ in range(min(PER_CONTEXT, PAGES - first))]
            for page in batch:
                pages.append((page, Requests(page), who))
                page.goto(f"{url}/app/", wait_until="commit")
            for page in batch:
                sign_in(page, who, PASSPHRASE)
            for page in batch:
                signed_in(page)
                page.locator(".case-actions button[data-messages]").first.click()
            for page in batch:
                conversation_live(page)

        mark = [len(seen.urls) for _, seen, _ in pages]
        Messenger(survivor).send(cid, "Fifty pages, one process.")
        for page, _, who in pages:
            side = "theirs" if who == "counsel.live" else "mine"
            expect(
                page.locator(f"li.message.{side}", has_text="Fifty pages, one process.")
            ).to_be_visible(timeout=30_000)
        for (page, seen, _), since in zip(pages, mark, strict=True):
            # Live: one stream, still open, and the message came by id, not by polling.
            expect(page.locator("ol.messages")).to_have_attribute("data-live", "true")
            assert len(seen.matching(EVENTS)) == 1, seen.matching(EVENTS)
            assert seen.matching(MESSAGE_PAGES, since) == []
        assert deployment.events.proc is not None and deployment.events.proc.poll() is None
    finally:
        contexts.close()
    for watch in contexts.watches:
        assert watch.outside == [], watch.outside
