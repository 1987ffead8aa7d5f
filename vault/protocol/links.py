"""Outside links of protocol v1 (docs/protocol.md §23): secret, lookup id, envelope, label.

A link secret ``L`` travels only in a URL fragment. The server sees a lookup id derived from
it and the hash of an open token derived from it and the optional passphrase; the file keys
are sealed in an envelope under a key derived from both.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions
import nacl.hash
import nacl.utils

from vault.protocol.documents import DOCUMENT_ID_BYTES, KEY_BYTES
from vault.protocol.encoding import b64decode, b64encode, frame, u32, unframe
from vault.protocol.kdf import KdfParams, derive_subkey, passphrase_keys
from vault.protocol.keys import ProtocolError

FORMAT_V1 = 1
SECRET_BYTES = 32
LOOKUP_BYTES = 32
TOKEN_BYTES = 32
NONCE_BYTES = 24
TAG_BYTES = 16
ENTRY_BYTES = DOCUMENT_ID_BYTES + KEY_BYTES  # 48: D || FK
MAX_DOCUMENTS = 20
MAX_ENVELOPE_BYTES = 1 + NONCE_BYTES + 512 + MAX_DOCUMENTS * (4 + ENTRY_BYTES) + TAG_BYTES
LABEL_BLOCK = 128
MAX_LABEL_BYTES = 64
SEALED_LABEL_BYTES = 1 + 4 + sodium.crypto_box_SEALBYTES + LABEL_BLOCK  # 181

CTX_LINK = b"haven-lk"
CTX_LINK_KEY = b"haven-le"
SUBKEY_LOOKUP = 1
SUBKEY_BASE = 2
SUBKEY_ENVELOPE = 1
SUBKEY_TOKEN = 2

LABEL_KEY = "haven/v1/link-key"
LABEL_ENVELOPE = "haven/v1/link-envelope"
LABEL_CONTENTS = "haven/v1/link-contents"
LABEL_RECIPIENT = "haven/v1/link-recipient"
FRAGMENT_PREFIX = "link="


def generate_secret() -> bytes:
    """A fresh 32-byte link secret."""
    return nacl.utils.random(SECRET_BYTES)


def lookup_id(secret: bytes) -> bytes:
    """The id the server files the link under: one-way from the secret."""
    _check_secret(secret)
    return derive_subkey(secret, SUBKEY_LOOKUP, CTX_LINK)


def _check_secret(secret: bytes) -> None:
    if len(secret) != SECRET_BYTES:
        raise ProtocolError("a link secret is 32 bytes")


@dataclass(frozen=True)
class LinkKeys:
    """The two keys a link's holder derives: the envelope key and the open token."""

    envelope_key: bytes
    token: bytes

    @property
    def token_hash(self) -> bytes:
        """What the server stores to recognise the token: BLAKE2b-256 of it."""
        return token_hash(self.token)


def token_hash(token: bytes) -> bytes:
    """BLAKE2b-256 of an open token."""
    return nacl.hash.blake2b(token, digest_size=32, encoder=nacl.encoding.RawEncoder)


def link_keys(secret: bytes, passphrase: str | None, params: KdfParams | None) -> LinkKeys:
    """Derive the envelope key and open token from the secret and the optional passphrase."""
    _check_secret(secret)
    stretched = b""
    if params is not None:
        if passphrase is None:
            raise ProtocolError("this link needs its passphrase")
        stretched = passphrase_keys(passphrase, params).auth_key
    base = derive_subkey(secret, SUBKEY_BASE, CTX_LINK)
    key = nacl.hash.blake2b(
        frame(LABEL_KEY, stretched), digest_size=32, key=base, encoder=nacl.encoding.RawEncoder
    )
    return LinkKeys(
        envelope_key=derive_subkey(key, SUBKEY_ENVELOPE, CTX_LINK_KEY),
        token=derive_subkey(key, SUBKEY_TOKEN, CTX_LINK_KEY),
    )


