"""The audit chain: entry hashes and signed checkpoints (protocol §13)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.signing

from vault.protocol.encoding import frame, u32, u64

LABEL_ENTRY = "haven/v1/audit-entry"
LABEL_CHECKPOINT = "haven/v1/audit-checkpoint"
GENESIS = bytes(32)


class ChainError(ValueError):
    """The audit chain or a checkpoint does not verify; the message names the entry."""


def canonical_detail(detail: dict[str, Any]) -> str:
    """Detail as canonical JSON: sorted keys, no spaces, ASCII only."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class ChainFields:
    """Everything an entry's hash covers."""

    seq: int
    prev_hash: bytes
    kind: str
    actor_id: str | None
    subject_id: str | None
    case_id: str | None
    document_id: str | None
    detail: str
    created_ms: int

    def hash(self) -> bytes:
        """BLAKE2b-256 over the framed fields; absent ids are empty strings."""
        data = frame(
            LABEL_ENTRY,
            u64(self.seq),
            self.prev_hash,
            self.kind.encode("ascii"),
            (self.actor_id or "").encode("utf-8"),
            (self.subject_id or "").encode("utf-8"),
            (self.case_id or "").encode("utf-8"),
            (self.document_id or "").encode("utf-8"),
            self.detail.encode("ascii"),
            u64(self.created_ms),
        )
        return nacl.hash.blake2b(data, digest_size=32, encoder=nacl.encoding.RawEncoder)


def checkpoint_message(seq: int, chain_hash: bytes, timestamp_ms: int, key_version: int) -> bytes:
    """What the log key signs for a checkpoint."""
    return frame(LABEL_CHECKPOINT, u64(seq), chain_hash, u64(timestamp_ms), u32(key_version))


def sign_checkpoint(seed: bytes, seq: int, chain_hash: bytes, ts: int, version: int) -> bytes:
    """Ed25519 signature of a checkpoint."""
    message = checkpoint_message(seq, chain_hash, ts, version)
    return nacl.signing.SigningKey(seed).sign(message).signature


def verify_checkpoint(
    public_key: bytes, seq: int, chain_hash: bytes, ts: int, version: int, signature: bytes
) -> None:
    """Raise ChainError unless the checkpoint signature verifies."""
    try:
        nacl.signing.VerifyKey(public_key).verify(
            checkpoint_message(seq, chain_hash, ts, version), signature
        )
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise ChainError(f"checkpoint at entry {seq} has a bad signature") from exc
