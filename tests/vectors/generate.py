"""Produce tests/vectors/*.json from the Python reference implementation.

Run `python -m tests.vectors.generate` to rewrite the files; the tests regenerate them in
memory and require byte-for-byte equality, and the web client's tests check every value.
All randomness is replaced by fixed inputs so the output is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing

from vault.protocol import keys as pkeys
from vault.protocol import safety
from vault.protocol.encoding import b64encode
from vault.protocol.kdf import (
    CTX_PASSPHRASE,
    CTX_RECOVERY,
    KdfParams,
    derive_master_key,
    derive_subkey,
    normalize_passphrase,
    passphrase_keys,
    recovery_keys,
)

HERE = Path(__file__).parent


def _bytes(label: str, n: int) -> bytes:
    """Deterministic filler bytes for a named input."""
    import hashlib

    return hashlib.shake_256(label.encode()).digest(n)


def accounts_vectors() -> dict[str, Any]:
    """Passphrase KDF, subkeys, recovery keys, key bundles and public key records."""
    kdf = []
    for passphrase in ("correct horse battery staple", "Ｐａｓｓｐｈｒａｓｅ ﬁve ½ café"):
        params = KdfParams(salt=_bytes("salt:" + passphrase, 16), opslimit=3, memlimit=64 << 20)
        master = derive_master_key(passphrase, params)
        keys = passphrase_keys(passphrase, params)
        kdf.append(
            {
                "passphrase": passphrase,
                "normalized_utf8": b64encode(normalize_passphrase(passphrase)),
                "alg": params.alg,
                "salt": b64encode(params.salt),
                "opslimit": params.opslimit,
                "memlimit": params.memlimit,
                "master_key": b64encode(master),
                "auth_key": b64encode(keys.auth_key),
                "wrap_key": b64encode(keys.wrap_key),
            }
        )
    subkeys = [
        {
            "key": b64encode(_bytes("kdf-key", 32)),
            "subkey_id": sid,
            "context": ctx.decode(),
            "subkey": b64encode(derive_subkey(_bytes("kdf-key", 32), sid, ctx)),
        }
        for ctx in (CTX_PASSPHRASE, CTX_RECOVERY)
        for sid in (1, 2)
    ]
    recovery_raw = _bytes("recovery", 32)
    rk = recovery_keys(recovery_raw)
    recovery = {
        "key": b64encode(recovery_raw),
        "formatted": pkeys.format_recovery_key(recovery_raw),
        "auth_key": b64encode(rk.auth_key),
        "wrap_key": b64encode(rk.wrap_key),
    }
    pairs = pkeys.KeyPairs(
        version=1, x25519_secret=_bytes("x25519", 32), ed25519_seed=_bytes("ed25519", 32)
    )
    username = "amira.k"
    wrap_key = _bytes("wrap", 32)
    nonce = _bytes("nonce", 24)
    public = pairs.public(username)
    bundle = {
        "username": username,
        "key_version": 1,
        "x25519_secret": b64encode(pairs.x25519_secret),
        "ed25519_seed": b64encode(pairs.ed25519_seed),
        "wrap_key": b64encode(wrap_key),
        "nonce": b64encode(nonce),
        "associated_data": b64encode(pkeys.bundle_ad(username, 1)),
        "wrapped": b64encode(pkeys.wrap_bundle(pairs, username, wrap_key, nonce)),
    }
    public_keys = {
        "username": username,
        "version": 1,
        "x25519": b64encode(public.x25519),
        "ed25519": b64encode(public.ed25519),
        "signed_message": b64encode(
            pkeys.public_keys_message(username, 1, public.x25519, public.ed25519)
        ),
        "signature": b64encode(public.signature),
    }
    return {
        "kdf": kdf,
        "subkeys": subkeys,
        "recovery_key": recovery,
        "key_bundle": bundle,
        "public_keys": public_keys,
    }


def safety_vectors() -> dict[str, Any]:
    """Fingerprints and safety numbers of two accounts."""
    people = []
    for name in ("alice", "bob"):
        x = _bytes("x:" + name, 32)
        ed = bytes(nacl.signing.SigningKey(_bytes("ed:" + name, 32)).verify_key)
        fp = safety.fingerprint(f"id-{name}", 1, x, ed)
        people.append(
            {
                "user_id": f"id-{name}",
                "version": 1,
                "x25519": b64encode(x),
                "ed25519": b64encode(ed),
                "fingerprint": b64encode(fp),
                "digits": safety.fingerprint_digits(fp),
            }
        )
    a, b = (safety.fingerprint(p["user_id"], 1, *_decode(p)) for p in people)
    number = safety.safety_number(a, b)
    return {
        "accounts": people,
        "safety_number": number,
        "formatted": safety.format_safety_number(number),
        "qr_payload": safety.qr_payload(number),
    }


def _decode(p: dict[str, Any]) -> tuple[bytes, bytes]:
    from vault.protocol.encoding import b64decode

    return b64decode(p["x25519"]), b64decode(p["ed25519"])


GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    "accounts": accounts_vectors,
    "safety": safety_vectors,
    # -- feature vectors --
    "messages": lambda: __import__("tests.vectors.messages", fromlist=["_"]).messages_vectors(),
    "documents": lambda: __import__("tests.vectors.documents", fromlist=["_"]).documents_vectors(),
    "contacts": lambda: __import__("tests.vectors.contacts", fromlist=["_"]).contacts_vectors(),
    "duress": lambda: __import__("tests.vectors.duress", fromlist=["_"]).duress_vectors(),
    "links": lambda: __import__("tests.vectors.links", fromlist=["_"]).links_vectors(),
    "shares": lambda: __import__("tests.vectors.shares", fromlist=["_"]).shares_vectors(),
    "passkeys": lambda: __import__("tests.vectors.passkeys", fromlist=["_"]).passkeys_vectors(),
    "intake": lambda: __import__("tests.vectors.intake", fromlist=["_"]).intake_vectors(),
    "checkpoint": lambda: __import__(
        "tests.vectors.checkpoint", fromlist=["_"]
    ).checkpoint_vectors(),
}


def render(name: str) -> str:
    """The JSON text of one vector file."""
    body = {"protocol": 1, "name": name, **GENERATORS[name]()}
    return json.dumps(body, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> None:
    """Write every vector file."""
    for name in GENERATORS:
        (HERE / f"{name}.json").write_text(render(name), encoding="utf-8")


if __name__ == "__main__":
    main()
