"""Authorization cases of the contact book routes: every account reaches only its own."""

from __future__ import annotations

from tests.authz import Route, signed_in

ROUTES = [
    Route("GET", "/api/v1/account/contact-book", signed_in(200)),
    Route("PUT", "/api/v1/account/contact-book", signed_in(400), body={}),
]
