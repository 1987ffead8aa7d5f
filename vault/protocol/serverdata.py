"""Server-side sealing of identifiers (usernames) under the versioned data key.

The server, not the client, holds this key: it protects identifiers in a stolen
database or backup, not from the operator. Every sealed value names its key version.
"""

from __future__ import annotations

from functools import lru_cache

import nacl.bindings as sodium
import nacl.exceptions
import nacl.hash
import nacl.utils

from vault.protocol.encoding import frame, u32
from vault.protocol.kdf import derive_subkey

FORMAT_V1 = 1
CTX_DATA = b"haven-dk"
SUBKEY_LOOKUP = 1
SUBKEY_SEAL = 2
SUBKEY_DECOY = 3
LABEL_IDENTIFIER = "haven/v1/identifier"


@lru_cache(maxsize=16)
def _subkey(data_key: bytes, subkey_id: int) -> bytes:
    """A data key's subkey, derived once per key and purpose rather than per row."""
    return derive_subkey(data_key, subkey_id, CTX_DATA)


def forget_derived() -> None:
    """Drop every cached subkey (and the data keys they are cached under): keys changed."""
    _subkey.cache_clear()


@lru_cache(maxsize=64)
def _associated(header: bytes, kind: str) -> bytes:
    """The associated data of a sealed identifier, framed once per key version and kind."""
    return frame(LABEL_IDENTIFIER, header, kind.encode("ascii"))


class SealError(ValueError):
    """A sealed identifier is malformed or does not authenticate."""


def lookup_hash(data_key: bytes, value: str) -> bytes:
    """Keyed BLAKE2b of an identifier, for equality lookups without the plaintext."""
    key = _subkey(data_key, SUBKEY_LOOKUP)
    return nacl.hash.blake2b(
        value.encode("utf-8"), digest_size=32, key=key, encoder=nacl.encoding.RawEncoder
    )


def decoy_salt(data_key: bytes, value: str) -> bytes:
    """A stable 16-byte salt for names that have no account, so pre-login reveals nothing."""
    key = _subkey(data_key, SUBKEY_DECOY)
    return nacl.hash.blake2b(
        value.encode("utf-8"), digest_size=16, key=key, encoder=nacl.encoding.RawEncoder
    )


def seal_identifier(data_key: bytes, version: int, kind: str, value: str) -> bytes:
    """Encrypt an identifier: 0x01 || u32 key version || nonce || XChaCha20-Poly1305."""
    key = _subkey(data_key, SUBKEY_SEAL)
    nonce = nacl.utils.random(24)
    header = bytes([FORMAT_V1]) + u32(version)
    ad = _associated(header, kind)
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(value.encode("utf-8"), ad, nonce, key)
    return header + nonce + ct


def sealed_version(blob: bytes) -> int:
    """The data key version a sealed identifier names."""
    if len(blob) < 5 + 24 + 16 or blob[0] != FORMAT_V1:
        raise SealError("sealed identifier has the wrong format")
    return int.from_bytes(blob[1:5], "big")


def open_identifier(data_key: bytes, kind: str, blob: bytes) -> str:
    """Decrypt an identifier sealed by seal_identifier with the key of its version."""
    sealed_version(blob)
    key = _subkey(data_key, SUBKEY_SEAL)
    header, nonce, ct = blob[:5], blob[5:29], blob[29:]
    ad = _associated(header, kind)
    try:
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, ad, nonce, key)
    except nacl.exceptions.CryptoError as exc:
        raise SealError("sealed identifier does not authenticate") from exc
    return plain.decode("utf-8")
