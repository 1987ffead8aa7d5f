"""Cross-site requests in a real browser (protocol §5.1): a page on another loopback port
is same-site to the app, so Chromium sends the SameSite=Strict session cookie with its
requests; the app still refuses every write it makes, and nothing changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser
from werkzeug.serving import make_server

from tests.conftest import LiveServer
from vault.accounts.models import User
from vault.client import HavenClient
from vault.db import database

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PageServer:
    """Serves one HTML page from another origin: the attacker's."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        def wsgi(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
            start("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
            return [body]

        self.server = make_server("127.0.0.1", 0, wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def seen(live_server: LiveServer) -> Iterator[list[dict[str, Any]]]:
    """What reached the app: method, path, and whether the session cookie came along."""
    app = live_server.app
    inner: WSGIApp = app.wsgi_app
    log: list[dict[str, Any]] = []

    def record(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        log.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "cookie": app.config["SESSION_COOKIE_NAME"] in environ.get("HTTP_COOKIE", ""),
                "site": environ.get("HTTP_SEC_FETCH_SITE"),
            }
        )
        return inner(environ, start)

    app.wsgi_app = record  # type: ignore[method-assign]
    yield log
    app.wsgi_app = inner  # type: ignore[method-assign]


def _state(live_server: LiveServer, user_id: str) -> tuple[object, int]:
    with live_server.app.app_context():
        db = database(live_server.app).sessions()
        user = db.get(User, user_id)
        assert user is not None
        state = (user.rotation_freeze_until, user.session_version)
        db.close()
    return state


FORM = """<!doctype html><title>prize</title>
<form method="post" action="{target}" enctype="text/plain"><input name='{{"a":"' value='"}}'></form>
<script>document.forms[0].submit()</script>"""
FETCH = """<!doctype html><title>prize</title><script>
window.done = fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}}).then(() => "sent", () => "failed");
</script>"""
JSON_FETCH = """<!doctype html><title>prize</title><script>
window.done = fetch("{target}", {{method: "POST", credentials: "include",
  headers: {{"Content-Type": "application/json"}}, body: "{{}}"}}).then(() => "sent", () => "failed");
</script>"""


@pytest.mark.parametrize(
    ("page_html", "path"),
    [
        (FORM, "/api/v1/account/keys/reseal"),
        (FORM, "/api/v1/auth/logout"),
        (FETCH, "/api/v1/account/keys/reseal"),
        (FETCH, "/api/v1/auth/logout"),
        (JSON_FETCH, "/api/v1/account/keys/reseal"),
    ],
    ids=[
        "form reseal",
        "form logout",
        "no-cors fetch reseal",
        "no-cors fetch logout",
        "json fetch",
    ],
)
def test_a_same_site_page_cannot_write_with_the_session(
    browser: Browser,
    live_server: LiveServer,
    create_account: Callable[..., tuple[HavenClient, str]],
    seen: list[dict[str, Any]],
    page_html: str,
    path: str,
) -> None:
    victim, _ = create_account("counsel")
    assert victim.account is not None
    before = _state(live_server, victim.account.id)
    jar = {c.name: c.value for c in victim.http.cookies}
    name = live_server.app.config["SESSION_COOKIE_NAME"]
    attacker = PageServer(page_html.format(target=f"{live_server.url}{path}"))
    context = browser.new_context()
    try:
        context.add_cookies(
            [
                {
                    "name": name,
                    "value": jar[name],
                    "url": live_server.url,
                    "httpOnly": True,
                    "sameSite": "Strict",
                }
            ]
        )
        page = context.new_page()
        seen.clear()
        page.goto(attacker.url)
        if page_html is FORM:
            page.wait_for_url(f"{live_server.url}{path}")
            assert "cross_site_request" in page.content()
        else:
            page.evaluate("window.done")
    finally:
        context.close()
        attacker.close()
    writes = [s for s in seen if s["method"] == "POST"]
    if page_html is JSON_FETCH:
        assert writes == []  # the preflight found no CORS grant: the write was never sent
    else:
        # The browser did send it, with the session cookie: SameSite=Strict let it through.
        assert writes == [{"method": "POST", "path": path, "cookie": True, "site": "same-site"}]
    assert _state(live_server, victim.account.id) == before
    answer = requests.get(f"{live_server.url}/api/v1/account", cookies=jar, timeout=10)
    assert answer.status_code == 200  # still signed in
