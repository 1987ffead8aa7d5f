"""Rough edges of issue 14, item 4, in real Chromium: view vs saved copy in the history, file
and date controls in the app's language on an English browser, the username rule explained,
the safety-number scanner on a fake camera, the one-week timer and the recovery-key code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Playwright, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import ANDROID, CHROMIUM, CHROMIUM_ARGS, IPHONE, WEB, Contexts
from tests.e2e.flows import (
    PASSPHRASE,
    choose_language,
    confirm_recovery_key,
    counsel_with_invite,
    login,
    logout,
    open_conversation,
    open_invite,
    read_recovery_key,
    register,
)
from tests.e2e.test_documents_web import open_documents, png, upload
from vault.client.documents import Documents

# A phone whose browser speaks English, while the survivor reads Spanish or Arabic.
ENGLISH_BROWSER = {"locale": "en-US", "bypass_csp": True}


def _axe_clean(run_axe: Callable[[Page, str], list[dict[str, Any]]], page: Page, at: str) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")
    assert run_axe(page, at) == [], at


def test_history_tells_viewing_in_the_app_from_saving_a_copy(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    counsel_name = counsel.account.username
    page, watch = contexts.page(IPHONE, bypass_csp=True)  # axe-core is added as a script
    register(page, live_server.url, token, "nadia")
    open_documents(page)
    image = png()
    upload(page, "permiso.png", image, "image/png", "visa_permit")
    item = page.locator(".document", has_text="permiso.png")
    item.get_by_role("button", name="View permiso.png").click()
    expect(page.locator(".viewer img.preview")).to_be_visible()
    with page.expect_download() as info:
        item.get_by_role("button", name="Download permiso.png").click()
    assert Path(info.value.path()).read_bytes() == image
    item.get_by_role("button", name=f"Share permiso.png with {counsel_name}").click()
    expect(page.locator(".document .grant", has_text=f"Shared with {counsel_name}")).to_be_visible()

    # Counsel saves a copy with the Python client (a file on disk is a "save").
    docs = Documents(counsel)
    [doc] = docs.case_documents(counsel.cases()[0]["id"]).documents
    docs.download(doc.id, tmp_path / "copy.png")

    page.locator("main .actions button", has_text="Who opened my documents").click()
    events = page.locator(".events [data-kind=download]")
    expect(events).to_have_count(3)
    expect(events.nth(0)).to_contain_text(f"{counsel_name} saved a copy of permiso.png")
    expect(events.nth(0)).to_have_attribute("data-purpose", "save")
    expect(events.nth(1)).to_contain_text("You saved a copy of permiso.png")
    expect(events.nth(2)).to_contain_text("You viewed permiso.png in the app")
    expect(events.nth(2)).to_have_attribute("data-purpose", "view")
    page.screenshot(path=str(screenshots / "en-history-view-save.png"))
    _axe_clean(run_axe, page, "history-view-save-en")

    choose_language(page, "es")
    expect(events.nth(0)).to_contain_text(f"{counsel_name} guardó una copia de permiso.png")
    expect(events.nth(2)).to_contain_text("vio permiso.png en la aplicación")
    assert watch.console_errors == []


def test_file_and_date_controls_speak_the_apps_language_on_an_english_browser(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    page, watch = contexts.page(IPHONE, **ENGLISH_BROWSER)
    assert page.evaluate("navigator.language") == "en-US"
    register(page, live_server.url, token, "lucia")
    choose_language(page, "es")
    open_documents(page)
    form = page.locator("form.upload")
    # No browser-drawn widget is left: its words and date order would be the browser's.
    expect(page.locator("input[type=date]")).to_have_count(0)
    picker = form.get_by_role("button", name="Archivo Elegir un archivo")
    expect(picker).to_be_visible()
    file_input = form.locator("input[type=file]")
    assert file_input.get_attribute("tabindex") == "-1"
    assert file_input.get_attribute("aria-hidden") == "true"
    assert file_input.evaluate("e => e.getBoundingClientRect().width") <= 1
    expect(form.locator(".file-chosen")).to_have_text("Ningún archivo elegido")
    with page.expect_file_chooser() as chooser:
        picker.click()  # the button opens the real file chooser
    chooser.value.set_files({"name": "acta.png", "mimeType": "image/png", "buffer": png()})
    expect(form.locator(".file-chosen")).to_have_text("Elegido: acta.png")
    expires = form.locator("fieldset[data-date=expires]")
    expect(expires.locator("legend")).to_contain_text("Fecha de vencimiento")
    for label in ("Día", "Mes", "Año"):
        expect(expires.get_by_label(label, exact=True)).to_be_visible()
    page.screenshot(path=str(screenshots / "es-upload-controls.png"))
    _axe_clean(run_axe, page, "upload-controls-es")

    # Strict: 31 February is refused in Spanish, nothing is sent, the day box has focus.
    expires.get_by_label("Día", exact=True).fill("31")
    expires.get_by_label("Mes", exact=True).fill("2")
    expires.get_by_label("Año", exact=True).fill("2031")
    form.locator("button[type=submit]").click()
    expect(expires.locator(".field-error")).to_contain_text("escriba una fecha real")
    expect(expires.get_by_label("Día", exact=True)).to_be_focused()
    expect(expires.get_by_label("Día", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".document")).to_have_count(0)

    # Arabic, right to left, with Arabic-Indic digits typed on an Arabic keyboard.
    choose_language(page, "ar")
    open_documents_again = page.locator("form.upload")
    expect(open_documents_again.get_by_role("button", name="الملف اختر ملفًا")).to_be_visible()
    days = open_documents_again.locator("fieldset[data-date=expires]")
    for label in ("اليوم", "الشهر", "السنة"):
        expect(days.get_by_label(label, exact=True)).to_be_visible()
    page.set_input_files(
        "input[name=file]", {"name": "acta.png", "mimeType": "image/png", "buffer": png()}
    )
    days.get_by_label("اليوم", exact=True).fill("٣١")
    days.get_by_label("الشهر", exact=True).fill("١٢")
    days.get_by_label("السنة", exact=True).fill("٢٠٣١")
    page.screenshot(path=str(screenshots / "ar-upload-controls.png"))
    _axe_clean(run_axe, page, "upload-controls-ar")
    # At 320 px nothing of the new controls runs off the screen, right to left either.
    page.set_viewport_size({"width": 320, "height": 640})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 320
    for control in (".file-row", "fieldset[data-date=expires]"):
        box = open_documents_again.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320, control
    page.screenshot(path=str(screenshots / "ar-upload-controls-320.png"))
    page.set_viewport_size({"width": 390, "height": 664})
    open_documents_again.locator("button[type=submit]").click()
    item = page.locator(".document", has_text="acta.png")
    expect(item).to_be_visible(timeout=60_000)
    shown = page.evaluate(
        "new Intl.DateTimeFormat('ar', {dateStyle: 'medium'}).format(new Date('2031-12-31T12:00:00Z'))"
    )
    expect(item.locator(".doc-meta")).to_contain_text(shown)
    # The share-until date uses the same boxes; a past day is refused before anything is sent.
    share = item.locator(".grant fieldset[data-date=grant-expires]")
    share.get_by_label("اليوم", exact=True).fill("1")
    share.get_by_label("الشهر", exact=True).fill("1")
    share.get_by_label("السنة", exact=True).fill("2020")
    item.locator(".grant button").click()
    expect(share.locator(".field-error")).to_contain_text("اختر تاريخًا في المستقبل")
    assert Documents(counsel).case_documents(counsel.cases()[0]["id"]).documents == []
    assert watch.console_errors == []


@pytest.mark.parametrize("language", ["en", "ar"])
def test_an_arabic_script_username_is_refused_with_the_reason(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
    language: str,
) -> None:
    _, token = counsel_with_invite(create_account)
    page, watch = contexts.page(IPHONE, **ENGLISH_BROWSER)
    open_invite(page, live_server.url, token)
    if language != "en":
        choose_language(page, language)
    name = page.locator("input[name=username]")
    hint = page.locator("#" + (name.get_attribute("aria-describedby") or "").split()[0])
    reason = {
        "en": "letters from other alphabets can look the same as Latin ones",
        "ar": "بعض الحروف من أبجديات أخرى تبدو مطابقة للحروف اللاتينية",
    }[language]
    expect(hint).to_contain_text(reason)
    name.fill("أمل")
    page.fill("input[name=new-passphrase]", PASSPHRASE)
    page.fill("input[name=passphrase-again]", PASSPHRASE)
    page.click("form button[type=submit]")
    refused = {
        "en": "Names in other alphabets are refused because some of their letters look exactly like Latin ones",
        "ar": "لا تُقبل الأسماء المكتوبة بأبجديات أخرى",
    }[language]
    error = page.locator(".field-error", has_text=refused)
    expect(error).to_be_visible()
    expect(name).to_be_focused()
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".key-groups")).to_have_count(0)
    page.screenshot(path=str(screenshots / f"{language}-username-refused.png"))
    _axe_clean(run_axe, page, f"username-refused-{language}")
    assert watch.console_errors == []


def _modules(svg_path: str) -> set[tuple[int, int]]:
    """Dark modules (row, column) from the path that web/src/qr.js draws."""
    return {(int(r), int(c)) for c, r in re.findall(r"M(\d+) (\d+)h1v1h-1z", svg_path)}


QR_MODULES = """
import qrcode from "qrcode-generator";
const qr = qrcode(0, "M");
qr.addData(process.argv[1], "Alphanumeric");
qr.make();
const dark = [];
for (let r = 0; r < qr.getModuleCount(); r++)
  for (let c = 0; c < qr.getModuleCount(); c++) if (qr.isDark(r, c)) dark.push([r + 4, c + 4]);
