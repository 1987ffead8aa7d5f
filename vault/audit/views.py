"""Audit routes: my own history, and the whole chain for admins (ids and kinds only)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify

from vault import db
from vault.accounts.models import Role
from vault.api import ANY_ROLE, endpoint, me, optional_query_int, query_int
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


def _page_args() -> tuple[int | None, int]:
    before = optional_query_int("before", minimum=1)
    limit = query_int("limit", minimum=1, maximum=chain.MAX_PAGE, default=50)
    return before, limit


@bp.get("/audit/mine")
@endpoint(
    "Audit entries about my account: sign-ins, failures, keys (?before=&limit=)", roles=ANY_ROLE
)
def mine() -> Response:
    """My own history, newest first."""
    before, limit = _page_args()
    entries = chain.entries_about(db.session(), me().id, before, limit)
    return jsonify({"entries": [entry_json(e) for e in entries]})


@bp.get("/admin/audit")
@endpoint("The whole audit chain, newest first (?before=&limit=)", roles={Role.ADMIN})
def admin_audit() -> Response:
    """Every entry: ids, kinds and non-content details."""
    before, limit = _page_args()
    entries = chain.all_entries(db.session(), before, limit)
    return jsonify(
        {"entries": [entry_json(e) for e in entries], "length": chain.length(db.session())}
    )
