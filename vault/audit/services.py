"""Recording and reading events. Recording joins the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from vault.audit import chain
from vault.audit.models import (
    ALL_MEMBERS_KINDS,
    SURVIVOR_ONLY_KINDS,
    DownloadPurpose,
    Event,
    EventKind,
)
from vault.db import utcnow

MAX_PAGE = 500


def record(
    db: Session,
    kind: EventKind,
    *,
    case_id: str,
    document_id: str | None = None,
    owner_id: str | None = None,
    actor_id: str | None = None,
    subject_id: str | None = None,
    ciphertext_size: int | None = None,
    byte_range: tuple[int, int] | None = None,
    expires_at: datetime | None = None,
    purpose: DownloadPurpose | None = None,
    at: datetime | None = None,
) -> Event:
    """Add an event to the caller's transaction (committed or rolled back with it)."""
    event = Event(
        kind=kind,
        case_id=case_id,
        seq=_next_seq(db, case_id),
        document_id=document_id,
        owner_id=owner_id,
        actor_id=actor_id,
        subject_id=subject_id,
        ciphertext_size=ciphertext_size,
        range_first=byte_range[0] if byte_range else None,
        range_last=byte_range[1] if byte_range else None,
        expires_at=expires_at,
        purpose=purpose,
        created_at=at or utcnow(),
    )
    db.add(event)
    detail: dict[str, str | int] = {}
    if ciphertext_size is not None:
        detail["size"] = ciphertext_size
    if purpose is not None:
        detail["purpose"] = purpose.value
    # The same event, as a link of the tamper-evident chain (ids, sizes, a purpose only).
    chain.append(
        db,
        str(kind),
        actor_id=actor_id,
        subject_id=owner_id or subject_id,
        case_id=case_id,
        document_id=document_id,
        detail=detail,
        seal=document_id is not None,
    )
    return event


def _next_seq(db: Session, case_id: str) -> int:
    """The case's next event number, taken under the audit chain's append lock.

    Every event is also a link of the chain (below), so event appends already take turns on
    that lock, held until the transaction ends: the highest number of the case is read after
    every earlier append committed, and no other lock is added. Events are never deleted, so
    a number is never handed out twice; ``uq_events_case_id_seq`` guards it anyway.
    """
    chain.lock(db, chain.app_ring())
    last = db.scalar(select(func.max(Event.seq)).where(Event.case_id == case_id))
    return (last or 0) + 1


def case_events(
    db: Session,
    case_id: str,
    *,
    viewer_id: str,
    sees_all: bool,
    before: int | None = None,
    limit: int = 100,
) -> list[Event]:
    """Events of a case, newest first: all of them, or those that involve the viewer.

    ``before`` is an event number of this case (``Event.seq``).
    """
    query = select(Event).where(Event.case_id == case_id)
    if not sees_all:
        query = query.where(
            or_(
                Event.owner_id == viewer_id,
                Event.actor_id == viewer_id,
                Event.subject_id == viewer_id,
                Event.kind.in_(ALL_MEMBERS_KINDS),
            ),
            Event.kind.not_in(SURVIVOR_ONLY_KINDS),
        )
    if before is not None:
        query = query.where(Event.seq < before)
    query = query.order_by(Event.seq.desc()).limit(min(max(limit, 1), MAX_PAGE))
    return list(db.scalars(query))