console.log(JSON.stringify({ size: qr.getModuleCount() + 8, dark }));
"""


def qr_modules(text: str) -> tuple[set[tuple[int, int]], int]:
    """Dark modules and size (quiet zone of 4 included) of ``text`` from the web client's
    pinned QR library (the same one web/src/qr.js uses), run by node."""
    node = shutil.which("node")
    assert node is not None, "node is needed to build the web client anyway"
    out = subprocess.run(
        [node, "--input-type=module", "-e", QR_MODULES, text],
        cwd=WEB,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    got = json.loads(out.stdout)
    return {(r, c) for r, c in got["dark"]}, int(got["size"])


def write_y4m(path: Path, modules: set[tuple[int, int]], size: int, scale: int = 8) -> None:
    """A two-frame 640x480 Y4M video of the QR code (quiet zone included in ``size``)."""
    width, height = 640, 480
    left, top = (width - size * scale) // 2, (height - size * scale) // 2
    luma = bytearray(b"\xeb" * (width * height))
    for r, c in modules:
        for y in range(top + r * scale, top + (r + 1) * scale):
            start = y * width + left + c * scale
            luma[start : start + scale] = b"\x10" * scale
    chroma = b"\x80" * (width // 2 * height // 2)
    frame = b"FRAME\n" + bytes(luma) + chroma + chroma
    header = f"YUV4MPEG2 W{width} H{height} F5:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame + frame)


@pytest.fixture
def camera_video(tmp_path: Path) -> Path:
    """The fake camera's video: blank until the QR code is known (same size and format)."""
    path = tmp_path / "qr.y4m"
    write_y4m(path, set(), 1)
    return path


