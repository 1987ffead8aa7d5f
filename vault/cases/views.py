"""Case routes: list cases and their members' published keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import Field

from vault import db
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.accounts.views import key_json
from vault.api import Body, endpoint, me, parse_body
from vault.cases import services
from vault.cases.models import Case
from vault.directory import services as directory
from vault.directory.views import entry_json
from vault.errors import NotFound
from vault.keyring import keyring
from vault.protocol.encoding import b64encode

bp = Blueprint("cases", __name__, url_prefix="/api/v1")

MEMBERS = {Role.SURVIVOR, Role.COUNSEL}


def case_json(case: Case) -> dict[str, Any]:
    """A case with its members, their roles, names and current public keys."""
    ring = keyring()
    members = []
    for member in case.members:
        user = member.user
        members.append(
            {
                "user_id": member.user_id,
                "role": member.role.value,
                "username": accounts.display_name(ring, user),
                "added_by": member.added_by,
                "added_at": member.added_at.isoformat(),
                "public_keys": key_json(accounts.current_keys(user)),
            }
        )
    return {"id": case.id, "created_at": case.created_at.isoformat(), "members": members}


@bp.get("/cases")
@endpoint("The cases the signed-in account belongs to", roles=MEMBERS)
def list_cases() -> Response:
    """List my cases."""
    return jsonify({"cases": [case_json(c) for c in services.list_cases(db.session(), me())]})


@bp.get("/cases/<case_id>")
@endpoint("One case the signed-in account belongs to", roles=MEMBERS)
def get_case(case_id: str) -> Response:
    """Show one of my cases."""
    return jsonify({"case": case_json(services.get_case(db.session(), me(), case_id))})


@bp.get("/users/<user_id>/keys")
@endpoint("Published key versions of yourself or someone who shares a case with you", roles=MEMBERS)
def user_keys(user_id: str) -> Response:
    """All key versions of a contact, oldest first, and every log entry naming it (§12.4)."""
    session = db.session()
    other = services.contact_keys(session, me(), user_id)
    return jsonify(
        {
            "user_id": other.id,
            "current_version": other.key_version,
            "keys": [key_json(k) for k in other.keys],
            "entries": [entry_json(e) for e in directory.entries_for(session, other.id)],
        }
    )


@bp.get("/users/<user_id>/keys/<int:version>")
@endpoint(
    "One published key version of yourself or a contact, with its inclusion proof",
    roles=MEMBERS,
)
def user_key_version(user_id: str, version: int) -> Response:
    """A key version (a current or an older one) and its proof in the newest tree."""
    session = db.session()
    other = services.contact_keys(session, me(), user_id)
    key = next((k for k in other.keys if k.version == version), None)
    if key is None or key.log_index is None:
        raise NotFound("no such key version", code="no_such_key_version")
    size = directory.latest_head(session).size
    proof = directory.inclusion(session, key.log_index, size)
    return jsonify({"key": key_json(key), "size": size, "proof": [b64encode(p) for p in proof]})


class AddCounselBody(Body):
    """The username of the counsel to add."""

    username: str = Field(max_length=64)


@bp.post("/cases/<case_id>/members")
@endpoint(
    "Add another counsel to a case you are counsel in (the survivor sees it)",
    roles={Role.COUNSEL},
    body=AddCounselBody,
)
def add_counsel(case_id: str) -> tuple[Response, int]:
    """Add a counsel by username."""
    session = db.session()
    services.get_case(session, me(), case_id)
    body = parse_body(AddCounselBody)
    counsel = accounts.find_user(session, keyring(), body.username)
    case = services.add_counsel(session, me(), case_id, counsel)
    return jsonify({"case": case_json(case)}), 201
