"""Every route x every role, the owner, a stranger and anonymous.

The ROUTES tables (here and in authz_<feature>.py) must list every route the app serves (a
test checks them against the URL map), so a new route cannot land without its cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.authz import ACTORS, NOT_ADMIN_OWNER, Route, World, everyone, features, signed_in
from tests.factories import session_cookie_for, snapshot
from vault.openapi import endpoint_specs
from vault.security import UNSAFE_METHODS

CORE_ROUTES: list[Route] = [
    Route("GET", "/healthz", everyone(200)),
    Route("GET", "/readyz", everyone(200)),
    Route("GET", "/api/v1/openapi.json", everyone(200)),
    Route("POST", "/api/v1/auth/prelogin", everyone(400), body={}),
    Route("POST", "/api/v1/auth/register", everyone(400), body={}),
    Route("POST", "/api/v1/auth/login", everyone(400), body={}),
    Route("POST", "/api/v1/auth/recovery/start", everyone(400), body={}),
    Route("POST", "/api/v1/auth/recovery/complete", everyone(400), body={}),
    Route("POST", "/api/v1/auth/logout", signed_in(204)),
    Route("POST", "/api/v1/account/passphrase", signed_in(400), body={}),
    Route("GET", "/api/v1/account", signed_in(200)),
    Route("POST", "/api/v1/account/keys/reseal", signed_in(200)),
    Route("POST", "/api/v1/account/keys", signed_in(400), body={}),
    Route(
        "POST",
        "/api/v1/invites",
        signed_in(201, survivor=403, admin=403, stranger_survivor=403),
        body={"role": "survivor"},
    ),
    Route("GET", "/api/v1/cases", signed_in(200, admin=403)),
    Route(
        "GET",
        "/api/v1/cases/<case_id>",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/cases/{w.case_id}",
    ),
    Route(
        "GET",
        "/api/v1/users/<user_id>/keys",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/users/{w.people['survivor'].id}/keys",
    ),
    Route(
        "GET",
        "/api/v1/users/<user_id>/keys/<int:version>",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/users/{w.people['survivor'].id}/keys/1",
    ),
]


ROUTES: list[Route] = CORE_ROUTES + [r for f in features() for r in f.ROUTES]


def test_every_route_is_in_the_table(app: Flask) -> None:
    served = {(method, rule) for rule, method, _, _ in endpoint_specs(app)}
    listed = {(r.method, r.rule) for r in ROUTES}
    assert served == listed
    undeclared = [name for _, _, name, spec in endpoint_specs(app) if spec is None]
    assert undeclared == []


CASES = [(route, actor) for route in ROUTES for actor in ACTORS]


@pytest.mark.parametrize(
    ("route", "actor"), CASES, ids=[f"{r.method} {r.rule} as {a}" for r, a in CASES]
)
def test_route_answers_each_actor_as_declared(
    app_and_world: Callable[..., tuple[Flask, World]], route: Route, actor: str
) -> None:
    # A safe method changes nothing, so it may run against the world this worker shares; so
    # may a write this actor must be refused, which is then checked to have changed nothing.
    # Only a write expected to act gets a copy of the world.
    write = route.method in UNSAFE_METHODS
    refused = route.expect[actor] >= 400 and not route.writes_when_refused
    app, world = app_and_world(shared=not write or refused)
    before = snapshot(app) if write and refused else None
    client = app.test_client()
    if actor != "anonymous":
        session_cookie_for(app, client, world.people[actor].id)
    path = route.path(world) if route.path else route.rule
    kwargs: dict[str, Any] = {}
    if route.method in UNSAFE_METHODS:
        # The media type the route declares, as every client sends it (body or not).
        spec = next(s for r, m, _, s in endpoint_specs(app) if (m, r) == (route.method, route.rule))
        assert spec is not None
        body = b"" if route.body is None else json.dumps(route.body).encode()
        kwargs = {"data": body, "content_type": spec.media_type}
    response = client.open(path, method=route.method, **kwargs)
    assert response.status_code == route.expect[actor], response.get_data(as_text=True)
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert set(error) == {"code", "message"}
    if before is not None:
        assert snapshot(app) == before, "a refused write changed the database, store or keys"
