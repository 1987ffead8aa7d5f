"""Document format of protocol v1 (docs/protocol.md §8): content, metadata, signature, keys.

A document has one random 32-byte file key. Three subkeys come from it: the secretstream
key for the content, the AEAD key for the metadata, and a commitment that identifies the
key (and pins it: secretstream and Poly1305 alone are not key-committing). The content is
secretstream XChaCha20-Poly1305 in 64 KiB plaintext chunks, the last one tagged FINAL.
The uploader signs everything the server stores about the document; the file key is
sealed (crypto_box_seal) to each reader's X25519 key.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from vault.protocol.encoding import b64decode, frame, u32, u64
from vault.protocol.kdf import derive_subkey
from vault.protocol.keys import KeyPairs, ProtocolError

FORMAT_V1 = 1
KEY_BYTES = 32
DOCUMENT_ID_BYTES = 16
COMMITMENT_BYTES = 32
NONCE_BYTES = 24
AEAD_TAG_BYTES = 16
SIGNATURE_BYTES = 64

CHUNK_PLAINTEXT_BYTES = 64 * 1024
STREAM_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES  # 24
CHUNK_OVERHEAD_BYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES  # 17: tag + MAC
CHUNK_CIPHERTEXT_BYTES = CHUNK_PLAINTEXT_BYTES + CHUNK_OVERHEAD_BYTES  # 65553
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL

CONTENT_HEADER_BYTES = 1 + COMMITMENT_BYTES + STREAM_HEADER_BYTES  # 57
SEALED_BOX_OVERHEAD = sodium.crypto_box_SEALBYTES  # 48
SEALED_KEY_BYTES = 1 + 4 + SEALED_BOX_OVERHEAD + DOCUMENT_ID_BYTES + KEY_BYTES  # 101

METADATA_BLOCK = 256
MAX_METADATA_PLAINTEXT = 4 * METADATA_BLOCK
METADATA_OVERHEAD = 1 + NONCE_BYTES + AEAD_TAG_BYTES  # 41
MIN_METADATA_BYTES = METADATA_OVERHEAD + METADATA_BLOCK
MAX_METADATA_BYTES = METADATA_OVERHEAD + MAX_METADATA_PLAINTEXT

# Upload parts are whole chunks. S3 wants at least 5 MiB in every part but the last: 80
# chunks is the smallest such multiple. The uploader picks the part size (small on a weak
# phone connection, where a dropped part is resent whole; large on a good link, where
# fewer requests go faster); 128 chunks (8 MiB + 2 KiB) unless it says otherwise.
MIN_PART_CHUNKS = 80
MAX_PART_CHUNKS = 2048
CHUNKS_PER_PART = 128
PART_BYTES = CHUNKS_PER_PART * CHUNK_CIPHERTEXT_BYTES  # 8 390 784
MIN_PART_BYTES = MIN_PART_CHUNKS * CHUNK_CIPHERTEXT_BYTES  # 5 244 240
MAX_PART_BYTES = MAX_PART_CHUNKS * CHUNK_CIPHERTEXT_BYTES  # 134 252 544
MAX_PARTS = 10_000

CTX_FILE = b"haven-fk"
SUBKEY_CONTENT = 1
SUBKEY_METADATA = 2
SUBKEY_COMMITMENT = 3

LABEL_INFO = "haven/v1/document-info"
LABEL_METADATA = "haven/v1/document-metadata"
LABEL_SIGNED = "haven/v1/document"

DOCUMENT_TYPES = (
    "passport",
    "national_id",
    "birth_certificate",
    "visa_permit",
    "protective_order",
    "police_report",
    "medical_record",
    "immigration_form",
    "other",
)
MAX_NAME_BYTES = 255
MAX_MIME_BYTES = 127
_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TamperedContent(ProtocolError):
    """The content stream does not authenticate: flipped, dropped, reordered or cut short."""


# -- sizes ------------------------------------------------------------------------------


def chunk_count(plaintext_size: int) -> int:
    """Number of chunks for a plaintext: at least one, the last one FINAL."""
    if plaintext_size < 0:
        raise ValueError("negative size")
    return max(1, math.ceil(plaintext_size / CHUNK_PLAINTEXT_BYTES))


def ciphertext_size(plaintext_size: int) -> int:
    """Bytes of content ciphertext (the object) for a plaintext size."""
    return plaintext_size + CHUNK_OVERHEAD_BYTES * chunk_count(plaintext_size)


def plaintext_size(size: int) -> int:
    """The plaintext size a ciphertext size stands for; ProtocolError if none does."""
    if size < CHUNK_OVERHEAD_BYTES:
        raise ProtocolError("ciphertext is shorter than one chunk")
    chunks = max(1, math.ceil(size / CHUNK_CIPHERTEXT_BYTES))
    plain = size - CHUNK_OVERHEAD_BYTES * chunks
    if ciphertext_size(plain) != size:
        raise ProtocolError("ciphertext size does not fit the chunk arithmetic")
    return plain


def check_part_bytes(part_bytes: int) -> None:
    """Refuse a part size that is not 80 to 2048 whole chunks."""
    if part_bytes % CHUNK_CIPHERTEXT_BYTES or not MIN_PART_BYTES <= part_bytes <= MAX_PART_BYTES:
        raise ProtocolError(
            f"part_size must be {MIN_PART_CHUNKS} to {MAX_PART_CHUNKS} whole "
            f"{CHUNK_CIPHERTEXT_BYTES}-byte chunks"
        )


def part_count(size: int, part_bytes: int = PART_BYTES) -> int:
    """Number of upload parts for a ciphertext size."""
    return max(1, math.ceil(size / part_bytes))


def part_size(size: int, number: int, part_bytes: int = PART_BYTES) -> int:
    """Bytes in part ``number`` (1-based) of an object of ``size`` bytes."""
    count = part_count(size, part_bytes)
    if not 1 <= number <= count:
        raise ValueError("no such part")
    return part_bytes if number < count else size - part_bytes * (count - 1)


def chunk_range(index: int, size: int) -> tuple[int, int]:
    """First and last byte offsets (inclusive) of chunk ``index`` in an object of ``size``."""
    first = index * CHUNK_CIPHERTEXT_BYTES
    if index < 0 or first >= size:
        raise ValueError("no such chunk")
    return first, min(size, first + CHUNK_CIPHERTEXT_BYTES) - 1


# -- file keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class FileKeys:
    """The three subkeys of a document's file key."""

    content: bytes
    metadata: bytes
    commitment: bytes

    @classmethod
    def derive(cls, file_key: bytes) -> FileKeys:
        """crypto_kdf_derive_from_key(32, id, "haven-fk", file_key) for ids 1, 2, 3."""
        if len(file_key) != KEY_BYTES:
            raise ProtocolError("a file key is 32 bytes")
        return cls(
            content=derive_subkey(file_key, SUBKEY_CONTENT, CTX_FILE),
            metadata=derive_subkey(file_key, SUBKEY_METADATA, CTX_FILE),
            commitment=derive_subkey(file_key, SUBKEY_COMMITMENT, CTX_FILE),
        )


