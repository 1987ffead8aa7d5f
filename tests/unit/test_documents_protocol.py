"""Document format: size arithmetic, content stream, metadata, signature, sealed keys, vectors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os

import nacl.bindings as sodium
import pytest

from tests.vectors import generate
from tests.vectors.documents import deterministic_seal
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64decode

C = pdoc.CHUNK_CIPHERTEXT_BYTES
P = pdoc.CHUNK_PLAINTEXT_BYTES


def _vectors() -> dict[str, object]:
    data: dict[str, object] = json.loads((generate.HERE / "documents.json").read_text())
    return data


# -- sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, P - 1, P, P + 1, 2 * P, 2 * P + 1, 10**6, 2**29, 2**33])
def test_chunk_arithmetic_round_trips(size: int) -> None:
    total = pdoc.ciphertext_size(size)
    assert pdoc.plaintext_size(total) == size
    assert total == size + 17 * pdoc.chunk_count(size)
    parts = [pdoc.part_size(total, n) for n in range(1, pdoc.part_count(total) + 1)]
    assert sum(parts) == total
    assert all(p == pdoc.PART_BYTES for p in parts[:-1])
    assert pdoc.PART_BYTES % C == 0 and pdoc.PART_BYTES >= 5 * 1024 * 1024
    last_first, last_last = pdoc.chunk_range(pdoc.chunk_count(size) - 1, total)
    assert last_last == total - 1
    assert last_first % C == 0


@pytest.mark.parametrize("chunks", [80, 128, 512, 2048])
def test_parts_are_whole_chunks_from_five_mib(chunks: int) -> None:
    part = chunks * C
    pdoc.check_part_bytes(part)
    assert part >= 5 * 1024 * 1024
    total = pdoc.ciphertext_size(3 * part)
    sizes = [pdoc.part_size(total, n, part) for n in range(1, pdoc.part_count(total, part) + 1)]
    assert sum(sizes) == total and all(s == part for s in sizes[:-1])


@pytest.mark.parametrize("part", [79 * C, 2049 * C, 128 * C + 1, 5 * 1024 * 1024, 0])
def test_part_sizes_off_the_chunk_grid_or_bounds_are_refused(part: int) -> None:
    with pytest.raises(pkeys.ProtocolError):
        pdoc.check_part_bytes(part)


@pytest.mark.parametrize("total", [0, 16, C + 1, C + 17, 2 * C + 5, -1])
def test_impossible_ciphertext_sizes_are_refused(total: int) -> None:
    with pytest.raises(pkeys.ProtocolError):
        pdoc.plaintext_size(total)


def test_chunk_ranges_are_whole_chunks() -> None:
    total = pdoc.ciphertext_size(3 * P + 5)
    assert pdoc.chunk_range(0, total) == (0, C - 1)
    assert pdoc.chunk_range(2, total) == (2 * C, 3 * C - 1)
    assert pdoc.chunk_range(3, total) == (3 * C, total - 1)
    with pytest.raises(ValueError):
        pdoc.chunk_range(4, total)


# -- content ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, P, P + 1, 3 * P + 77])
def test_content_round_trips(size: int) -> None:
    key = pdoc.generate_file_key()
    data = os.urandom(size)
    header, ct = pdoc.encrypt_content(key, data)
    assert len(ct) == pdoc.ciphertext_size(size)
    assert len(header) == pdoc.CONTENT_HEADER_BYTES and header[0] == 1
    assert pdoc.decrypt_content(key, header, ct) == data


def test_restarting_a_stream_from_its_header_reproduces_the_ciphertext() -> None:
    key = pdoc.generate_file_key()
    data = os.urandom(2 * P + 3)
    header, ct = pdoc.encrypt_content(key, data)
    _, stream_header = pdoc.parse_content_header(header)
    assert pdoc.encrypt_content(key, data, stream_header) == (header, ct)


def _chunks(ct: bytes) -> list[bytes]:
    return [ct[i : i + C] for i in range(0, len(ct), C)]


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x80
    return bytes(out)


TAMPERING = {
    "flip first byte": lambda ct: _flip(ct, 0),
    "flip last byte": lambda ct: _flip(ct, len(ct) - 1),
    "drop a chunk": lambda ct: b"".join(_chunks(ct)[1:]),
    "swap chunks": lambda ct: b"".join([_chunks(ct)[1], _chunks(ct)[0], *_chunks(ct)[2:]]),
    "truncate the final chunk": lambda ct: b"".join(_chunks(ct)[:-1]),
    "cut inside a chunk": lambda ct: ct[: C + 100],
    "append a chunk": lambda ct: ct + _chunks(ct)[0],
    "append a byte": lambda ct: ct + b"\x00",
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampered_content_is_refused(how: str) -> None:
    key = pdoc.generate_file_key()
    header, ct = pdoc.encrypt_content(key, os.urandom(3 * P + 10))
    with pytest.raises(pdoc.TamperedContent):
        pdoc.decrypt_content(key, header, TAMPERING[how](ct))


def test_splicing_two_documents_is_refused() -> None:
    key_a, key_b = pdoc.generate_file_key(), pdoc.generate_file_key()
    header_a, ct_a = pdoc.encrypt_content(key_a, os.urandom(2 * P + 1))
    _, ct_b = pdoc.encrypt_content(key_b, os.urandom(2 * P + 1))
    with pytest.raises(pdoc.TamperedContent):
        pdoc.decrypt_content(key_a, header_a, _chunks(ct_a)[0] + _chunks(ct_b)[1] + ct_a[2 * C :])


def test_a_wrong_key_fails_the_commitment_before_any_chunk() -> None:
    header, _ = pdoc.encrypt_content(pdoc.generate_file_key(), b"x")
    with pytest.raises(pkeys.ProtocolError, match="commitment"):
        pdoc.ContentDecryptor(pdoc.generate_file_key(), header)


def test_a_final_tag_in_the_middle_is_refused() -> None:
    key = pdoc.generate_file_key()
    enc = pdoc.ContentEncryptor(key)
    early_final = enc.push(os.urandom(P), is_final=True)
    dec = pdoc.ContentDecryptor(key, enc.header)
    dec.pull(early_final)
    with pytest.raises(pdoc.TamperedContent, match="after the final"):
        dec.pull(os.urandom(C))


def test_encryptor_enforces_chunk_sizes() -> None:
    enc = pdoc.ContentEncryptor(pdoc.generate_file_key())
    with pytest.raises(pkeys.ProtocolError):
        enc.push(b"short", is_final=False)
    enc.push(os.urandom(P), is_final=False)
    with pytest.raises(pkeys.ProtocolError):
        enc.push(b"", is_final=True)
    enc.push(b"end", is_final=True)
    with pytest.raises(pkeys.ProtocolError):
        enc.push(b"more", is_final=True)


# -- metadata ---------------------------------------------------------------------------

INFO = pdoc.DocumentInfo(
    name="Reisepass – Amira.pdf",
    mime_type="application/pdf",
    size=123_456,
    doc_type="passport",
    expires_on=dt.date(2030, 1, 31),
    sha256=hashlib.sha256(b"x").digest(),
)


def test_metadata_is_padded_to_blocks_and_round_trips() -> None:
    plain = INFO.encode()
    assert len(plain) == 256
    assert pdoc.DocumentInfo.decode(plain) == INFO
    long_name = dataclasses.replace(INFO, name="n" * 255, expires_on=None)
    assert len(long_name.encode()) == 512
    assert pdoc.DocumentInfo.decode(long_name.encode()) == long_name


@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},
        {"name": "../../etc/passwd"},
        {"name": "a\\b"},
        {"name": "bell\x07"},
        {"name": ".."},
        {"name": "é" * 128},
        {"mime_type": "PDF"},
        {"mime_type": "text/html; charset=utf-8"},
        {"doc_type": "diary"},
        {"sha256": b"short"},
        {"size": -1},
    ],
)
def test_bad_metadata_values_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(pkeys.ProtocolError):
        dataclasses.replace(INFO, **change).encode()  # type: ignore[arg-type]


def test_metadata_padding_must_be_zero() -> None:
    plain = bytearray(INFO.encode())
    plain[-1] = 1
    with pytest.raises(pkeys.ProtocolError, match="padding"):
        pdoc.DocumentInfo.decode(bytes(plain))


def test_metadata_is_bound_to_document_case_uploader_and_header() -> None:
    key = pdoc.generate_file_key()
    doc_id = pdoc.generate_document_id()
    header, _ = pdoc.encrypt_content(key, b"x")
    blob = pdoc.seal_metadata(INFO, key, doc_id, "case", "uploader", header)
    assert pdoc.open_metadata(blob, key, doc_id, "case", "uploader", header) == INFO
    other_header, _ = pdoc.encrypt_content(key, b"y")
    for args in (
        (pdoc.generate_document_id(), "case", "uploader", header),
        (doc_id, "case2", "uploader", header),
        (doc_id, "case", "someone", header),
        (doc_id, "case", "uploader", other_header),
    ):
        with pytest.raises(pkeys.ProtocolError):
            pdoc.open_metadata(blob, key, *args)
    with pytest.raises(pkeys.ProtocolError):
        pdoc.open_metadata(blob, pdoc.generate_file_key(), doc_id, "case", "uploader", header)


# -- signature and sealed keys ----------------------------------------------------------


def test_signature_covers_every_field() -> None:
    keys = pkeys.KeyPairs.generate()
    record = pdoc.SignedDocument(
        pdoc.generate_document_id(), "case", "user", 1, b"\x01" * 57, 1000, b"\x01" * 297
    )
    sig = record.sign(keys)
    public = bytes(keys.signing_key.verify_key)
    record.verify(public, sig)
    for change in (
        {"document_id": pdoc.generate_document_id()},
        {"case_id": "other"},
        {"uploader_id": "other"},
        {"key_version": 2},
        {"header": b"\x01" * 56 + b"\x02"},
        {"ciphertext_size": 1001},
        {"metadata": b"\x01" * 296 + b"\x02"},
    ):
        with pytest.raises(pkeys.ProtocolError):
            dataclasses.replace(record, **change).verify(public, sig)  # type: ignore[arg-type]


def test_sealed_file_key_opens_only_for_its_reader_and_document() -> None:
    reader = pkeys.KeyPairs.generate(version=2)
    key = pdoc.generate_file_key()
    doc_id = pdoc.generate_document_id()
    sealed = pdoc.seal_file_key(key, doc_id, bytes(reader.box_key.public_key), 2)
    assert len(sealed) == pdoc.SEALED_KEY_BYTES
    assert pdoc.sealed_key_version(sealed) == 2
    assert pdoc.open_file_key(sealed, doc_id, reader) == key
    with pytest.raises(pkeys.ProtocolError, match="another document"):
        pdoc.open_file_key(sealed, pdoc.generate_document_id(), reader)
    with pytest.raises(pkeys.ProtocolError):
        pdoc.open_file_key(sealed, doc_id, pkeys.KeyPairs.generate(version=2))
    with pytest.raises(pkeys.ProtocolError, match="key version"):
        pdoc.open_file_key(sealed, doc_id, dataclasses.replace(reader, version=1))


# -- vectors ----------------------------------------------------------------------------


def test_vector_content_decrypts_and_matches() -> None:
    data = _vectors()
    fk = data["file_key"]  # type: ignore[index]
    key = b64decode(fk["file_key"])
    derived = pdoc.FileKeys.derive(key)
    assert b64decode(fk["commitment"]) == derived.commitment
    for case in data["content"]["cases"]:  # type: ignore[index]
        plain = hashlib.shake_256(case["plaintext_shake256_label"].encode()).digest(
            case["plaintext_size"]
        )
        header = b64decode(case["content_header"])
        _, ct = pdoc.encrypt_content(key, plain, header[33:])
        assert hashlib.sha256(ct).hexdigest() == case["ciphertext_sha256"]
        assert pdoc.decrypt_content(key, header, ct) == plain


def test_vector_metadata_signature_and_sealed_key_verify() -> None:
    data = _vectors()
    key = b64decode(data["file_key"]["file_key"])  # type: ignore[index]
    meta = data["metadata"]  # type: ignore[index]
    sig = data["signature"]  # type: ignore[index]
    doc_id = b64decode(meta["document_id"])
    header = b64decode(sig["content_header"])
    info = pdoc.open_metadata(
        b64decode(meta["envelope"]), key, doc_id, meta["case_id"], meta["uploader_id"], header
    )
    assert info.name == meta["name"] and info.expires_on == dt.date(2031, 5, 17)
    record = pdoc.SignedDocument(
        doc_id,
        meta["case_id"],
        meta["uploader_id"],
        sig["key_version"],
        header,
        sig["ciphertext_size"],
        b64decode(meta["envelope"]),
    )
    assert record.message() == b64decode(sig["signed_message"])
    record.verify(b64decode(sig["uploader_ed25519"]), b64decode(sig["signature"]))
    sealed = data["sealed_key"]  # type: ignore[index]
    reader = pkeys.KeyPairs(
        version=sealed["reader_key_version"],
        x25519_secret=b64decode(sealed["reader_x25519_secret"]),
        ed25519_seed=os.urandom(32),
    )
    assert pdoc.open_file_key(b64decode(sealed["sealed"]), doc_id, reader) == key


def test_deterministic_seal_is_libsodiums_sealed_box() -> None:
    reader = pkeys.KeyPairs.generate()
    public = bytes(reader.box_key.public_key)
    box = deterministic_seal(b"message", public, os.urandom(32))
    assert sodium.crypto_box_seal_open(box, public, reader.x25519_secret) == b"message"
