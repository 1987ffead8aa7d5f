"""Authorization cases of membership requests and removal (protocol §17): the case's survivor only.

``build`` has the case's counsel ask for a third counsel, so each row has a pending request
to list, approve or decline. Counsel and admins are refused by role (403); another case's
survivor gets 404, as for a case that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from tests.authz import Route, World, signed_in
from tests.factories import make_person
from vault.accounts.models import Role, User
from vault.cases import services as cases
from vault.db import database


def build(app: Flask, world: World) -> None:
    """A pending request for a counsel outside the case."""
    with app.app_context():
        db = database(app).sessions()
        try:
            ring = app.extensions["haven.keyring"]
            wanted = make_person(db, ring, Role.COUNSEL, "counsel.wanted")
            asker = db.get(User, world.people["counsel"].id)
            assert asker is not None
            cases.request_counsel(db, asker, world.case_id, db.get(User, wanted.id))
            survivor = db.get(User, world.people["survivor"].id)
            assert survivor is not None
            (pending,) = cases.member_requests(db, survivor, world.case_id)
            world.extra["member_request"] = pending.id
        finally:
            db.close()


def _answer(verb: str) -> Callable[[World], str]:
    def path(w: World) -> str:
        return f"/api/v1/cases/{w.case_id}/member-requests/{w.extra['member_request']}/{verb}"

    return path


SURVIVOR_ONLY = {"counsel": 403, "admin": 403, "stranger_counsel": 403, "stranger_survivor": 404}

ROUTES = [
    Route(
        "GET",
        "/api/v1/cases/<case_id>/member-requests",
        signed_in(200, **SURVIVOR_ONLY),
        path=lambda w: f"/api/v1/cases/{w.case_id}/member-requests",
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/member-requests/<request_id>/approve",
        signed_in(200, **SURVIVOR_ONLY),
        path=_answer("approve"),
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/member-requests/<request_id>/decline",
        signed_in(204, **SURVIVOR_ONLY),
        path=_answer("decline"),
    ),
    Route(
        "DELETE",
        "/api/v1/cases/<case_id>/members/<user_id>",
        signed_in(204, **SURVIVOR_ONLY),
        path=lambda w: f"/api/v1/cases/{w.case_id}/members/{w.people['counsel'].id}",
    ),
]
