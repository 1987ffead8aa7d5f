"""Web client weight and first-screen time on a throttled phone profile (issue budgets).

Budgets are the baselines: 100 KB gzip of first-screen JavaScript, 3 s to a usable first
screen on a cold cache at 1.6 Mbps down, 750 kbps up, 150 ms round trip (4× slower CPU).
"""

from __future__ import annotations

import gzip
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.bench.harness import Services, emit, log
from tests.conftest import FAST_SERVER_HASH, LiveServer
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, DIST, WEB
from vault import create_app

ROUNDS = 3
BUDGET_JS_GZIP = 100 * 1024
BUDGET_FIRST_SCREEN_MS = 3000
THROTTLE = {
    "offline": False,
    "latency": 150,
    "downloadThroughput": 1_600_000 / 8,
    "uploadThroughput": 750_000 / 8,
}


def _build() -> None:
    npm = shutil.which("npm") or "npm"
    if not (WEB / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    subprocess.run([npm, "run", "build"], cwd=WEB, check=True, capture_output=True)


def _asset(pattern: str) -> bytes:
    html = (DIST / "index.html").read_text()
    found = re.search(rf'"/assets/({pattern}-[0-9a-f]{{16}}\.js)"', html)
    assert found is not None, pattern
    return (DIST / "assets" / found.group(1)).read_bytes()


def run(_services: Services) -> None:
    """Asset sizes, then cold-cache throttled loads in Chromium with a small Android profile."""
    _build()
    app_js = len(gzip.compress(_asset("app"), 9))
    sodium_js = len(gzip.compress(_asset("sodium"), 9))
    emit("web_first_screen_js_gzip", app_js, "bytes", BUDGET_JS_GZIP)
    emit("web_libsodium_js_gzip", sodium_js, "bytes")
    root = Path(tempfile.mkdtemp(prefix="haven-bench-web-"))
    app = create_app(
        {
            "HAVEN_DATABASE_URL": f"sqlite:///{root / 'haven.db'}",
            "HAVEN_KEYS_DIR": str(root / "keys"),
            "HAVEN_SECURE_COOKIES": "false",
            **FAST_SERVER_HASH,
        }
    )
    first: list[float] = []
    ready: list[float] = []
    try:
        with LiveServer(app) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            profile = {
                k: v for k, v in pw.devices["Galaxy S5"].items() if k != "default_browser_type"
            }
            for _ in range(ROUNDS):
                context = browser.new_context(**profile)
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                cdp.send("Network.emulateNetworkConditions", THROTTLE)
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
                start = time.monotonic()
                page.goto(f"{server.url}/app/", wait_until="commit")
                page.wait_for_selector("input[name=username]", timeout=60_000)
                first.append((time.monotonic() - start) * 1000)
                page.wait_for_function("() => !!(window.sodium && window.sodium.ready)")
                page.evaluate("() => window.sodium.ready")
                ready.append((time.monotonic() - start) * 1000)
                context.close()
            browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    log(f"web first screen: {first}, libsodium ready: {ready}")
    emit("web_first_screen_throttled", statistics.median(first), "ms", BUDGET_FIRST_SCREEN_MS)
    emit("web_libsodium_ready_throttled", statistics.median(ready), "ms")
