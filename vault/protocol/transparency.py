"""Key transparency: log entries, signed tree heads and log-key announcements (protocol §12)."""

from __future__ import annotations

from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from vault.protocol.encoding import frame, u32, u64
from vault.protocol.merkle import leaf_hash

LABEL_ENTRY = "haven/v1/kt-entry"
LABEL_HEAD = "haven/v1/tree-head"
LABEL_LOG_KEY = "haven/v1/log-key"
KINDS = ("publish", "supersede", "compromise")


class TransparencyError(ValueError):
    """A head, entry or announcement does not verify."""


@dataclass(frozen=True)
class KeyEntry:
    """One log entry: an event about one published key version."""

    kind: str
    user_id: str
    version: int
    x25519: bytes
    ed25519: bytes
    signature: bytes
    timestamp_ms: int

    def encode(self) -> bytes:
        """The exact bytes hashed into the log."""
        if self.kind not in KINDS:
            raise TransparencyError(f"unknown entry kind {self.kind!r}")
        return frame(
            LABEL_ENTRY,
            self.kind.encode("ascii"),
            self.user_id.encode("utf-8"),
            u32(self.version),
            self.x25519,
            self.ed25519,
            self.signature,
            u64(self.timestamp_ms),
        )

    def leaf(self) -> bytes:
        """The entry's RFC 6962 leaf hash."""
        return leaf_hash(self.encode())


@dataclass(frozen=True)
class TreeHead:
    """A tree size and root, signed by a version of the log key."""

    size: int
    root: bytes
    timestamp_ms: int
    key_version: int
    signature: bytes = b""

    def message(self) -> bytes:
        """The exact bytes the log key signs."""
        return frame(
            LABEL_HEAD, u64(self.size), self.root, u64(self.timestamp_ms), u32(self.key_version)
        )

    def signed(self, seed: bytes) -> TreeHead:
        """This head with a signature by the log key seed."""
        sig = nacl.signing.SigningKey(seed).sign(self.message()).signature
        return TreeHead(self.size, self.root, self.timestamp_ms, self.key_version, sig)

    def verify(self, public_key: bytes) -> None:
        """Check the signature with the log public key of ``key_version``."""
        try:
            nacl.signing.VerifyKey(public_key).verify(self.message(), self.signature)
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise TransparencyError("tree head signature does not verify") from exc


def log_key_message(version: int, public_key: bytes, previous_version: int) -> bytes:
    """What the previous log key signs to announce its successor."""
    return frame(LABEL_LOG_KEY, u32(version), public_key, u32(previous_version))


def log_public_key(seed: bytes) -> bytes:
    """The Ed25519 public key of a log key seed."""
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def announce(previous_seed: bytes, previous_version: int, version: int, seed: bytes) -> bytes:
    """Signature by the previous log key over the new one."""
    message = log_key_message(version, log_public_key(seed), previous_version)
    return nacl.signing.SigningKey(previous_seed).sign(message).signature


def verify_announcement(
    previous_public: bytes, previous_version: int, version: int, public_key: bytes, signature: bytes
) -> None:
    """Check that the previous log key announced this one."""
    message = log_key_message(version, public_key, previous_version)
    try:
        nacl.signing.VerifyKey(previous_public).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise TransparencyError("log key announcement does not verify") from exc
