"""Passphrase and key derivations of protocol v1."""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.hash

ARGON2ID = "argon2id13"
SALT_BYTES = 16
KEY_BYTES = 32
# Floors every client enforces: a server that asks for less is refused.
MIN_OPSLIMIT = 3
MIN_MEMLIMIT = 64 * 1024 * 1024
# Ceilings keep a hostile server from making an old phone allocate without bound.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT = 1024 * 1024 * 1024
DEFAULT_OPSLIMIT = 3
DEFAULT_MEMLIMIT = 64 * 1024 * 1024
MIN_PASSPHRASE_CHARS = 12
MAX_PASSPHRASE_BYTES = 1024

CTX_PASSPHRASE = b"haven-pw"
CTX_RECOVERY = b"haven-rk"
SUBKEY_AUTH = 1
SUBKEY_WRAP = 2


class WeakParameters(ValueError):
    """Raised when KDF parameters are below the protocol floor or above its ceiling."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters stored per user."""

    salt: bytes
    opslimit: int = DEFAULT_OPSLIMIT
    memlimit: int = DEFAULT_MEMLIMIT
    alg: str = ARGON2ID

    def check(self) -> None:
        """Refuse parameters weaker than the protocol floor or beyond its ceiling."""
        if self.alg != ARGON2ID:
            raise WeakParameters(f"unsupported KDF {self.alg!r}")
        if len(self.salt) != SALT_BYTES:
            raise WeakParameters("salt must be 16 bytes")
        if not MIN_OPSLIMIT <= self.opslimit <= MAX_OPSLIMIT:
            raise WeakParameters(f"opslimit must be within {MIN_OPSLIMIT}..{MAX_OPSLIMIT}")
        if not MIN_MEMLIMIT <= self.memlimit <= MAX_MEMLIMIT or self.memlimit % 1024:
            raise WeakParameters("memlimit must be a multiple of 1 KiB within 64 MiB..1 GiB")


def normalize_passphrase(passphrase: str) -> bytes:
    """NFKC-normalise a passphrase and encode it as UTF-8."""
    return unicodedata.normalize("NFKC", passphrase).encode("utf-8")


def check_passphrase_strength(passphrase: str) -> None:
    """Refuse passphrases shorter than the minimum after normalisation."""
    normalized = unicodedata.normalize("NFKC", passphrase)
    if len(normalized) < MIN_PASSPHRASE_CHARS:
        raise WeakParameters(f"passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    if len(normalized.encode("utf-8")) > MAX_PASSPHRASE_BYTES:
        raise WeakParameters("passphrase is too long")


def derive_master_key(passphrase: str, params: KdfParams) -> bytes:
    """Stretch a passphrase with Argon2id into the 32-byte master key."""
    params.check()
    return sodium.crypto_pwhash_alg(
        KEY_BYTES,
        normalize_passphrase(passphrase),
        params.salt,
        params.opslimit,
        params.memlimit,
        sodium.crypto_pwhash_ALG_ARGON2ID13,
    )


def derive_subkey(key: bytes, subkey_id: int, context: bytes, length: int = KEY_BYTES) -> bytes:
    """libsodium crypto_kdf_derive_from_key (BLAKE2b with salt = id, personal = context)."""
    if len(key) != KEY_BYTES or len(context) != 8:
        raise ValueError("crypto_kdf needs a 32-byte key and an 8-byte context")
    salt = struct.pack("<Q", subkey_id) + bytes(8)
    person = context + bytes(8)
    return nacl.hash.blake2b(
        b"", digest_size=length, key=key, salt=salt, person=person, encoder=nacl.encoding.RawEncoder
    )


@dataclass(frozen=True)
class AccountKeys:
    """The two subkeys derived from a master key or a recovery key."""

    auth_key: bytes
    wrap_key: bytes


def passphrase_keys(passphrase: str, params: KdfParams) -> AccountKeys:
    """Derive the authentication and wrapping subkeys from a passphrase."""
    master = derive_master_key(passphrase, params)
    return AccountKeys(
        auth_key=derive_subkey(master, SUBKEY_AUTH, CTX_PASSPHRASE),
        wrap_key=derive_subkey(master, SUBKEY_WRAP, CTX_PASSPHRASE),
    )


def recovery_keys(recovery_key: bytes) -> AccountKeys:
    """Derive the authentication and wrapping subkeys from a 32-byte recovery key."""
    return AccountKeys(
        auth_key=derive_subkey(recovery_key, SUBKEY_AUTH, CTX_RECOVERY),
        wrap_key=derive_subkey(recovery_key, SUBKEY_WRAP, CTX_RECOVERY),
    )
