"""Audit routes: my own history, and the whole chain for admins (ids and kinds only)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import Field

from vault import db
from vault.accounts.models import Role
from vault.api import (
    ANY_ROLE,
    B64,
    MAX_INT,
    Out,
    Query,
    endpoint,
    me,
    ok,
    optional_query_int,
    query_int,
)
from vault.audit import chain
from vault.audit.models import AuditEntry
from vault.protocol.encoding import b64encode

bp = Blueprint("audit", __name__, url_prefix="/api/v1")


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """An audit entry as JSON, with the hashes that chain it."""
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "actor_id": entry.actor_id,
        "subject_id": entry.subject_id,
        "case_id": entry.case_id,
        "document_id": entry.document_id,
        "detail": json.loads(entry.detail),
        "created_ms": entry.created_ms,
        "prev_hash": b64encode(entry.prev_hash),
        "hash": b64encode(entry.hash),
    }


class AuditEntryOut(Out):
    """An audit entry with the hashes that chain it."""

    seq: int
    kind: str
    actor_id: str | None
    subject_id: str | None
    case_id: str | None
    document_id: str | None
    detail: dict[str, Any]
    created_ms: int
    prev_hash: B64
    hash: B64


class MineReply(Out):
    """A page of my audit entries."""

    entries: list[AuditEntryOut]


class ChainReply(Out):
    """A page of the whole chain and its length."""

    entries: list[AuditEntryOut]
    length: int


class PageQuery(Query):
    """A page of entries, newest first."""

    before: int | None = Field(None, ge=1, le=MAX_INT, description="entries with seq below this")
    limit: int = Field(50, ge=1, le=chain.MAX_PAGE, description="how many at most")


def _page_args() -> tuple[int | None, int]:
    before = optional_query_int("before", minimum=1)
    limit = query_int(
        "limit", minimum=1, maximum=chain.MAX_PAGE, default=PageQuery.model_fields["limit"].default
    )
    return before, limit


@bp.get("/audit/mine")
@endpoint(
    "Audit entries about my account: sign-ins, failures, keys (?before=&limit=)",
    roles=ANY_ROLE,
    replies=ok(MineReply),
    query=PageQuery,
)
def mine() -> Response:
    """My own history, newest first."""
    before, limit = _page_args()
    entries = chain.entries_about(db.session(), me().id, before, limit)
    return jsonify({"entries": [entry_json(e) for e in entries]})


@bp.get("/admin/audit")
@endpoint(
    "The whole audit chain, newest first (?before=&limit=)",
    roles={Role.ADMIN},
    replies=ok(ChainReply),
    query=PageQuery,
)
def admin_audit() -> Response:
    """Every entry: ids, kinds and non-content details."""
    before, limit = _page_args()
    entries = chain.all_entries(db.session(), before, limit)
    return jsonify(
        {"entries": [entry_json(e) for e in entries], "length": chain.length(db.session())}
    )
