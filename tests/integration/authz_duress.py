"""Authorization cases of the duress passphrase routes: a survivor's own account only."""

from __future__ import annotations

from tests.authz import Route, signed_in

NOT_SURVIVOR = {"counsel": 403, "admin": 403, "stranger_counsel": 403}

ROUTES = [
    Route("GET", "/api/v1/account/duress", signed_in(200)),
    Route("POST", "/api/v1/account/duress", signed_in(400, **NOT_SURVIVOR), body={}),
    Route("POST", "/api/v1/account/duress/alert", signed_in(400, **NOT_SURVIVOR), body={}),
    Route("POST", "/api/v1/account/duress/remove", signed_in(400, **NOT_SURVIVOR), body={}),
]
