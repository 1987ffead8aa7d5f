"""Authorization cases of the admin routes: admins only; everyone else 403, anonymous 401."""

from __future__ import annotations

from tests.authz import Route, World, signed_in

ADMIN_ONLY_200 = signed_in(403, admin=200)


def _target(w: World) -> str:
    return w.people["stranger_survivor"].id


ROUTES = [
    Route("GET", "/api/v1/admin/keys", ADMIN_ONLY_200),
    Route(
        "POST", "/api/v1/admin/keys/rotate", signed_in(403, admin=201), body={"purpose": "session"}
    ),
    Route("POST", "/api/v1/admin/keys/reencrypt", ADMIN_ONLY_200),
    Route(
        "POST",
        "/api/v1/admin/keys/retire",
        signed_in(403, admin=409),
        body={"purpose": "data", "version": 1},
    ),
    Route("GET", "/api/v1/admin/accounts", ADMIN_ONLY_200),
    Route(
        "POST",
        "/api/v1/admin/accounts/<user_id>/disabled",
        ADMIN_ONLY_200,
        path=lambda w: f"/api/v1/admin/accounts/{_target(w)}/disabled",
        body={"is_disabled": True},
    ),
    Route(
        "POST",
        "/api/v1/admin/accounts/<user_id>/compromised",
        ADMIN_ONLY_200,
        path=lambda w: f"/api/v1/admin/accounts/{_target(w)}/compromised",
    ),
    Route("GET", "/api/v1/admin/figures", ADMIN_ONLY_200),
]
