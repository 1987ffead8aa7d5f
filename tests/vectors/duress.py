"""Vectors of the duress passphrase (protocol §18.7): both passphrases under one salt, and
the decoy's key bundle and public-key record in the account's own name."""

from __future__ import annotations

from typing import Any

from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64encode
from vault.protocol.kdf import KdfParams, derive_master_key, passphrase_keys

USERNAME = "amira.k"
PASSPHRASE = "correct horse battery staple"
DURESS = "a quite ordinary shopping list"


def _bytes(label: str, n: int) -> bytes:
    import hashlib

    return hashlib.shake_256(label.encode()).digest(n)


def duress_vectors() -> dict[str, Any]:
    """The real and duress subkeys from one salt; the decoy's wrapped bundle and record."""
    params = KdfParams(salt=_bytes("duress-salt", 16), opslimit=3, memlimit=64 << 20)
    derived = {}
    for role, passphrase in (("passphrase", PASSPHRASE), ("duress", DURESS)):
        keys = passphrase_keys(passphrase, params)
        derived[role] = {
            "passphrase": passphrase,
            "master_key": b64encode(derive_master_key(passphrase, params)),
            "auth_key": b64encode(keys.auth_key),
            "wrap_key": b64encode(keys.wrap_key),
        }
    duress_wrap = passphrase_keys(DURESS, params).wrap_key
    decoy = pkeys.KeyPairs(
        version=1,
        x25519_secret=_bytes("decoy-x25519", 32),
        ed25519_seed=_bytes("decoy-ed25519", 32),
    )
    public = decoy.public(USERNAME)
    nonce = _bytes("decoy-nonce", 24)
    return {
        "username": USERNAME,
        "kdf": {
            "alg": params.alg,
            "salt": b64encode(params.salt),
            "opslimit": params.opslimit,
            "memlimit": params.memlimit,
        },
        "passphrase": derived["passphrase"],
        "duress": derived["duress"],
        "decoy": {
            "key_version": 1,
            "x25519_secret": b64encode(decoy.x25519_secret),
            "ed25519_seed": b64encode(decoy.ed25519_seed),
            "nonce": b64encode(nonce),
            "wrapped_keys": b64encode(pkeys.wrap_bundle(decoy, USERNAME, duress_wrap, nonce)),
            "public_keys": {
                "version": 1,
                "x25519": b64encode(public.x25519),
                "ed25519": b64encode(public.ed25519),
                "signature": b64encode(public.signature),
            },
        },
    }
