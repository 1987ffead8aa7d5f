"""Outside links: create, approve, list, revoke; look up, count an open, serve content.

Every answer a recipient can get for a link that is unknown, pending, expired, revoked or
exhausted is the same 404 after the same lookup (protocol §23.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import nacl.bindings as sodium
import nacl.utils
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from vault.accounts.models import Role, User, UserKey
from vault.audit import services as audit
from vault.audit.models import EventKind
from vault.cases.services import get_case
from vault.db import utcnow
from vault.documents import services as documents
from vault.documents.models import Document, DocumentState
from vault.errors import Conflict, Forbidden, InvalidRequest, NotFound
from vault.links.models import Link, LinkDocument, LinkOpen, LinkState
from vault.protocol import links as plink
from vault.storage import ObjectStore

MAX_OPENS = 100
MAX_LIFETIME = timedelta(days=90)
# How long the ticket of one open fetches the link's content (§23.5).
OPEN_WINDOW = timedelta(minutes=30)
TICKET_BYTES = 32


def _gone() -> NotFound:
    return NotFound("no such link")


@dataclass(frozen=True)
class NewLink:
    """What a client sends to create a link."""

    lookup_id: bytes
    token_hash: bytes
    kdf: str | None
    envelope: bytes
    document_ids: tuple[str, ...]
    creator_label: bytes
    survivor_label: bytes | None
    expires_at: datetime
    max_opens: int


def _label_version(blob: bytes) -> int:
    if len(blob) != plink.SEALED_LABEL_BYTES or blob[0] != plink.FORMAT_V1:
        raise InvalidRequest("a recipient label is 181 bytes in format 1", code="invalid_field")
    return int.from_bytes(blob[1:5], "big")


def _check_labels(db: Session, creator: User, survivor_id: str, new: NewLink) -> None:
    if _label_version(new.creator_label) != creator.key_version:
        raise InvalidRequest("seal the label to your current key", code="stale_key_version")
    if creator.id == survivor_id:
        if new.survivor_label is not None:
            raise InvalidRequest(
                "survivor_label is for links made by counsel", code="invalid_field"
            )
        return
    if new.survivor_label is None:
        raise InvalidRequest("seal the label to the case's survivor too", code="invalid_field")
    survivor = db.get(User, survivor_id)
    assert survivor is not None
    if _label_version(new.survivor_label) != survivor.key_version:
        raise InvalidRequest("the survivor's key version changed", code="stale_key_version")


def _check_limits(new: NewLink, now: datetime) -> None:
    if not now < new.expires_at <= now + MAX_LIFETIME:
        raise InvalidRequest("expires_at is in the future, within 90 days", code="invalid_field")
    if not 1 <= new.max_opens <= MAX_OPENS:
        raise InvalidRequest(f"max_opens is 1 to {MAX_OPENS}", code="invalid_field")
    if not 1 <= len(new.document_ids) <= plink.MAX_DOCUMENTS:
        raise InvalidRequest("a link names 1 to 20 documents", code="invalid_field")
    if len(set(new.document_ids)) != len(new.document_ids):
        raise InvalidRequest("a document is named twice", code="invalid_field")


def create_link(db: Session, user: User, case_id: str, new: NewLink) -> Link:
    """Create a link; pending when counsel links a survivor's document (§23.3)."""
    case = get_case(db, user, case_id)
    now = utcnow()
    _check_limits(new, now)
    needs_approval = False
    for document_id in new.document_ids:
        visible = documents.visible_document(db, user, document_id)
        doc = visible.document
        if doc.case_id != case.id:
            raise NotFound("no such document")
        if doc.owner_id == user.id:
            continue
        if user.role != Role.COUNSEL or doc.owner_id != case.survivor_id:
            raise Forbidden("only a document's owner may link it", code="not_owner")
        needs_approval = True
    _check_labels(db, user, case.survivor_id, new)
    if db.scalars(select(Link.id).where(Link.lookup_id == new.lookup_id)).first() is not None:
        raise Conflict("a link with this lookup id exists; make a new secret", code="link_exists")
    link = Link(
        lookup_id=new.lookup_id,
        case_id=case.id,
        creator_id=user.id,
        state=LinkState.PENDING if needs_approval else LinkState.ACTIVE,
        token_hash=new.token_hash,
        kdf=new.kdf,
        envelope=new.envelope,
        creator_label=new.creator_label,
        survivor_label=new.survivor_label,
        max_opens=new.max_opens,
        opens=0,
        expires_at=new.expires_at,
        created_at=now,
        approved_at=None if needs_approval else now,
        documents=[LinkDocument(document_id=d, position=i) for i, d in enumerate(new.document_ids)],
    )
    db.add(link)
    db.commit()
    return link


def list_links(db: Session, user: User, case_id: str) -> list[Link]:
    """Every link of the case for its survivor; the links they made for counsel."""
    case = get_case(db, user, case_id)
    query = select(Link).where(Link.case_id == case.id).order_by(Link.created_at.desc())
    if user.id != case.survivor_id:
        query = query.where(Link.creator_id == user.id)
    return list(db.scalars(query))