def generate_file_key() -> bytes:
    """A fresh random file key."""
    return nacl.utils.random(KEY_BYTES)


def generate_document_id() -> bytes:
    """A fresh random document id (the client chooses it, so it can sign it)."""
    return nacl.utils.random(DOCUMENT_ID_BYTES)


# -- content ----------------------------------------------------------------------------


def content_header(commitment: bytes, stream_header: bytes) -> bytes:
    """0x01 || key commitment (32) || secretstream header (24)."""
    if len(commitment) != COMMITMENT_BYTES or len(stream_header) != STREAM_HEADER_BYTES:
        raise ProtocolError("content header parts have the wrong length")
    return bytes([FORMAT_V1]) + commitment + stream_header


def parse_content_header(header: bytes) -> tuple[bytes, bytes]:
    """Split a content header into (commitment, secretstream header)."""
    if len(header) != CONTENT_HEADER_BYTES or header[0] != FORMAT_V1:
        raise ProtocolError("content header has the wrong format")
    return header[1:33], header[33:]


class ContentEncryptor:
    """Encrypt a document's content chunk by chunk.

    With ``stream_header`` given, the stream restarts from its beginning under that header:
    the same plaintext gives the same ciphertext, which is how an interrupted upload resumes.
    """

    def __init__(self, file_key: bytes, stream_header: bytes | None = None) -> None:
        keys = FileKeys.derive(file_key)
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        if stream_header is None:
            stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(
                self._state, keys.content
            )
        else:
            if len(stream_header) != STREAM_HEADER_BYTES:
                raise ProtocolError("secretstream header must be 24 bytes")
            # init_pull derives the same state init_push would have for this header.
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(
                self._state, stream_header, keys.content
            )
        self.header = content_header(keys.commitment, stream_header)
        self.index = 0
        self.is_finished = False

    def push(self, chunk: bytes, *, is_final: bool) -> bytes:
        """Encrypt the next chunk: 64 KiB unless it is the FINAL one."""
        if self.is_finished:
            raise ProtocolError("the stream already ended")
        if len(chunk) > CHUNK_PLAINTEXT_BYTES or (
            not is_final and len(chunk) != CHUNK_PLAINTEXT_BYTES
        ):
            raise ProtocolError("only the final chunk may be shorter than 64 KiB")
        if is_final and not chunk and self.index > 0:
            raise ProtocolError("an empty final chunk is only allowed for an empty file")
        tag = TAG_FINAL if is_final else TAG_MESSAGE
        out = sodium.crypto_secretstream_xchacha20poly1305_push(self._state, chunk, None, tag)
        self.index += 1
        self.is_finished = is_final
        return out


