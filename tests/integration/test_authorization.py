"""Every route × every role, the owner, a stranger and anonymous.

The ROUTES table must list every route the app serves (a test checks it against the URL
map), so a new route cannot land without its authorization cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask

from tests.factories import Person, make_person, session_cookie_for
from vault.accounts.models import Role
from vault.cases import services as cases
from vault.db import database
from vault.openapi import endpoint_specs

ACTORS = ("anonymous", "survivor", "counsel", "admin", "stranger_counsel", "stranger_survivor")


@dataclass
class World:
    """A case (survivor + counsel), an admin, and a second case of strangers."""

    people: dict[str, Person]
    case_id: str
    stranger_case_id: str


@pytest.fixture
def world(app: Flask) -> World:
    """Build the accounts and cases every authorization case runs against."""
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        counsel = make_person(db, ring, Role.COUNSEL, "counsel.a")
        survivor = make_person(db, ring, Role.SURVIVOR, "survivor.a", invited_by=counsel.id)
        admin = make_person(db, ring, Role.ADMIN, "admin.a")
        s_counsel = make_person(db, ring, Role.COUNSEL, "counsel.b")
        s_survivor = make_person(db, ring, Role.SURVIVOR, "survivor.b", invited_by=s_counsel.id)
        from vault.accounts.models import User

        case_id = cases.list_cases(db, db.get(User, survivor.id))[0].id  # type: ignore[arg-type]
        other_case = cases.list_cases(db, db.get(User, s_survivor.id))[0].id  # type: ignore[arg-type]
        db.close()
    people = {
        "survivor": survivor,
        "counsel": counsel,
        "admin": admin,
        "stranger_counsel": s_counsel,
        "stranger_survivor": s_survivor,
    }
    return World(people, case_id, other_case)


def everyone(status: int) -> dict[str, int]:
    """The same answer for every actor."""
    return dict.fromkeys(ACTORS, status)


def signed_in(status: int, **overrides: int) -> dict[str, int]:
    """401 for anonymous, ``status`` for every account unless overridden."""
    return {"anonymous": 401, **dict.fromkeys(ACTORS[1:], status), **overrides}


@dataclass
class Route:
    """One route and what each actor gets."""

    method: str
    rule: str
    expect: dict[str, int]
    path: Callable[[World], str] | None = None
    body: dict[str, Any] | None = field(default=None)


NOT_ADMIN_OWNER = {"admin": 403, "stranger_counsel": 404, "stranger_survivor": 404}

ROUTES: list[Route] = [
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
    # -- documents routes --
    # -- messages routes --
    # -- web client routes --
    # -- key management routes --
]


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
    app: Flask, world: World, route: Route, actor: str
) -> None:
    client = app.test_client()
    if actor != "anonymous":
        session_cookie_for(app, client, world.people[actor].id)
    path = route.path(world) if route.path else route.rule
    kwargs: dict[str, Any] = {}
    if route.body is not None:
        kwargs["json"] = route.body
    response = client.open(path, method=route.method, **kwargs)
    assert response.status_code == route.expect[actor], response.get_data(as_text=True)
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert set(error) == {"code", "message"}
