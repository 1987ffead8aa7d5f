"""Vectors of outside links (protocol §23.9): lookup id, keys with and without a passphrase,
the envelope of two documents, and a recipient label's padded plaintext."""

from __future__ import annotations

import hashlib
from typing import Any

from vault.protocol import links as plink
from vault.protocol.encoding import b64encode, frame
from vault.protocol.kdf import KdfParams

PASSPHRASE = "river stones at dawn 1987"
CASE_ID = "AL_jbjVgjN9m_p4HAKpUTw"
RECIPIENT = "Oficina de inmigración, Miami"


def _bytes(label: str, n: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(n)


def links_vectors() -> dict[str, Any]:
    """Every value a link's client derives from fixed inputs."""
    secret = _bytes("link-secret", 32)
    lookup = plink.lookup_id(secret)
    params = KdfParams(salt=_bytes("link-salt", 16), opslimit=3, memlimit=64 << 20)
    plain = plink.link_keys(secret, None, None)
    guarded = plink.link_keys(secret, PASSPHRASE, params)
    files = tuple((_bytes(f"doc-id-{i}", 16), _bytes(f"file-key-{i}", 32)) for i in (1, 2))
    contents = plink.Contents(CASE_ID, files)
    nonce = _bytes("link-nonce", 24)
    framed = frame(plink.LABEL_RECIPIENT, RECIPIENT.encode())
    return {
        "secret": b64encode(secret),
        "fragment": plink.fragment(secret),
        "lookup_id": b64encode(lookup),
        "without_passphrase": {
            "envelope_key": b64encode(plain.envelope_key),
            "token": b64encode(plain.token),
            "token_hash": b64encode(plain.token_hash),
        },
        "with_passphrase": {
            "passphrase": PASSPHRASE,
            "kdf": {
                "alg": params.alg,
                "salt": b64encode(params.salt),
                "opslimit": params.opslimit,
                "memlimit": params.memlimit,
            },
            "envelope_key": b64encode(guarded.envelope_key),
            "token": b64encode(guarded.token),
            "token_hash": b64encode(guarded.token_hash),
        },
        "envelope": {
            "case_id": CASE_ID,
            "documents": [{"id": b64encode(d), "file_key": b64encode(k)} for d, k in files],
            "contents": b64encode(contents.encode()),
            "nonce": b64encode(nonce),
            "sealed_with_passphrase": b64encode(
                plink.seal_envelope(contents, guarded, lookup, nonce)
            ),
        },
        "label": {
            "recipient": RECIPIENT,
            "padded": b64encode(framed + bytes(plink.LABEL_BLOCK - len(framed))),
        },
    }
