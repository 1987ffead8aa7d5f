"""Security headers, content security policy, cookie policy and cross-site request refusal."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from vault.errors import error_response

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The web client: its own scripts and styles only, wasm for libsodium, no inline script.
WEB_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' blob: data:; media-src blob:; object-src 'none'; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
    "frame-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
API_PERMISSIONS = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
WEB_PERMISSIONS = "camera=(self), microphone=(), geolocation=(), interest-cohort=()"
WEB_PREFIXES = ("/app", "/assets")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"


def _expected_media_type() -> str:
    """The media type the matched route declares with ``@endpoint`` (JSON unless it says not)."""
    assert request.url_rule is not None
    view = current_app.view_functions[request.url_rule.endpoint]
    spec = getattr(view, "haven_endpoint", None)
    media_type: str = getattr(spec, "media_type", JSON)
    return media_type


def _refuse_cross_site() -> Response | None:
    """Refuse a state-changing request another site's page could have sent (protocol §5.1)."""
    if request.method not in UNSAFE_METHODS or request.routing_exception is not None:
        return None  # safe methods change nothing; unrouted requests get their 404/405
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if (site is not None and site != "same-origin") or (
        origin is not None and origin != current_app.config["HAVEN_PUBLIC_ORIGIN"]
    ):
        return error_response(
            403,
            "cross_site_request",
            "state-changing requests are accepted only from this service's own pages",
        )
    expected = _expected_media_type()
    if request.mimetype != expected:
        return error_response(
            415, "unsupported_media_type", f"send Content-Type: {expected}, with or without a body"
        )
    return None


def _set_headers(response: Response) -> Response:
    headers = response.headers
    if response.status_code == 204:  # no body, so no Content-Type (RFC 9110 §15.3.5)
        headers.remove("Content-Type")
        response.set_data(b"")
    is_web = request.path == "/" or request.path.startswith(WEB_PREFIXES)
    headers.setdefault("Content-Security-Policy", WEB_CSP if is_web else API_CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Cross-Origin-Embedder-Policy"] = "require-corp"
    # The web client's safety-number scanner may ask for this origin's camera; nothing else does.
    headers["Permissions-Policy"] = WEB_PERMISSIONS if is_web else API_PERMISSIONS
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    # Immutable hashed assets may be cached; everything else, authenticated or not, may not.
    if "Cache-Control" not in headers or not request.path.startswith("/assets/"):
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def init_app(app: Flask) -> None:
    """Install the cross-site refusal and the response hook that sets every security header."""
    app.before_request(_refuse_cross_site)
    app.after_request(_set_headers)