@pytest.fixture
def camera_contexts(
    playwright_session: Playwright, live_server: LiveServer, camera_video: Path
) -> Iterator[Contexts]:
    """Contexts in a Chromium whose camera is a fake device playing ``camera_video``."""
    browser = playwright_session.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_video}",
        ],
    )
    made = Contexts(playwright_session, browser, live_server)
    yield made
    made.close()
    browser.close()
    for watch in made.watches:
        assert watch.outside == [], f"requests left the server's origin: {watch.outside}"


def test_scanning_the_other_persons_code_marks_them_verified_until_their_keys_change(
    camera_contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    camera_video: Path,
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
) -> None:
    counsel, token = counsel_with_invite(create_account)
    assert counsel.account is not None
    counsel_name = counsel.account.username
    page, watch = camera_contexts.page(IPHONE, bypass_csp=True)
    page.context.grant_permissions(["camera"], origin=live_server.url)
    register(page, live_server.url, token, "samira")

    # The counsel's own screen, in their browser, shows the code she scans.
    other, other_watch = camera_contexts.page(ANDROID)
    other.goto(f"{live_server.url}/app/")
    login(other, counsel_name, PY_PASSPHRASE)
    other.get_by_role("button", name="Safety number with samira").click()
    qr = other.locator(".qr-wrap svg.qr")
    size = int(qr.get_attribute("viewBox").split()[2])  # type: ignore[union-attr]
    their_number = other.locator("#safety-number").get_attribute("data-number")

    page.get_by_role("button", name=f"Safety number with {counsel_name}").click()
    assert page.locator("#safety-number").get_attribute("data-number") == their_number

    # First a code with another safety number: refused, said so, nothing recorded.
    wrong = "0" * 60 if their_number != "0" * 60 else "1" * 60
    write_y4m(camera_video, *qr_modules(f"HAVEN-SN1:{wrong}"))
    page.click("#scan-start")
    expect(page.locator("#scan-alert")).to_contain_text(
        f"This code does not match {counsel_name}'s safety number", timeout=30_000
    )
    expect(page.locator("#safety-not-verified")).to_be_visible()
    expect(page.locator("#scan-start")).to_be_visible()
    expect(page.locator("video.scan-video")).to_be_hidden()

    # Then the counsel's own code.
    write_y4m(camera_video, _modules(qr.locator("path").get_attribute("d") or ""), size)
    page.click("#scan-start")
    expect(page.locator("#scan-match")).to_contain_text(
        f"The codes match. {counsel_name} is now marked as verified.", timeout=30_000
    )
    expect(page.locator("#safety-verified")).to_contain_text("Verified")
    expect(page.locator("video")).to_have_count(0)  # the camera is off with the scanner gone
    page.screenshot(path=str(screenshots / "en-safety-scanned.png"))
    _axe_clean(run_axe, page, "safety-scanned-en")

    # Remembered in the encrypted contact book: a fresh sign-in still shows it.
    page.get_by_role("button", name="Back").click()
    row = page.locator(".member[data-user]", has_text=counsel_name)
    expect(row.locator("[data-badge=verified]")).to_have_text("Verified")
    logout(page)
    login(page, "samira")
    expect(row.locator("[data-badge=verified]")).to_have_text("Verified", timeout=30_000)
    logout(page)

    # Their keys change: the comparison no longer holds and the badge goes.
    counsel.rotate_keys(PY_PASSPHRASE)
    login(page, "samira")
    expect(row.locator("[data-badge=key-changed]")).to_be_visible(timeout=30_000)
    expect(row.locator("[data-badge=verified]")).to_have_count(0)
    assert watch.console_errors == [] and other_watch.console_errors == []


