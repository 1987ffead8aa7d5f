"""Pseudo-locales for the web client, made at test time and never shipped.

``qpb`` accents every letter, lengthens every message by about 40 % and wraps it in
markers; ``qpd`` is the same text in a right-to-left page, each message in a right-to-left
override, so a layout that is not mirrored shows. Both use codes from ISO 639's
private-use range (qaa–qtz). A second build of web/ (``web/scripts/build.js`` with
``HAVEN_EXTRA_CATALOGS``) carries them; :func:`serve_pseudo_build` lets one page load that
build from the app's own origin while the API is the real server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route

# The walk names its survivor after the language: b and d are equally wide in DejaVu Sans,
# so the two runs' layouts differ only by the mirroring.
PSEUDO_LTR = "qpb"
PSEUDO_RTL = "qpd"
OPEN = "⟦"
CLOSE = "⟧"
EXPANSION = 0.4
RLO = "\u202e"
PDF = "\u202c"

_ACCENTS = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "åƀçđéƒĝĥîĵķļɱñöþǫŕšţûṽŵẋýžÅƁÇĐÉƑĜĤÎĴĶĻṀÑÖÞǪŔŠŢÛṼŴẊÝŽ",
)
_PLACEHOLDER = re.compile(r"(\{\w+\})")
# Padding comes as short words, as real languages' longer text does.
_PAD = "ẋẋẋẋ "


def pseudo_text(text: str, rtl: bool = False) -> str:
    """One message: letters accented outside ``{placeholders}``, ~40 % longer, in markers."""
    parts = [
        p if _PLACEHOLDER.fullmatch(p) else p.translate(_ACCENTS) for p in _PLACEHOLDER.split(text)
    ]
    body = "".join(parts)
    letters = len(_PLACEHOLDER.sub("", text))
    padding = (_PAD * letters)[: max(2, round(letters * EXPANSION))].strip()
    wrapped = f"{OPEN}{body} {padding}{CLOSE}"
    return f"{RLO}{wrapped}{PDF}" if rtl else wrapped


def pseudo_catalog(english: dict[str, Any], rtl: bool = False) -> dict[str, Any]:
    """A whole catalog from en.json; dates formatted as in English."""
    name = "Pseudo RTL" if rtl else "Pseudo"
    meta = {"name": name, "dir": "rtl" if rtl else "ltr", "locale": "en"}
    messages = {k: pseudo_text(v, rtl) for k, v in english.items() if k != "_meta"}
    return {"_meta": meta, **messages}


def build_pseudo(web: Path, out: Path) -> Path:
    """Build web/ with both pseudo-locales into ``out``/dist; return that folder."""
    english = json.loads((web / "src" / "i18n" / "en.json").read_text(encoding="utf-8"))
    catalogs = out / "catalogs"
    catalogs.mkdir(parents=True, exist_ok=True)
    for code, rtl in ((PSEUDO_LTR, False), (PSEUDO_RTL, True)):
        text = json.dumps(pseudo_catalog(english, rtl), ensure_ascii=False)
        (catalogs / f"{code}.json").write_text(text, encoding="utf-8")
    dist = out / "dist"
    npm = shutil.which("npm")
    assert npm is not None, "npm is not installed"
    env = {**os.environ, "HAVEN_EXTRA_CATALOGS": str(catalogs), "HAVEN_WEB_DIST": str(dist)}
    result = subprocess.run(
        [npm, "run", "build", "--silent"],
        cwd=web,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pseudo build failed:\n{result.stdout}\n{result.stderr}"
    return dist


def _app_script(html: str) -> tuple[str, str]:
    """The app bundle's URL and SRI in an index.html."""
    found = re.search(r'src="(/assets/app-[0-9a-f]+\.js)" integrity="([^"]+)"', html)
    assert found is not None, "no app script in index.html"
    return found.group(1), found.group(2)


def serve_pseudo_build(page: Page, base_url: str, dist: Path) -> None:
    """Let ``page`` run the pseudo build: the page's app script and its assets come from ``dist``.

    The server's own /app/ answer is fetched (its headers, CSP and witness policy kept) and
    only the app script's URL and integrity are swapped; the app script and the catalogs
    are served from ``dist`` at the same origin, so the page sees no other origin; every
    other asset (libsodium, the Argon2id worker) is the server's own.
    """
    pseudo_src, pseudo_sri = _app_script((dist / "index.html").read_text(encoding="utf-8"))

    def index(route: Route) -> None:
        response = route.fetch()
        html = response.text()
        real_src, real_sri = _app_script(html)
        html = html.replace(real_src, pseudo_src).replace(real_sri, pseudo_sri)
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding")
        }
        route.fulfill(status=response.status, headers=headers, body=html)

    def asset(route: Route) -> None:
        path = dist / "assets" / route.request.url.rsplit("/", 1)[-1].split("?")[0]
        ours = path.name == pseudo_src.rsplit("/", 1)[-1] or path.suffix == ".json"
        if not ours or not path.is_file():
            route.fallback()
            return
        route.fulfill(status=200, path=str(path), headers={"Cache-Control": "no-store"})

    page.route(re.compile(re.escape(base_url) + r"/app/(\?.*)?$"), index)
    page.route(
        re.compile(re.escape(base_url) + r"/assets/[a-z0-9]+-[0-9a-f]{16}\.(js|json)$"), asset
    )
