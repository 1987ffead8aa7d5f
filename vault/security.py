"""Security headers, content security policy and cookie policy, in one place."""

from __future__ import annotations

from flask import Flask, Response, request

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The web client: its own scripts and styles only, wasm for libsodium, no inline script.
WEB_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' blob: data:; media-src blob:; object-src 'none'; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
    "frame-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
WEB_PREFIXES = ("/app", "/assets")


def _set_headers(response: Response) -> Response:
    headers = response.headers
    is_web = request.path == "/" or request.path.startswith(WEB_PREFIXES)
    headers.setdefault("Content-Security-Policy", WEB_CSP if is_web else API_CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Cross-Origin-Embedder-Policy"] = "require-corp"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    # Immutable hashed assets may be cached; everything else, authenticated or not, may not.
    if "Cache-Control" not in headers or not request.path.startswith("/assets/"):
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def init_app(app: Flask) -> None:
    """Install the response hook that sets every security header."""
    app.after_request(_set_headers)
