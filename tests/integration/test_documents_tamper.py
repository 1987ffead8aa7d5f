"""Tampering with stored ciphertext or records: the client refuses and names the document."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from tests.integration.documents_fixtures import (
    fast_documents,
    pair,
    read_object,
    replace_object,
)
from tests.services import MinioServer
from vault.client import HavenClient
from vault.client.documents import DocumentRefused
from vault.db import database
from vault.documents.models import Document
from vault.protocol import documents as pdoc

__all__ = ["pair"]

C = pdoc.CHUNK_CIPHERTEXT_BYTES
Pair = tuple[HavenClient, HavenClient, str]


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + C] for i in range(0, len(data), C)]


CONTENT_TAMPERING: dict[str, Callable[[bytes], bytes]] = {
    "flipped byte in the first chunk": lambda d: _flip(d, 100),
    "flipped byte in the final tag": lambda d: _flip(d, len(d) - 1),
    "dropped middle chunk": lambda d: b"".join(_chunks(d)[:1] + _chunks(d)[2:]),
    "swapped chunks": lambda d: b"".join([_chunks(d)[1], _chunks(d)[0], *_chunks(d)[2:]]),
    "dropped final chunk": lambda d: b"".join(_chunks(d)[:-1]),
    "chunk appended after the final one": lambda d: d + _chunks(d)[0],
    "empty object": lambda d: b"",
}


def _two_documents(pair: Pair, tmp_path: Path) -> tuple[pdoc.DocumentInfo, str, str]:
    survivor, _, case_id = pair
    docs = fast_documents(survivor)
    first = tmp_path / "passport.pdf"
    first.write_bytes(os.urandom(3 * pdoc.CHUNK_PLAINTEXT_BYTES + 500))
    second = tmp_path / "visa.pdf"
    second.write_bytes(os.urandom(3 * pdoc.CHUNK_PLAINTEXT_BYTES + 500))
    a = docs.upload(case_id, first, doc_type="passport")
    b = docs.upload(case_id, second, doc_type="visa_permit")
    return a.info, a.id, b.id


@pytest.mark.parametrize("how", sorted(CONTENT_TAMPERING))
def test_altered_content_is_refused_naming_the_document(
    pair: Pair, app: Flask, minio: MinioServer, tmp_path: Path, how: str
) -> None:
    survivor = pair[0]
    _, doc_id, _ = _two_documents(pair, tmp_path)
    stored = read_object(app, minio, doc_id)
    replace_object(app, minio, doc_id, CONTENT_TAMPERING[how](stored))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DocumentRefused) as err:
        fast_documents(survivor).download(doc_id, out / "passport.pdf")
    assert err.value.document_id == doc_id
    assert doc_id in str(err.value)
    assert "passport.pdf" in str(err.value)
    assert list(out.iterdir()) == []


def _swap(app: Flask, a: str, b: str, columns: tuple[str, ...]) -> None:
    """Exchange columns between two document rows (an attacker with database access)."""
    table = Document.__table__
    with database(app).engine.begin() as conn:
        rows = {
            doc_id: conn.execute(select(table).where(table.c.id == doc_id)).one()._mapping
            for doc_id in (a, b)
        }
        if "object_name" in columns:  # unique: park one name while swapping
            conn.execute(update(table).where(table.c.id == a).values(object_name="parked"))
        for doc_id, other in ((b, a), (a, b)):
            values = {c: rows[other][c] for c in columns}
            conn.execute(update(table).where(table.c.id == doc_id).values(values))


RECORD_TAMPERING: dict[str, tuple[str, ...]] = {
    "swapped metadata": ("metadata_envelope",),
    "swapped metadata and signatures": ("metadata_envelope", "signature"),
    "swapped sealed keys": ("owner_sealed_key",),
    "swapped objects": ("object_name",),
    "swapped everything but the id": (
        "object_name",
        "header",
        "metadata_envelope",
        "signature",
        "owner_sealed_key",
        "ciphertext_size",
        "chunk_count",
        "part_count",
    ),
}


@pytest.mark.parametrize("how", sorted(RECORD_TAMPERING))
def test_records_swapped_between_documents_are_refused(
    pair: Pair, app: Flask, tmp_path: Path, how: str
) -> None:
    survivor, _, case_id = pair
    _, a, b = _two_documents(pair, tmp_path)
    _swap(app, a, b, RECORD_TAMPERING[how])
    out = tmp_path / "out"
    out.mkdir()
    docs = fast_documents(survivor)
    for doc_id in (a, b):
        with pytest.raises(DocumentRefused) as err:
            docs.download(doc_id, out / f"{doc_id}.bin")
        assert err.value.document_id == doc_id
        assert doc_id in str(err.value)
    assert list(out.iterdir()) == []
    listing = docs.case_documents(case_id)
    if RECORD_TAMPERING[how] == ("object_name",):
        # The records are intact: only the content betrays the swap, on download.
        assert len(listing.documents) == 2
    else:
        assert listing.documents == []
        assert sorted(r.document_id for r in listing.refused) == sorted([a, b])
