"""Web client routes: the page, its content-hashed assets, and the redirect from ``/``.

The files come from ``web/dist`` (``npm ci && npm run build`` in ``web/``). Assets carry
a hash of their content in their name. Only libsodium, a public library that names nothing
of this service, is cached (as immutable); the app's own files and the page are ``no-store``,
so a phone's HTTP and code caches keep nothing that identifies the service (docs/threat-model.md,
"What the browser keeps"). The page pins every script with Subresource Integrity either way.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, redirect, request
from werkzeug.datastructures import HeaderSet
from werkzeug.wrappers import Response as BaseResponse

from vault.api import ANONYMOUS, HTML, Reply, endpoint
from vault.errors import NotFound, Unavailable

bp = Blueprint("webapp", __name__)

DEFAULT_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_STORE = "no-store"
# The only asset worth its trace in the browser's cache: large on weak mobile data, generic.
CACHED_STEMS = frozenset({"sodium"})
ASSET_NAME = re.compile(r"^[a-z0-9]{1,32}-[0-9a-f]{16}\.(js|css|svg|webmanifest|json)$")
CONTENT_TYPES = {
    "js": "text/javascript",
    "json": "application/json",
    "css": "text/css",
    "svg": "image/svg+xml",
    "webmanifest": "application/manifest+json",
}
# Precompressed copies written by the build, best first.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


def dist_dir() -> Path:
    """The built web client: ``HAVEN_WEB_DIST`` when set on the app, else ``web/dist``."""
    configured = current_app.config.get("HAVEN_WEB_DIST")
    return Path(configured) if configured else DEFAULT_DIST


class SharedFile(Response):
    """A public, immutable file: the session may add neither a cookie nor ``Vary: Cookie``.

    Otherwise every sign-in would change the cache key and browsers would fetch the
    files again, and a shared cache could store one person's Set-Cookie for everyone.
    """

    @property
    def vary(self) -> HeaderSet:
        """Only Accept-Encoding varies; additions made by the session hook are dropped."""
        return HeaderSet(["Accept-Encoding"])

    def set_cookie(self, *args: Any, **kwargs: Any) -> None:
        """Never attach a cookie to a shared file."""

    def delete_cookie(self, *args: Any, **kwargs: Any) -> None:
        """Never attach a cookie to a shared file."""


def cache_control(name: str) -> str:
    """Cache-Control for an asset: immutable for libsodium, ``no-store`` for the app's own files."""
    return IMMUTABLE if name.split("-", 1)[0] in CACHED_STEMS else NO_STORE


def _built() -> Path:
    dist = dist_dir()
    if not (dist / "index.html").is_file():
        raise Unavailable(
            "the web client is not built: run `npm ci && npm run build` in web/",
            code="web_client_not_built",
        )
    return dist


@bp.get("/")
@endpoint(
    "Redirect to the web client",
    roles=ANONYMOUS,
    replies=Reply(302, None, HTML, "to /app/", {"Location": "/app/"}),
)
def root() -> BaseResponse:
    """Send browsers to the web client."""
    return redirect("/app/", code=302)


def witness_meta() -> bytes:
    """The witness policy the page enforces (protocol §15.6), as a ``<meta>`` element."""
    config = current_app.config
    policy = {
        "origin": config["HAVEN_LOG_ORIGIN"],
        "quorum": config["HAVEN_WITNESS_QUORUM"],
        "witnesses": [key.encode() for key, _ in config["HAVEN_WITNESSES"]],
    }
    content = html.escape(json.dumps(policy, separators=(",", ":")), quote=True)
    return f'<meta name="haven-witnesses" content="{content}">\n'.encode()


@bp.get("/app/")
@endpoint(
    "The web client's page (scripts pinned with Subresource Integrity)",
    roles=ANONYMOUS,
    replies=Reply(200, None, HTML, "the page"),
)
def index() -> Response:
    """Serve index.html with the witness policy; never cached, so a change applies at once."""
    page = (
        (_built() / "index.html").read_bytes().replace(b"</head>", witness_meta() + b"</head>", 1)
    )
    return Response(page, mimetype="text/html")


@bp.get("/assets/<name>")
@endpoint(
    "A content-hashed web client file (libsodium cached as immutable, the rest no-store)",
    roles=ANONYMOUS,
    replies=[
        *(Reply(200, None, t, "the file") for t in sorted(set(CONTENT_TYPES.values()))),
        Reply(304, None, None, "not modified (If-None-Match)"),
    ],
)
def asset(name: str) -> BaseResponse:
    """Serve one built asset, precompressed when the browser accepts it."""
    match = ASSET_NAME.match(name)
    path = _built() / "assets" / name
    if match is None or not path.is_file():
        raise NotFound("no such file")
    encoding = None
    for coding, suffix in ENCODINGS:
        variant = path.with_name(name + suffix)
        if request.accept_encodings[coding] and variant.is_file():
            path, encoding = variant, coding
            break
    response = SharedFile(path.read_bytes(), mimetype=CONTENT_TYPES[match.group(1)])
    if encoding is not None:
        response.headers["Content-Encoding"] = encoding
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = cache_control(name)
    # The name already carries the content hash; the encoding tells the variants apart.
    response.set_etag(f"{name}.{encoding or 'identity'}")
    return response.make_conditional(request)
