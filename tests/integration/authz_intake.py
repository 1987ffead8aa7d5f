"""Authorization cases of the intake routes (§20): anonymous reporters, the team, admins.

counsel.a is on the intake team, counsel.b (stranger_counsel) is not; a report exists.
The reporter's own session is exercised in tests/integration/test_intake.py.
"""

from __future__ import annotations

import os

from flask import Flask

from tests.authz import Route, World, everyone, signed_in
from vault.db import database
from vault.intake.models import IntakeReport, IntakeTeamMember, ReportStatus
from vault.protocol import intake as pin
from vault.protocol.encoding import b64encode

NOT_TEAM = {
    "survivor": 403,
    "admin": 403,
    "stranger_counsel": 403,
    "stranger_survivor": 403,
}
ADMINS = signed_in(403, admin=204)


def build(app: Flask, world: World) -> None:
    """Put counsel.a on the team and store one report."""
    with app.app_context():
        db = database(app).sessions()
        db.add(IntakeTeamMember(user_id=world.people["counsel"].id))
        report_id = b64encode(os.urandom(pin.ID_BYTES))
        db.add(
            IntakeReport(
                id=report_id,
                lookup=os.urandom(32),
                box_public=os.urandom(32),
                sign_public=os.urandom(32),
                reporter_key=os.urandom(pin.SEALED_KEY_BYTES),
                status=ReportStatus.NEW,
            )
        )
        db.commit()
        db.close()
    world.extra["report"] = report_id


def _report(world: World, tail: str = "") -> str:
    return f"/api/v1/intake/reports/{world.extra['report']}{tail}"


ROUTES = [
    Route("POST", "/api/v1/intake/challenges", everyone(201)),
    Route("GET", "/api/v1/intake/team", everyone(200)),
    Route("POST", "/api/v1/intake/reports", everyone(400), body={}),
    Route("POST", "/api/v1/intake/session", everyone(400), body={}),
    Route("DELETE", "/api/v1/intake/session", everyone(204)),
    Route("GET", "/api/v1/intake/session/report", everyone(401)),
    Route("POST", "/api/v1/intake/session/entries", everyone(401), body={}),
    Route("DELETE", "/api/v1/intake/session/report", everyone(401)),
    Route("POST", "/api/v1/intake/session/attachments", everyone(401), body={}),
    Route(
        "GET",
        "/api/v1/intake/session/attachments/<attachment_id>",
        everyone(401),
        path=lambda w: "/api/v1/intake/session/attachments/AAAAAAAAAAAAAAAAAAAAAA",
    ),
    Route(
        "PUT",
        "/api/v1/intake/session/attachments/<attachment_id>/parts/<int:part_number>",
        everyone(401),
        path=lambda w: "/api/v1/intake/session/attachments/AAAAAAAAAAAAAAAAAAAAAA/parts/1",
    ),
    Route(
        "POST",
        "/api/v1/intake/session/attachments/<attachment_id>/finalize",
        everyone(401),
        path=lambda w: "/api/v1/intake/session/attachments/AAAAAAAAAAAAAAAAAAAAAA/finalize",
    ),
    Route(
        "GET",
        "/api/v1/intake/session/attachments/<attachment_id>/content",
        everyone(401),
        path=lambda w: "/api/v1/intake/session/attachments/AAAAAAAAAAAAAAAAAAAAAA/content",
    ),
    Route(
        "GET",
        "/api/v1/intake/reports/<report_id>/attachments/<attachment_id>/content",
        signed_in(404, **NOT_TEAM),
        path=lambda w: _report(w, "/attachments/AAAAAAAAAAAAAAAAAAAAAA/content"),
    ),
    Route("GET", "/api/v1/intake/reports", signed_in(200, **NOT_TEAM)),
    Route("GET", "/api/v1/intake/reports/<report_id>", signed_in(200, **NOT_TEAM), path=_report),
    Route(
        "POST",
        "/api/v1/intake/reports/<report_id>/entries",
        signed_in(400, **NOT_TEAM),
        path=lambda w: _report(w, "/entries"),
        body={},
    ),
    Route(
        "POST",
        "/api/v1/intake/reports/<report_id>/keys",
        signed_in(400, **NOT_TEAM),
        path=lambda w: _report(w, "/keys"),
        body={},
    ),
    Route(
        "POST",
        "/api/v1/intake/reports/<report_id>/assign",
        signed_in(400, **NOT_TEAM),
        path=lambda w: _report(w, "/assign"),
        body={},
    ),
    Route(
        "POST",
        "/api/v1/intake/reports/<report_id>/handled",
        signed_in(200, **NOT_TEAM),
        path=lambda w: _report(w, "/handled"),
    ),
    Route("POST", "/api/v1/intake/team/members", signed_in(403, admin=400), body={}),
    Route(
        "DELETE",
        "/api/v1/intake/team/members/<user_id>",
        ADMINS,
        path=lambda w: f"/api/v1/intake/team/members/{w.people['counsel'].id}",
    ),
]
