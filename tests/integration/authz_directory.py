"""Authorization cases of the key transparency routes: any signed-in account, never anonymous."""

from __future__ import annotations

from tests.authz import Route, signed_in

ROUTES = [
    Route("GET", "/api/v1/directory/head", signed_in(200)),
    Route("GET", "/api/v1/directory/checkpoint", signed_in(200)),
    Route(
        "GET",
        "/api/v1/directory/heads/<int:size>",
        signed_in(200),
        path=lambda w: "/api/v1/directory/heads/1",
    ),
    Route(
        "GET",
        "/api/v1/directory/proofs/inclusion",
        signed_in(200),
        path=lambda w: "/api/v1/directory/proofs/inclusion?index=0&size=3",
    ),
    Route(
        "GET",
        "/api/v1/directory/proofs/consistency",
        signed_in(200),
        path=lambda w: "/api/v1/directory/proofs/consistency?from=1&to=3",
    ),
    Route("GET", "/api/v1/directory/log-keys", signed_in(200)),
    Route("GET", "/api/v1/directory/mine", signed_in(200)),
]
