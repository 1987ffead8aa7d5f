"""Safety numbers: a fingerprint of two accounts' current keys to compare in person."""

from __future__ import annotations

import nacl.encoding
import nacl.hash

from vault.protocol.encoding import frame, u32

LABEL_FINGERPRINT = "haven/v1/fingerprint"
DIGITS_PER_ACCOUNT = 30


def fingerprint(user_id: str, version: int, x25519: bytes, ed25519: bytes) -> bytes:
    """BLAKE2b-256 over one account's id, key version and public keys."""
    data = frame(LABEL_FINGERPRINT, user_id.encode("utf-8"), u32(version), x25519, ed25519)
    return nacl.hash.blake2b(data, digest_size=32, encoder=nacl.encoding.RawEncoder)


def fingerprint_digits(fp: bytes) -> str:
    """30 decimal digits: six 5-byte big-endian chunks, each mod 100000, zero-padded."""
    return "".join(f"{int.from_bytes(fp[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def safety_number(a: bytes, b: bytes) -> str:
    """60 digits for a pair of fingerprints: their digit strings, sorted, concatenated."""
    return "".join(sorted((fingerprint_digits(a), fingerprint_digits(b))))


def format_safety_number(number: str) -> str:
    """Twelve groups of five digits separated by spaces."""
    return " ".join(number[i : i + 5] for i in range(0, len(number), 5))


def qr_payload(number: str) -> str:
    """The text a safety-number QR code carries."""
    return f"HAVEN-SN1:{number}"
