"""Authorization cases of the admin routes: admins only; everyone else 403, anonymous 401.

``build`` makes an open counsel invite for the revoke row.
"""

from __future__ import annotations

from flask import Flask

from tests.authz import Route, World, signed_in
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.db import database

ADMIN_ONLY_200 = signed_in(403, admin=200)


def build(app: Flask, world: World) -> None:
    """An open invite made by the server's command, to revoke."""
    with app.app_context():
        db = database(app).sessions()
        try:
            made, _ = accounts.create_invite(db, Role.COUNSEL, None, 24)
            world.extra["admin_invite"] = made.id
        finally:
            db.close()


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
    Route(
        "POST",
        "/api/v1/admin/reauth",
        signed_in(403, admin=401),
        body={"auth_key": "A" * 43},
        writes_when_refused=True,
    ),
    Route("GET", "/api/v1/admin/keys/reencrypt", ADMIN_ONLY_200),
    Route("GET", "/api/v1/admin/invites", ADMIN_ONLY_200),
    Route(
        "POST",
        "/api/v1/admin/invites/<invite_id>/revoke",
        signed_in(403, admin=204),
        path=lambda w: f"/api/v1/admin/invites/{w.extra['admin_invite']}/revoke",
    ),
    Route("GET", "/api/v1/admin/log", ADMIN_ONLY_200),
    Route("POST", "/api/v1/admin/log/verify", ADMIN_ONLY_200),
    Route("POST", "/api/v1/admin/audit/verify", ADMIN_ONLY_200),
]
