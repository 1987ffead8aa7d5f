"""Intake routes (protocol §20): anonymous reports, the reporter's session, the team's inbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import nacl.encoding
import nacl.hash
from flask import Blueprint, Response, current_app, jsonify, request, session
from pydantic import Field

from vault import clock, db
from vault.accounts.models import Role
from vault.accounts.services import display_name
from vault.accounts.views import key_json
from vault.api import (
    ANONYMOUS,
    B64,
    MAX_INT,
    NO_CONTENT,
    OCTETS,
    Body,
    Out,
    Reply,
    Timestamp,
    b64_exact,
    b64_max,
    endpoint,
    me,
    ok,
    parse_body,
)
from vault.directory import services as dirs
from vault.directory import witnesses
from vault.directory.views import entry_json, head_json, log_keys_json
from vault.documents.views import receive_part
from vault.errors import Unauthorized
from vault.extensions import limiter
from vault.intake import services
from vault.intake.models import (
    IntakeAttachment,
    IntakeAttachmentPart,
    IntakeEntry,
    IntakeReport,
    IntakeReportKey,
)
from vault.keyring import keyring
from vault.protocol import documents as pdoc
from vault.protocol import intake as pin
from vault.protocol.encoding import b64encode
from vault.storage import store

bp = Blueprint("intake", __name__, url_prefix="/api/v1/intake")

COUNSEL = {Role.COUNSEL}
ADMIN = {Role.ADMIN}
SESSION_REPORT = "intake_report"
SESSION_ISSUED = "intake_iat"
MAX_BODY_BYTES = 2 * pin.MAX_ENTRY_PLAINTEXT + 64 * 1024


def _ip_key() -> str:
    """The client address, keyed-hashed: the limiter's store never holds an IP (§20.7)."""
    secret = current_app.config["SECRET_KEY"]
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    addr = (request.remote_addr or "").encode()
    return nacl.hash.blake2b(
        addr, key=key[:64], digest_size=16, encoder=nacl.encoding.HexEncoder
    ).decode()


def _ip_limit() -> str:
    return str(current_app.config["HAVEN_LIMIT_INTAKE_IP"])


def _global_limit() -> str:
    return str(current_app.config["HAVEN_LIMIT_INTAKE_GLOBAL"])


per_ip = limiter.shared_limit(_ip_limit, scope="intake-ip", key_func=_ip_key)
overall = limiter.shared_limit(_global_limit, scope="intake-all", key_func=lambda: "intake")


class IntakeEntryBody(Body):
    """One encrypted entry and its author's signature."""

    id: b64_exact(pin.ID_BYTES)  # type: ignore[valid-type]
    ciphertext: b64_max(pin.MAX_ENTRY_PLAINTEXT + 1024)  # type: ignore[valid-type]
    signature: b64_exact(64)  # type: ignore[valid-type]


class IntakeTeamEntryBody(IntakeEntryBody):
    """A team member's entry names the key version it is signed with."""

    key_version: int = Field(ge=1, le=2**31)


class IntakeProofBody(Body):
    """A challenge and the nonce that solves it."""

    challenge: b64_exact(pin.POW_CHALLENGE_BYTES)  # type: ignore[valid-type]
    nonce: b64_exact(pin.POW_NONCE_BYTES)  # type: ignore[valid-type]


class IntakeTeamKeyBody(Body):
    """The report key sealed to one team member."""

    user_id: str = Field(min_length=1, max_length=32)
    sealed_key: b64_exact(pin.SEALED_KEY_BYTES)  # type: ignore[valid-type]


class IntakeSubmitBody(Body):
    """A new report (§20.4)."""

    id: b64_exact(pin.ID_BYTES)  # type: ignore[valid-type]
    box_public_key: b64_exact(32)  # type: ignore[valid-type]
    sign_public_key: b64_exact(32)  # type: ignore[valid-type]
    reporter_key: b64_exact(pin.SEALED_KEY_BYTES)  # type: ignore[valid-type]
    team_keys: list[IntakeTeamKeyBody] = Field(max_length=200)
    entry: IntakeEntryBody
    proof: IntakeProofBody


class IntakeSessionBody(Body):
    """A returning reporter's signed challenge (§20.5)."""

    lookup: b64_exact(32)  # type: ignore[valid-type]
    challenge: b64_exact(pin.POW_CHALLENGE_BYTES)  # type: ignore[valid-type]
    signature: b64_exact(64)  # type: ignore[valid-type]


class IntakeUserBody(Body):
    """An account id."""

    user_id: str = Field(min_length=1, max_length=32)


