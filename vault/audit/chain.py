"""The tamper-evident audit chain: append, checkpoint, verify, read.

Entries carry ids, kinds and small non-content details (a key purpose, a role); never a
username, a file name or any content. Appends join the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from vault import clock
from vault.audit.models import AuditCheckpoint, AuditEntry
from vault.db import serialise_appends
from vault.directory.models import LogKey
from vault.keyring import Keyring
from vault.protocol import audit as proto

ADVISORY_LOCK_ID = 4242
CHECKPOINT_EVERY = 64
MAX_PAGE = 200


def app_ring() -> Keyring | None:
    """The app's server keyring, when there is an app."""
    if has_app_context() and "haven.keyring" in current_app.extensions:
        ring: Keyring = current_app.extensions["haven.keyring"]
        return ring
    return None


def append(
    db: Session,
    kind: str,
    *,
    actor_id: str | None = None,
    subject_id: str | None = None,
    case_id: str | None = None,
    document_id: str | None = None,
    detail: dict[str, Any] | None = None,
    ring: Keyring | None = None,
    seal: bool = False,
) -> AuditEntry:
    """Add the next link of the chain; sign a checkpoint every CHECKPOINT_EVERY entries,
    and at this entry when ``seal`` (a document's event: its custody proof needs no links)."""
    ring = ring or app_ring()
    lock(db, ring)
    last = db.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()
    fields = proto.ChainFields(
        seq=(last.seq + 1) if last else 1,
        prev_hash=last.hash if last else proto.GENESIS,
        kind=kind,
        actor_id=actor_id,
        subject_id=subject_id,
        case_id=case_id,
        document_id=document_id,
        detail=proto.canonical_detail(detail or {}),
        created_ms=int(clock.time() * 1000),
    )
    entry = AuditEntry(
        seq=fields.seq,
        kind=kind,
        actor_id=actor_id,
        subject_id=subject_id,
        case_id=case_id,
        document_id=document_id,
        detail=fields.detail,
        created_ms=fields.created_ms,
        prev_hash=fields.prev_hash,
        hash=fields.hash(),
    )
    db.add(entry)
    if ring is not None and (seal or fields.seq % CHECKPOINT_EVERY == 0):
        _checkpoint(db, ring, entry)
    db.flush()
    return entry


def lock(db: Session, ring: Keyring | None) -> None:
    """Take the chain's append lock, held until the transaction ends.

    The log key a checkpoint is signed with is recorded first, so its row is never written
    while this lock is held (lock order: the key log's, then the chain's;
    ``directory.services.ensure_log_key``).
    """
    from vault.directory.services import ensure_log_key

    if ring is not None:
        ensure_log_key(db, ring)
    serialise_appends(db, ADVISORY_LOCK_ID)


def _checkpoint(db: Session, ring: Keyring, entry: AuditEntry) -> AuditCheckpoint:
    version = ring.current_version("logsign")
    now = int(clock.time() * 1000)
    signature = proto.sign_checkpoint(ring.current("logsign"), entry.seq, entry.hash, now, version)
    row = AuditCheckpoint(
        seq=entry.seq, hash=entry.hash, timestamp_ms=now, key_version=version, signature=signature
    )
    db.add(row)
    return row


def checkpoint(db: Session, ring: Keyring) -> AuditCheckpoint | None:
    """Sign a checkpoint at the newest entry now (if it has none yet)."""
    lock(db, ring)
    last = db.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()
    if last is None or db.get(AuditCheckpoint, last.seq) is not None:
        return None
    row = _checkpoint(db, ring, last)
    db.commit()
    return row


def verify(db: Session) -> int:
    """Walk the chain; raise ChainError naming the first entry that was edited, removed,
    inserted or reordered, or a checkpoint that does not match. Return the length."""
    expected_seq, prev = 1, proto.GENESIS
    hashes: dict[int, bytes] = {}
    for entry in db.scalars(select(AuditEntry).order_by(AuditEntry.seq)).yield_per(1000):
        if entry.seq != expected_seq:
            raise proto.ChainError(
                f"entry {expected_seq} is missing (next present is {entry.seq}): removed"
            )
        if entry.prev_hash != prev:
            raise proto.ChainError(
                f"entry {entry.seq} does not follow entry {entry.seq - 1}: "
                "an entry was removed, inserted or reordered here"
            )
        fields = proto.ChainFields(
            entry.seq,
            entry.prev_hash,
            entry.kind,
            entry.actor_id,
            entry.subject_id,
            entry.case_id,
            entry.document_id,
            entry.detail,
            entry.created_ms,
        )
        if fields.hash() != entry.hash:
            raise proto.ChainError(f"entry {entry.seq} was edited: its hash does not match")
        hashes[entry.seq] = entry.hash
        prev, expected_seq = entry.hash, expected_seq + 1
    keys = {k.version: k.public_key for k in db.scalars(select(LogKey))}
    for cp in db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)):
        if cp.seq not in hashes:
            raise proto.ChainError(
                f"checkpoint at entry {cp.seq} names an entry that is gone: entries removed"
            )
        if hashes[cp.seq] != cp.hash:
            raise proto.ChainError(f"entry {cp.seq} differs from its signed checkpoint")
        if cp.key_version not in keys:
            raise proto.ChainError(f"checkpoint at entry {cp.seq} names an unknown log key")
        proto.verify_checkpoint(
            keys[cp.key_version], cp.seq, cp.hash, cp.timestamp_ms, cp.key_version, cp.signature
        )
    return expected_seq - 1


def entries_about(
    db: Session, user_id: str, before: int | None = None, limit: int = 50
) -> list[AuditEntry]:
    """Entries where the account acted or was acted upon, newest first."""
    query = select(AuditEntry).where(
        or_(AuditEntry.actor_id == user_id, AuditEntry.subject_id == user_id)
    )
    return _page(db, query, before, limit)


def all_entries(db: Session, before: int | None = None, limit: int = 50) -> list[AuditEntry]:
    """Every entry, newest first (admins: ids and kinds, no content exists to show)."""
    return _page(db, select(AuditEntry), before, limit)


def _page(db: Session, query: Any, before: int | None, limit: int) -> list[AuditEntry]:
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    query = query.order_by(AuditEntry.seq.desc()).limit(min(max(limit, 1), MAX_PAGE))
    return list(db.scalars(query))


def length(db: Session) -> int:
    """How many entries the chain has."""
    return int(db.scalar(select(func.count()).select_from(AuditEntry)) or 0)
