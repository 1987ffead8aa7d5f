"""Authorization cases of the document routes and of adding counsel to a case.

The survivor owns ``doc`` (finalized, shared with their counsel) and ``pending`` (created,
no part yet). A document without a live grant is 404 for the caller, never 403; a reader
with a live grant who tries an owner's action gets 403.
"""

from __future__ import annotations

from flask import Flask

from tests.authz import NOT_ADMIN_OWNER, Route, World, signed_in
from tests.integration.documents_fixtures import make_document


def build(app: Flask, world: World) -> None:
    """A shared document and a pending upload, both the survivor's."""
    survivor = world.people["survivor"]
    counsel = world.people["counsel"]
    world.extra["doc"] = make_document(app, survivor, world.case_id, readers=(counsel,)).id
    world.extra["pending"] = make_document(app, survivor, world.case_id, is_finalized=False).id


def _doc(w: World) -> str:
    return str(w.extra["doc"])


def _pending(w: World) -> str:
    return str(w.extra["pending"])


OWNER_ONLY = {"counsel": 403, **NOT_ADMIN_OWNER}
UNSHARED = {"counsel": 404, **NOT_ADMIN_OWNER}

ROUTES = [
    Route(
        "GET",
        "/api/v1/cases/<case_id>/documents",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/cases/{w.case_id}/documents",
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/documents",
        signed_in(400, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/cases/{w.case_id}/documents",
        body={},
    ),
    Route(
        "GET",
        "/api/v1/documents/<document_id>",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/documents/{_doc(w)}",
    ),
    Route(
        "GET",
        "/api/v1/documents/<document_id>/custody",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/documents/{_doc(w)}/custody",
    ),
    Route(
        "DELETE",
        "/api/v1/documents/<document_id>",
        signed_in(204, **OWNER_ONLY),
        path=lambda w: f"/api/v1/documents/{_doc(w)}",
    ),
    Route(
        "GET",
        "/api/v1/documents/<document_id>/upload",
        signed_in(200, **UNSHARED),
        path=lambda w: f"/api/v1/documents/{_pending(w)}/upload",
    ),
    Route(
        "PUT",
        "/api/v1/documents/<document_id>/parts/<int:part_number>",
        signed_in(411, **UNSHARED),
        path=lambda w: f"/api/v1/documents/{_pending(w)}/parts/1",
    ),
    Route(
        "POST",
        "/api/v1/documents/<document_id>/finalize",
        signed_in(409, **UNSHARED),
        path=lambda w: f"/api/v1/documents/{_pending(w)}/finalize",
    ),
    Route(
        "GET",
        "/api/v1/documents/<document_id>/content",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/documents/{_doc(w)}/content",
    ),
    Route(  # the declared purpose changes what is recorded, never who may read (§8.10)
        "GET",
        "/api/v1/documents/<document_id>/content",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/documents/{_doc(w)}/content?purpose=view",
    ),
    Route(
        "POST",
        "/api/v1/documents/<document_id>/grants",
        signed_in(400, **OWNER_ONLY),
        path=lambda w: f"/api/v1/documents/{_doc(w)}/grants",
        body={},
    ),
    Route(
        "DELETE",
        "/api/v1/documents/<document_id>/grants/<user_id>",
        signed_in(204, **OWNER_ONLY),
        path=lambda w: f"/api/v1/documents/{_doc(w)}/grants/{w.people['counsel'].id}",
    ),
    Route(
        "GET",
        "/api/v1/cases/<case_id>/events",
        signed_in(200, **NOT_ADMIN_OWNER),
        path=lambda w: f"/api/v1/cases/{w.case_id}/events",
    ),
    Route(
        "POST",
        "/api/v1/cases/<case_id>/members",
        signed_in(400, survivor=403, admin=403, stranger_counsel=404, stranger_survivor=403),
        path=lambda w: f"/api/v1/cases/{w.case_id}/members",
        body={},
    ),
]
