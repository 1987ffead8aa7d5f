"""Test vectors of the document format (docs/protocol.md §8), from fixed inputs only.

The secretstream header, the metadata nonce and the sealed box's ephemeral key are fixed
here; in real use they are random. A sealed box is built by hand exactly as libsodium's
crypto_box_seal builds it (ephemeral public key, then crypto_box_easy under the nonce
BLAKE2b-192(ephemeral public key || recipient public key)), so it is reproducible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import nacl.bindings as sodium
import nacl.encoding
import nacl.hash

from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64encode, frame, u64

SIZES = (0, 1, 65535, 65536, 65537, 131072, 1_000_000, 8_388_608, 536_870_912)


def _bytes(label: str, n: int) -> bytes:
    """Deterministic filler bytes for a named input (as in generate.py)."""
    return hashlib.shake_256(label.encode()).digest(n)


def deterministic_seal(message: bytes, recipient: bytes, ephemeral_secret: bytes) -> bytes:
    """crypto_box_seal with a chosen ephemeral key (vectors only; real seals are random)."""
    ephemeral_public = sodium.crypto_scalarmult_base(ephemeral_secret)
    nonce = nacl.hash.blake2b(
        ephemeral_public + recipient, digest_size=24, encoder=nacl.encoding.RawEncoder
    )
    return ephemeral_public + sodium.crypto_box(message, nonce, recipient, ephemeral_secret)


def _full_block_name(info: pdoc.DocumentInfo) -> str:
    """A file name that makes the metadata frame exactly one 256-byte block."""
    expires = info.expires_on.isoformat() if info.expires_on else ""
    frame_without_name = len(
        frame(
            pdoc.LABEL_INFO,
            b"",
            info.mime_type.encode(),
            u64(info.size),
            info.doc_type.encode(),
            expires.encode(),
            info.sha256,
        )
    )
    stem = "permiso-de-trabajo-" * 10
    return stem[: pdoc.METADATA_BLOCK - frame_without_name - 4] + ".pdf"


def _content(file_key: bytes, stream_header: bytes, size: int, label: str) -> dict[str, Any]:
    plaintext = _bytes(label, size)
    header, ciphertext = pdoc.encrypt_content(file_key, plaintext, stream_header)
    count = pdoc.chunk_count(size)
    entry: dict[str, Any] = {
        "plaintext_size": size,
        "plaintext_shake256_label": label,
        "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
        "content_header": b64encode(header),
        "ciphertext_size": len(ciphertext),
        "ciphertext_sha256": hashlib.sha256(ciphertext).hexdigest(),
    }
    final = ciphertext[pdoc.chunk_range(count - 1, len(ciphertext))[0] :]
    if len(final) <= 4096:
        entry["final_chunk"] = b64encode(final)
    if len(ciphertext) <= 256:
        entry["ciphertext"] = b64encode(ciphertext)
    return entry


def documents_vectors() -> dict[str, Any]:
    """Sizes, subkeys, content, metadata, signature and a sealed file key."""
    file_key = _bytes("file-key", 32)
    keys = pdoc.FileKeys.derive(file_key)
    stream_header = _bytes("stream-header", pdoc.STREAM_HEADER_BYTES)
    document_id = _bytes("document-id", pdoc.DOCUMENT_ID_BYTES)
    case_id = "case-7f3a"
    uploader = pkeys.KeyPairs(
        version=1, x25519_secret=_bytes("uploader-x", 32), ed25519_seed=_bytes("uploader-ed", 32)
    )
    uploader_id = "user-amira"
    reader = pkeys.KeyPairs(
        version=3, x25519_secret=_bytes("reader-x", 32), ed25519_seed=_bytes("reader-ed", 32)
    )
    plaintext = _bytes("passport-scan", 2 * pdoc.CHUNK_PLAINTEXT_BYTES + 1000)
    header, ciphertext = pdoc.encrypt_content(file_key, plaintext, stream_header)
    info = pdoc.DocumentInfo(
        name="pasaporte de Amira Ḱ.pdf",
        mime_type="application/pdf",
        size=len(plaintext),
        doc_type="passport",
        expires_on=dt.date(2031, 5, 17),
        sha256=hashlib.sha256(plaintext).digest(),
    )
    nonce = _bytes("metadata-nonce", pdoc.NONCE_BYTES)
    envelope = pdoc.seal_metadata(info, file_key, document_id, case_id, uploader_id, header, nonce)
    # The same record under a name that makes the info frame exactly 256 bytes: no zero
    # byte is appended, the plaintext stays one block and the envelope 297 bytes (§8.3).
    full_block = dataclasses.replace(info, name=_full_block_name(info))
    full_nonce = _bytes("metadata-nonce:full-block", pdoc.NONCE_BYTES)
    full_envelope = pdoc.seal_metadata(
        full_block, file_key, document_id, case_id, uploader_id, header, full_nonce
    )
    record = pdoc.SignedDocument(
        document_id, case_id, uploader_id, 1, header, len(ciphertext), envelope
    )
    reader_public = bytes(reader.box_key.public_key)
    sealed = bytes([pdoc.FORMAT_V1]) + reader.version.to_bytes(4, "big")
    sealed += deterministic_seal(document_id + file_key, reader_public, _bytes("ephemeral", 32))
    return {
        "constants": {
            "chunk_plaintext_bytes": pdoc.CHUNK_PLAINTEXT_BYTES,
            "chunk_ciphertext_bytes": pdoc.CHUNK_CIPHERTEXT_BYTES,
            "chunks_per_part": pdoc.CHUNKS_PER_PART,
            "part_bytes": pdoc.PART_BYTES,
            "min_part_bytes": pdoc.MIN_PART_BYTES,
            "max_part_bytes": pdoc.MAX_PART_BYTES,
            "content_header_bytes": pdoc.CONTENT_HEADER_BYTES,
            "sealed_key_bytes": pdoc.SEALED_KEY_BYTES,
            "metadata_block": pdoc.METADATA_BLOCK,
            "document_types": list(pdoc.DOCUMENT_TYPES),
        },
        "sizes": [
            {
                "plaintext_size": n,
                "chunk_count": pdoc.chunk_count(n),
                "ciphertext_size": pdoc.ciphertext_size(n),
                "part_count": pdoc.part_count(pdoc.ciphertext_size(n)),
                "last_part_size": pdoc.part_size(
                    pdoc.ciphertext_size(n), pdoc.part_count(pdoc.ciphertext_size(n))
                ),
                "last_chunk_range": list(
                    pdoc.chunk_range(pdoc.chunk_count(n) - 1, pdoc.ciphertext_size(n))
                ),
            }
            for n in SIZES
        ],
        "file_key": {
            "file_key": b64encode(file_key),
            "content_key": b64encode(keys.content),
            "metadata_key": b64encode(keys.metadata),
            "commitment": b64encode(keys.commitment),
        },
        "content": {
            "stream_header": b64encode(stream_header),
            "cases": [
                _content(file_key, stream_header, 0, "empty"),
                _content(file_key, stream_header, 100, "small"),
                _content(file_key, stream_header, pdoc.CHUNK_PLAINTEXT_BYTES, "one-chunk"),
                _content(file_key, stream_header, len(plaintext), "passport-scan"),
            ],
        },
        "metadata": {
            "document_id": b64encode(document_id),
            "case_id": case_id,
            "uploader_id": uploader_id,
            "name": info.name,
            "mime_type": info.mime_type,
            "size": info.size,
            "doc_type": info.doc_type,
            "expires_on": info.expires_on.isoformat() if info.expires_on else "",
            "sha256": b64encode(info.sha256),
            "plaintext": b64encode(info.encode()),
            "associated_data": b64encode(
                pdoc.metadata_ad(document_id, case_id, uploader_id, header)
            ),
            "nonce": b64encode(nonce),
            "envelope": b64encode(envelope),
        },
        "metadata_full_block": {
            "name": full_block.name,
            "plaintext_bytes": len(full_block.encode()),
            "plaintext": b64encode(full_block.encode()),
            "nonce": b64encode(full_nonce),
            "envelope": b64encode(full_envelope),
        },
        "signature": {
            "uploader_ed25519_seed": b64encode(uploader.ed25519_seed),
            "uploader_ed25519": b64encode(bytes(uploader.signing_key.verify_key)),
            "key_version": 1,
            "content_header": b64encode(header),
            "ciphertext_size": len(ciphertext),
            "signed_message": b64encode(record.message()),
            "signature": b64encode(record.sign(uploader)),
        },
        "sealed_key": {
            "reader_x25519_secret": b64encode(reader.x25519_secret),
            "reader_x25519": b64encode(reader_public),
            "reader_key_version": reader.version,
            "ephemeral_secret": b64encode(_bytes("ephemeral", 32)),
            "sealed": b64encode(sealed),
        },
    }
