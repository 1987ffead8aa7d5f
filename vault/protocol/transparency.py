"""Key transparency: log entries, signed tree heads and log-key announcements (protocol §12)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from vault.protocol.encoding import EncodingError, frame, u32, u64, unframe
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

    @classmethod
    def decode(cls, data: bytes) -> KeyEntry:
        """Parse the exact bytes of a log entry; refuse anything that does not re-encode to them."""
        try:
            kind, user_id, version, x25519, ed25519, signature, t_ms = unframe(LABEL_ENTRY, data, 7)
            entry = cls(
                kind.decode("ascii"),
                user_id.decode("utf-8"),
                struct.unpack(">I", version)[0],
                x25519,
                ed25519,
                signature,
                struct.unpack(">Q", t_ms)[0],
            )
            if len(x25519) != 32 or len(ed25519) != 32 or len(signature) != 64:
                raise TransparencyError("a log entry holds keys of the wrong length")
            if entry.encode() != data:
                raise TransparencyError("a log entry is not in its canonical encoding")
        except (EncodingError, UnicodeDecodeError, struct.error) as exc:
            raise TransparencyError(f"not a log entry: {exc}") from exc
        return entry


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


class EquivocationError(TransparencyError):
    """The log holds two different keys for one account and version, or versions out of order."""


def check_history(
    user_id: str, entries: list[tuple[int, bytes]], current: KeyEntry | None = None
) -> dict[int, KeyEntry]:
    """Apply the one history rule (§12.4) to every log entry naming ``user_id``.

    ``entries`` are (index, entry bytes) pairs. Each is decoded from its own bytes; one
    naming another account is refused. There must be exactly one ``publish`` per version
    1 … n, in increasing log order, and ``supersede``/``compromise`` entries may only name a
    published version. When ``current`` is given, version n must be exactly that record.
    Returns the ``publish`` entries by version.
    """
    published: dict[int, KeyEntry] = {}
    last_index = -1
    for index, data in sorted(entries, key=lambda item: item[0]):
        entry = KeyEntry.decode(data)
        if index <= last_index:
            raise EquivocationError("the log lists one entry twice")
        last_index = index
        if entry.user_id != user_id:
            raise TransparencyError(f"log entry {index} names another account")
        if entry.kind != "publish":
            if entry.version not in published:
                raise EquivocationError(
                    f"log entry {index} is about version {entry.version}, never published"
                )
            continue
        if entry.version in published:
            raise EquivocationError(
                f"the log holds two different keys for version {entry.version} of {user_id}"
            )
        if entry.version != len(published) + 1:
            raise EquivocationError(
                f"the log publishes version {entry.version} of {user_id} out of order"
            )
        published[entry.version] = entry
    if current is not None:
        if len(published) != current.version:
            raise EquivocationError(
                f"the log does not end at version {current.version} of {user_id}"
            )
        held = published[current.version]
        if (held.x25519, held.ed25519, held.signature) != (
            current.x25519,
            current.ed25519,
            current.signature,
        ):
            raise EquivocationError(
                f"the log holds other keys for version {current.version} of {user_id}"
            )
    return published
