"""Intake: challenges, the team, reports and their entries, sessions, retention (§20).

Services take plain arguments, own their transaction and raise domain errors. Audit
entries carry ids only: the report's id, the acting and the subject account.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import nacl.signing
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from vault.accounts.models import Role, User, UserKey
from vault.accounts.services import current_keys
from vault.audit import chain
from vault.db import utcnow
from vault.documents.services import (
    PayloadTooLarge,
    Readable,
    check_part_request_shape,
    complete_parts,
    store_unavailable,
    stream_part,
)
from vault.errors import Conflict, Forbidden, HavenError, InvalidRequest, NotFound, Unauthorized
from vault.intake.models import (
    IntakeAttachment,
    IntakeAttachmentPart,
    IntakeChallenge,
    IntakeEntry,
    IntakeReport,
    IntakeReportKey,
    IntakeTeamMember,
    ReportStatus,
)
from vault.protocol import documents as pdoc
from vault.protocol import intake as pin
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.keys import ProtocolError
from vault.storage import ObjectStore, StorageError, StorageUnavailable

# Verified against when no report has the lookup id, so that an unknown receipt costs the
# same work as a known one with a bad signature (§20.5): a real point of the curve, since
# libsodium refuses a small-order key before doing the work.
_DECOY_KEY = bytes(nacl.signing.SigningKey(b"haven/v1/intake-decoy-session-k!").verify_key)


class QuotaExceeded(HavenError):
    """The organisation's daily intake quota is used up."""

    status = 429
    code = "intake_quota"
    retry_after = 3600


@dataclass(frozen=True)
class NewEntry:
    """An entry as a client sends it."""

    id: bytes
    ciphertext: bytes
    signature: bytes


def _audit(db: Session, kind: str, actor_id: str | None, report_id: str, **more: str) -> None:
    chain.append(
        db,
        kind,
        actor_id=actor_id,
        subject_id=more.pop("subject", None),
        detail={"report": report_id},
    )


# -- challenges ---------------------------------------------------------------------


