"""Appending to the key transparency log and producing its proofs.

Appends are serialised (PostgreSQL advisory lock; a process lock for the embedded SQLite)
and happen inside the caller's transaction, so a key is published if and only if its log
entry and the new signed head are committed with it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vault.db import serialise_appends
from vault.directory.models import LogEntry, LogKey, LogNode, TreeHeadRow
from vault.errors import InvalidRequest, NotFound
from vault.keyring import Keyring, KeyringError
from vault.protocol import merkle
from vault.protocol import transparency as kt

ADVISORY_LOCK_ID = 6962
APPENDED = "haven.kt.appended"  # session flag: the request then asks witnesses to cosign (§15)


def tree_size(db: Session) -> int:
    """Number of entries in the log."""
    return int(db.scalar(select(func.max(TreeHeadRow.size))) or 0)


def _perfect(db: Session) -> Any:
    def perfect(level: int, index: int) -> bytes:
        node = db.get(LogNode, (level, index))
        if node is None:
            raise NotFound("log node missing")
        return node.hash

    return perfect


def subtree_oracle(db: Session) -> merkle.Subtree:
    """Merkle tree hash of any leaf range, from the stored perfect nodes."""
    return merkle.subtree_from_perfect(_perfect(db))


def ensure_log_key(db: Session, ring: Keyring) -> LogKey:
    """Record the current log key's public half, announced by the previous version."""
    version = ring.current_version("logsign")
    row = db.get(LogKey, version)
    if row is not None:
        return row
    public = kt.log_public_key(ring.current("logsign"))
    previous = db.scalars(
        select(LogKey).where(LogKey.version < version).order_by(LogKey.version.desc())
    ).first()
    announcement = None
    if previous is not None:
        try:
            previous_seed = ring.get("logsign", previous.version)
        except KeyringError as exc:
            raise KeyringError(
                "the previous log key was retired before announcing its successor"
            ) from exc
        announcement = kt.announce(
            previous_seed, previous.version, version, ring.current("logsign")
        )
    row = LogKey(version=version, public_key=public, announcement=announcement)
    db.add(row)
    db.flush()
    return row


def append(db: Session, ring: Keyring, entry: kt.KeyEntry) -> int:
    """Append an entry, store the perfect nodes it completes, sign the new head."""
    serialise_appends(db, ADVISORY_LOCK_ID)
    ensure_log_key(db, ring)
    index = tree_size(db)
    leaf = entry.leaf()
    db.add(
        LogEntry(
            index=index,
            kind=entry.kind,
            user_id=entry.user_id,
            key_version=entry.version,
            data=entry.encode(),
            leaf_hash=leaf,
        )
    )
    db.add(LogNode(level=0, index=index, hash=leaf))
    level, position, node = 0, index, leaf
    while position & 1:
        left = db.get(LogNode, (level, position - 1))
        assert left is not None
        node = merkle.node_hash(left.hash, node)
        level, position = level + 1, position >> 1
        db.add(LogNode(level=level, index=position, hash=node))
    db.flush()
    size = index + 1
    head = kt.TreeHead(
        size=size,
        root=subtree_oracle(db)(0, size),
        timestamp_ms=int(time.time() * 1000),
        key_version=ring.current_version("logsign"),
    ).signed(ring.current("logsign"))
    db.add(
        TreeHeadRow(
            size=size,
            root=head.root,
            timestamp_ms=head.timestamp_ms,
            key_version=head.key_version,
            signature=head.signature,
        )
    )
    db.flush()
    db.info[APPENDED] = True
    return index


def latest_head(db: Session) -> TreeHeadRow:
    """The newest signed tree head."""
    head = db.get(TreeHeadRow, tree_size(db))
    if head is None:
        raise NotFound("the log is empty")
    return head


def head_at(db: Session, size: int) -> TreeHeadRow:
    """The signed head of a given size."""
    head = db.get(TreeHeadRow, size)
    if head is None:
        raise NotFound("no tree head of that size")
    return head


def inclusion(db: Session, index: int, size: int) -> tuple[LogEntry, list[bytes]]:
    """An entry and its inclusion proof in the tree of ``size`` leaves."""
    if not 0 <= index < size <= tree_size(db):
        raise InvalidRequest("need 0 <= index < size <= the log's size")
    entry = db.get(LogEntry, index)
    assert entry is not None
    return entry, merkle.inclusion_proof(index, size, subtree_oracle(db))


def consistency(db: Session, old_size: int, new_size: int) -> list[bytes]:
    """Consistency proof between two tree sizes."""
    if not 0 < old_size <= new_size <= tree_size(db):
        raise InvalidRequest("need 0 < from <= to <= the log's size")
    return merkle.consistency_proof(old_size, new_size, subtree_oracle(db))


def entries_for(db: Session, user_id: str) -> list[LogEntry]:
    """Every entry about one account, oldest first (for self-monitoring)."""
    query = select(LogEntry).where(LogEntry.user_id == user_id).order_by(LogEntry.index)
    return list(db.scalars(query))


def log_keys(db: Session) -> list[LogKey]:
    """Every log key version, oldest first."""
    return list(db.scalars(select(LogKey).order_by(LogKey.version)))


def verify_log(db: Session) -> int:
    """Recompute every leaf, node and head from the entries; return the size checked."""
    tree = merkle.MemoryTree()
    keys = {k.version: k.public_key for k in log_keys(db)}
    previous: LogKey | None = None
    for key in log_keys(db):
        if previous is not None:
            if key.announcement is None:
                raise kt.TransparencyError(f"log key {key.version} was never announced")
            kt.verify_announcement(
                previous.public_key, previous.version, key.version, key.public_key, key.announcement
            )
        previous = key
    for entry in db.scalars(select(LogEntry).order_by(LogEntry.index)):
        if entry.index != tree.size:
            raise kt.TransparencyError(f"entry {tree.size} is missing")
        if merkle.leaf_hash(entry.data) != entry.leaf_hash:
            raise kt.TransparencyError(f"entry {entry.index} does not match its leaf hash")
        tree.append(entry.leaf_hash)
        stored = db.get(LogNode, (0, entry.index))
        if stored is None or stored.hash != entry.leaf_hash:
            raise kt.TransparencyError(f"leaf node {entry.index} differs from its entry")
    for head in db.scalars(select(TreeHeadRow).order_by(TreeHeadRow.size)):
        if head.size > tree.size or tree.root(head.size) != head.root:
            raise kt.TransparencyError(f"tree head of size {head.size} has the wrong root")
        signed = kt.TreeHead(
            head.size, head.root, head.timestamp_ms, head.key_version, head.signature
        )
        if head.key_version not in keys:
            raise kt.TransparencyError(f"tree head {head.size} names an unknown log key")
        signed.verify(keys[head.key_version])
    return tree.size
