"""verify.html, the evidence bundle's offline verifier, opened from file:// in a browser
with no network: it passes the vector bundle (as a .zip and as its folder) and names the
failing part of a tampered one (protocol §24.7)."""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from tests.integration.documents_fixtures import fast_documents, pair
from tests.vectors import bundle as vector
from vault.client import HavenClient
from vault.client.bundle import export_bundle

__all__ = ["pair"]

RECORD = "records/AAECAwQFBgcICQoLDA0ODw.json"


def _zip(folder: Path, out: Path, flip: str | None = None) -> Path:
    """The folder as a bundle .zip (stored members), with one byte of ``flip`` changed."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = path.relative_to(folder).as_posix()
            data = bytearray(path.read_bytes())
            if name == flip:
                data[len(data) // 2] ^= 0x01
            archive.writestr(name, bytes(data))
    return out


@pytest.fixture
def clerk_folder(web_build: Path, tmp_path: Path) -> Path:
    """What a clerk receives: the verifier beside the good and the tampered bundle."""
    shutil.copy(web_build / "verify.html", tmp_path / "verify.html")
    _zip(vector.OUT, tmp_path / "bundle.zip")
    _zip(vector.OUT, tmp_path / "tampered.zip", flip=RECORD)
    return tmp_path


def _open(browser: Browser, folder: Path, **options: Any) -> tuple[Page, list[str]]:
    context = browser.new_context(offline=True, **options)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else errors.append(r.url),
    )
    page.goto((folder / "verify.html").as_uri())
    return page, errors


def test_the_html_verifier_passes_a_bundle_offline_and_names_a_tampered_part(
    browser: Browser, clerk_folder: Path
) -> None:
    page, errors = _open(browser, clerk_folder)
    expect(page.get_by_role("heading", name="Check an evidence bundle")).to_be_visible()
    status = page.get_by_role("status")

    page.get_by_label("Bundle file (.zip)").set_input_files(clerk_folder / "bundle.zip")
    expect(status).to_have_text("Verified: every part is as its signatures say.")
    expect(page.locator("#checked li")).to_have_count(4)

    page.get_by_label("Bundle file (.zip)").set_input_files(clerk_folder / "tampered.zip")
    expect(status).to_have_text("Not verified. These parts fail:")
    expect(page.locator("#failures li")).to_have_count(1)
    expect(page.locator("#failures li")).to_contain_text(f"record — {RECORD}")

    page.get_by_label("Or its unpacked folder").set_input_files(vector.OUT)
    expect(status).to_have_text("Verified: every part is as its signatures say.")
    assert errors == []
    page.context.close()


def test_the_html_verifier_in_arabic_at_320_px(
    browser: Browser,
    clerk_folder: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    screenshots: Path,
) -> None:
    # axe is injected as a script, which the verifier's hash-only CSP would refuse.
    page, errors = _open(
        browser, clerk_folder, locale="ar", viewport={"width": 320, "height": 640}, bypass_csp=True
    )
    assert page.evaluate("document.documentElement.dir") == "rtl"
    page.locator("#zip").set_input_files(clerk_folder / "tampered.zip")
    expect(page.get_by_role("status")).to_have_text("لم يتم التحقق. هذه الأجزاء فشلت:")
    assert page.evaluate("document.documentElement.scrollWidth <= 320")
    page.screenshot(path=str(screenshots / "bundle-verifier-ar-320.png"), full_page=True)
    assert run_axe(page, "bundle verifier (ar, 320 px)") == []
    assert errors == []
    page.context.close()


@pytest.fixture
def app(make_witnessed_app: Callable[..., Flask]) -> Flask:
    """A server whose key log the session's witness cosigns."""
    return make_witnessed_app()


def test_the_verifier_inside_a_real_export_passes_it(
    browser: Browser, web_build: Path, pair: tuple[HavenClient, HavenClient, str], tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    assert counsel.account is not None
    docs = fast_documents(survivor)
    (tmp_path / "form.pdf").write_bytes(os.urandom(80_000))
    docs.grant(docs.upload(case_id, tmp_path / "form.pdf", doc_type="other").id, counsel.account.id)
    out = tmp_path / "export" / "case.zip"
    export_bundle(counsel, case_id, out, verifier=web_build / "verify.html")
    with zipfile.ZipFile(out) as archive:
        archive.extract("verify.html", out.parent)
    page, errors = _open(browser, out.parent)
    page.get_by_label("Bundle file (.zip)").set_input_files(out)
    expect(page.get_by_role("status")).to_have_text(
        "Verified: every part is as its signatures say."
    )
    expect(page.locator("#checked li")).to_have_count(4)
    assert errors == []
    page.context.close()
