"""Authorization cases of the web client routes: public files, the same for everyone."""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Flask

from tests.authz import Route, World, configure, everyone

ASSET = "app-0123456789abcdef.js"

ROUTES = [
    Route("GET", "/", everyone(302)),
    Route("GET", "/app/", everyone(200)),
    Route("GET", "/assets/<name>", everyone(200), path=lambda w: f"/assets/{ASSET}"),
]


def build(app: Flask, world: World) -> None:
    """Serve a tiny build from a temporary folder, so the cases do not depend on web/dist."""
    dist = Path(tempfile.mkdtemp(prefix="haven-dist-"))
    (dist / "assets").mkdir()
    (dist / "index.html").write_text("<!doctype html><title>Notes</title>\n")
    (dist / "assets" / ASSET).write_text("void 0;\n")
    configure(app, world, HAVEN_WEB_DIST=str(dist))
    world.extra["web_dist"] = dist
