"""Test vectors of the message envelope (docs/protocol.md §9), from fixed inputs only.

The message key, the body nonce and each sealed box's ephemeral key are fixed here; in
real use they are random. A sealed box is built exactly as libsodium's crypto_box_seal
builds it (ephemeral public key, then crypto_box_easy under the nonce
BLAKE2b-192(ephemeral public key || recipient public key)), so it is reproducible and
opens with crypto_box_seal_open. Ed25519 signatures are deterministic.
"""

from __future__ import annotations

import hashlib
from typing import Any

import nacl.bindings as sodium
import nacl.encoding
import nacl.hash

from vault.client.messages import envelope_json
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64encode


def _bytes(label: str, n: int) -> bytes:
    """Deterministic filler bytes for a named input (as in generate.py)."""
    return hashlib.shake_256(label.encode()).digest(n)


def _seal(message: bytes, recipient: bytes, ephemeral_secret: bytes) -> bytes:
    """0x01 || crypto_box_seal with a chosen ephemeral key (vectors only)."""
    ephemeral_public = sodium.crypto_scalarmult_base(ephemeral_secret)
    nonce = nacl.hash.blake2b(
        ephemeral_public + recipient, digest_size=24, encoder=nacl.encoding.RawEncoder
    )
    boxed = sodium.crypto_box(message, nonce, recipient, ephemeral_secret)
    return bytes([pmsg.FORMAT_V1]) + ephemeral_public + boxed


def _person(name: str) -> tuple[str, pkeys.KeyPairs, pkeys.PublicKeys]:
    keys = pkeys.KeyPairs(1, _bytes(f"msg-x25519:{name}", 32), _bytes(f"msg-ed25519:{name}", 32))
    return f"id-{name}", keys, keys.public(name)


CASES = [
    ("plain", "I am safe. Can we meet on Tuesday?", 0, ()),
    ("unicode and timer", "Mi pasaporte está con él — ¿qué hago? 🙏", 3600, ()),
    ("empty", "", 86400, ()),
    ("attachments", "Here is my visa page.", 0, ("doc-a", "doc-b")),
    # Text of exactly 256 bytes: sodium_pad always appends 0x80, so it takes a second block.
    ("exactly 256 bytes", "Necesito ayuda. " * 16, 0, ()),
]


def messages_vectors() -> dict[str, Any]:
    """A sender and two other recipients, and envelopes between them."""
    people = {name: _person(name) for name in ("amira", "counsel.rivera", "counsel.osei")}
    sender_id, sender_keys, sender_public = people["amira"]
    recipients = sorted(
        (pmsg.Recipient(uid, keys.version) for uid, keys, _ in people.values()),
        key=lambda r: r.user_id.encode(),
    )
    x25519 = {uid: pub.x25519 for uid, _, pub in people.values()}
    envelopes = []
    for i, (label, text, ttl, attachments) in enumerate(CASES):
        header = pmsg.Header(
            conversation_id="conv-Zx81",
            message_id=_bytes(f"msg-id:{label}", 16),
            sender_id=sender_id,
            sender_key_version=1,
            sent_at=1_795_000_000_000 + i * 1000,
            ttl=ttl,
            recipients=tuple(recipients),
            attachments=attachments,
        )
        header.check()
        message_key = _bytes(f"msg-key:{label}", 32)
        nonce = _bytes(f"msg-nonce:{label}", 24)
        body = pmsg.encrypt_body(header, text, message_key, nonce)
        ephemerals = [_bytes(f"msg-eph:{label}:{r.user_id}", 32) for r in recipients]
        sealed = [
            _seal(message_key, x25519[r.user_id], e)
            for r, e in zip(recipients, ephemerals, strict=True)
        ]
        envelope = pmsg.sign(header, body, sealed, sender_keys)
        envelope.check()
        envelopes.append(
            {
                "label": label,
                "text": text,
                "message_key": b64encode(message_key),
                "nonce": b64encode(nonce),
                "padded_plaintext": b64encode(
                    sodium.sodium_pad(text.encode("utf-8"), pmsg.PAD_BLOCK)
                ),
                "ephemeral_secrets": [b64encode(e) for e in ephemerals],
                "header": b64encode(header.encode()),
                "signed_message": b64encode(envelope.signed_message()),
                "envelope": envelope_json(envelope),
            }
        )
    return {
        "sender": {
            "user_id": sender_id,
            "username": "amira",
            "x25519": b64encode(sender_public.x25519),
            "ed25519": b64encode(sender_public.ed25519),
            "signature": b64encode(sender_public.signature),
        },
        "recipients": [
            {
                "user_id": uid,
                "username": name,
                "x25519_secret": b64encode(keys.x25519_secret),
                "ed25519_seed": b64encode(keys.ed25519_seed),
                "x25519": b64encode(pub.x25519),
            }
            for name, (uid, keys, pub) in people.items()
        ],
        "envelopes": envelopes,
    }
