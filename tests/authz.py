"""Shared pieces of the authorization matrix: actors, the world they act in, route rows.

Each feature lists its routes in tests/integration/authz_<feature>.py as ``ROUTES`` and may
define ``build(app, world)`` to create the resources its paths need (stored in
``world.extra``). tests/integration/test_authorization.py collects them all.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from flask import Flask

from tests.factories import Person, make_person
from vault.accounts.models import Role
from vault.cases import services as cases
from vault.db import database

ACTORS = ("anonymous", "survivor", "counsel", "admin", "stranger_counsel", "stranger_survivor")


@dataclass
class World:
    """A case (survivor + counsel), an admin, and a second case of strangers."""

    people: dict[str, Person]
    case_id: str
    stranger_case_id: str
    extra: dict[str, Any] = field(default_factory=dict)
    # App settings the world's resources need, set on every app that serves this world.
    config: dict[str, str] = field(default_factory=dict)


def configure(app: Flask, world: World, **settings: str) -> None:
    """Set app settings a feature's cases need, and remember them for other apps of the world."""
    world.config.update(settings)
    app.config.update(settings)


def build_world(app: Flask) -> World:
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


@functools.cache
def features() -> list[ModuleType]:
    """The tests/integration/authz_<feature>.py modules (imported on first use)."""
    from tests import integration

    return [
        importlib.import_module(f"tests.integration.{m.name}")
        for m in pkgutil.iter_modules(integration.__path__)
        if m.name.startswith("authz_")
    ]


def build_full_world(app: Flask) -> World:
    """The accounts and cases, plus whatever each feature builds for its paths."""
    world = build_world(app)
    for feature in features():
        if hasattr(feature, "build"):
            feature.build(app, world)
    return world


def copy_of(world: World) -> World:
    """A copy a test may add to without touching the world other tests share."""
    return dataclasses.replace(world, extra=dict(world.extra), config=dict(world.config))


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
    # A refusal the route still records (a failed re-authentication goes into the audit
    # chain): the matrix runs its refused writes on a copy of the world, not the shared one.
    writes_when_refused: bool = False


NOT_ADMIN_OWNER = {"admin": 403, "stranger_counsel": 404, "stranger_survivor": 404}
