"""Message envelopes of protocol v1 (docs/protocol.md §9).

A fresh 32-byte key per message encrypts the padded text with XChaCha20-Poly1305, the
canonical header as associated data; the key is sealed (crypto_box_seal) to every
recipient, the sender included; the sender signs header, body and sealed keys with
Ed25519. Pure functions over bytes: the server and the Python client share them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings as sodium
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.signing
import nacl.utils

from vault.protocol.encoding import b64decode, b64encode, frame, lp, u32, u64
from vault.protocol.keys import KeyPairs, ProtocolError, PublicKeys

FORMAT_V1 = 1
LABEL_HEADER = "haven/v1/message-header"
LABEL_SIGNED = "haven/v1/message"
MESSAGE_ID_BYTES = 16
MESSAGE_KEY_BYTES = 32
NONCE_BYTES = 24
TAG_BYTES = 16
PAD_BLOCK = 256
SEALED_KEY_BYTES = 1 + sodium.crypto_box_SEALBYTES + MESSAGE_KEY_BYTES  # 81
SIGNATURE_BYTES = 64
MIN_BODY_BYTES = 1 + NONCE_BYTES + PAD_BLOCK + TAG_BYTES  # 297
MAX_RECIPIENTS = 32
MAX_ATTACHMENTS = 16
MAX_ID_CHARS = 64
# Disappearing-message timers a conversation may use, in seconds (0 = off).
TIMERS = (0, 3600, 86400, 7 * 86400, 30 * 86400)


@dataclass(frozen=True, order=True)
class Recipient:
    """A member the message key is sealed to, at the key version used."""

    user_id: str
    key_version: int


@dataclass(frozen=True)
class Header:
    """Everything the body's associated data and the signature bind a message to."""

    conversation_id: str
    message_id: bytes
    sender_id: str
    sender_key_version: int
    sent_at: int
    ttl: int
    recipients: tuple[Recipient, ...]
    attachments: tuple[str, ...] = field(default=())

    def check(self) -> None:
        """Refuse headers that are not canonical: sizes, ranges, sorted unique recipients."""
        for name, value in (
            ("conversation id", self.conversation_id),
            ("sender id", self.sender_id),
        ):
            if not value or len(value.encode("utf-8")) > MAX_ID_CHARS:
                raise ProtocolError(f"{name} must be 1-{MAX_ID_CHARS} bytes")
        if len(self.message_id) != MESSAGE_ID_BYTES:
            raise ProtocolError(f"message id must be {MESSAGE_ID_BYTES} bytes")
        if not 1 <= self.sender_key_version < 2**31:
            raise ProtocolError("sender key version out of range")
        if not 0 <= self.sent_at < 2**63:
            raise ProtocolError("sent_at out of range")
        if self.ttl not in TIMERS:
            raise ProtocolError(f"ttl must be one of {TIMERS}")
        if not 1 <= len(self.recipients) <= MAX_RECIPIENTS:
            raise ProtocolError(f"a message has 1 to {MAX_RECIPIENTS} recipients")
        ids = [r.user_id for r in self.recipients]
        if [i.encode() for i in ids] != sorted({i.encode() for i in ids}):
            raise ProtocolError("recipients must be sorted by user id, without duplicates")
        for r in self.recipients:
            if not r.user_id or len(r.user_id.encode("utf-8")) > MAX_ID_CHARS:
                raise ProtocolError(f"recipient ids must be 1-{MAX_ID_CHARS} bytes")
            if not 1 <= r.key_version < 2**31:
                raise ProtocolError("recipient key version out of range")
        if self.sender_id not in ids:
            raise ProtocolError("the sender must be one of the recipients")
        sender = next(r for r in self.recipients if r.user_id == self.sender_id)
        if sender.key_version != self.sender_key_version:
            raise ProtocolError("the sender's own copy must use the sender's key version")
        docs = [a.encode("utf-8") for a in self.attachments]
        if len(docs) > MAX_ATTACHMENTS or docs != sorted(set(docs)):
            raise ProtocolError("attachments must be sorted, unique and at most 16")
        if any(not d or len(d) > MAX_ID_CHARS for d in docs):
            raise ProtocolError(f"attachment ids must be 1-{MAX_ID_CHARS} bytes")

    def encode(self) -> bytes:
        """The canonical header bytes: the AEAD associated data, and the signed prefix."""
        recipients = u32(len(self.recipients)) + b"".join(
            lp(r.user_id.encode("utf-8")) + u32(r.key_version) for r in self.recipients
        )
        attachments = u32(len(self.attachments)) + b"".join(
            lp(a.encode("utf-8")) for a in self.attachments
        )
        return frame(
            LABEL_HEADER,
            bytes([FORMAT_V1]),
            self.conversation_id.encode("utf-8"),
            self.message_id,
            self.sender_id.encode("utf-8"),
            u32(self.sender_key_version),
            u64(self.sent_at),
            u32(self.ttl),
            recipients,
            attachments,
        )

    def recipient_index(self, user_id: str) -> int:
        """Position of a recipient (and of its sealed key), or ProtocolError."""
        for i, r in enumerate(self.recipients):
            if r.user_id == user_id:
                return i
        raise ProtocolError("this message was not sealed to this account")


