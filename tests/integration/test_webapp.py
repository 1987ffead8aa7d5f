"""Serving the web client: page, immutable hashed assets, compression, headers, 503 unbuilt."""

from __future__ import annotations

import gzip
import hashlib
import re
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.factories import make_person, session_cookie_for
from vault.accounts.models import Role
from vault.db import database
from vault.security import WEB_CSP
from vault.webapp.views import IMMUTABLE, NO_STORE


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A small built client in a temporary folder, like `npm run build` writes."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    script = b"console.log('hi');\n"
    name = f"app-{hashlib.sha256(script).hexdigest()[:16]}.js"
    (root / "assets" / name).write_bytes(script)
    (root / "assets" / f"{name}.gz").write_bytes(gzip.compress(script, mtime=0))
    sri = "sha384-" + b64encode(hashlib.sha384(script).digest()).decode()
    (root / "index.html").write_text(
        f'<!doctype html><title>Notes</title><script src="/assets/{name}" '
        f'integrity="{sri}" defer></script>\n'
    )
    (root / "assets" / "style-0123456789abcdef.css").write_text("body{margin:0}")
    return root


@pytest.fixture
def web(app: Flask, dist: Path) -> Any:
    """A test client of an app serving the temporary build."""
    app.config["HAVEN_WEB_DIST"] = str(dist)
    return app.test_client()


def _script_name(dist: Path) -> str:
    found = re.search(r"/assets/([^\"]+\.js)", (dist / "index.html").read_text())
    assert found is not None
    return found.group(1)


def test_root_redirects_to_the_app(web: Any) -> None:
    response = web.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/app/")


def test_page_is_never_cached_and_has_the_web_csp(web: Any) -> None:
    response = web.get("/app/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == WEB_CSP
    assert "script-src 'self' 'wasm-unsafe-eval'" in WEB_CSP
    assert b"integrity=" in response.data


def test_app_without_slash_redirects(web: Any) -> None:
    response = web.get("/app")
    assert response.status_code in (301, 308)
    assert response.headers["Location"].endswith("/app/")


def test_assets_are_typed_precompressed_and_only_libsodium_is_cached(web: Any, dist: Path) -> None:
    name = _script_name(dist)
    plain = web.get(f"/assets/{name}", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["Cache-Control"] == (IMMUTABLE if name.startswith("sodium-") else NO_STORE)
    for asset in (dist / "assets").iterdir():
        if asset.suffix in (".gz", ".br"):
            continue
        got = web.get(f"/assets/{asset.name}").headers["Cache-Control"]
        assert got == (IMMUTABLE if asset.name.startswith("sodium-") else NO_STORE), asset.name
    assert plain.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert plain.headers["Content-Security-Policy"] == WEB_CSP
    assert "Content-Encoding" not in plain.headers
    assert plain.data == (dist / "assets" / name).read_bytes()
    packed = web.get(f"/assets/{name}", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(packed.data) == plain.data
    again = web.get(f"/assets/{name}", headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304


def test_catalog_asset_is_json_and_not_stored(web: Any, dist: Path) -> None:
    """A catalog names what the app is about, so, like the app's own files, it is not cached."""
    catalog = b'{"_meta": {"name": "Ti\xe1\xba\xbfng Vi\xe1\xbb\x87t", "dir": "ltr"}}\n'
    name = f"vi-{hashlib.sha256(catalog).hexdigest()[:16]}.json"
    (dist / "assets" / name).write_bytes(catalog)
    response = web.get(f"/assets/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == catalog
    assert web.get("/assets/vi-0123456789abcdef.json").status_code == 404


def test_css_asset_without_compressed_copy(web: Any) -> None:
    response = web.get("/assets/style-0123456789abcdef.css", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize(
    "name",
    [
        "missing-0123456789abcdef.js",
        "app.js",
        "..%2Findex.html",
        "app-0123456789ABCDEF.js",
        "app-0123456789abcdef.js.gz",
        "app-0123456789abcdef.html",
    ],
)
def test_unknown_or_malformed_asset_names_are_404(web: Any, name: str) -> None:
    response = web.get(f"/assets/{name}")
    assert response.status_code == 404
    assert set(response.get_json()["error"]) == {"code", "message"}
    assert response.headers["Cache-Control"] == "no-store"


def test_unbuilt_client_is_a_clear_503(app: Flask, tmp_path: Path) -> None:
    app.config["HAVEN_WEB_DIST"] = str(tmp_path / "nothing")
    client = app.test_client()
    for path in ("/app/", "/assets/app-0123456789abcdef.js"):
        response = client.get(path)
        assert response.status_code == 503
        error = response.get_json()["error"]
        assert error["code"] == "web_client_not_built"
        assert "npm run build" in error["message"]


def test_assets_never_carry_or_vary_by_the_session_cookie(app: Flask, web: Any, dist: Path) -> None:
    with app.app_context():
        db = database(app).sessions()
        person = make_person(db, app.extensions["haven.keyring"], Role.COUNSEL, "webby")
        db.close()
    session_cookie_for(app, web, person.id)
    assert web.get("/api/v1/account").status_code == 200
    response = web.get(f"/assets/{_script_name(dist)}")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Cache-Control"] in (IMMUTABLE, NO_STORE)