class IntakeChallengeOut(Out):
    """A fresh challenge."""

    challenge: B64
    difficulty: int
    expires_at: Timestamp


class IntakeTeamMemberOut(Out):
    """A team member: current key record, its inclusion proof, the log's history of them."""

    user_id: str
    username: str
    public_keys: dict[str, Any]
    inclusion: list[B64]
    history: dict[str, Any]


class IntakeTeamReply(Out):
    """The intake team and the log material to verify it without an account (§20.3)."""

    log_keys: list[dict[str, Any]]
    checkpoint: dict[str, Any] | None
    head: dict[str, Any]
    members: list[IntakeTeamMemberOut]


class IntakeEntryOut(Out):
    """One entry of a thread."""

    id: B64
    seq: int
    author_id: str | None
    key_version: int
    ciphertext: B64
    signature: B64
    created_at: Timestamp


class IntakeReportOut(Out):
    """A report as its reader sees it."""

    id: B64
    status: str
    assignee_id: str | None
    created_at: Timestamp
    last_activity_at: Timestamp
    sign_public_key: B64
    sealed_key: B64 | None
    sealed_key_version: int | None
    entries: list[IntakeEntryOut] | None = None


class IntakeReportReply(Out):
    """One report."""

    report: IntakeReportOut


class IntakeInboxReply(Out):
    """The team's reports, newest activity first (no entries)."""

    reports: list[IntakeReportOut]


class IntakeEntryReply(Out):
    """The entry just stored."""

    entry: IntakeEntryOut


def _entry_json(row: IntakeEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "seq": row.seq,
        "author_id": row.author_id,
        "key_version": row.key_version,
        "ciphertext": b64encode(row.ciphertext),
        "signature": b64encode(row.signature),
        "created_at": row.created_at.isoformat(),
    }


def _report_json(
    report: IntakeReport, sealed: bytes | None, version: int | None, with_entries: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": report.id,
        "status": report.status.value,
        "assignee_id": report.assignee_id,
        "created_at": report.created_at.isoformat(),
        "last_activity_at": report.last_activity_at.isoformat(),
        "sign_public_key": b64encode(report.sign_public),
        "sealed_key": None if sealed is None else b64encode(sealed),
        "sealed_key_version": version,
    }
    if with_entries:
        out["entries"] = [_entry_json(e) for e in services.entries(db.session(), report.id)]
    return out


def _team_report(report: IntakeReport, key: IntakeReportKey | None, entries: bool) -> Any:
    return _report_json(
        report,
        None if key is None else key.sealed_key,
        None if key is None else key.key_version,
        entries,
    )


def _start_reporter_session(report_id: str) -> None:
    session[SESSION_REPORT] = report_id
    session[SESSION_ISSUED] = int(clock.time())


def _end_reporter_session() -> None:
    session.pop(SESSION_REPORT, None)
    session.pop(SESSION_ISSUED, None)


def _team_answer(report: IntakeReport, user_id: str) -> Response:
    key = services.my_key(db.session(), report.id, user_id)
    return jsonify({"report": _team_report(report, key, False)})


def reporter_report() -> str:
    """The report of this intake session, or 401."""
    report_id = session.get(SESSION_REPORT)
    issued = session.get(SESSION_ISSUED)
    limit = current_app.config["HAVEN_INTAKE_SESSION_SECONDS"]
    if not isinstance(report_id, str) or not isinstance(issued, int):
        raise Unauthorized("come back with your receipt first", code="no_intake_session")
    if not 0 <= clock.time() - issued <= limit:
        raise Unauthorized(
            "the intake session ended; use your receipt again", code="no_intake_session"
        )
    return report_id


def _new_entry(body: IntakeEntryBody) -> services.NewEntry:
    return services.NewEntry(body.id, body.ciphertext, body.signature)


# -- anonymous ----------------------------------------------------------------------


@bp.post("/challenges")
@per_ip
@overall
@endpoint(
    "A one-use challenge for a proof of work or a returning session",
    roles=ANONYMOUS,
    replies=ok(IntakeChallengeOut, 201),
)
def challenge() -> tuple[Response, int]:
    """Issue a random challenge with its expiry and the difficulty of the day."""
    row = services.issue_challenge(
        db.session(), current_app.config["HAVEN_INTAKE_CHALLENGE_SECONDS"]
    )
    return jsonify(
        {
            "challenge": b64encode(row.challenge),
            "difficulty": current_app.config["HAVEN_INTAKE_POW_BITS"],
            "expires_at": row.expires_at.isoformat(),
        }
    ), 201


