"""Pseudo-localisation at 320 px: no hard-coded text, nothing overflowing, a mirrored RTL layout.

Every main screen (tests/e2e/test_screens.py's walk, then documents, a document open, who
opened them and a conversation, from both sides) is visited in the two pseudo-locales of
tests/e2e/pseudo.py, built into a separate bundle for this test only. Data that is not to be
translated (usernames, recovery key groups, safety numbers, file names, message text) is
marked in the page with the HTML ``translate="no"`` attribute, which browser translators
honour as well, so they do not send a message's plaintext to a translation service;
``<time>`` elements hold dates formatted by Intl in the page's language.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSPHRASE as PY_PASSPHRASE
from tests.conftest import LiveServer
from tests.e2e.conftest import SMALL, WEB, Contexts
from tests.e2e.flows import choose_language, counsel_with_invite, login, register
from tests.e2e.pseudo import CLOSE, OPEN, PSEUDO_LTR, PSEUDO_RTL, build_pseudo, serve_pseudo_build
from tests.e2e.test_documents_web import open_documents, png, upload
from tests.e2e.test_screens import SCREENS, walk_every_screen

SCREEN_320 = {
    "viewport": {"width": 320, "height": 640},
    "screen": {"width": 320, "height": 640},
    "device_scale_factor": 1,
}
# Off by at most this many CSS pixels counts as mirrored (text in the two runs differs
# only in the username's last letter).
TOLERANCE = 2

AUDIT = r"""([open, close]) => {
  const problems = [];
  const root = document.documentElement;
  const width = root.clientWidth;
  const shown = (el) => el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true });
  // Ids with digits are made per page (counters, random parts): left out so runs compare.
  const name = (el) => el.tagName.toLowerCase() + (el.id && !/\d/.test(el.id) ? "#" + el.id : "")
    + (typeof el.className === "string" && el.className.trim()
      ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const data = (el) => el.closest("[translate=no], time");
  // Without markers (a real language) only the layout is checked.
  const marked = (text) => !open || text.includes(open) || text.includes(close);
  if (root.scrollWidth > width) problems.push(`page is ${root.scrollWidth}px wide in ${width}px`);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.data.trim();
    const el = node.parentElement;
    if (!text || !el || el.closest("script, style, noscript") || !shown(el) || data(el)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    if (range.getClientRects().length === 0) continue;
    // Punctuation alone (the " · " between isolated parts) has nothing to translate.
    if (!/\p{L}/u.test(text)) continue;
    // A sentence with isolated parts is split into text nodes; its markers are at its ends.
    if (!marked(text) && !marked(el.textContent)) {
      problems.push(`hard-coded text in ${name(el)}: ${text.slice(0, 80)}`);
    }
  }
  for (const el of document.querySelectorAll("[aria-label], [title], [placeholder], [alt]")) {
    if (data(el)) continue;
    for (const attr of ["aria-label", "title", "placeholder", "alt"]) {
      const value = el.getAttribute(attr);
      if (value && value.trim() && !marked(value)) {
        problems.push(`hard-coded ${attr} on ${name(el)}: ${value.slice(0, 80)}`);
      }
    }
  }
  if (!marked(document.title)) problems.push(`hard-coded title: ${document.title}`);
  const boxes = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const style = getComputedStyle(el);
    const hidden = style.clip !== "auto" || style.clipPath !== "none";
    let scroller = false;
    for (let up = el.parentElement; up; up = up.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(up).overflowX)) scroller = true;
    }
    if (!hidden && !scroller && (r.left < -1 || r.right > width + 1)) {
      problems.push(`${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)}, outside 0..${width}`);
    }
    const control = el.matches("button, a, label, select, summary, legend, h1, h2, h3, th, td, .pill");
    if (control && !hidden && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
      problems.push(`${name(el)} clipped: ${el.scrollWidth}px of content in ${el.clientWidth}px`);
    }
    // Inside a left-to-right island (a key, a number) boxes keep their order on purpose.
    const island = el.parentElement && el.parentElement.closest("body [dir=ltr]");
    // Data inside a line of text (an isolated name or date) sits where the words around it
    // end, which differs between the two pseudo languages; its line box is checked instead.
    const inlineData = style.display === "inline" && el.closest("[translate=no]");
    if (!hidden && !island && !inlineData) boxes.push({ el: name(el), left: r.left, right: r.right });
  }
  return { problems, boxes, width, dir: root.dir };
}"""


@pytest.fixture(scope="session")
def pseudo_dist(tmp_path_factory: pytest.TempPathFactory, web_build: Path) -> Path:
    """web/ built once more with the pseudo-locales, outside web/dist, once per run.

    Parallel workers share it (their temp folders have one parent per run): the first takes
    a file lock and builds, the others find the finished build.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    done = shared / "pseudo" / "built"
    with (shared / "pseudo.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not done.is_file():
            build_pseudo(WEB, shared / "pseudo")
            done.write_text("")
    return shared / "pseudo" / "dist"


# A walk: (page maker, language, audit(page, screen name)) -> the names it visited.
Audit = Callable[[Page, str], None]
Walk = Callable[[Callable[[], Page], str, Audit], list[str]]


def _audits(
    contexts: Contexts,
    live_server: LiveServer,
    dist: Path,
    shots: Path,
    walk: Walk,
    lang: str,
    markers: tuple[str, str] = (OPEN, CLOSE),
) -> dict[str, dict[str, Any]]:
    """Run ``walk`` in ``lang`` at 320 px on the pseudo build; the audit of each screen by name."""
    audits: dict[str, dict[str, Any]] = {}
    watches = []

    def new_page() -> Page:
        page, watch = contexts.page(SMALL, **SCREEN_320)
        serve_pseudo_build(page, live_server.url, dist)
        watches.append(watch)
        return page

    def audit(page: Page, name: str) -> None:
        page.evaluate("document.activeElement && document.activeElement.blur()")
        audits[name] = page.evaluate(AUDIT, list(markers))
        page.screenshot(path=str(shots / f"{lang}-320-{name}.png"), full_page=True)

    assert walk(new_page, lang, audit) == list(audits)
    assert [w.console_errors for w in watches] == [[] for _ in watches]
    return audits


def _unmirrored(ltr: dict[str, Any], rtl: dict[str, Any]) -> list[str]:
    """Boxes of the RTL run that are not the mirror image of the same box in the LTR run."""
    width = ltr["width"]
    left, right = [b["el"] for b in ltr["boxes"]], [b["el"] for b in rtl["boxes"]]
    if left != right:
        at = next(
            (i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
            min(len(left), len(right)),
        )
        return [
            f"the runs differ at box {at}: {left[at : at + 3]} in LTR, {right[at : at + 3]} in RTL"
        ]
    wrong = []
    for a, b in zip(ltr["boxes"], rtl["boxes"], strict=True):
        start = abs(b["right"] - (width - a["left"]))
        end = abs(b["left"] - (width - a["right"]))
        if min(start, end) > TOLERANCE:
            wrong.append(
                f"{a['el']}: {a['left']:.0f}..{a['right']:.0f} in LTR, "
                f"{b['left']:.0f}..{b['right']:.0f} in RTL"
            )
    return wrong


def _main_screens(base_url: str, create_account: Callable[..., Any]) -> Walk:
    """test_screens.py's walk of every main screen."""

    def walk(new_page: Callable[[], Page], lang: str, audit: Audit) -> list[str]:
        page = new_page()
        seen = walk_every_screen(page, base_url, create_account, lang, lambda n: audit(page, n))
        assert tuple(seen) == SCREENS
        return seen

    return walk


def _document_screens(base_url: str, create_account: Callable[..., Any]) -> Walk:
    """Documents, a document open, who opened them, a conversation; counsel's side of both."""

    def walk(new_page: Callable[[], Page], lang: str, audit: Audit) -> list[str]:
        seen: list[str] = []

        def at(page: Page, name: str) -> None:
            # Both runs are compared once loading has settled.
            expect(page.locator("main [aria-busy=true]")).to_have_count(0)
            seen.append(name)
            audit(page, name)

        counsel, token = counsel_with_invite(create_account)
        assert counsel.account is not None
        page = new_page()
        register(page, base_url, token, f"docs.{lang}")
        choose_language(page, lang)
        open_documents(page)
        at(page, "documents-empty")
        upload(page, "passport.png", png(), "image/png", "passport", "2031-01-15")
        upload(page, "birth.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf", "birth_certificate")
        for name in ("passport.png", "birth.pdf"):
            document = page.locator(".document", has_text=name)
            document.locator(".grant button").click()
            expect(document.locator(".grant > span")).to_have_count(1)
        at(page, "documents")
        page.locator(".document", has_text="passport.png").locator(".actions button").first.click()
        expect(page.locator(".viewer img")).to_be_visible()
        at(page, "document-view")
        page.locator("main > .actions button").first.click()
        expect(page.locator(".events li").first).to_be_visible()
        at(page, "history")
        page.locator("main p button.link").click()
        page.locator("main > .actions button.link").click()
        page.locator(".case-actions button[data-messages]").click()
        expect(page.locator("ol.messages")).to_have_attribute("data-live", "true")
        page.select_option("select[name=timer]", "86400")
        page.fill("textarea[name=text]", "I uploaded my passport.")
        page.click("form.compose button[type=submit]")
        expect(page.locator("li.message.mine")).to_have_count(1)
        at(page, "conversation")

        other = new_page()
        other.goto(f"{base_url}/app/")
        choose_language(other, lang)
        login(other, counsel.account.username, PY_PASSPHRASE)
        open_documents(other)
        expect(other.locator(".document")).to_have_count(2)
        at(other, "documents-counsel")
        other.locator("main > .actions button.link").click()
        expect(other.locator("[data-unread='1']")).to_be_visible()
        at(other, "home-unread")
        other.locator(".case-actions button[data-messages]").click()
        expect(other.locator("li.message.theirs")).to_have_count(1)
        expect(other.locator("ol.messages")).to_have_attribute("data-live", "true")
        at(other, "conversation-counsel")
        return seen

    return walk


def _problems(ltr: dict[str, dict[str, Any]], rtl: dict[str, dict[str, Any]]) -> str:
    """Every finding of both runs, one line each, by screen."""
    assert list(ltr) == list(rtl)
    lines = []
    for screen in ltr:
        assert ltr[screen]["dir"] == "ltr"
        assert rtl[screen]["dir"] == "rtl"
        found = [*ltr[screen]["problems"], *rtl[screen]["problems"]]
        found += [f"not mirrored: {p}" for p in _unmirrored(ltr[screen], rtl[screen])]
        lines += [f"{screen}: {p}" for p in sorted(set(found))]
    return "\n".join(lines)


@pytest.mark.parametrize("screens", ["main", "documents"])
def test_pseudo_locales_show_no_hard_coded_text_overflow_or_unmirrored_layout(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    pseudo_dist: Path,
    screenshots: Path,
    screens: str,
) -> None:
    make = _main_screens if screens == "main" else _document_screens
    walk = make(live_server.url, create_account)
    ltr = _audits(contexts, live_server, pseudo_dist, screenshots, walk, PSEUDO_LTR)
    rtl = _audits(contexts, live_server, pseudo_dist, screenshots, walk, PSEUDO_RTL)
    report = _problems(ltr, rtl)
    assert report == ""


# The longest catalogs (French, Tagalog: about 1.2 times English) and the two written
# without spaces between words (Thai, Chinese), in their own words rather than pseudo text.
@pytest.mark.parametrize("lang", ["fr", "tl", "th", "zh"])
def test_real_catalogs_fit_320_px(
    contexts: Contexts,
    live_server: LiveServer,
    create_account: Callable[..., Any],
    pseudo_dist: Path,
    screenshots: Path,
    lang: str,
) -> None:
    walk = _main_screens(live_server.url, create_account)
    audits = _audits(contexts, live_server, pseudo_dist, screenshots, walk, lang, ("", ""))
    report = "\n".join(f"{screen}: {p}" for screen, a in audits.items() for p in a["problems"])
    assert report == ""


def test_the_shipped_build_carries_no_pseudo_locale(web_build: Path) -> None:
    names = [p.name for p in (web_build / "assets").iterdir()]
    assert not [n for n in names if n.startswith((PSEUDO_LTR, PSEUDO_RTL))]
    for script in (web_build / "assets").glob("app-*.js"):
        text = script.read_text(encoding="utf-8")
        assert OPEN not in text
        assert f'"{PSEUDO_LTR}"' not in text
