"""Authorization cases of the audit routes."""

from __future__ import annotations

from tests.authz import Route, signed_in

ROUTES = [
    Route("GET", "/api/v1/audit/mine", signed_in(200)),
    Route("GET", "/api/v1/admin/audit", signed_in(403, admin=200)),
]
