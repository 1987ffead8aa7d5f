"""Vectors of split recovery (protocol §22): Shamir shares made by each client and read by
both, the share payload, its commitment, the setup signature, the printed share and the
recovery request key."""

from __future__ import annotations

import hashlib
from itertools import combinations
from typing import Any

import nacl.signing

from vault.protocol import shares as pshares
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.kdf import KdfParams, derive_master_key

USERNAME = "amira.k"
NEW_PASSPHRASE = "a new passphrase after losing both"

# Made once by pyshamir.split and once by shamir-secret-sharing's split (web/), from the
# secret below; splitting is random, so the shares are inputs and combining them is checked.
PYTHON_SHARES = [
    "PAu3WUf2niFHhWUdJ8qA4YOTHgIGkXlm-9JhUZr_EV0o",
    "tj4c8xpZdlDm_4r7JzqsZf95Mk_LpbkotjZYM6njn9jz",
    "o_9Z0oqX93JmfCw0J6wePj8wgMWRAAEOPDEfpyt_Aefw",
]
JS_SHARES = [
    "y3VSMuF0SnUIV9DE3eJKj6s5BR3HcZ42OeBOVWEY7hEx",
    "jPWJedRAw70aubuWesOcC8W3PgHOxJjv9Rgy7M40TDZw",
    "HjY7M8NFggIFHIdlsafkgKOI1eJMEPR5AupL4JWa3T6O",
]


def _bytes(label: str, n: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(n)


def _pairs(shares: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "shares": [a, b],
            "secret": b64encode(pshares.combine_shares([b64decode(a), b64decode(b)])),
        }
        for a, b in combinations(shares, 2)
    ]


def shares_vectors() -> dict[str, Any]:
    """Shamir pairs of both clients, a payload, commitments, setup signature, printed form."""
    secret = _bytes("shares-secret", 32)
    setup_id = _bytes("shares-setup-id", 16)
    python = [b64decode(s) for s in PYTHON_SHARES]
    payloads = [pshares.SharePayload(setup_id, slot, python[slot - 1]) for slot in (2, 3)]
    commitments = [pshares.commitment(USERNAME, setup_id, p.slot, p.share) for p in payloads]
    signer = nacl.signing.SigningKey(_bytes("shares-ed25519", 32))
    message = pshares.setup_message(USERNAME, setup_id, 1, commitments)
    params = KdfParams(salt=_bytes("shares-request-salt", 16), opslimit=3, memlimit=64 << 20)
    master = derive_master_key(NEW_PASSPHRASE, params)
    return {
        "secret": b64encode(secret),
        "python_pairs": _pairs(PYTHON_SHARES),
        "js_pairs": _pairs(JS_SHARES),
        "username": USERNAME,
        "setup_id": b64encode(setup_id),
        "key_version": 1,
        "payloads": [
            {
                "slot": p.slot,
                "share": b64encode(p.share),
                "payload": b64encode(p.encode()),
                "commitment": b64encode(c),
                "printed": pshares.format_printed(p),
            }
            for p, c in zip(payloads, commitments, strict=True)
        ],
        "ed25519_seed": b64encode(bytes(signer)),
        "setup_message": b64encode(message),
        "setup_signature": b64encode(signer.sign(message).signature),
        "request": {
            "passphrase": NEW_PASSPHRASE,
            "kdf": {
                "alg": params.alg,
                "salt": b64encode(params.salt),
                "opslimit": params.opslimit,
                "memlimit": params.memlimit,
            },
            "master_key": b64encode(master),
            "x25519_secret": b64encode(bytes(pshares.request_key(master))),
            "x25519_public": b64encode(bytes(pshares.request_key(master).public_key)),
            "auth_key": b64encode(pshares.request_auth_key(master)),
        },
    }