def _managed(db: Session, user: User, link_id: str) -> tuple[Link, bool]:
    """A link the caller made or whose case they are the survivor of; and whether survivor."""
    link = db.get(Link, link_id)
    if link is None:
        raise _gone()
    case = get_case(db, user, link.case_id)
    is_survivor = case.survivor_id == user.id
    if link.creator_id != user.id and not is_survivor:
        raise _gone()
    return link, is_survivor


def approve_link(db: Session, user: User, link_id: str) -> Link:
    """The survivor's consent to a link counsel made for her documents."""
    link, is_survivor = _managed(db, user, link_id)
    if not is_survivor:
        raise Forbidden("only the case's survivor approves a link", code="not_owner")
    if link.state != LinkState.PENDING:
        raise Conflict("this link is not waiting for approval", code="link_not_pending")
    link.state = LinkState.ACTIVE
    link.approved_at = utcnow()
    db.commit()
    return link


def revoke_link(db: Session, user: User, link_id: str) -> None:
    """End a link at once (or decline a pending one): envelope and open tickets go."""
    link, _ = _managed(db, user, link_id)
    if link.state != LinkState.REVOKED:
        link.state = LinkState.REVOKED
        link.envelope = None
        link.revoked_at = utcnow()
        db.execute(delete(LinkOpen).where(LinkOpen.link_id == link.id))
    db.commit()


def is_live(link: Link, now: datetime) -> bool:
    """Approved, not revoked, not expired and not exhausted."""
    return (
        link.state == LinkState.ACTIVE
        and link.envelope is not None
        and link.expires_at > now
        and link.opens < link.max_opens
    )


def find_live(db: Session, lookup: bytes) -> Link:
    """The live link filed under ``lookup``; the same 404 for every other case."""
    link = db.scalars(select(Link).where(Link.lookup_id == lookup)).first()
    now = utcnow()
    if link is None or not is_live(link, now):
        db.rollback()
        raise _gone()
    return link


@dataclass(frozen=True)
class Opened:
    """One counted open: the link, the open's number, its ticket and the documents."""

    link: Link
    number: int
    ticket: bytes
    expires_at: datetime
    documents: list[Document]


def open_link(db: Session, lookup: bytes, token: bytes) -> Opened:
    """Count one open atomically and hand out a ticket for the content (§23.5)."""
    now = utcnow()
    hashed = plink.token_hash(token)
    counted = db.execute(
        update(Link)
        .where(
            Link.lookup_id == lookup,
            Link.state == LinkState.ACTIVE,
            Link.envelope.is_not(None),
            Link.expires_at > now,
            Link.opens < Link.max_opens,
        )
        .values(opens=Link.opens + 1)
        .returning(Link.id, Link.opens, Link.token_hash)
    ).first()
    if counted is None or not sodium.sodium_memcmp(counted.token_hash, hashed):
        db.rollback()
        raise _gone()
    link = db.get(Link, counted.id)
    assert link is not None
    docs = [_linked_document(db, item.document_id) for item in link.documents]
    ticket = nacl.utils.random(TICKET_BYTES)
    expires_at = min(now + OPEN_WINDOW, link.expires_at)
    db.add(
        LinkOpen(
            ticket_hash=plink.token_hash(ticket),
            link_id=link.id,
            number=counted.opens,
            created_at=now,
            expires_at=expires_at,
        )
    )
    for doc in docs:
        audit.record(
            db,
            EventKind.LINK_OPEN,
            case_id=link.case_id,
            document_id=doc.id,
            owner_id=doc.owner_id,
            subject_id=link.id,
            at=now,
        )
    db.commit()
    return Opened(link, counted.opens, ticket, expires_at, docs)


def _linked_document(db: Session, document_id: str) -> Document:
    doc = db.get(Document, document_id)
    if doc is None or doc.state != DocumentState.READY:
        raise _gone()
    return doc


def open_content(
    db: Session,
    store: ObjectStore,
    lookup: bytes,
    ticket: bytes,
    document_id: str,
    byte_range: tuple[int, int | None] | None,
) -> documents.Download:
    """Stream a linked document's ciphertext to the holder of a live open's ticket."""
    now = utcnow()
    row = db.get(LinkOpen, plink.token_hash(ticket)) if len(ticket) == TICKET_BYTES else None
    link = db.get(Link, row.link_id) if row is not None else None
    if (
        row is None
        or link is None
        or link.lookup_id != lookup
        or row.expires_at <= now
        or link.state != LinkState.ACTIVE
        or link.expires_at <= now
        or document_id not in {d.document_id for d in link.documents}
    ):
        db.rollback()
        raise _gone()
    doc = _linked_document(db, document_id)
    first_last = (
        documents.aligned_range(doc.ciphertext_size, *byte_range)
        if byte_range is not None
        else None
    )
    reader = documents.open_object(db, store, doc, first_last)
    db.rollback()
    return documents.Download(doc, iter(reader), reader.close, reader.length, first_last)


def publishers(db: Session, docs: list[Document]) -> list[tuple[User, list[UserKey]]]:
    """Each uploader of the documents once, with their published keys."""
    seen: dict[str, tuple[User, list[UserKey]]] = {}
    for doc in docs:
        if doc.owner_id not in seen:
            user = db.get(User, doc.owner_id)
            assert user is not None
            keys = list(
                db.scalars(
                    select(UserKey).where(UserKey.user_id == user.id).order_by(UserKey.version)
                )
            )
            seen[user.id] = (user, keys)
    return list(seen.values())
