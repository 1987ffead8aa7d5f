"""Attachments: a message names vault documents, and sending it grants the recipients who
cannot read them yet, in the message's own transaction.

The rules are the vault's (docs/protocol.md §8.8): only a document's owner shares it, with
members of the document's case, each grant carrying the file key sealed to the reader's
current key version. A grant made by a message expires with the message (disappearing
timer) and is revoked when the message is deleted for everyone. Every grant and
revocation is an audit event, as when made through the vault's own routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from vault.accounts.models import User
from vault.documents import services as documents
from vault.documents.models import Document, DocumentState, Grant
from vault.errors import Conflict, Forbidden, InvalidRequest
from vault.messages.models import MessageGrant
from vault.protocol import documents as pdoc
from vault.protocol.keys import ProtocolError


@dataclass(frozen=True)
class AttachmentKey:
    """A document's file key sealed (§8.5) to one recipient who cannot read it yet."""

    document_id: str
    user_id: str
    sealed_key: bytes


@dataclass(frozen=True)
class PlannedGrant:
    """A grant the message will make once it is stored."""

    document: Document
    grantee_id: str
    key_version: int
    sealed_key: bytes
    expired: Grant | None


def _is_live(grant: Grant, now: datetime) -> bool:
    return grant.expires_at is None or grant.expires_at > now


def plan_grants(
    db: Session,
    sender: User,
    case_id: str,
    recipients: Mapping[str, int],
    document_ids: Sequence[str],
    keys: Sequence[AttachmentKey],
    now: datetime,
) -> list[PlannedGrant]:
    """Check every attachment and key; return the grants to make. ``recipients`` maps each
    member to their current key version."""
    if not document_ids and not keys:
        return []
    documents = {
        d.id: d
        for d in db.scalars(
            select(Document).where(
                Document.id.in_(document_ids), Document.state == DocumentState.READY
            )
        )
    }
    grants: dict[tuple[str, str], Grant] = {
        (g.document_id, g.grantee_id): g
        for g in db.scalars(
            select(Grant).where(Grant.document_id.in_(document_ids)).with_for_update()
        )
    }
    for document_id in document_ids:
        document = documents.get(document_id)
        mine = grants.get((document_id, sender.id))
        can_read = document is not None and (
            document.owner_id == sender.id or (mine is not None and _is_live(mine, now))
        )
        if document is None or not can_read:
            raise InvalidRequest(
                "an attachment is not a document you can read", code="unknown_attachment"
            )
        if document.case_id != case_id:
            raise InvalidRequest(
                "attachments must be documents of this conversation's case",
                code="attachment_not_in_case",
            )
    offered: dict[tuple[str, str], bytes] = {}
    for key in keys:
        slot = (key.document_id, key.user_id)
        if slot in offered or key.document_id not in documents or key.user_id not in recipients:
            raise InvalidRequest(
                "one attachment key per attached document and recipient",
                code="unexpected_attachment_key",
            )
        offered[slot] = key.sealed_key
    plans: list[PlannedGrant] = []
    for document_id in document_ids:
        document = documents[document_id]
        for user_id, key_version in sorted(recipients.items()):
            if user_id == document.owner_id:
                continue
            existing = grants.get((document_id, user_id))
            sealed = offered.pop((document_id, user_id), None)
            if existing is not None and _is_live(existing, now):
                if sealed is not None:
                    raise InvalidRequest(
                        "a recipient already reads this document; send no key for them",
                        code="unexpected_attachment_key",
                    )
                continue
            if document.owner_id != sender.id:
                raise Forbidden(
                    "only the document's owner can share it with a recipient who cannot "
                    "read it yet",
                    code="not_owner",
                )
            if sealed is None:
                raise InvalidRequest(
                    "seal the document's file key to every recipient who cannot read it",
                    code="missing_attachment_key",
                )
            try:
                version = pdoc.sealed_key_version(sealed)
            except ProtocolError as exc:
                raise InvalidRequest(str(exc), code="invalid_attachment_key") from exc
            if version != key_version:
                raise Conflict(
                    "seal the file key to the recipient's current key version",
                    code="stale_key_version",
                )
            plans.append(PlannedGrant(document, user_id, version, sealed, existing))
    if offered:
        raise InvalidRequest(
            "keys are only for recipients who cannot read an attachment yet",
            code="unexpected_attachment_key",
        )
    _refuse_disabled(db, {p.grantee_id for p in plans})
    return plans


def _refuse_disabled(db: Session, user_ids: Iterable[str]) -> None:
    ids = list(user_ids)
    if ids and db.scalars(select(User.id).where(User.id.in_(ids), User.is_disabled)).first():
        raise InvalidRequest("a recipient's account is disabled", code="not_a_case_member")


def make_grants(
    db: Session,
    sender: User,
    message_id: str,
    plans: Sequence[PlannedGrant],
    expires_at: datetime | None,
    now: datetime,
) -> None:
    """Create the planned grants, each linked to the message and recorded as an event."""
    made: list[Grant] = []
    for plan in plans:
        document = plan.document
        if plan.expired is not None:
            documents.expire_grant(db, document, plan.expired, now)
            db.flush()
        grant = documents.add_grant(
            db,
            document,
            sender.id,
            plan.grantee_id,
            plan.key_version,
            plan.sealed_key,
            expires_at,
            now,
        )
        made.append(grant)
    db.flush()
    for grant in made:
        db.add(MessageGrant(message_id=message_id, grant_id=grant.id))
    db.flush()


def revoke_grants(db: Session, actor: User, message_id: str, now: datetime) -> int:
    """Revoke the grants a message made (when it is deleted for everyone)."""
    rows = db.execute(
        select(Grant, Document)
        .join(MessageGrant, MessageGrant.grant_id == Grant.id)
        .join(Document, Document.id == Grant.document_id)
        .where(MessageGrant.message_id == message_id)
        .with_for_update(of=Grant)
    ).all()
    for grant, document in rows:
        documents.remove_grant(db, document, grant, actor.id, now)
    db.flush()
    return len(rows)


def forget(db: Session, message_ids: Sequence[str]) -> None:
    """Drop the links of purged messages (their grants expire with them)."""
    db.execute(delete(MessageGrant).where(MessageGrant.message_id.in_(message_ids)))
