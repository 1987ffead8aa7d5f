"""Browser fixtures: a fresh build of web/, Debian's Chromium through Playwright, phone profiles.

The session builds the web client itself (``npm ci`` when node_modules is missing, then
``npm run build``), so ``make test`` runs these tests for real on a clean checkout.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright

from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = WEB / "dist"
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NEUTRAL = "https://www.wikipedia.org/"
# Stand-ins for the outside world: the browser never reaches the network in tests.
STUB_PAGES = {
    "www.wikipedia.org": "<!doctype html><title>Wikipedia</title><h1>Wikipedia</h1>",
    "start.example": "<!doctype html><title>Search</title><h1>Search</h1>",
}
IPHONE = "iPhone 13"
ANDROID = "Galaxy S5"
SMALL = "iPhone SE"


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed; the web client cannot be built (see web/README.md)")
    result = subprocess.run([npm, *args], cwd=WEB, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def _source_digest() -> str:
    """SHA-256 over every file the build reads, so a build is redone only when one changed."""
    digest = hashlib.sha256()
    files = [WEB / "package-lock.json", *(WEB / "src").rglob("*"), *(WEB / "scripts").rglob("*")]
    files += [*(WEB / "verify").rglob("*")]
    for path in sorted(f for f in files if f.is_file()):
        digest.update(str(path.relative_to(WEB)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def web_build() -> Path:
    """web/dist built from the current sources (npm ci first when node_modules is absent).

    Parallel test workers share one build: the first takes a file lock and builds, the
    others find the build current and use it (a rebuild under a running test would swap
    the files it serves).
    """
    with (WEB / ".build.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        lock = WEB / "package-lock.json"
        installed = WEB / "node_modules" / ".package-lock.json"
        if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
            _npm("ci", "--no-audit", "--no-fund")
        marker = DIST / ".source-digest"
        digest = _source_digest()
        if not marker.is_file() or marker.read_text() != digest:
            _npm("run", "build")
            marker.write_text(digest)
    assert (DIST / "index.html").is_file()
    return DIST


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    """Playwright's driver for the whole session."""
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright, web_build: Path) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Watch:
    """What a browser context did that a test may want to assert on."""

    origin: str
    outside: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@dataclass
class Contexts:
    """Creates browser contexts with a device profile, stubs the outside world, cleans up."""

    pw: Playwright
    browser: Browser
    server: LiveServer
    opened: list[BrowserContext] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)

    def new(
        self, device: str = IPHONE, *, stub_outside: bool = True, **overrides: Any
    ) -> tuple[BrowserContext, Watch]:
        """A context with a Playwright device profile; requests off the server are recorded.

        With ``stub_outside`` they are also answered by stub pages or refused; that needs
        request interception, which turns the HTTP cache off, so cache tests pass False.
        """
        profile = {k: v for k, v in self.pw.devices[device].items() if k != "default_browser_type"}
        profile.update(overrides)
        context = self.browser.new_context(**profile)
        context.set_default_timeout(30_000)
        watch = Watch(origin=self.server.url)
        self.opened.append(context)
        self.watches.append(watch)
        if not stub_outside:

            def record(request: Any) -> None:
                url = request.url
                if not url.startswith((self.server.url, "data:", "blob:")):
                    watch.outside.append(url)

            context.on("request", record)
            return context, watch

        def route(request_route: Route) -> None:
            url = request_route.request.url
            host = urlsplit(url).hostname or ""
            if url.startswith(("data:", "blob:")):
                request_route.continue_()
            elif host in STUB_PAGES and request_route.request.resource_type == "document":
                request_route.fulfill(body=STUB_PAGES[host], content_type="text/html")
            else:
                watch.outside.append(url)
                request_route.abort()

        # Only requests off the server are routed: the server's own go straight through,
        # without a round trip through Playwright's driver and this process for each, and
        # without waiting for this thread to be inside a Playwright call to be sent.
        context.route(re.compile(rf"^(?!{re.escape(self.server.url)}/)"), route)
        return context, watch

    def page(
        self, device: str = IPHONE, *, stub_outside: bool = True, **overrides: Any
    ) -> tuple[Page, Watch]:
        """A new page in a new context, with console errors recorded."""
        context, watch = self.new(device, stub_outside=stub_outside, **overrides)
        page = context.new_page()

        def console(msg: Any) -> None:
            # The browser logs every 4xx answer; wrong passphrases are expected in tests.
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                watch.console_errors.append(msg.text)

        page.on("console", console)
        page.on("pageerror", lambda exc: watch.console_errors.append(str(exc)))
        return page, watch

    def close(self) -> None:
        """Close every context this test opened."""
        for context in self.opened:
            context.close()


@pytest.fixture
def contexts(
    playwright_session: Playwright, browser: Browser, live_server: LiveServer
) -> Iterator[Contexts]:
    """Browser contexts for this test, closed at its end."""
    made = Contexts(playwright_session, browser, live_server)
    yield made
    made.close()
    for watch in made.watches:
        assert watch.outside == [], f"requests left the server's origin: {watch.outside}"


@pytest.fixture(scope="session")
def axe_script(web_build: Path) -> Path:
    """axe-core's browser build from web/node_modules (pinned in web/package.json)."""
    path = WEB / "node_modules" / "axe-core" / "axe.min.js"
    assert path.is_file(), "axe-core missing from web/node_modules"
    return path


@pytest.fixture
def run_axe(axe_script: Path) -> Callable[[Page, str], list[dict[str, Any]]]:
    """Return a callable that runs axe-core (WCAG 2.x A/AA) and gives serious+critical issues."""

    def _run(page: Page, screen: str) -> list[dict[str, Any]]:
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(axe_script))
        results = page.evaluate(
            """async () => {
                const r = await axe.run(document, {
                    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                                    'wcag22aa', 'best-practice']},
                    resultTypes: ['violations'],
                });
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
            }"""
        )
        serious = [v for v in results if v["impact"] in ("serious", "critical")]
        if serious:
            print(f"axe on {screen}: {json.dumps(serious, indent=1)}")
        return serious

    return _run


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """var/screenshots/, created."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
