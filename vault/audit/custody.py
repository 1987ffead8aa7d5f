"""A document's chain of custody: its audit entries and what proves them (protocol §24.4).

Each entry of a document is proven by the first signed checkpoint at or after it, through
the entries in between ("links"). Document events are sealed by a checkpoint of their own
when they are appended (``chain.append(seal=True)``), so links appear only for events
recorded before that rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.audit import chain
from vault.audit.models import AuditCheckpoint, AuditEntry
from vault.keyring import Keyring


@dataclass(frozen=True)
class Custody:
    """A document's entries, the entries that link them to checkpoints, and the checkpoints."""

    entries: list[AuditEntry]
    links: list[AuditEntry]
    checkpoints: list[AuditCheckpoint]


def _covering(db: Session, seq: int) -> AuditCheckpoint | None:
    query = select(AuditCheckpoint).where(AuditCheckpoint.seq >= seq)
    return db.scalars(query.order_by(AuditCheckpoint.seq).limit(1)).first()


def document_custody(db: Session, document_id: str, ring: Keyring | None) -> Custody:
    """Every audit entry naming the document, oldest first, each tied to a checkpoint.

    An entry that no checkpoint covers yet gets one now (the chain's newest entry signed).
    """
    query = select(AuditEntry).where(AuditEntry.document_id == document_id)
    entries = list(db.scalars(query.order_by(AuditEntry.seq)))
    if entries and ring is not None and _covering(db, entries[-1].seq) is None:
        chain.checkpoint(db, ring)
    own = {e.seq for e in entries}
    checkpoints: dict[int, AuditCheckpoint] = {}
    needed: set[int] = set()
    for entry in entries:
        cover = _covering(db, entry.seq)
        if cover is None:
            continue
        checkpoints[cover.seq] = cover
        needed.update(s for s in range(entry.seq + 1, cover.seq + 1) if s not in own)
    links: list[AuditEntry] = []
    if needed:
        window = select(AuditEntry).where(
            AuditEntry.seq >= min(needed), AuditEntry.seq <= max(needed)
        )
        links = [e for e in db.scalars(window.order_by(AuditEntry.seq)) if e.seq in needed]
    return Custody(entries, links, [checkpoints[s] for s in sorted(checkpoints)])
