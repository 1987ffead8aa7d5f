"""Authorization cases of the passkey routes (§21.8, §21.9): each account its own passkeys;
the sign-in routes for a pending sign-in or a fresh challenge only."""

from __future__ import annotations

import os
from collections.abc import Callable

from flask import Flask

from tests.authz import Route, World, everyone, signed_in
from vault.accounts.models import Passkey
from vault.db import database

OWNER_ONLY = signed_in(404, survivor=200)


def build(app: Flask, world: World) -> None:
    """A passkey of the survivor's (its key is never checked by these routes)."""
    with app.app_context():
        db = database(app).sessions()
        passkey = Passkey(
            user_id=world.people["survivor"].id,
            credential_id=os.urandom(16),
            public_key=os.urandom(77),
            sign_count=0,
            name="phone",
        )
        db.add(passkey)
        db.commit()
        world.extra["passkey"] = passkey.id
        db.close()


def _at(action: str) -> Callable[[World], str]:
    return lambda w: f"/api/v1/account/passkeys/{w.extra['passkey']}/{action}"


ROUTES = [
    Route("GET", "/api/v1/account/passkeys", signed_in(200)),
    Route("POST", "/api/v1/account/passkeys/options", signed_in(200)),
    Route("POST", "/api/v1/account/passkeys", signed_in(400), body={}),
    Route(
        "POST",
        "/api/v1/account/passkeys/<passkey_id>/name",
        OWNER_ONLY,
        path=_at("name"),
        body={"name": "work phone"},
    ),
    Route(
        "POST",
        "/api/v1/account/passkeys/<passkey_id>/unlock",
        OWNER_ONLY,
        path=_at("unlock"),
        body={"wrapped_keys": "A" * 142},
    ),
    Route(
        "POST",
        "/api/v1/account/passkeys/<passkey_id>/remove",
        signed_in(404, survivor=204),
        path=_at("remove"),
    ),
    # Nobody here holds a pending sign-in or a challenge.
    Route("POST", "/api/v1/auth/factor/passkey/options", everyone(401)),
    Route("POST", "/api/v1/auth/factor/passkey", everyone(401), body={"credential": {}}),
    Route("POST", "/api/v1/auth/passkey/options", everyone(200)),
    Route("POST", "/api/v1/auth/passkey", everyone(401), body={"credential": {}}),
]
