"""Authorization cases of the second-factor routes (§21): each account its own factors,
the policy for admins, and the sign-in step for a pending sign-in only."""

from __future__ import annotations

from tests.authz import Route, everyone, signed_in

ROUTES = [
    # Nobody here holds a pending sign-in: a session, or none, is no second factor.
    Route("POST", "/api/v1/auth/factor", everyone(401), body={"code": "123456"}),
    Route("GET", "/api/v1/account/factors", signed_in(200)),
    Route("POST", "/api/v1/account/factors/totp", signed_in(200)),
    Route("POST", "/api/v1/account/factors/totp/confirm", signed_in(400), body={}),
    Route("POST", "/api/v1/account/factors/totp/remove", signed_in(404)),
    Route("GET", "/api/v1/admin/factor-policy", signed_in(403, admin=200)),
    Route(
        "POST",
        "/api/v1/admin/factor-policy",
        signed_in(403, admin=200),
        body={"required_for_staff": True},
    ),
]