@bp.get("/team")
@per_ip
@overall
@endpoint(
    "The intake team's key records, with what a client needs to check them in the key log",
    roles=ANONYMOUS,
    replies=ok(IntakeTeamReply),
)
def get_team() -> Response:
    """Members able to read new reports, each with its inclusion proof and log history."""
    session_ = db.session()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    checkpoint: dict[str, Any] | None = None
    if app.config["HAVEN_WITNESSES"]:
        size, note = witnesses.newest_checkpoint(app, session_)
        checkpoint = {"size": size, "checkpoint": note}
        head = dirs.head_at(session_, size)
    else:
        head = dirs.latest_head(session_)
    ring = keyring()
    members = []
    for user, key in services.team(session_):
        index = key.log_index
        included = index is not None and index < head.size
        proof = dirs.inclusion(session_, index, head.size) if index is not None and included else []
        members.append(
            {
                "user_id": user.id,
                "username": display_name(ring, user),
                "public_keys": key_json(key),
                "inclusion": [b64encode(p) for p in proof],
                "history": {
                    "user_id": user.id,
                    "current_version": user.key_version,
                    "keys": [key_json(k) for k in user.keys],
                    "entries": [entry_json(e) for e in dirs.entries_for(session_, user.id)],
                },
            }
        )
    return jsonify(
        {
            "log_keys": log_keys_json(db.session()),
            "checkpoint": checkpoint,
            "head": head_json(head),
            "members": members,
        }
    )


@bp.post("/reports")
@per_ip
@overall
@endpoint(
    "Submit an anonymous report with a proof of work; opens an intake session",
    roles=ANONYMOUS,
    body=IntakeSubmitBody,
    replies=ok(IntakeReportReply, 201),
)
def submit() -> tuple[Response, int]:
    """Store the report and start the reporter's session for it."""
    request.max_content_length = MAX_BODY_BYTES
    body = parse_body(IntakeSubmitBody)
    config = current_app.config
    report = services.submit(
        db.session(),
        report_id=body.id,
        box_public=body.box_public_key,
        sign_public=body.sign_public_key,
        reporter_key=body.reporter_key,
        team_keys={k.user_id: k.sealed_key for k in body.team_keys},
        entry=_new_entry(body.entry),
        challenge=body.proof.challenge,
        nonce=body.proof.nonce,
        difficulty=config["HAVEN_INTAKE_POW_BITS"],
        daily_quota=config["HAVEN_INTAKE_DAILY_QUOTA"],
    )
    _start_reporter_session(report.id)
    return jsonify({"report": _report_json(report, report.reporter_key, 0, True)}), 201


@bp.post("/session")
@per_ip
@overall
@endpoint(
    "Come back with a receipt: a signed challenge opens a session for that report",
    roles=ANONYMOUS,
    body=IntakeSessionBody,
    replies=ok(IntakeReportReply),
)
def open_session() -> Response:
    """Check the signature with the report's key; one answer for every failure."""
    body = parse_body(IntakeSessionBody)
    report_id = services.open_session(db.session(), body.lookup, body.challenge, body.signature)
    _start_reporter_session(report_id)
    report = services.get_report(db.session(), report_id)
    return jsonify({"report": _report_json(report, report.reporter_key, 0, True)})


@bp.delete("/session")
@endpoint("End the intake session", roles=ANONYMOUS, replies=NO_CONTENT)
def close_session() -> tuple[str, int]:
    """Forget the report of this session."""
    _end_reporter_session()
    return "", 204


@bp.get("/session/report")
@endpoint(
    "The reporter's own report and its thread", roles=ANONYMOUS, replies=ok(IntakeReportReply)
)
def reporter_view() -> Response:
    """Her report, her copy of its key and every entry."""
    report = services.get_report(db.session(), reporter_report())
    return jsonify({"report": _report_json(report, report.reporter_key, 0, True)})


@bp.delete("/session/report")
@endpoint(
    "The reporter shreds her report (after moving it into a case, or to delete it)",
    roles=ANONYMOUS,
    replies=NO_CONTENT,
)
def withdraw() -> tuple[str, int]:
    """Crypto-shred the session's report and end the session."""
    services.withdraw(db.session(), store(), reporter_report())
    _end_reporter_session()
    return "", 204


