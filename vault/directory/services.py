"""Appending to the key transparency log and producing its proofs.

Appends are serialised (PostgreSQL advisory lock; a process lock for the embedded SQLite)
and happen inside the caller's transaction, so a key is published if and only if its log
entry and the new signed head are committed with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from vault import clock
from vault.db import serialise_appends
from vault.directory.models import LogEntry, LogKey, LogNode, TreeHeadRow
from vault.errors import InvalidRequest, NotFound
from vault.keyring import Keyring, KeyringError
from vault.protocol import merkle
from vault.protocol import transparency as kt
from vault.protocol.encoding import lp

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
    """Record the current log key's public half, announced by the previous version.

    The row is written under the key log's lock. A transaction that also appends to the
    audit chain records it first (``chain.lock``): key publication takes the log's lock and
    then the chain's, so writing the row while holding the chain's lock would wait on a
    publication that waits on us, a deadlock PostgreSQL breaks by failing one request.
    """
    version = ring.current_version("logsign")
    row = db.get(LogKey, version)
    if row is not None:
        return row
    serialise_appends(db, ADVISORY_LOCK_ID)
    row = db.get(LogKey, version)  # recorded by another process while this one waited
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
    if entry.kind == "publish":
        published = publish_entries(db, entry.user_id)
        if entry.version in published or entry.version != len(published) + 1:
            raise kt.EquivocationError(
                f"version {entry.version} of {entry.user_id} would break the one-publish rule"
            )
    return write_entry(db, ring, entry)


def write_entry(db: Session, ring: Keyring, entry: kt.KeyEntry) -> int:
    """Store an entry and sign the new head, checking no rule (``append`` checks them).

    Anyone holding the database and the log key can do this much; it is kept apart so the
    tests can play that operator, whom witnesses and clients must catch.
    """
    serialise_appends(db, ADVISORY_LOCK_ID)
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
        timestamp_ms=int(clock.time() * 1000),
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


def inclusion(db: Session, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size <= tree_size(db):
        raise InvalidRequest("need 0 <= index < size <= the log's size")
    return merkle.inclusion_proof(index, size, subtree_oracle(db))


def consistency(db: Session, old_size: int, new_size: int) -> list[bytes]:
    """Consistency proof between two tree sizes."""
    if not 0 < old_size <= new_size <= tree_size(db):
        raise InvalidRequest("need 0 < from <= to <= the log's size")
    return merkle.consistency_proof(old_size, new_size, subtree_oracle(db))


def entries_for(db: Session, user_id: str) -> list[LogEntry]:
    """Every entry whose leaf names one account, oldest first (for monitoring, §12.4).

    The search reads the hashed entry bytes, never the ``user_id`` column: a column edited
    in the database cannot hide an entry from its owner or from a contact's client.
    """
    needle = lp(user_id.encode("utf-8"))
    match: Any
    if db.get_bind().dialect.name == "postgresql":
        match = text("position(:needle in kt_entries.data) > 0").bindparams(needle=needle)
    else:
        match = func.instr(LogEntry.data, needle) > 0
    query = select(LogEntry).where(match).order_by(LogEntry.index)
    found = []
    for entry in db.scalars(query):
        try:
            if kt.KeyEntry.decode(entry.data).user_id == user_id:
                found.append(entry)
        except kt.TransparencyError:
            found.append(entry)  # let the client see and refuse a malformed entry
    return found


def publish_entries(db: Session, user_id: str) -> dict[int, LogEntry]:
    """The ``publish`` entries naming one account, by version, decoded from their leaves."""
    published: dict[int, LogEntry] = {}
    for entry in entries_for(db, user_id):
        decoded = kt.KeyEntry.decode(entry.data)
        if decoded.kind == "publish":
            published.setdefault(decoded.version, entry)
    return published


def log_keys(db: Session) -> list[LogKey]:
    """Every log key version, oldest first."""
    return list(db.scalars(select(LogKey).order_by(LogKey.version)))


KeyRow = tuple[str, int, bytes, bytes, bytes, int | None]


def verify_log(db: Session, key_rows: Iterable[KeyRow] = ()) -> int:
    """Recompute every leaf, node and head from the entry bytes; return the size checked.

    Every problem is named (up to 50): an entry whose columns disagree with its own leaf,
    a broken history rule (§12.4), a published key row that is not its log entry, a node,
    head or log key that does not verify.
    """
    problems: list[str] = []
    tree = merkle.MemoryTree()
    keys = {k.version: k.public_key for k in log_keys(db)}
    previous: LogKey | None = None
    for key in log_keys(db):
        if previous is not None:
            try:
                if key.announcement is None:
                    raise kt.TransparencyError(f"log key {key.version} was never announced")
                kt.verify_announcement(
                    previous.public_key,
                    previous.version,
                    key.version,
                    key.public_key,
                    key.announcement,
                )
            except kt.TransparencyError as exc:
                problems.append(str(exc))
        previous = key
    histories: dict[str, list[tuple[int, bytes]]] = {}
    for entry in db.scalars(select(LogEntry).order_by(LogEntry.index)):
        if entry.index != tree.size:
            raise kt.TransparencyError(f"entry {tree.size} is missing")
        if merkle.leaf_hash(entry.data) != entry.leaf_hash:
            problems.append(f"entry {entry.index} does not match its leaf hash")
        tree.append(merkle.leaf_hash(entry.data))
        stored = db.get(LogNode, (0, entry.index))
        if stored is None or stored.hash != tree.perfect(0, entry.index):
            problems.append(f"leaf node {entry.index} differs from its entry")
        try:
            decoded = kt.KeyEntry.decode(entry.data)
        except kt.TransparencyError as exc:
            problems.append(f"entry {entry.index}: {exc}")
            continue
        columns = (entry.kind, entry.user_id, entry.key_version)
        if columns != (decoded.kind, decoded.user_id, decoded.version):
            problems.append(
                f"entry {entry.index}: columns (kind, user_id, key_version) disagree with its leaf"
            )
        histories.setdefault(decoded.user_id, []).append((entry.index, entry.data))
    for node in db.scalars(select(LogNode).where(LogNode.level > 0)):
        levels = tree.levels
        if node.level >= len(levels) or node.index >= len(levels[node.level]):
            problems.append(f"node {node.level}/{node.index} is beyond the log")
        elif levels[node.level][node.index] != node.hash:
            problems.append(f"node {node.level}/{node.index} differs from its leaves")
    for user_id, history in histories.items():
        try:
            kt.check_history(user_id, history)
        except kt.TransparencyError as exc:
            problems.append(str(exc))
    data_at = {index: data for history in histories.values() for index, data in history}
    for user_id, version, x25519, ed25519, signature, log_index in key_rows:
        data = data_at.get(log_index) if log_index is not None else None
        held = kt.KeyEntry.decode(data) if data is not None else None
        if held is None or (
            held.kind,
            held.user_id,
            held.version,
            held.x25519,
            held.ed25519,
            held.signature,
        ) != ("publish", user_id, version, x25519, ed25519, signature):
            problems.append(f"key row {user_id} version {version} is not its log entry")
    for head in db.scalars(select(TreeHeadRow).order_by(TreeHeadRow.size)):
        if head.size > tree.size or tree.root(head.size) != head.root:
            problems.append(f"tree head of size {head.size} has the wrong root")
            continue
        signed = kt.TreeHead(
            head.size, head.root, head.timestamp_ms, head.key_version, head.signature
        )
        if head.key_version not in keys:
            problems.append(f"tree head {head.size} names an unknown log key")
            continue
        try:
            signed.verify(keys[head.key_version])
        except kt.TransparencyError as exc:
            problems.append(f"tree head {head.size}: {exc}")
    if problems:
        more = f" (and {len(problems) - 50} more)" if len(problems) > 50 else ""
        raise kt.TransparencyError("; ".join(problems[:50]) + more)
    return tree.size
