"""Case routes: list cases and their members' published keys."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify
from flask_limiter.util import get_remote_address
from flask_login import current_user
from pydantic import Field

from vault import db
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.accounts.views import KeyOut, key_json
from vault.api import B64, NO_CONTENT, Body, Out, Timestamp, endpoint, me, ok, parse_body
from vault.cases import services
from vault.cases.models import Case, CaseMemberRequest
from vault.directory import services as directory
from vault.directory.views import EntryOut, entry_json
from vault.errors import NotFound
from vault.extensions import limiter
from vault.keyring import keyring
from vault.protocol.encoding import b64encode

bp = Blueprint("cases", __name__, url_prefix="/api/v1")

MEMBERS = {Role.SURVIVOR, Role.COUNSEL}


class MemberOut(Out):
    """A case member with their role, name and current public keys."""

    user_id: str
    role: Literal["survivor", "counsel"]
    username: str
    added_by: str | None
    added_at: Timestamp
    public_keys: KeyOut


class CaseOut(Out):
    """A case and its members."""

    id: str
    created_at: Timestamp
    members: list[MemberOut]


class CasesReply(Out):
    """My cases."""

    cases: list[CaseOut]


class CaseReply(Out):
    """One case."""

    case: CaseOut


class UserKeysReply(Out):
    """Every key version of an account and every log entry naming it."""

    user_id: str
    current_version: int
    keys: list[KeyOut]
    entries: list[EntryOut]


class KeyProofReply(Out):
    """A key version and its inclusion proof in the tree of ``size``."""

    key: KeyOut
    size: int
    proof: list[B64]


class RecordedReply(Out):
    """The same answer whether or not such a counsel exists."""

    status: Literal["recorded"]


class MemberRequestOut(Out):
    """A pending membership request."""

    id: str
    case_id: str
    counsel_id: str
    username: str
    requested_by: str
    requested_at: Timestamp


class MemberRequestsReply(Out):
    """The pending requests of a case."""

    requests: list[MemberRequestOut]


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
@endpoint("The cases the signed-in account belongs to", roles=MEMBERS, replies=ok(CasesReply))
def list_cases() -> Response:
    """List my cases."""
    return jsonify({"cases": [case_json(c) for c in services.list_cases(db.session(), me())]})


@bp.get("/cases/<case_id>")
@endpoint("One case the signed-in account belongs to", roles=MEMBERS, replies=ok(CaseReply))
def get_case(case_id: str) -> Response:
    """Show one of my cases."""
    return jsonify({"case": case_json(services.get_case(db.session(), me(), case_id))})


@bp.get("/users/<user_id>/keys")
@endpoint(
    "Published key versions of yourself or someone who shares a case with you",
    roles=MEMBERS,
    replies=ok(UserKeysReply),
)
def user_keys(user_id: str) -> Response:
    """All key versions of a contact, oldest first, and every log entry naming it (§12.4)."""
    session = db.session()
    db.read_one_moment(session)  # the version and the entries agree: no rotation between
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
    replies=ok(KeyProofReply),
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


def _per_account() -> str:
    if current_user.is_authenticated:
        return f"member-request:{current_user.id}"
    return f"member-request-anon:{get_remote_address()}"


def _request_limit() -> str:
    return str(current_app.config["HAVEN_LIMIT_MEMBER_REQUEST"])


@bp.post("/cases/<case_id>/members")
@limiter.limit(_request_limit, key_func=_per_account)
@endpoint(
    "Ask the case's survivor to let another counsel in (202 whether or not such a counsel exists)",
    roles={Role.COUNSEL},
    body=AddCounselBody,
    replies=ok(RecordedReply, 202),
)
def add_counsel(case_id: str) -> tuple[Response, int]:
    """Record a membership request by username; the answer never says whether it matched."""
    session = db.session()
    services.get_case(session, me(), case_id)
    body = parse_body(AddCounselBody)
    counsel = accounts.find_user(session, keyring(), body.username)
    services.request_counsel(session, me(), case_id, counsel)
    return jsonify({"status": "recorded"}), 202


def request_json(request: CaseMemberRequest) -> dict[str, Any]:
    """A pending membership request as its survivor sees it."""
    return {
        "id": request.id,
        "case_id": request.case_id,
        "counsel_id": request.counsel_id,
        "username": accounts.display_name(keyring(), request.counsel),
        "requested_by": request.requested_by,
        "requested_at": request.requested_at.isoformat(),
    }


@bp.get("/cases/<case_id>/member-requests")
@endpoint(
    "Counsel waiting for your approval to join your case",
    roles={Role.SURVIVOR},
    replies=ok(MemberRequestsReply),
)
def member_requests(case_id: str) -> Response:
    """List the pending requests of my case."""
    pending = services.member_requests(db.session(), me(), case_id)
    return jsonify({"requests": [request_json(r) for r in pending]})


@bp.post("/cases/<case_id>/member-requests/<request_id>/approve")
@endpoint("Let the requested counsel into your case", roles={Role.SURVIVOR}, replies=ok(CaseReply))
def approve_request(case_id: str, request_id: str) -> Response:
    """Approve a request: the counsel becomes a member."""
    case = services.approve_request(db.session(), me(), case_id, request_id)
    return jsonify({"case": case_json(case)})


@bp.post("/cases/<case_id>/member-requests/<request_id>/decline")
@endpoint(
    "Refuse the requested counsel; nothing of the case reaches them",
    roles={Role.SURVIVOR},
    replies=NO_CONTENT,
)
def decline_request(case_id: str, request_id: str) -> tuple[str, int]:
    """Decline a request: it is deleted."""
    services.decline_request(db.session(), me(), case_id, request_id)
    return "", 204


@bp.delete("/cases/<case_id>/members/<user_id>")
@endpoint(
    "Take a counsel out of your case: they lose the case and every grant in it",
    roles={Role.SURVIVOR},
    replies=NO_CONTENT,
)
def remove_counsel(case_id: str, user_id: str) -> tuple[str, int]:
    """Remove a counsel from my case."""
    services.remove_counsel(db.session(), me(), case_id, user_id)
    return "", 204
