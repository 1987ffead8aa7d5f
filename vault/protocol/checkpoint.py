"""Witnessed key-log heads: C2SP tlog-checkpoint signed notes and tlog-cosignature/v1 (§15).

Pure functions. A checkpoint is the note text ``<origin>\\n<size>\\n<base64 root>\\n``; the
log signs it with an Ed25519 note signature (signed-note, algorithm 0x01) and each witness
adds a timestamped Ed25519 cosignature (tlog-cosignature, algorithm 0x04).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
DASH = "\u2014"
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1_000_000
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_STD_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


class CheckpointError(ValueError):
    """A checkpoint, note, signature or verifier key is malformed or does not verify.

    ``reason`` is ``"quorum"`` (too few cosignatures), ``"log"`` (no signature by a trusted
    log key) or ``"malformed"`` (anything else, including a signature that fails to verify).
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def _b64std_decode(text: str) -> bytes:
    """Decode canonical standard base64 (RFC 4648 §4, padded)."""
    if not _STD_B64.match(text) or len(text) % 4:
        raise CheckpointError("not canonical standard base64")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError("not canonical standard base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise CheckpointError("not canonical standard base64")
    return data


def _b64std(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def is_valid_name(name: str) -> bool:
    """A key name or origin: non-empty, no Unicode space, no '+'."""
    return bool(name) and not any(c.isspace() for c in name) and "+" not in name


def key_hash(name: str, alg_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || alg || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + alg_key).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """The three lines of a tlog-checkpoint body."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """The note text: origin, decimal size and standard-base64 root, each ending in LF."""
        if not is_valid_name(self.origin) or "\n" in self.origin:
            raise CheckpointError("invalid origin")
        if len(self.root) != 32 or self.size < 0:
            raise CheckpointError("invalid size or root")
        return f"{self.origin}\n{self.size}\n{_b64std(self.root)}\n"


def parse_body(text: str) -> Checkpoint:
    """Parse a checkpoint note text; extension lines are refused (Haven's log has none)."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise CheckpointError("checkpoint must have exactly three lines")
    origin, size, root = lines
    if not is_valid_name(origin):
        raise CheckpointError("invalid checkpoint origin")
    if not _DECIMAL.match(size):
        raise CheckpointError("invalid checkpoint size")
    digest = _b64std_decode(root)
    if len(digest) != 32:
        raise CheckpointError("checkpoint root is not 32 bytes")
    return Checkpoint(origin, int(size), digest)


@dataclass(frozen=True)
class VerifierKey:
    """A note verifier: name, algorithm byte and public key (vkey ``name+hash+base64``)."""

    name: str
    alg: int
    public_key: bytes

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key ID of this key."""
        return key_hash(self.name, bytes([self.alg]) + self.public_key)

    def encode(self) -> str:
        """The vkey string of signed-note: name '+' 8 hex digits '+' base64(alg || key)."""
        alg_key = bytes([self.alg]) + self.public_key
        return f"{self.name}+{self.key_hash.hex()}+{_b64std(alg_key)}"


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parse a vkey of an Ed25519 log key (0x01) or an Ed25519 cosigner (0x04)."""
    parts = vkey.split("+", 2)  # standard base64 may itself hold '+'
    if len(parts) != 3:
        raise CheckpointError("a verifier key is name+hash+key")
    name, hash_hex, key_b64 = parts
    if not is_valid_name(name) or not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
        raise CheckpointError("malformed verifier key")
    alg_key = _b64std_decode(key_b64)
    if len(alg_key) != 33 or alg_key[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise CheckpointError("verifier key is not an Ed25519 (0x01) or cosignature (0x04) key")
    if key_hash(name, alg_key).hex() != hash_hex:
        raise CheckpointError("verifier key hash does not match its name and key")
    return VerifierKey(name, alg_key[0], alg_key[1:])


def log_verifier(origin: str, public_key: bytes) -> VerifierKey:
    """The log's note verifier: its name is the origin."""
    return VerifierKey(origin, ALG_ED25519, public_key)


@dataclass(frozen=True)
class Signature:
    """One note signature line: ``— <name> base64(key hash || signature)``."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, ending in LF."""
        return f"{DASH} {self.name} {_b64std(self.key_hash + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note: text and signature lines."""

    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> str:
        """Text, an empty line, then each signature line."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def parse_signature_line(line: str) -> Signature:
    """Parse one signature line without its trailing LF."""
    if not line.startswith(DASH + " "):
        raise CheckpointError("signature line must start with an em dash and a space")
    parts = line[2:].split(" ")
    if len(parts) != 2 or not is_valid_name(parts[0]):
        raise CheckpointError("malformed signature line")
    raw = _b64std_decode(parts[1])
    if len(raw) < 5:
        raise CheckpointError("signature too short")
    return Signature(parts[0], raw[:4], raw[4:])


def parse_signatures(block: str) -> tuple[Signature, ...]:
    """Parse signature lines, each ending in LF (a witness's add-checkpoint answer)."""
    if not block.endswith("\n"):
        raise CheckpointError("signature lines must end in a newline")
    return tuple(parse_signature_line(line) for line in block[:-1].split("\n"))


def parse_note(data: str) -> Note:
    """Split a signed note at its last empty line and parse the signature lines."""
    if len(data.encode("utf-8")) > MAX_NOTE_BYTES:
        raise CheckpointError("note too large")
    if any(ord(c) < 0x20 and c != "\n" for c in data) or "\ufffd" in data:
        raise CheckpointError("note holds control characters")
    split = data.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no signature block")
    text, block = data[: split + 1], data[split + 2 :]
    signatures = parse_signatures(block)
    if len(signatures) > MAX_SIGNATURES:
        raise CheckpointError("too many signatures")
    return Note(text, signatures)


def sign_ed25519(text: str, origin: str, seed: bytes) -> Signature:
    """The log's note signature over the text with an Ed25519 seed (deterministic)."""
    signing = nacl.signing.SigningKey(seed)
    verifier = log_verifier(origin, bytes(signing.verify_key))
    sig = signing.sign(text.encode("utf-8")).signature
    return Signature(origin, verifier.key_hash, sig)


def sign_checkpoint(checkpoint: Checkpoint, seeds: Sequence[bytes]) -> Note:
    """A checkpoint note signed by each given log key seed (every live log key version)."""
    text = checkpoint.body()
    return Note(text, tuple(sign_ed25519(text, checkpoint.origin, s) for s in seeds))


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The bytes a cosigner signs: ``cosignature/v1\\ntime <T>\\n`` then the note text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(text: str, name: str, seed: bytes, timestamp: int) -> Signature:
    """A cosignature/v1 by an Ed25519 seed (for test vectors; real ones come from witnesses)."""
    signing = nacl.signing.SigningKey(seed)
    vk = VerifierKey(name, ALG_COSIGNATURE_V1, bytes(signing.verify_key))
    sig = signing.sign(cosignature_message(text, timestamp)).signature
    return Signature(name, vk.key_hash, timestamp.to_bytes(8, "big") + sig)


def _ed25519_ok(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def _matches(sig: Signature, key: VerifierKey) -> bool:
    return sig.name == key.name and sig.key_hash == key.key_hash


def verify_signature(text: str, sig: Signature, key: VerifierKey) -> int | None:
    """Check one signature by a known key; the cosignature timestamp, or None for a log one."""
    if key.alg == ALG_ED25519:
        if len(sig.signature) != 64 or not _ed25519_ok(
            key.public_key, text.encode("utf-8"), sig.signature
        ):
            raise CheckpointError(f"the signature by {key.name} does not verify")
        return None
    if len(sig.signature) != 72:
        raise CheckpointError(f"the cosignature by {key.name} is not 72 bytes")
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if timestamp >= 2**63 or not _ed25519_ok(
        key.public_key, cosignature_message(text, timestamp), sig.signature[8:]
    ):
        raise CheckpointError(f"the cosignature by {key.name} does not verify")
    return timestamp


def cosigners(note: Note, witness_keys: Iterable[VerifierKey]) -> list[VerifierKey]:
    """The configured witnesses whose valid cosignature the note carries.

    A signature line naming a configured key but failing to verify makes the note malformed
    (signed-note); lines from unknown keys are ignored.
    """
    found = []
    for key in dict.fromkeys(witness_keys):  # a key listed twice still counts once
        if key.alg != ALG_COSIGNATURE_V1:
            raise CheckpointError(f"witness key {key.name} is not a cosignature/v1 key")
        lines = [s for s in note.signatures if _matches(s, key)]
        for sig in lines:
            verify_signature(note.text, sig, key)
        if lines:
            found.append(key)
    return found


def verify_cosigned(
    note: str,
    log_keys: Sequence[VerifierKey],
    witness_keys: Sequence[VerifierKey],
    quorum: int,
) -> Checkpoint:
    """Accept a checkpoint only if a log key signed it and ``quorum`` witnesses cosigned it."""
    if quorum < 1 or quorum > len({k.key_hash + k.name.encode() for k in witness_keys}):
        raise CheckpointError("the quorum must be between 1 and the number of witness keys")
    parsed = parse_note(note)
    checkpoint = parse_body(parsed.text)
    seen: set[tuple[str, bytes]] = set()
    for sig in parsed.signatures:
        if (sig.name, sig.key_hash) in seen:
            raise CheckpointError("the note carries two signatures by one key")
        seen.add((sig.name, sig.key_hash))
    signed_by_log = False
    for key in log_keys:
        if key.name != checkpoint.origin:
            continue
        for sig in parsed.signatures:
            if _matches(sig, key):
                verify_signature(parsed.text, sig, key)
                signed_by_log = True
    if not signed_by_log:
        raise CheckpointError("the checkpoint is not signed by a log key I trust", "log")
    count = len(cosigners(parsed, witness_keys))
    if count < quorum:
        raise CheckpointError(
            f"the checkpoint of size {checkpoint.size} is cosigned by {count} of the "
            f"{quorum} witnesses required: not yet witnessed, or a split view",
            "quorum",
        )
    return checkpoint
