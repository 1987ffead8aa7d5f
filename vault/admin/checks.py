"""What the admin console verifies and shows of the key log and the audit chain (§25.4).

The same checks as `haven audit verify` and `haven log verify`; they read no content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.accounts.models import UserKey
from vault.audit import chain
from vault.directory import services as directory
from vault.directory.models import Cosignature, TreeHeadRow
from vault.directory.witnesses import Witness
from vault.protocol.audit import ChainError
from vault.protocol.encoding import b64encode
from vault.protocol.transparency import TransparencyError


@dataclass(frozen=True)
class Verification:
    """The outcome of a full check: intact or not, how many entries, the first problem."""

    intact: bool
    entries: int
    problem: str | None


def verify_audit_chain(db: Session) -> Verification:
    """Walk the audit chain and its signed checkpoints (§13)."""
    try:
        size = chain.verify(db)
    except ChainError as exc:
        return Verification(False, chain.length(db), str(exc))
    return Verification(True, size, None)


def verify_key_log(db: Session) -> Verification:
    """Recompute the key log from its entries' bytes and the published key rows (§12.7)."""
    rows = [
        (k.user_id, k.version, k.x25519, k.ed25519, k.signature, k.log_index)
        for k in db.scalars(select(UserKey))
    ]
    try:
        size = directory.verify_log(db, rows)
    except TransparencyError as exc:
        return Verification(False, directory.tree_size(db), str(exc))
    return Verification(True, size, None)


def _newest_cosignature(db: Session, witness: Witness) -> Cosignature | None:
    return db.scalars(
        select(Cosignature)
        .where(Cosignature.witness == witness.id)
        .order_by(Cosignature.size.desc())
        .limit(1)
    ).first()


def log_status(db: Session, witnesses: Sequence[Witness]) -> dict[str, Any]:
    """The newest signed head and, per configured witness, the newest size it cosigned."""
    head = db.get(TreeHeadRow, directory.tree_size(db))
    rows = [(w, _newest_cosignature(db, w)) for w in witnesses]
    return {
        "head": None
        if head is None
        else {
            "size": head.size,
            "root": b64encode(head.root),
            "timestamp_ms": head.timestamp_ms,
            "key_version": head.key_version,
        },
        "witnesses": [
            {
                "name": w.key.name,
                "cosigned_size": row.size if row else None,
                "cosigned_at": row.timestamp if row else None,
            }
            for w, row in rows
        ],
    }
