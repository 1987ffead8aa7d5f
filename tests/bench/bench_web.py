"""Web client weight and first-screen time on a throttled phone profile (issue budgets).

Budgets are the baselines: 100 KB gzip of first-screen JavaScript, 3 s to a usable first
screen on a cold cache at 1.6 Mbps down, 750 kbps up, 150 ms round trip (4× slower CPU).

Then documents, unthrottled: the page's secretstream throughput beside PyNaCl's (target
150 MiB/s), the page's encrypt-and-upload of 100 MiB (``HAVEN_BENCH_WEB_DOCUMENT_MIB``)
to a loopback server beside the Python client's of the same file, and the longest
main-thread task (PerformanceObserver longtask) during the page's upload: each with the
document worker (protocol §8.12) beside the page's main-thread path (Worker hidden).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
from playwright.sync_api import sync_playwright

from tests.bench import bench_documents
from tests.bench.harness import Services, emit, log
from tests.conftest import FAST_SERVER_HASH, LiveServer
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, DIST, WEB
from tests.e2e.flows import login
from tests.e2e.test_documents_web import open_documents
from vault import create_app
from vault.client.documents import Documents
from vault.protocol import documents as pdoc
from vault.storage import ObjectStore

MiB = 1024**2

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
    run_documents(_services)


# -- documents: the page's secretstream, and its encrypt-and-upload beside the Python client --

DOC_MIB = int(os.environ.get("HAVEN_BENCH_WEB_DOCUMENT_MIB", "100"))
STREAM_MIB = 256
TARGET_STREAM_MIB_S = 150

PAGE_SECRETSTREAM = """async (mib) => {
    const s = window.sodium;
    await s.ready;
    const key = s.crypto_secretstream_xchacha20poly1305_keygen();
    const { state } = s.crypto_secretstream_xchacha20poly1305_init_push(key);
    const chunk = new Uint8Array(65536);
    crypto.getRandomValues(chunk);
    const n = mib * 16;
    const start = performance.now();
    for (let i = 0; i < n; i++) {
        s.crypto_secretstream_xchacha20poly1305_push(state, chunk, null, i === n - 1 ? 3 : 0);
    }
    return performance.now() - start;
}"""

# The longest main-thread task (PerformanceObserver longtask: 50 ms and over) from now on.
WATCH_LONG_TASKS = """() => {
    window.__longest = 0;
    window.__longtasks = 0;
    window.__tasks = [];
    window.__since = performance.now();
    window.__watch?.disconnect();
    window.__watch = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
            window.__longtasks += 1;
            window.__tasks.push([Math.round(e.startTime - window.__since), Math.round(e.duration)]);
            window.__longest = Math.max(window.__longest, e.duration);
        }
    });
    window.__watch.observe({ type: "longtask" });
}"""

# The page's two paths for documents (§8.11): hiding Worker gives the main-thread one.
USE_WORKER = """(on) => {
    window.__Worker ??= window.Worker;
    window.Worker = on ? window.__Worker : undefined;
}"""


def _python_secretstream(mib: int) -> float:
    """Seconds for PyNaCl to push ``mib`` MiB in 64 KiB chunks (the same loop as the page)."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_push(state, os.urandom(32))
    chunk = os.urandom(65536)
    n = mib * 16
    start = time.perf_counter()
    for i in range(n):
        tag = pdoc.TAG_FINAL if i == n - 1 else pdoc.TAG_MESSAGE
        sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, None, tag)
    return time.perf_counter() - start


def _rate(
    name: str,
    mib: int,
    runs: list[float],
    baseline_runs: list[float],
    baseline_is: str,
    **extra: Any,
) -> None:
    """Emit MiB/s of the best of ``runs`` beside the best of ``baseline_runs`` (seconds)."""
    emit(
        name,
        mib / min(runs),
        "MiB/s",
        mib / min(baseline_runs),
        baseline_is=baseline_is,
        runs_s=[round(t, 3) for t in runs],
        baseline_runs_s=[round(t, 3) for t in baseline_runs],
        **extra,
    )