def test_new_conversations_disappear_after_a_week_and_the_recovery_key_has_a_code(
    contexts: Contexts,
    live_server: LiveServer,
    app: Any,
    create_account: Callable[..., Any],
    screenshots: Path,
    run_axe: Callable[[Page, str], list[dict[str, Any]]],
) -> None:
    app.config["HAVEN_MESSAGE_DEFAULT_TIMER"] = 7 * 86400  # the production default (§9.12)
    _, token = counsel_with_invite(create_account)
    page, watch = contexts.page(IPHONE, bypass_csp=True)
    open_invite(page, live_server.url, token)
    page.fill("input[name=username]", "yasmin")
    page.fill("input[name=new-passphrase]", PASSPHRASE)
    page.fill("input[name=passphrase-again]", PASSPHRASE)
    page.click("form button[type=submit]")
    expect(page.locator(".key-groups")).to_be_visible(timeout=60_000)
    key = read_recovery_key(page)
    expect(page.locator("#recovery-elsewhere")).to_contain_text("do not keep this key with you")
    toggle = page.locator("#recovery-qr-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    code = page.locator("#recovery-qr svg.qr")
    expect(code).to_have_attribute("aria-label", "QR code of the recovery key")
    page.screenshot(path=str(screenshots / "en-recovery-code.png"))
    _axe_clean(run_axe, page, "recovery-code-en")
    toggle.click()
    expect(page.locator("#recovery-qr svg")).to_have_count(0)
    confirm_recovery_key(page, key)
    expect(page.locator("#logout")).to_be_visible()

    open_conversation(page)
    expect(page.locator("select[name=timer]")).to_have_value(str(7 * 86400))
    note = page.locator("[data-timer-default]")
    expect(note).to_have_text(
        "New conversations start with messages disappearing after 1 week. You can change it here."
    )
    page.screenshot(path=str(screenshots / "en-conversation-default-timer.png"))
    _axe_clean(run_axe, page, "conversation-default-timer-en")
    page.select_option("select[name=timer]", "86400")
    expect(page.locator("main").get_by_text("New messages now: 1 day")).to_be_visible()
    expect(note).to_be_hidden()

    # A browser with no camera to give: the scanner says so and the numbers remain.
    page.locator("main p button.link").click()
    page.locator(".member button").first.click()
    page.click("#scan-start")
    expect(page.locator("#scan-alert")).to_have_text(
        "The camera could not be used. Compare the numbers instead."
    )
    expect(page.locator("#scan-start")).to_be_focused()
    expect(page.locator("video.scan-video")).to_be_hidden()
    assert watch.console_errors == []