@dataclass(frozen=True)
class Contents:
    """What a link's envelope holds: its case and each document's id and file key."""

    case_id: str
    files: tuple[tuple[bytes, bytes], ...]

    def encode(self) -> bytes:
        """frame(contents, case_id, D1 || FK1, …)."""
        for doc_id, file_key in self.files:
            if len(doc_id) != DOCUMENT_ID_BYTES or len(file_key) != KEY_BYTES:
                raise ProtocolError("a link entry is a 16-byte id and a 32-byte key")
        if not 1 <= len(self.files) <= MAX_DOCUMENTS:
            raise ProtocolError(f"a link carries 1 to {MAX_DOCUMENTS} documents")
        return frame(LABEL_CONTENTS, self.case_id.encode(), *(d + k for d, k in self.files))

    @classmethod
    def decode(cls, data: bytes) -> Contents:
        """Parse an envelope's plaintext; refuse any other shape."""
        count = _field_count(data)
        if not 2 <= count <= MAX_DOCUMENTS + 1:
            raise ProtocolError("a link envelope holds 1 to 20 documents")
        fields = unframe(LABEL_CONTENTS, data, count)
        files = []
        for item in fields[1:]:
            if len(item) != ENTRY_BYTES:
                raise ProtocolError("a link entry is 48 bytes")
            files.append((item[:DOCUMENT_ID_BYTES], item[DOCUMENT_ID_BYTES:]))
        return cls(fields[0].decode("utf-8"), tuple(files))


def _field_count(data: bytes) -> int:
    count, offset = -1, 0
    while offset + 4 <= len(data):
        offset += 4 + int.from_bytes(data[offset : offset + 4], "big")
        count += 1
    if offset != len(data):
        raise ProtocolError("the link envelope is not a frame")
    return count


def envelope_ad(lookup: bytes) -> bytes:
    """Associated data: the envelope belongs to this lookup id only."""
    return frame(LABEL_ENVELOPE, lookup)


def seal_envelope(
    contents: Contents, keys: LinkKeys, lookup: bytes, nonce: bytes | None = None
) -> bytes:
    """0x01 || nonce (24) || XChaCha20-Poly1305(contents, ad, nonce, envelope key)."""
    nonce = nacl.utils.random(NONCE_BYTES) if nonce is None else nonce
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        contents.encode(), envelope_ad(lookup), nonce, keys.envelope_key
    )
    return bytes([FORMAT_V1]) + nonce + ct


def open_envelope(blob: bytes, keys: LinkKeys, lookup: bytes) -> Contents:
    """Decrypt an envelope; a wrong passphrase and a tampered envelope fail the same way."""
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != FORMAT_V1:
        raise ProtocolError("the link envelope has the wrong format")
    try:
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[1 + NONCE_BYTES :],
            envelope_ad(lookup),
            blob[1 : 1 + NONCE_BYTES],
            keys.envelope_key,
        )
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("the link does not open: wrong passphrase or damaged link") from exc
    return Contents.decode(plain)


def seal_label(recipient: str, x25519_public: bytes, version: int) -> bytes:
    """0x01 || u32(v) || crypto_box_seal(frame(recipient, utf8(name)) padded to 128 bytes)."""
    name = recipient.strip().encode("utf-8")
    if not 1 <= len(name) <= MAX_LABEL_BYTES:
        raise ProtocolError(f"a recipient is 1 to {MAX_LABEL_BYTES} bytes of UTF-8")
    framed = frame(LABEL_RECIPIENT, name)
    padded = framed + bytes(LABEL_BLOCK - len(framed))
    return bytes([FORMAT_V1]) + u32(version) + sodium.crypto_box_seal(padded, x25519_public)


def open_label(blob: bytes, x25519_public: bytes, x25519_secret: bytes, version: int) -> str:
    """Open a recipient label sealed to my key version."""
    if len(blob) != SEALED_LABEL_BYTES or blob[0] != FORMAT_V1:
        raise ProtocolError("the recipient label has the wrong format")
    if int.from_bytes(blob[1:5], "big") != version:
        raise ProtocolError("the recipient label is sealed to another key version")
    try:
        padded = sodium.crypto_box_seal_open(blob[5:], x25519_public, x25519_secret)
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("the recipient label does not open with my key") from exc
    size = 4 + len(LABEL_RECIPIENT) + 4
    name_len = int.from_bytes(padded[size - 4 : size], "big")
    framed_len = size + name_len
    if name_len > MAX_LABEL_BYTES or any(padded[framed_len:]):
        raise ProtocolError("the recipient label is not padded with zeros")
    return unframe(LABEL_RECIPIENT, padded[:framed_len], 1)[0].decode("utf-8")


def fragment(secret: bytes) -> str:
    """The URL fragment that carries the secret: ``link=`` and its base64url."""
    _check_secret(secret)
    return FRAGMENT_PREFIX + b64encode(secret)


def parse_link_url(url: str) -> bytes:
    """The secret from a link URL (``…/app/#link=…``) or from the fragment alone."""
    _, _, tail = url.rpartition("#")
    if not tail.startswith(FRAGMENT_PREFIX):
        raise ProtocolError("not a Haven link: no '#link=' fragment")
    secret = b64decode(tail[len(FRAGMENT_PREFIX) :])
    _check_secret(secret)
    return secret
