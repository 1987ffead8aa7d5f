"""Authorization cases of the messaging routes: members of the conversation only.

Admins are refused by role (403); accounts outside the conversation's case get 404, as
for anything they cannot see. The bench baseline route exists only with HAVEN_BENCH=true,
so it is not in the URL map the matrix checks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask

from tests.authz import NOT_ADMIN_OWNER, Route, World, signed_in
from tests.integration.messages_fixtures import envelope_body, make_envelope, open_conversation
from vault.accounts.models import User
from vault.db import database
from vault.messages import services
from vault.messages.fanout import LocalFanout
from vault.messages.services import SendRules


def build(app: Flask, world: World) -> None:
    """A conversation between the survivor and their counsel with one survivor message."""
    p = world.people
    cid = open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])
    envelope = make_envelope(p["survivor"], cid, [p["counsel"]], "authz")
    with app.app_context():
        db = database(app).sessions()
        sender = db.get(User, p["survivor"].id)
        assert sender is not None
        rules = SendRules(65536, timedelta(hours=1), timedelta(hours=1))
        place = services.membership(db, sender, cid)
        message, _ = services.send_message(db, LocalFanout(), place, envelope, rules)
        db.close()
    world.extra["cid"] = cid
    world.extra["mid"] = message.id
    world.extra["envelope"] = envelope_body(envelope)


def _conv(suffix: str = "") -> Callable[[World], str]:
    return lambda w: f"/api/v1/conversations/{w.extra['cid']}{suffix}"


MEMBERS_ONLY = signed_in(200, **NOT_ADMIN_OWNER)

ROUTES = [
    Route(
        "POST",
        "/api/v1/cases/<case_id>/conversations",
        signed_in(400, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/cases/{w.case_id}/conversations",
        body={"members": []},
    ),
    Route("GET", "/api/v1/conversations", signed_in(200, admin=403)),
    Route("GET", "/api/v1/conversations/<conversation_id>", MEMBERS_ONLY, path=_conv()),
    Route(
        "POST",
        "/api/v1/conversations/<conversation_id>/messages",
        signed_in(400, **NOT_ADMIN_OWNER),
        path=_conv("/messages"),
        body={},
    ),
    Route(
        "GET",
        "/api/v1/conversations/<conversation_id>/messages",
        MEMBERS_ONLY,
        path=_conv("/messages"),
    ),
    Route(
        "GET",
        "/api/v1/conversations/<conversation_id>/messages/<message_id>",
        MEMBERS_ONLY,
        path=lambda w: f"/api/v1/conversations/{w.extra['cid']}/messages/{w.extra['mid']}",
    ),
    Route(
        "DELETE",
        "/api/v1/conversations/<conversation_id>/messages/<message_id>",
        signed_in(204, counsel=403, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/conversations/{w.extra['cid']}/messages/{w.extra['mid']}",
    ),
    Route(
        "PUT",
        "/api/v1/conversations/<conversation_id>/timer",
        MEMBERS_ONLY,
        path=_conv("/timer"),
        body={"seconds": 3600},
    ),
    Route(
        "POST",
        "/api/v1/conversations/<conversation_id>/read",
        MEMBERS_ONLY,
        path=_conv("/read"),
        body={"seq": 1},
    ),
    Route("GET", "/api/v1/events", signed_in(200, admin=403)),
]
