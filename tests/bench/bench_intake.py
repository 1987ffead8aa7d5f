"""Anonymous intake (protocol §20): the proof of work's solve time in Chromium at the default
difficulty (baseline: the Python client's solve of the same challenges), and the server's
intake throughput while a flood of invalid proofs arrives (baseline: the same reports alone).

The Chromium solve runs web/src/crypto/intake.js (bundled for the page by esbuild) with the
libsodium build the web client ships. Throughput: the app under a threaded loopback server
on PostgreSQL; HAVEN_BENCH_INTAKE_REPORTS valid reports (default 20) at 8 bits, sent by one
reporter, alone and then beside HAVEN_BENCH_INTAKE_FLOODERS threads (default 4) that each
fetch a challenge and send a report with a wrong nonce, as fast as they can (in the same
Python process as the server, so the flood also competes for its interpreter: a worst case
beside gunicorn's separate processes). Then a report with a 5 MiB photo (receipt, proof,
report, attachment upload) beside a signed-in survivor uploading the same photo, unthrottled
on loopback. Measured, never asserted.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from tests.bench.harness import Services, emit, log
from tests.conftest import FAST_SERVER_HASH, PASSPHRASE, LiveServer
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, WEB
from tests.factories import make_person
from vault import create_app, migrate
from vault.accounts import services as accounts
from vault.accounts.models import Role, User
from vault.client import HavenClient
from vault.client.directory import WitnessPolicy
from vault.client.documents import Documents
from vault.client.intake import Reporter
from vault.db import database
from vault.intake.models import IntakeTeamMember
from vault.protocol import intake as pin
from vault.protocol.encoding import b64encode
from vault.storage import store

DIFFICULTY = 18
CHALLENGES = 5
SODIUM = (
    WEB
    / "node_modules"
    / "libsodium-wrappers-sumo"
    / "dist"
    / "modules-sumo"
    / "libsodium-wrappers.js"
)


def _bundle(out: Path) -> Path:
    """web/src/crypto/intake.js and libsodium as one script for a blank page."""
    entry = out / "entry.js"
    entry.write_text(
        'import sodium from "libsodium-wrappers-sumo";\n'
        'import * as intake from "./src/crypto/intake.js";\n'
        "window.HAVEN = { sodium, intake };\n"
    )
    shutil.copy(entry, WEB / ".bench-intake-entry.js")
    target = out / "bundle.js"
    try:
        subprocess.run(
            [
                str(WEB / "node_modules" / ".bin" / "esbuild"),
                ".bench-intake-entry.js",
                "--bundle",
                "--format=iife",
                f"--outfile={target}",
            ],
            cwd=WEB,
            check=True,
            capture_output=True,
        )
    finally:
        (WEB / ".bench-intake-entry.js").unlink()
    return target


def _chromium_solve() -> None:
    challenges = [os.urandom(32) for _ in range(CHALLENGES)]
    out = Path(tempfile.mkdtemp(prefix="haven-bench-intake-"))
    bundle = _bundle(out)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.add_script_tag(path=str(bundle))
        page.wait_for_function("window.HAVEN !== undefined")
        page.evaluate("() => window.HAVEN.sodium.ready")
        times = [
            page.evaluate(
                """([challenge, bits]) => {
                  const { sodium, intake } = window.HAVEN;
                  const start = performance.now();
                  intake.solveProof(sodium, new Uint8Array(challenge), bits);
                  return performance.now() - start;
                }""",
                [list(c), DIFFICULTY],
            )
            for c in challenges
        ]
        browser.close()
    shutil.rmtree(out, ignore_errors=True)
    python = []
    for challenge in challenges:
        start = time.perf_counter()
        pin.solve_pow(challenge, DIFFICULTY)
        python.append((time.perf_counter() - start) * 1000)
    emit(
        "intake_pow_solve_chromium_ms",
        statistics.median(times),
        "ms",
        statistics.median(python),
        baseline_is="the Python client solving the same challenges",
        difficulty=DIFFICULTY,
    )


def _flood(url: str, template: dict[str, Any], stop: threading.Event, counts: list[int]) -> None:
    """Well-formed reports whose proof is wrong: each spends a challenge and fails its check."""
    http = requests.Session()
    while not stop.is_set():
        challenge = http.post(f"{url}/api/v1/intake/challenges", json={}).json()["challenge"]
        body = template | {"proof": {"challenge": challenge, "nonce": "AAAAAAAAAAA"}}
        answer = http.post(f"{url}/api/v1/intake/reports", json=body)
        counts.append(answer.status_code)


def _throughput(services: Services) -> None:
    name = f"bench_intake_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url(name)
    migrate.upgrade(url)
    root = Path(tempfile.mkdtemp(prefix="haven-bench-intake-"))
    app = create_app(
        {
            "HAVEN_DATABASE_URL": url,
            "HAVEN_KEYS_DIR": str(root / "keys"),
            "HAVEN_MESSAGE_PURGE_SECONDS": "0",
            "HAVEN_INTAKE_POW_BITS": "8",
            "HAVEN_SECURE_COOKIES": "false",
            "HAVEN_INTAKE_DAILY_QUOTA": "1000000",
            "HAVEN_LIMIT_INTAKE_IP": "1000000/minute",
            "HAVEN_LIMIT_INTAKE_GLOBAL": "1000000/minute",
            **FAST_SERVER_HASH,
            **services.minio.settings(name.replace("_", "-")),
        }
    )
    store(app).ensure_bucket()
    with app.app_context():
        db = database(app).sessions()
        member = make_person(db, app.extensions["haven.keyring"], Role.COUNSEL, "bench.team")
        db.add(IntakeTeamMember(user_id=member.id))
        db.commit()
        db.close()
    reports = int(os.environ.get("HAVEN_BENCH_INTAKE_REPORTS", "20"))
    flooders = int(os.environ.get("HAVEN_BENCH_INTAKE_FLOODERS", "4"))
    with LiveServer(app) as server:
        # Receipt derivation is the client's cost, not the server's: derive once, cheaply.
        reporter = Reporter(
            HavenClient(server.url, witnesses=WitnessPolicy.unwitnessed()),
            opslimit=3,
            memlimit=64 << 20,
        )
        report = pin.Report("bench")
        # Bodies are made (receipt, Argon2id, proof of work) before the clock starts: the
        # figure is the server's, not the client's.
        template = reporter.prepare(report)[1]

        def rate() -> float:
            bodies = [reporter.prepare(report)[1] for _ in range(reports)]
            start = time.perf_counter()
            for body in bodies:
                reporter.client.post("/intake/reports", body)
            return reports / (time.perf_counter() - start)

        rate()  # warm up
        alone = rate()
        stop, counts = threading.Event(), []
        threads = [
            threading.Thread(target=_flood, args=(server.url, template, stop, counts))
            for _ in range(flooders)
        ]
        for thread in threads:
            thread.start()
        start = time.perf_counter()
        flooded = rate()
        elapsed = time.perf_counter() - start
        stop.set()
        for thread in threads:
            thread.join()
        _photo_submit(app, server)
        _throttled_phone(server)
    emit(
        "intake_reports_per_s_under_invalid_flood",
        flooded,
        "reports/s",
        alone,
        baseline_is="the same reports without the flood",
        invalid_per_s=round(len(counts) / elapsed, 1),
        invalid_statuses=sorted(set(counts)),
        flooders=flooders,
    )
    database(app).engine.dispose()


def _photo_submit(app: Flask, server: LiveServer) -> None:
    """A report with a 5 MiB photo, beside a signed-in survivor uploading the same photo."""
    with app.app_context():
        db = database(app).sessions()
        counsel = db.scalars(select(User).where(User.role == Role.COUNSEL)).first()
        _, token = accounts.create_invite(db, Role.SURVIVOR, counsel, 1)
        db.close()
    survivor = HavenClient(server.url, witnesses=WitnessPolicy.unwitnessed())
    survivor.register(b64encode(token), "bench.survivor", PASSPHRASE)
    case_id = survivor.cases()[0]["id"]
    photo = os.urandom(5 * 1024 * 1024)
    docs = Documents(survivor)
    anonymous, signed_in = [], []
    for _ in range(3):
        start = time.perf_counter()
        fresh = Reporter(HavenClient(server.url, witnesses=WitnessPolicy.unwitnessed()))
        fresh.submit(pin.Report("bench"))
        fresh.attach(photo, "photo.jpg", "image/jpeg")
        anonymous.append(time.perf_counter() - start)
        start = time.perf_counter()
        docs.upload(case_id, io.BytesIO(photo), doc_type="other", name="photo.jpg")
        signed_in.append(time.perf_counter() - start)
    emit(
        "intake_report_with_5mib_photo_s",
        statistics.median(anonymous),
        "s",
        statistics.median(signed_in),
        baseline_is="a signed-in survivor uploading the same photo as a document",
        includes="receipt Argon2id, proof of work at 8 bits, report, upload; unthrottled loopback",
    )


# A slow phone link: 1.6 Mbps each way (bytes per second for CDP) and 150 ms of latency.
THROTTLE = {
    "offline": False,
    "latency": 150,
    "downloadThroughput": 200_000,
    "uploadThroughput": 200_000,
}
PHONE = "iPhone 13"


def _throttled_phone(server: LiveServer) -> None:
    """In Chromium on a phone profile throttled to 1.6 Mbps / 150 ms: an anonymous report
    with a 5 MiB photo (from Send to the receipt), beside the signed-in survivor of
    _photo_submit uploading the same photo as a document (from Upload to listed)."""
    photo = {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": os.urandom(5 << 20)}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        profile = {k: v for k, v in pw.devices[PHONE].items() if k != "default_browser_type"}

        def phone(path: str) -> Any:
            page = browser.new_context(**profile).new_page()
            page.goto(f"{server.url}{path}")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", THROTTLE)
            return page

        page = phone("/app/#intake")
        page.fill("textarea[name=intake-text]", "bench")
        page.set_input_files("#intake-form input[name=intake-file]", files=photo)
        start = time.perf_counter()
        page.click("#intake-form button[type=submit]")
        page.locator("#intake-receipt").wait_for(timeout=600_000)
        anonymous = time.perf_counter() - start

        page = phone("/app/")
        page.fill("input[name=username]", "bench.survivor")
        page.fill("input[name=passphrase]", PASSPHRASE)
        page.click("form button[type=submit]")
        page.locator(".case-actions button").first.click(timeout=120_000)
        page.locator(".doc-list:not([aria-busy=true])").wait_for(timeout=120_000)
        page.set_input_files("input[name=file]", files=photo)
        page.select_option("select[name=doctype]", "other")
        before = page.locator(".document h3", has_text="photo.jpg").count()
        start = time.perf_counter()
        page.click("form.upload button[type=submit]")
        page.locator(".document h3", has_text="photo.jpg").nth(before).wait_for(timeout=600_000)
        signed_in = time.perf_counter() - start
        browser.close()
    emit(
        "intake_report_with_5mib_photo_throttled_phone_s",
        anonymous,
        "s",
        signed_in,
        baseline_is="the signed-in survivor uploading the same photo in the same browser, same throttle",
        throttle="1.6 Mbps up and down, 150 ms latency (CDP Network.emulateNetworkConditions)",
        profile=PHONE,
        includes="team key checks, receipt Argon2id, proof of work at 8 bits, report, upload",
    )


def run(services: Services) -> None:
    """Both measurements."""
    log("intake: proof-of-work solve in Chromium")
    _chromium_solve()
    log("intake: throughput under a flood of invalid proofs")
    _throughput(services)