@bp.post("/session/entries")
@per_ip
@overall
@endpoint(
    "The reporter adds a message to her report",
    roles=ANONYMOUS,
    body=IntakeEntryBody,
    replies=ok(IntakeEntryReply, 201),
)
def reporter_entry() -> tuple[Response, int]:
    """Store her signed entry."""
    report_id = reporter_report()
    request.max_content_length = MAX_BODY_BYTES
    body = parse_body(IntakeEntryBody)
    row = services.reporter_entry(
        db.session(), report_id, _new_entry(body), current_app.config["HAVEN_INTAKE_MAX_ENTRIES"]
    )
    return jsonify({"entry": _entry_json(row)}), 201


class IntakeAttachmentBody(Body):
    """An attachment upload: its id and sizes (§20.11, §8.6's rules)."""

    id: b64_exact(pin.ID_BYTES)  # type: ignore[valid-type]
    ciphertext_size: int = Field(ge=17, le=MAX_INT)
    chunk_count: int = Field(ge=1, le=MAX_INT)
    part_size: int = Field(default=pdoc.PART_BYTES, ge=1, le=MAX_INT)


class IntakePartOut(Out):
    """An acknowledged part."""

    number: int
    size: int


class IntakeUploadOut(Out):
    """An attachment's upload."""

    attachment_id: B64
    state: str
    part_size: int
    part_count: int
    ciphertext_size: int
    chunk_count: int
    parts: list[IntakePartOut]


class IntakeUploadReply(Out):
    """One attachment's upload."""

    upload: IntakeUploadOut


class IntakePartReply(Out):
    """The part just stored."""

    part: IntakePartOut


def _upload_json(row: IntakeAttachment, parts: list[IntakeAttachmentPart]) -> Response:
    return jsonify(
        {
            "upload": {
                "attachment_id": row.id,
                "state": "complete" if row.finalized_at else "pending",
                "part_size": row.part_size,
                "part_count": row.part_count,
                "ciphertext_size": row.ciphertext_size,
                "chunk_count": row.chunk_count,
                "parts": [{"number": p.number, "size": p.size} for p in parts],
            }
        }
    )


def _content(report_id: str, attachment_id: str) -> Response:
    row, reader = services.open_attachment(db.session(), store(), report_id, attachment_id)

    def stream() -> Iterator[bytes]:
        try:
            yield from reader
        finally:
            reader.close()

    headers = {"Content-Type": OCTETS, "Content-Length": str(row.ciphertext_size)}
    return Response(stream(), headers=headers)


CONTENT = Reply(200, None, OCTETS, "the attachment's ciphertext")


@bp.post("/session/attachments")
@per_ip
@overall
@endpoint(
    "The reporter starts an attachment's upload",
    roles=ANONYMOUS,
    body=IntakeAttachmentBody,
    replies=ok(IntakeUploadReply, 201),
)
def create_attachment() -> tuple[Response, int]:
    """Check sizes and the report's quota; start the multipart upload."""
    report_id = reporter_report()
    body = parse_body(IntakeAttachmentBody)
    config = current_app.config
    new = services.NewAttachment(body.id, body.ciphertext_size, body.chunk_count, body.part_size)
    row = services.create_attachment(
        db.session(),
        store(),
        report_id,
        new,
        config["HAVEN_DOCUMENT_MAX_BYTES"],
        config["HAVEN_INTAKE_REPORT_QUOTA_BYTES"],
    )
    return _upload_json(row, []), 201


@bp.get("/session/attachments/<attachment_id>")
@endpoint("An attachment's upload and its parts", roles=ANONYMOUS, replies=ok(IntakeUploadReply))
def attachment_status(attachment_id: str) -> Response:
    """Where the upload stands, to resume it."""
    row, parts = services.attachment_status(db.session(), reporter_report(), attachment_id)
    return _upload_json(row, parts)


@bp.put("/session/attachments/<attachment_id>/parts/<int:part_number>")
@per_ip
@overall
@endpoint(
    "Stream one part of an attachment as application/octet-stream (raw bytes)",
    roles=ANONYMOUS,
    media_type=OCTETS,
    replies=ok(IntakePartReply),
)
def attachment_part(attachment_id: str, part_number: int) -> Response:
    """Store one part; resending a part replaces it."""
    report_id = reporter_report()
    return receive_part(
        lambda kind, length, body: services.attachment_part(
            db.session(), store(), report_id, attachment_id, part_number, kind, length, body
        )
    )


@bp.post("/session/attachments/<attachment_id>/finalize")
@endpoint("Join an attachment's parts", roles=ANONYMOUS, replies=ok(IntakeUploadReply))
def finalize_attachment(attachment_id: str) -> Response:
    """Complete the upload once every part is acknowledged."""
    report_id = reporter_report()
    row = services.finalize_attachment(db.session(), store(), report_id, attachment_id)
    return _upload_json(row, [])


