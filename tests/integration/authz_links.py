"""Authorization cases of the outside-link routes.

The survivor's ``doc`` is shared with counsel. ``live`` is the survivor's own link to it;
``pending`` is counsel's link to it, waiting for the survivor's approval. The recipient's
routes need no account and answer every caller alike (an open without its token is
400; content without the ticket of an open is the 404 of an unknown link).
"""

from __future__ import annotations

from flask import Flask

from tests.authz import NOT_ADMIN_OWNER, Route, World, everyone, signed_in
from tests.integration.documents_fixtures import make_document
from tests.integration.links_fixtures import make_link


def build(app: Flask, world: World) -> None:
    """A shared document, the survivor's live link and counsel's pending link to it."""
    survivor = world.people["survivor"]
    counsel = world.people["counsel"]
    doc = make_document(app, survivor, world.case_id, readers=(counsel,))
    live = make_link(app, survivor, world.case_id, [doc])
    pending = make_link(app, counsel, world.case_id, [doc], survivor=survivor)
    assert (live.state, pending.state) == ("active", "pending")
    world.extra["link_doc"] = doc.id
    world.extra["link_live"] = live
    world.extra["link_pending"] = pending.id


def _live(w: World) -> str:
    return str(w.extra["link_live"].lookup)


ROUTES = [
    Route(
        "GET",
        "/api/v1/cases/<case_id>/links",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/cases/{w.case_id}/links",
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/links",
        signed_in(400, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/cases/{w.case_id}/links",
        body={},
    ),
    Route(
        "POST",
        "/api/v1/links/<link_id>/approve",
        signed_in(200, counsel=403, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/links/{w.extra['link_pending']}/approve",
    ),
    Route(
        "DELETE",
        "/api/v1/links/<link_id>",
        signed_in(204, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/links/{w.extra['link_pending']}",
    ),
    Route("GET", "/api/v1/link/<lookup>", everyone(200), path=lambda w: f"/api/v1/link/{_live(w)}"),
    Route(
        "POST",
        "/api/v1/link/<lookup>/open",
        everyone(400),
        path=lambda w: f"/api/v1/link/{_live(w)}/open",
        body={},
    ),
    Route(
        "GET",
        "/api/v1/link/<lookup>/documents/<document_id>/content",
        everyone(404),
        path=lambda w: f"/api/v1/link/{_live(w)}/documents/{w.extra['link_doc']}/content",
    ),
]