class ContentDecryptor:
    """Decrypt and authenticate a content stream chunk by chunk; refuse anything altered."""

    def __init__(self, file_key: bytes, header: bytes) -> None:
        keys = FileKeys.derive(file_key)
        commitment, stream_header = parse_content_header(header)
        if not sodium.sodium_memcmp(commitment, keys.commitment):
            raise ProtocolError("the file key does not match the content's key commitment")
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(
            self._state, stream_header, keys.content
        )
        self.index = 0
        self.is_finished = False

    def pull(self, chunk: bytes) -> bytes:
        """Decrypt the next chunk; TamperedContent if it does not authenticate in place."""
        if self.is_finished:
            raise TamperedContent("data after the final chunk")
        if not CHUNK_OVERHEAD_BYTES <= len(chunk) <= CHUNK_CIPHERTEXT_BYTES:
            raise TamperedContent(f"chunk {self.index} has an impossible length")
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(self._state, chunk)
        except nacl.exceptions.CryptoError as exc:
            raise TamperedContent(f"chunk {self.index} does not authenticate") from exc
        if tag == TAG_FINAL:
            self.is_finished = True
        elif tag != TAG_MESSAGE or len(chunk) != CHUNK_CIPHERTEXT_BYTES:
            raise TamperedContent(f"chunk {self.index} has an unexpected tag or length")
        self.index += 1
        return bytes(plain)

    def finish(self) -> None:
        """Raise TamperedContent unless the FINAL chunk was seen (no truncation)."""
        if not self.is_finished:
            raise TamperedContent("the content ends before its final chunk")


def encrypt_content(
    file_key: bytes, data: bytes, stream_header: bytes | None = None
) -> tuple[bytes, bytes]:
    """Encrypt a whole (small) plaintext: (content header, ciphertext). For tests and vectors."""
    enc = ContentEncryptor(file_key, stream_header)
    count = chunk_count(len(data))
    parts = []
    for i in range(count):
        piece = data[i * CHUNK_PLAINTEXT_BYTES : (i + 1) * CHUNK_PLAINTEXT_BYTES]
        parts.append(enc.push(piece, is_final=i == count - 1))
    return enc.header, b"".join(parts)


def decrypt_content(file_key: bytes, header: bytes, ciphertext: bytes) -> bytes:
    """Decrypt a whole (small) content ciphertext. For tests and vectors."""
    dec = ContentDecryptor(file_key, header)
    out = []
    for first in range(0, len(ciphertext), CHUNK_CIPHERTEXT_BYTES):
        out.append(dec.pull(ciphertext[first : first + CHUNK_CIPHERTEXT_BYTES]))
    dec.finish()
    return b"".join(out)