def issue_challenge(db: Session, ttl_seconds: int) -> IntakeChallenge:
    """A fresh random challenge, valid once until it expires; expired ones are dropped."""
    now = utcnow()
    db.execute(delete(IntakeChallenge).where(IntakeChallenge.expires_at <= now))
    row = IntakeChallenge(
        challenge=secrets.token_bytes(pin.POW_CHALLENGE_BYTES),
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    db.add(row)
    db.commit()
    return row


def _consume(db: Session, challenge: bytes) -> bool:
    """Take a live challenge out of the table (no commit); False if unknown, used or expired."""
    done = db.execute(
        delete(IntakeChallenge)
        .where(IntakeChallenge.challenge == challenge, IntakeChallenge.expires_at > utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def _spend_challenge(db: Session, challenge: bytes) -> None:
    if not _consume(db, challenge):
        db.commit()
        raise InvalidRequest(
            "the challenge is unknown, used or expired; ask for a new one", code="bad_challenge"
        )
    db.commit()  # spent even when the rest of the request fails


# -- the team -----------------------------------------------------------------------


def team(db: Session) -> list[tuple[User, UserKey]]:
    """Every team member able to receive reports, with their current published key."""
    rows = db.scalars(
        select(User).join(IntakeTeamMember, IntakeTeamMember.user_id == User.id).order_by(User.id)
    )
    return [(u, current_keys(u)) for u in rows if not u.is_disabled]


def is_member(db: Session, user_id: str) -> bool:
    """Whether the account is on the intake team."""
    return db.get(IntakeTeamMember, user_id) is not None


def require_member(db: Session, user: User) -> None:
    """Refuse a counsel who is not on the intake team."""
    if not is_member(db, user.id):
        raise Forbidden("you are not on the intake team", code="not_on_team")


def add_member(db: Session, admin_id: str, user_id: str) -> None:
    """Put a counsel account on the team (idempotent)."""
    user = db.get(User, user_id)
    if user is None or user.is_disabled:
        raise NotFound("no such account")
    if user.role != Role.COUNSEL:
        raise InvalidRequest("only counsel accounts join the intake team", code="not_counsel")
    if not is_member(db, user_id):
        db.add(IntakeTeamMember(user_id=user_id, added_by=admin_id))
        chain.append(db, "intake_team_add", actor_id=admin_id, subject_id=user_id)
    db.commit()


def remove_member(db: Session, admin_id: str, user_id: str) -> None:
    """Take an account off the team: its copies of every report key are deleted."""
    row = db.get(IntakeTeamMember, user_id)
    if row is None:
        raise NotFound("not on the intake team")
    db.delete(row)
    db.execute(delete(IntakeReportKey).where(IntakeReportKey.user_id == user_id))
    chain.append(db, "intake_team_remove", actor_id=admin_id, subject_id=user_id)
    db.commit()


# -- reports ------------------------------------------------------------------------


def _check_entry(entry: NewEntry, report_id: bytes, author: str, version: int, key: bytes) -> None:
    try:
        pin.check_entry_shape(entry.ciphertext)
    except ProtocolError as exc:
        raise InvalidRequest(f"entry: {exc}", code="invalid_field") from exc
    signed = pin.entry_signed(report_id, entry.id, author, version, entry.ciphertext)
    if not pin.verify_signature(key, signed, entry.signature):
        raise InvalidRequest("the entry's signature does not verify", code="bad_signature")


def _add_entry(
    db: Session, report: IntakeReport, entry: NewEntry, author_id: str | None, version: int
) -> IntakeEntry:
    entry_id = b64encode(entry.id)
    if db.get(IntakeEntry, entry_id) is not None:
        raise Conflict("that entry id is in use", code="entry_exists")
    last = db.scalar(select(func.max(IntakeEntry.seq)).where(IntakeEntry.report_id == report.id))
    row = IntakeEntry(
        id=entry_id,
        report_id=report.id,
        seq=(last or 0) + 1,
        author_id=author_id,
        key_version=version,
        ciphertext=entry.ciphertext,
        signature=entry.signature,
    )
    db.add(row)
    report.last_activity_at = utcnow()
    return row


def submit(
    db: Session,
    *,
    report_id: bytes,
    box_public: bytes,
    sign_public: bytes,
    reporter_key: bytes,
    team_keys: Mapping[str, bytes],
    entry: NewEntry,
    challenge: bytes,
    nonce: bytes,
    difficulty: int,
    daily_quota: int,
) -> IntakeReport:
    """Accept a new report after its proof of work; the report key goes to the whole team."""
    _spend_challenge(db, challenge)
    if not pin.pow_ok(challenge, nonce, difficulty):
        raise InvalidRequest("the proof of work does not meet the difficulty", code="bad_proof")
    try:
        if pin.sealed_key_version(reporter_key) != pin.REPORTER_VERSION:
            raise ProtocolError("the reporter's copy names key version 0")
        versions = {uid: pin.sealed_key_version(k) for uid, k in team_keys.items()}
    except ProtocolError as exc:
        raise InvalidRequest(str(exc), code="invalid_field") from exc
    _check_entry(entry, report_id, pin.REPORTER, pin.REPORTER_VERSION, sign_public)
    members = {u.id: key.version for u, key in team(db)}
    if not members:
        raise Conflict("the intake team is empty", code="no_team")
    if versions != members:
        raise Conflict(
            "seal the report key to exactly the team's current keys; fetch the team again",
            code="stale_team",
        )
    since = utcnow() - timedelta(days=1)
    recent = db.scalar(select(func.count()).where(IntakeReport.created_at > since)) or 0
    if recent >= daily_quota:
        raise QuotaExceeded("the intake is full for today; try again later")
    rid = b64encode(report_id)
    lookup = pin.lookup_id(box_public, sign_public)
    taken = db.scalar(
        select(IntakeReport.id).where((IntakeReport.id == rid) | (IntakeReport.lookup == lookup))
    )
    if taken is not None:
        raise Conflict("that report id or receipt is in use", code="report_exists")
    report = IntakeReport(
        id=rid,
        lookup=lookup,
        box_public=box_public,
        sign_public=sign_public,
        reporter_key=reporter_key,
        status=ReportStatus.NEW,
    )
    db.add(report)
    db.flush()
    for uid, sealed in team_keys.items():
        db.add(
            IntakeReportKey(
                report_id=rid, user_id=uid, key_version=versions[uid], sealed_key=sealed
            )
        )
    _add_entry(db, report, entry, None, pin.REPORTER_VERSION)
    _audit(db, "intake_submit", None, rid)
    db.commit()
    return report


def open_session(db: Session, lookup: bytes, challenge: bytes, signature: bytes) -> str:
    """The report a receipt's signature opens; one answer for every failure (§20.5)."""
    known = _consume(db, challenge)
    db.commit()
    report = db.scalar(select(IntakeReport).where(IntakeReport.lookup == lookup))
    key = report.sign_public if report is not None else _DECOY_KEY
    good = pin.verify_signature(key, pin.session_signed(challenge, lookup), signature)
    if not (known and good and report is not None):
        raise Unauthorized("no report for this receipt", code="receipt_unknown")
    return report.id


def withdraw(db: Session, store: ObjectStore, report_id: str) -> None:
    """The reporter shreds her own report (after moving it into a case, or to delete it)."""
    get_report(db, report_id)
    shred(db, store, report_id, reason="reporter")
    db.commit()


def get_report(db: Session, report_id: str) -> IntakeReport:
    """A report by id, or 404."""
    report = db.get(IntakeReport, report_id)
    if report is None:
        raise NotFound("no such report")
    return report


def entries(db: Session, report_id: str) -> list[IntakeEntry]:
    """A report's thread, oldest first."""
    return list(
        db.scalars(
            select(IntakeEntry).where(IntakeEntry.report_id == report_id).order_by(IntakeEntry.seq)
        )
    )


def _bounded(db: Session, report_id: str, max_entries: int) -> None:
    count = db.scalar(select(func.count()).where(IntakeEntry.report_id == report_id)) or 0
    if count >= max_entries:
        raise Conflict("this report holds as many entries as it may", code="report_full")


def reporter_entry(db: Session, report_id: str, entry: NewEntry, max_entries: int) -> IntakeEntry:
    """The reporter adds a message to her report; it becomes new for the team again."""
    report = get_report(db, report_id)
    _bounded(db, report_id, max_entries)
    _check_entry(
        entry, b64decode(report_id), pin.REPORTER, pin.REPORTER_VERSION, report.sign_public
    )
    row = _add_entry(db, report, entry, None, pin.REPORTER_VERSION)
    if report.status == ReportStatus.HANDLED:
        report.status = ReportStatus.ASSIGNED if report.assignee_id else ReportStatus.NEW
    db.commit()
    return row


def inbox(db: Session, user: User) -> list[tuple[IntakeReport, IntakeReportKey | None]]:
    """Every report, newest activity first, with the member's copy of its key (if any)."""
    require_member(db, user)
    rows = db.execute(
        select(IntakeReport, IntakeReportKey)
        .outerjoin(
            IntakeReportKey,
            (IntakeReportKey.report_id == IntakeReport.id) & (IntakeReportKey.user_id == user.id),
        )
        .order_by(IntakeReport.last_activity_at.desc())
    )
    return [(r, k) for r, k in rows]


def my_key(db: Session, report_id: str, user_id: str) -> IntakeReportKey | None:
    """The member's sealed copy of a report's key."""
    return db.get(IntakeReportKey, (report_id, user_id))


def read_report(db: Session, user: User, report_id: str) -> IntakeReport:
    """A team member opens a report (an audit event)."""
    require_member(db, user)
    report = get_report(db, report_id)
    _audit(db, "intake_read", user.id, report_id)
    db.commit()
    return report


def team_entry(
    db: Session, user: User, report_id: str, key_version: int, entry: NewEntry, max_entries: int
) -> IntakeEntry:
    """A team member replies, signed with their current account key."""
    require_member(db, user)
    report = get_report(db, report_id)
    _bounded(db, report_id, max_entries)
    key = current_keys(user)
    if key_version != key.version:
        raise Conflict(f"sign with key version {key.version}", code="stale_key_version")
    _check_entry(entry, b64decode(report_id), user.id, key.version, key.ed25519)
    row = _add_entry(db, report, entry, user.id, key.version)
    _audit(db, "intake_reply", user.id, report_id)
    db.commit()
    return row


def share(db: Session, user: User, report_id: str, member_id: str, sealed: bytes) -> None:
    """A member who holds the report key seals it to another member's current key."""
    require_member(db, user)
    get_report(db, report_id)
    if my_key(db, report_id, user.id) is None:
        raise Forbidden("this report was not sealed to you", code="not_on_team")
    member = db.get(User, member_id)
    if member is None or member.is_disabled or not is_member(db, member_id):
        raise InvalidRequest("the reader is not on the intake team", code="not_on_team")
    try:
        version = pin.sealed_key_version(sealed)
    except ProtocolError as exc:
        raise InvalidRequest(str(exc), code="invalid_field") from exc
    if version != member.key_version:
        raise Conflict(
            f"seal to the member's current key version {member.key_version}",
            code="stale_key_version",
        )
    row = my_key(db, report_id, member_id)
    if row is None:
        db.add(
            IntakeReportKey(
                report_id=report_id, user_id=member_id, key_version=version, sealed_key=sealed
            )
        )
    else:
        row.key_version, row.sealed_key = version, sealed
    _audit(db, "intake_share", user.id, report_id, subject=member_id)
    db.commit()


def assign(db: Session, user: User, report_id: str, assignee_id: str) -> IntakeReport:
    """Give a report to a team member (oneself included)."""
    require_member(db, user)
    report = get_report(db, report_id)
    if not is_member(db, assignee_id):
        raise InvalidRequest("the assignee is not on the intake team", code="not_on_team")
    report.assignee_id = assignee_id
    report.status = ReportStatus.ASSIGNED
    _audit(db, "intake_assign", user.id, report_id, subject=assignee_id)
    db.commit()
    return report


def mark_handled(db: Session, user: User, report_id: str) -> IntakeReport:
    """Mark a report handled; a new message from the reporter reopens it."""
    require_member(db, user)
    report = get_report(db, report_id)
    report.status = ReportStatus.HANDLED
    _audit(db, "intake_handled", user.id, report_id)
    db.commit()
    return report


def purge(db: Session, store: ObjectStore, retention_days: int, now: datetime | None = None) -> int:
    """Crypto-shred every report idle for ``retention_days``; an audit receipt for each."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    ids = list(db.scalars(select(IntakeReport.id).where(IntakeReport.last_activity_at < cutoff)))
    for rid in ids:
        shred(db, store, rid, reason="retention")
        db.commit()
    return len(ids)


def shred(
    db: Session, store: ObjectStore, report_id: str, *, reason: str, actor_id: str | None = None
) -> None:
    """Delete a report's objects, then its keys, entries and row (no commit); the audit entry
    is its receipt. A store that is down stops it before any row goes (503)."""
    for att in db.scalars(select(IntakeAttachment).where(IntakeAttachment.report_id == report_id)):
        try:
            if att.upload_id is not None:
                store.abort_upload(att.object_name, att.upload_id)
            store.remove(att.object_name)
        except (StorageUnavailable, StorageError) as exc:
            db.rollback()
            raise store_unavailable(exc) from exc
    db.execute(delete(IntakeAttachment).where(IntakeAttachment.report_id == report_id))
    db.execute(delete(IntakeReportKey).where(IntakeReportKey.report_id == report_id))
    db.execute(delete(IntakeEntry).where(IntakeEntry.report_id == report_id))
    db.execute(delete(IntakeReport).where(IntakeReport.id == report_id))
    chain.append(
        db, "intake_shred", actor_id=actor_id, detail={"report": report_id, "reason": reason}
    )


# -- attachments (§20.11) ----------------------------------------------------------


@dataclass(frozen=True)
class NewAttachment:
    """An attachment upload as the reporter announces it."""

    id: bytes
    ciphertext_size: int
    chunk_count: int
    part_size: int


def create_attachment(
    db: Session,
    store: ObjectStore,
    report_id: str,
    new: NewAttachment,
    max_bytes: int,
    report_quota: int,
) -> IntakeAttachment:
    """Check the sizes and the report's quota, then start the multipart upload."""
    get_report(db, report_id)
    try:
        plain = pdoc.plaintext_size(new.ciphertext_size)
        pdoc.check_part_bytes(new.part_size)
    except ProtocolError as exc:
        raise InvalidRequest(str(exc), code="invalid_size") from exc
    if new.chunk_count != pdoc.chunk_count(plain):
        raise InvalidRequest("chunk_count does not match ciphertext_size", code="invalid_size")
    if pdoc.part_count(new.ciphertext_size, new.part_size) > pdoc.MAX_PARTS:
        raise PayloadTooLarge("the attachment has too many parts")
    if plain > max_bytes:
        raise PayloadTooLarge(
            f"an attachment may hold at most {max_bytes} bytes", code="document_too_large"
        )
    used = db.scalar(
        select(func.coalesce(func.sum(IntakeAttachment.ciphertext_size), 0)).where(
            IntakeAttachment.report_id == report_id
        )
    )
    if int(used or 0) + new.ciphertext_size > report_quota:
        raise PayloadTooLarge("this report's attachments are full", code="quota_exceeded")
    aid = b64encode(new.id)
    if db.get(IntakeAttachment, aid) is not None:
        raise Conflict("that attachment id is in use", code="entry_exists")
    object_name = "intake/" + b64encode(secrets.token_bytes(32))
    db.rollback()
    try:
        upload_id = store.create_upload(object_name)
    except (StorageUnavailable, StorageError) as exc:
        raise store_unavailable(exc) from exc
    row = IntakeAttachment(
        id=aid,
        report_id=report_id,
        object_name=object_name,
        upload_id=upload_id,
        ciphertext_size=new.ciphertext_size,
        chunk_count=new.chunk_count,
        part_size=new.part_size,
        part_count=pdoc.part_count(new.ciphertext_size, new.part_size),
    )
    db.add(row)
    db.commit()
    return row


def _attachment(db: Session, report_id: str, attachment_id: str) -> IntakeAttachment:
    row = db.get(IntakeAttachment, attachment_id)
    if row is None or row.report_id != report_id:
        raise NotFound("no such attachment")
    return row


def attachment_status(
    db: Session, report_id: str, attachment_id: str
) -> tuple[IntakeAttachment, list[IntakeAttachmentPart]]:
    """The attachment and its acknowledged parts."""
    row = _attachment(db, report_id, attachment_id)
    parts = db.scalars(
        select(IntakeAttachmentPart)
        .where(IntakeAttachmentPart.attachment_id == row.id)
        .order_by(IntakeAttachmentPart.number)
    )
    return row, list(parts)


def _pending(db: Session, report_id: str, attachment_id: str) -> IntakeAttachment:
    row = _attachment(db, report_id, attachment_id)
    if row.finalized_at is not None:
        raise Conflict("this upload is already finalized", code="already_finalized")
    return row


def attachment_part(
    db: Session,
    store: ObjectStore,
    report_id: str,
    attachment_id: str,
    number: int,
    content_type: str | None,
    length: int | None,
    body: Readable,
) -> IntakeAttachmentPart:
    """Stream one part into the store, then acknowledge it (§8.6's rules)."""
    row = _pending(db, report_id, attachment_id)
    check_part_request_shape(
        row.ciphertext_size, row.part_size, row.part_count, number, content_type, length
    )
    assert length is not None and row.upload_id is not None
    object_name, upload_id = row.object_name, row.upload_id
    db.rollback()
    etag = stream_part(store, object_name, upload_id, number, body, length)
    _pending(db, report_id, attachment_id)
    part = db.get(IntakeAttachmentPart, (attachment_id, number))
    if part is None:
        part = IntakeAttachmentPart(attachment_id=attachment_id, number=number)
        db.add(part)
    part.size, part.etag = length, etag
    db.commit()
    return part


def finalize_attachment(
    db: Session, store: ObjectStore, report_id: str, attachment_id: str
) -> IntakeAttachment:
    """Join the parts once all are in; the attachment then counts as report activity."""
    row, parts = attachment_status(db, report_id, attachment_id)
    if row.finalized_at is not None:
        return row
    got = {p.number: p for p in parts}
    missing = [
        n
        for n in range(1, row.part_count + 1)
        if n not in got or got[n].size != pdoc.part_size(row.ciphertext_size, n, row.part_size)
    ]
    if missing:
        raise Conflict(
            f"{len(missing)} of {row.part_count} parts are missing, first {missing[0]}",
            code="upload_incomplete",
        )
    joined = [(n, got[n].etag) for n in range(1, row.part_count + 1)]
    object_name, upload_id, size = row.object_name, row.upload_id, row.ciphertext_size
    db.rollback()
    complete_parts(store, object_name, upload_id, joined, size)
    row = _attachment(db, report_id, attachment_id)
    row.finalized_at = utcnow()
    row.upload_id = None
    db.execute(delete(IntakeAttachmentPart).where(IntakeAttachmentPart.attachment_id == row.id))
    get_report(db, report_id).last_activity_at = utcnow()
    db.commit()
    return row


def open_attachment(
    db: Session, store: ObjectStore, report_id: str, attachment_id: str
) -> tuple[IntakeAttachment, Any]:
    """A finalized attachment's ciphertext, streamed from the store."""
    row = _attachment(db, report_id, attachment_id)
    if row.finalized_at is None:
        raise NotFound("no such attachment")
    db.rollback()
    try:
        return row, store.open(row.object_name)
    except StorageUnavailable as exc:
        raise store_unavailable(exc) from exc
    except StorageError as exc:
        raise NotFound("the attachment's content is missing", code="content_missing") from exc
