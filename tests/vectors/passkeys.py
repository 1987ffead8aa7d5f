"""Vectors of the PRF way in (protocol §21.9): PRF output → wrap key → wrapped key bundle."""

from __future__ import annotations

import hashlib
from typing import Any

from vault.protocol import keys as pkeys
from vault.protocol import passkeys
from vault.protocol.encoding import b64encode

USERNAME = "amira.k"


def _bytes(label: str, n: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(n)


def passkeys_vectors() -> dict[str, Any]:
    """The PRF input, an output, the key it derives, and a bundle wrapped under it."""
    prf_output = _bytes("prf-output", 32)
    wrap_key = passkeys.prf_wrap_key(prf_output)
    keys = pkeys.KeyPairs(
        version=2, x25519_secret=_bytes("pk-x25519", 32), ed25519_seed=_bytes("pk-ed25519", 32)
    )
    nonce = _bytes("pk-nonce", 24)
    return {
        "username": USERNAME,
        "prf_input": b64encode(passkeys.PRF_INPUT),
        "prf_output": b64encode(prf_output),
        "wrap_key": b64encode(wrap_key),
        "key_version": keys.version,
        "x25519_secret": b64encode(keys.x25519_secret),
        "ed25519_seed": b64encode(keys.ed25519_seed),
        "nonce": b64encode(nonce),
        "wrapped_keys": b64encode(pkeys.wrap_bundle(keys, USERNAME, wrap_key, nonce)),
    }