@bp.get("/session/attachments/<attachment_id>/content")
@endpoint("The reporter reads an attachment's ciphertext", roles=ANONYMOUS, replies=CONTENT)
def reporter_attachment(attachment_id: str) -> Response:
    """Stream the object."""
    return _content(reporter_report(), attachment_id)


# -- the team -----------------------------------------------------------------------


@bp.get("/reports/<report_id>/attachments/<attachment_id>/content")
@endpoint("A team member reads an attachment's ciphertext", roles=COUNSEL, replies=CONTENT)
def team_attachment(report_id: str, attachment_id: str) -> Response:
    """Stream the object (team members)."""
    services.require_member(db.session(), me())
    return _content(report_id, attachment_id)


@bp.get("/reports")
@endpoint("The intake inbox (team members)", roles=COUNSEL, replies=ok(IntakeInboxReply))
def inbox() -> Response:
    """Every report with my sealed copy of its key."""
    rows = services.inbox(db.session(), me())
    return jsonify({"reports": [_team_report(r, k, False) for r, k in rows]})


@bp.get("/reports/<report_id>")
@endpoint(
    "One report and its thread (team members; an audit event)",
    roles=COUNSEL,
    replies=ok(IntakeReportReply),
)
def read(report_id: str) -> Response:
    """The report, my copy of its key, every entry."""
    user = me()
    report = services.read_report(db.session(), user, report_id)
    key = services.my_key(db.session(), report_id, user.id)
    return jsonify({"report": _team_report(report, key, True)})


@bp.post("/reports/<report_id>/entries")
@endpoint(
    "Reply to a report (team members)",
    roles=COUNSEL,
    body=IntakeTeamEntryBody,
    replies=ok(IntakeEntryReply, 201),
)
def reply(report_id: str) -> tuple[Response, int]:
    """Store a team member's signed reply."""
    services.require_member(db.session(), me())
    request.max_content_length = MAX_BODY_BYTES
    body = parse_body(IntakeTeamEntryBody)
    row = services.team_entry(
        db.session(),
        me(),
        report_id,
        body.key_version,
        _new_entry(body),
        current_app.config["HAVEN_INTAKE_MAX_ENTRIES"],
    )
    return jsonify({"entry": _entry_json(row)}), 201


class IntakeShareBody(Body):
    """The report key sealed to another team member."""

    user_id: str = Field(min_length=1, max_length=32)
    sealed_key: b64_exact(pin.SEALED_KEY_BYTES)  # type: ignore[valid-type]


@bp.post("/reports/<report_id>/keys")
@endpoint(
    "Seal a report's key to another team member (one who joined after it arrived)",
    roles=COUNSEL,
    body=IntakeShareBody,
    replies=NO_CONTENT,
)
def share(report_id: str) -> tuple[str, int]:
    """Store the new member's sealed copy."""
    user = me()
    services.require_member(db.session(), user)
    body = parse_body(IntakeShareBody)
    services.share(db.session(), user, report_id, body.user_id, body.sealed_key)
    return "", 204


@bp.post("/reports/<report_id>/assign")
@endpoint(
    "Assign a report to a team member",
    roles=COUNSEL,
    body=IntakeUserBody,
    replies=ok(IntakeReportReply),
)
def assign(report_id: str) -> Response:
    """Set the assignee."""
    user = me()
    services.require_member(db.session(), user)
    body = parse_body(IntakeUserBody)
    report = services.assign(db.session(), user, report_id, body.user_id)
    return _team_answer(report, user.id)


@bp.post("/reports/<report_id>/handled")
@endpoint("Mark a report handled", roles=COUNSEL, replies=ok(IntakeReportReply))
def handled(report_id: str) -> Response:
    """Set the status to handled."""
    user = me()
    report = services.mark_handled(db.session(), user, report_id)
    return _team_answer(report, user.id)


@bp.post("/team/members")
@endpoint(
    "Put a counsel on the intake team (admins)",
    roles=ADMIN,
    body=IntakeUserBody,
    replies=NO_CONTENT,
)
def add_member() -> tuple[str, int]:
    """Add the account to the team."""
    body = parse_body(IntakeUserBody)
    services.add_member(db.session(), me().id, body.user_id)
    return "", 204


@bp.delete("/team/members/<user_id>")
@endpoint("Take a member off the intake team (admins)", roles=ADMIN, replies=NO_CONTENT)
def remove_member(user_id: str) -> tuple[str, int]:
    """Remove the account and its copies of report keys."""
    services.remove_member(db.session(), me().id, user_id)
    return "", 204