@dataclass(frozen=True)
class Envelope:
    """A complete message: header, body ciphertext, one sealed key per recipient, signature."""

    header: Header
    body: bytes
    sealed_keys: tuple[bytes, ...]
    signature: bytes

    def check(self, max_body: int | None = None) -> None:
        """Check shapes and format bytes (not the signature)."""
        self.header.check()
        if len(self.body) < MIN_BODY_BYTES or self.body[0] != FORMAT_V1:
            raise ProtocolError("body has the wrong format")
        if (len(self.body) - 1 - NONCE_BYTES - TAG_BYTES) % PAD_BLOCK:
            raise ProtocolError("body is not padded to 256-byte blocks")
        if max_body is not None and len(self.body) > max_body:
            raise ProtocolError(f"body is larger than {max_body} bytes")
        if len(self.sealed_keys) != len(self.header.recipients):
            raise ProtocolError("one sealed key per recipient, in recipient order")
        for key in self.sealed_keys:
            if len(key) != SEALED_KEY_BYTES or key[0] != FORMAT_V1:
                raise ProtocolError("a sealed key has the wrong format")
        if len(self.signature) != SIGNATURE_BYTES:
            raise ProtocolError("signature must be 64 bytes")

    def signed_message(self) -> bytes:
        """The exact bytes the sender signs."""
        return signed_message(self.header, self.body, self.sealed_keys)

    def digest(self) -> bytes:
        """BLAKE2b-256 of the signed bytes and signature: equal digests, identical envelopes."""
        return nacl.hash.blake2b(
            self.signed_message() + self.signature,
            digest_size=32,
            encoder=nacl.encoding.RawEncoder,
        )

    def verify(self, sender: PublicKeys) -> None:
        """Check the Ed25519 signature against the sender's published key of that version."""
        if sender.version != self.header.sender_key_version:
            raise ProtocolError("the sender key version does not match the header")
        try:
            nacl.signing.VerifyKey(sender.ed25519).verify(self.signed_message(), self.signature)
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise ProtocolError("the message signature does not verify") from exc


def signed_message(header: Header, body: bytes, sealed_keys: Sequence[bytes]) -> bytes:
    """frame("haven/v1/message", header, body, sealed key 1, ..., sealed key n)."""
    return frame(LABEL_SIGNED, header.encode(), body, *sealed_keys)


def new_message_id() -> bytes:
    """A fresh random 16-byte message id, chosen by the sending client."""
    return nacl.utils.random(MESSAGE_ID_BYTES)


def encrypt_body(header: Header, text: str, message_key: bytes, nonce: bytes) -> bytes:
    """0x01 || nonce || XChaCha20-Poly1305(sodium_pad(utf8(text), 256), ad = header)."""
    if len(message_key) != MESSAGE_KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("a message key is 32 bytes and a nonce 24")
    padded = sodium.sodium_pad(text.encode("utf-8"), PAD_BLOCK)
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        padded, header.encode(), nonce, message_key
    )
    return bytes([FORMAT_V1]) + nonce + ct


def decrypt_body(header: Header, body: bytes, message_key: bytes) -> str:
    """Open a body; ProtocolError unless it authenticates under this exact header."""
    if len(body) < MIN_BODY_BYTES or body[0] != FORMAT_V1:
        raise ProtocolError("body has the wrong format")
    nonce, ct = body[1 : 1 + NONCE_BYTES], body[1 + NONCE_BYTES :]
    try:
        padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct, header.encode(), nonce, message_key
        )
        text = sodium.sodium_unpad(padded, PAD_BLOCK)
        return text.decode("utf-8")
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise ProtocolError("the message body does not decrypt under its header") from exc


def seal_key(message_key: bytes, x25519_public: bytes) -> bytes:
    """0x01 || crypto_box_seal(message key, recipient X25519 public key)."""
    return bytes([FORMAT_V1]) + sodium.crypto_box_seal(message_key, x25519_public)


