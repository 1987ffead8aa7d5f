"""Authorization cases of the outcome-report and figures routes (protocol §28).

Reports are counsel's of their own cases; a case's members read them; releases are
admins' only.
"""

from __future__ import annotations

from tests.authz import Route, signed_in
from vault.db import utcnow
from vault.protocol.figures import period_of

CASE_ONLY = {"admin": 403, "stranger_counsel": 404}

ROUTES = [
    Route(
        "GET",
        "/api/v1/figures/outcomes/schema",
        signed_in(200, survivor=403, stranger_survivor=403),
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/outcomes",
        signed_in(400, survivor=403, stranger_survivor=403, **CASE_ONLY),
        path=lambda w: f"/api/v1/cases/{w.case_id}/outcomes",
        body={},
    ),
    Route(
        "GET",
        "/api/v1/cases/<case_id>/outcomes",
        signed_in(200, stranger_survivor=404, **CASE_ONLY),
        path=lambda w: f"/api/v1/cases/{w.case_id}/outcomes",
    ),
    Route("GET", "/api/v1/admin/figures/releases", signed_in(403, admin=200)),
    Route(
        "POST",
        "/api/v1/admin/figures/releases",
        signed_in(403, admin=201),
        body={"period": period_of(utcnow())},
    ),
]