# -- metadata ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentInfo:
    """What the uploader says about the file; encrypted, only readers see it."""

    name: str
    mime_type: str
    size: int
    doc_type: str
    expires_on: dt.date | None
    sha256: bytes

    def check(self) -> None:
        """Refuse values outside the protocol's rules."""
        name = self.name.encode("utf-8")
        if not 1 <= len(name) <= MAX_NAME_BYTES:
            raise ProtocolError("a file name is 1 to 255 bytes of UTF-8")
        if any(ord(c) < 0x20 or ord(c) == 0x7F or c in "/\\" for c in self.name):
            raise ProtocolError("a file name has no control characters, '/' or '\\'")
        if self.name in {".", ".."}:
            raise ProtocolError("a file name cannot be '.' or '..'")
        if len(self.mime_type) > MAX_MIME_BYTES or not _MIME_RE.match(self.mime_type):
            raise ProtocolError("MIME type must be a lower-case type/subtype")
        if not 0 <= self.size < 2**63:
            raise ProtocolError("size out of range")
        if self.doc_type not in DOCUMENT_TYPES:
            raise ProtocolError(f"unknown document type {self.doc_type!r}")
        if len(self.sha256) != 32:
            raise ProtocolError("SHA-256 is 32 bytes")

    def encode(self) -> bytes:
        """The padded plaintext of the metadata envelope."""
        self.check()
        expires = self.expires_on.isoformat() if self.expires_on else ""
        body = frame(
            LABEL_INFO,
            self.name.encode("utf-8"),
            self.mime_type.encode("ascii"),
            u64(self.size),
            self.doc_type.encode("ascii"),
            expires.encode("ascii"),
            self.sha256,
        )
        padded = -(-len(body) // METADATA_BLOCK) * METADATA_BLOCK
        if padded > MAX_METADATA_PLAINTEXT:
            raise ProtocolError("metadata is too long")
        return body + bytes(padded - len(body))

    @classmethod
    def decode(cls, data: bytes) -> DocumentInfo:
        """Parse and check a metadata plaintext, padding included."""
        if len(data) % METADATA_BLOCK or not 0 < len(data) <= MAX_METADATA_PLAINTEXT:
            raise ProtocolError("metadata plaintext has the wrong length")
        fields, rest = parse_frame(data, LABEL_INFO, 6)
        if any(rest):
            raise ProtocolError("metadata padding is not zero")
        name, mime, size, doc_type, expires, digest = fields
        if len(size) != 8:
            raise ProtocolError("metadata size field is not 8 bytes")
        try:
            expires_text = expires.decode("ascii")
            if expires_text and not _DATE_RE.match(expires_text):
                raise ValueError(expires_text)
            info = cls(
                name=name.decode("utf-8"),
                mime_type=mime.decode("ascii"),
                size=struct.unpack(">Q", size)[0],
                doc_type=doc_type.decode("ascii"),
                expires_on=dt.date.fromisoformat(expires_text) if expires_text else None,
                sha256=digest,
            )
        except ValueError as exc:
            raise ProtocolError("metadata field is not valid text or date") from exc
        info.check()
        return info


def parse_frame(data: bytes, label: str, count: int) -> tuple[list[bytes], bytes]:
    """Split frame(label, f1..fcount) off the front of ``data``; return fields and the rest."""
    fields: list[bytes] = []
    offset = 0
    for i in range(count + 1):
        if offset + 4 > len(data):
            raise ProtocolError("frame is truncated")
        length = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        if offset + length > len(data):
            raise ProtocolError("frame is truncated")
        value = data[offset : offset + length]
        offset += length
        if i == 0:
            if value != label.encode("ascii"):
                raise ProtocolError("frame has the wrong label")
        else:
            fields.append(value)
    return fields, data[offset:]


def metadata_ad(document_id: bytes, case_id: str, uploader_id: str, header: bytes) -> bytes:
    """Associated data binding metadata to its document, case, uploader and content header."""
    return frame(
        LABEL_METADATA, document_id, case_id.encode("utf-8"), uploader_id.encode("utf-8"), header
    )


def seal_metadata(
    info: DocumentInfo,
    file_key: bytes,
    document_id: bytes,
    case_id: str,
    uploader_id: str,
    header: bytes,
    nonce: bytes | None = None,
) -> bytes:
    """0x01 || nonce (24) || XChaCha20-Poly1305(info, ad, nonce, metadata subkey)."""
    nonce = nacl.utils.random(NONCE_BYTES) if nonce is None else nonce
    key = FileKeys.derive(file_key).metadata
    ad = metadata_ad(document_id, case_id, uploader_id, header)
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(info.encode(), ad, nonce, key)
    return bytes([FORMAT_V1]) + nonce + ct


def check_metadata_shape(blob: bytes) -> None:
    """What the server can check of a metadata envelope without the key."""
    if not MIN_METADATA_BYTES <= len(blob) <= MAX_METADATA_BYTES or blob[0] != FORMAT_V1:
        raise ProtocolError("metadata envelope has the wrong format")
    if (len(blob) - METADATA_OVERHEAD) % METADATA_BLOCK:
        raise ProtocolError("metadata envelope is not padded to 256-byte blocks")


def open_metadata(
    blob: bytes, file_key: bytes, document_id: bytes, case_id: str, uploader_id: str, header: bytes
) -> DocumentInfo:
    """Decrypt and parse a metadata envelope; ProtocolError if it was made for anything else."""
    check_metadata_shape(blob)
    key = FileKeys.derive(file_key).metadata
    ad = metadata_ad(document_id, case_id, uploader_id, header)
    try:
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[1 + NONCE_BYTES :], ad, blob[1 : 1 + NONCE_BYTES], key
        )
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("metadata does not decrypt for this document") from exc
    return DocumentInfo.decode(plain)