def open_key(sealed: bytes, keys: KeyPairs) -> bytes:
    """Recover a message key sealed to this key pair."""
    if len(sealed) != SEALED_KEY_BYTES or sealed[0] != FORMAT_V1:
        raise ProtocolError("a sealed key has the wrong format")
    box = keys.box_key
    try:
        key = sodium.crypto_box_seal_open(sealed[1:], bytes(box.public_key), bytes(box))
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("the message key was not sealed to this key") from exc
    if len(key) != MESSAGE_KEY_BYTES:
        raise ProtocolError("a message key is 32 bytes")
    return key


def sign(header: Header, body: bytes, sealed_keys: Sequence[bytes], keys: KeyPairs) -> Envelope:
    """Sign an envelope with the sender's Ed25519 key of the header's key version."""
    if keys.version != header.sender_key_version:
        raise ProtocolError("signing key version does not match the header")
    sealed = tuple(sealed_keys)
    signature = keys.signing_key.sign(signed_message(header, body, sealed)).signature
    return Envelope(header, body, sealed, signature)


def compose(header: Header, text: str, sender: KeyPairs, x25519: Mapping[str, bytes]) -> Envelope:
    """Encrypt ``text`` under a fresh key, seal that key to every recipient, and sign.

    ``x25519`` maps each recipient's user id to its X25519 public key of the version the
    header names; the caller has checked those keys against their self-signatures.
    """
    header.check()
    message_key = nacl.utils.random(MESSAGE_KEY_BYTES)
    body = encrypt_body(header, text, message_key, nacl.utils.random(NONCE_BYTES))
    sealed = [seal_key(message_key, x25519[r.user_id]) for r in header.recipients]
    return sign(header, body, sealed, sender)


def open_envelope(
    envelope: Envelope,
    user_id: str,
    keys: KeyPairs,
    sender: PublicKeys,
    reseal: tuple[int, bytes] | None = None,
) -> str:
    """Verify the signature, then decrypt the text with this account's sealed key.

    ``reseal`` is (key version, sealed key) when the account re-sealed this message's key
    after a key rotation (§14); it replaces the account's entry in ``recipients``. It
    needs no signature: only the true message key decrypts the body under the header.
    """
    envelope.check()
    envelope.verify(sender)
    index = envelope.header.recipient_index(user_id)
    if reseal is not None:
        version, sealed = reseal
    else:
        version, sealed = envelope.header.recipients[index].key_version, envelope.sealed_keys[index]
    if version != keys.version:
        raise ProtocolError("sealed to a key version this device does not hold")
    message_key = open_key(sealed, keys)
    return decrypt_body(envelope.header, envelope.body, message_key)


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    """The JSON body that sends an envelope."""
    header = envelope.header
    return {
        "id": b64encode(header.message_id),
        "conversation_id": header.conversation_id,
        "sender_id": header.sender_id,
        "sender_key_version": header.sender_key_version,
        "sent_at": header.sent_at,
        "ttl": header.ttl,
        "recipients": [
            {"user_id": r.user_id, "key_version": r.key_version, "sealed_key": b64encode(k)}
            for r, k in zip(header.recipients, envelope.sealed_keys, strict=True)
        ],
        "attachments": list(header.attachments),
        "body": b64encode(envelope.body),
        "signature": b64encode(envelope.signature),
    }


def parse_envelope(data: dict[str, Any]) -> Envelope:
    """Rebuild an envelope from its JSON; ProtocolError for anything malformed."""
    try:
        recipients = data["recipients"]
        header = Header(
            conversation_id=str(data["conversation_id"]),
            message_id=b64decode(data["id"]),
            sender_id=str(data["sender_id"]),
            sender_key_version=int(data["sender_key_version"]),
            sent_at=int(data["sent_at"]),
            ttl=int(data["ttl"]),
            recipients=tuple(
                Recipient(str(r["user_id"]), int(r["key_version"])) for r in recipients
            ),
            attachments=tuple(str(a) for a in data.get("attachments") or ()),
        )
        envelope = Envelope(
            header,
            b64decode(data["body"]),
            tuple(b64decode(r["sealed_key"]) for r in recipients),
            b64decode(data["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed envelope: {exc}") from exc
    envelope.check()
    return envelope


def json_bytes(envelope: Envelope) -> bytes:
    """An envelope as compact UTF-8 JSON: the bytes a sealed record carries (§28.3)."""
    return json.dumps(envelope_json(envelope), separators=(",", ":")).encode("utf-8")


def parse_record(data: bytes) -> Envelope:
    """An envelope from the bytes of ``json_bytes``; ProtocolError for anything else."""
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("a record is UTF-8 JSON") from exc
    if not isinstance(parsed, dict):
        raise ProtocolError("a record is a JSON object")
    return parse_envelope(parsed)