def run_documents(services: Services) -> None:
    """Page secretstream throughput, and a 100 MiB upload from the page and from Python."""
    root = services.root / "web-documents"
    root.mkdir()
    settings = bench_documents._settings(services, root)
    app = create_app({**settings, **FAST_SERVER_HASH})
    ObjectStore(
        settings["HAVEN_S3_ENDPOINT"],
        settings["HAVEN_S3_ACCESS_KEY"],
        settings["HAVEN_S3_SECRET_KEY"],
        bench_documents.BUCKET,
    ).ensure_bucket()
    source = root / "scan.bin"
    source.write_bytes(os.urandom(DOC_MIB * MiB))
    page_stream: list[float] = []
    py_stream: list[float] = []
    page_up: list[float] = []
    main_up: list[float] = []
    py_up: list[float] = []
    longest: list[float] = []
    main_longest: list[float] = []
    with LiveServer(app) as server, sync_playwright() as pw:
        client, case_id = bench_documents._accounts(server.url, settings)
        docs = Documents(client, parallel_parts=bench_documents.PARALLEL_PARTS)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        page.goto(f"{server.url}/app/")
        login(page, "survivor.bench", bench_documents.PASSPHRASE)
        for _ in range(ROUNDS):
            page_stream.append(page.evaluate(PAGE_SECRETSTREAM, STREAM_MIB) / 1000)
            py_stream.append(_python_secretstream(STREAM_MIB))
        open_documents(page)
        for round_ in range(ROUNDS):
            paths = [(False, main_up, main_longest), (True, page_up, longest)]
            # Each path goes first in turn: neither always follows the other's garbage.
            for worker, times, tasks in paths if round_ % 2 == 0 else paths[::-1]:
                # The same bytes under a name of its own: the listing shows each upload apart.
                named = root / f"page-{round_}-{'worker' if worker else 'main'}.bin"
                os.link(source, named)
                page.evaluate(USE_WORKER, worker)
                page.evaluate(WATCH_LONG_TASKS)
                page.set_input_files("input[name=file]", str(named))
                page.select_option("select[name=doctype]", "other")
                start = time.perf_counter()
                page.click("form.upload button[type=submit]")
                page.locator(".document h3", has_text=named.name).wait_for(timeout=600_000)
                times.append(time.perf_counter() - start)
                tasks.append(page.evaluate("() => window.__longest"))
                log(
                    f"long tasks ({'worker' if worker else 'main'}): {page.evaluate('() => window.__tasks')}"
                )
            start = time.perf_counter()
            docs.upload(case_id, source, doc_type="other")
            py_up.append(time.perf_counter() - start)
        browser.close()
    log(
        f"web documents: page worker {page_up}, page main thread {main_up}, python {py_up}, "
        f"longest tasks worker {longest} ms, main thread {main_longest} ms"
    )
    _rate(
        "web_secretstream_throughput",
        STREAM_MIB,
        page_stream,
        py_stream,
        "PyNaCl secretstream push, same 64 KiB chunks, this run",
        target_min=TARGET_STREAM_MIB_S,
    )
    _rate(
        "web_documents_encrypt_upload_100MiB",
        DOC_MIB,
        page_up,
        py_up,
        "Python client encrypt-and-upload of the same file to the same server",
        bytes=DOC_MIB * MiB,
        server="werkzeug threaded loopback (LiveServer), PostgreSQL, MinIO",
        includes="hash pass, encryption, part uploads, finalize, listing shown",
        encryption="document worker, 2 parts ahead of the upload",
    )
    _rate(
        "web_documents_encrypt_upload_100MiB_worker_vs_main_thread",
        DOC_MIB,
        page_up,
        main_up,
        "the page's main-thread path (no Worker) on the same file, this run",
    )
    emit(
        "web_documents_upload_longest_main_thread_task",
        max(longest),
        "ms",
        max(main_longest),
        baseline_is="the same upload with encryption on the main thread (no Worker)",
        runs_ms=[round(t, 1) for t in longest],
        baseline_runs_ms=[round(t, 1) for t in main_longest],
        measured="PerformanceObserver longtask (tasks of 50 ms and over; 0: none) during the upload",
        encryption="document worker",
    )