# -- signature --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedDocument:
    """Everything the server stores about a document that the uploader vouches for."""

    document_id: bytes
    case_id: str
    uploader_id: str
    key_version: int
    header: bytes
    ciphertext_size: int
    metadata: bytes

    def message(self) -> bytes:
        """The exact bytes the uploader signs."""
        return frame(
            LABEL_SIGNED,
            bytes([FORMAT_V1]),
            self.document_id,
            self.case_id.encode("utf-8"),
            self.uploader_id.encode("utf-8"),
            u32(self.key_version),
            self.header,
            u64(self.ciphertext_size),
            self.metadata,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignedDocument:
        """The signed part of a document record as JSON serves it (§8.7); ValueError,
        KeyError or EncodingError if it is malformed."""
        document_id = b64decode(data["id"])
        if len(document_id) != DOCUMENT_ID_BYTES:
            raise ProtocolError("document id is not 16 bytes")
        return cls(
            document_id=document_id,
            case_id=data["case_id"],
            uploader_id=data["owner_id"],
            key_version=int(data["owner_key_version"]),
            header=b64decode(data["header"]),
            ciphertext_size=int(data["ciphertext_size"]),
            metadata=b64decode(data["metadata"]),
        )

    def sign(self, keys: KeyPairs) -> bytes:
        """Ed25519 signature by the uploader's key of ``key_version``."""
        if keys.version != self.key_version:
            raise ProtocolError("signing key version does not match the record")
        return keys.signing_key.sign(self.message()).signature

    def verify(self, ed25519_public: bytes, signature: bytes) -> None:
        """Raise ProtocolError unless the signature verifies."""
        try:
            nacl.signing.VerifyKey(ed25519_public).verify(self.message(), signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
            raise ProtocolError("the uploader's signature does not verify") from exc


# -- sealed file keys -------------------------------------------------------------------


def seal_file_key(file_key: bytes, document_id: bytes, x25519_public: bytes, version: int) -> bytes:
    """0x01 || u32(reader key version) || crypto_box_seal(document_id || file_key, reader)."""
    if len(file_key) != KEY_BYTES or len(document_id) != DOCUMENT_ID_BYTES:
        raise ProtocolError("file key or document id has the wrong length")
    sealed = sodium.crypto_box_seal(document_id + file_key, x25519_public)
    return bytes([FORMAT_V1]) + u32(version) + sealed


def sealed_key_version(blob: bytes) -> int:
    """The reader key version a sealed file key was made for."""
    if len(blob) != SEALED_KEY_BYTES or blob[0] != FORMAT_V1:
        raise ProtocolError("sealed file key has the wrong format")
    return int.from_bytes(blob[1:5], "big")


def open_file_key(blob: bytes, document_id: bytes, keys: KeyPairs) -> bytes:
    """Open a sealed file key with the reader's private keys and check its document id."""
    version = sealed_key_version(blob)
    if version != keys.version:
        raise ProtocolError(f"file key is sealed to key version {version}, not {keys.version}")
    public = bytes(keys.box_key.public_key)
    try:
        plain = sodium.crypto_box_seal_open(blob[5:], public, keys.x25519_secret)
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("the sealed file key does not open with my key") from exc
    if not sodium.sodium_memcmp(plain[:DOCUMENT_ID_BYTES], document_id):
        raise ProtocolError("the sealed file key belongs to another document")
    return plain[DOCUMENT_ID_BYTES:]
