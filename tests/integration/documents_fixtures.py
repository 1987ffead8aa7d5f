"""Helpers for the document tests: fast service-level documents, files, MinIO access.

Import explicitly: ``from tests.integration.documents_fixtures import ...``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from minio import Minio

from tests.factories import Person, session_cookie_for
from tests.services import MinioServer
from vault.client import HavenClient
from vault.client.documents import DEFAULT_PARALLEL_PARTS, Documents
from vault.documents.models import Document
from vault.protocol import documents as pdoc
from vault.protocol.encoding import b64encode

OCTET = "application/octet-stream"


@dataclass
class DocHandle:
    """A document made through the HTTP API of a test client, with its secrets."""

    id: str
    raw_id: bytes
    file_key: bytes
    header: bytes
    ciphertext: bytes
    info: pdoc.DocumentInfo


def create_body(
    person: Person, case_id: str, plaintext: bytes, *, name: str = "scan.pdf"
) -> tuple[dict[str, Any], DocHandle]:
    """A valid create body for ``person`` and the document's secrets."""
    raw_id = pdoc.generate_document_id()
    file_key = pdoc.generate_file_key()
    header, ciphertext = pdoc.encrypt_content(file_key, plaintext)
    info = pdoc.DocumentInfo(
        name=name,
        mime_type="application/pdf",
        size=len(plaintext),
        doc_type="passport",
        expires_on=None,
        sha256=hashlib.sha256(plaintext).digest(),
    )
    metadata = pdoc.seal_metadata(info, file_key, raw_id, case_id, person.id, header)
    record = pdoc.SignedDocument(
        raw_id, case_id, person.id, person.keys.version, header, len(ciphertext), metadata
    )
    body = {
        "id": b64encode(raw_id),
        "key_version": person.keys.version,
        "header": b64encode(header),
        "metadata": b64encode(metadata),
        "signature": b64encode(record.sign(person.keys)),
        "sealed_key": b64encode(
            pdoc.seal_file_key(file_key, raw_id, person.public.x25519, person.keys.version)
        ),
        "ciphertext_size": len(ciphertext),
        "chunk_count": pdoc.chunk_count(len(plaintext)),
    }
    return body, DocHandle(b64encode(raw_id), raw_id, file_key, header, ciphertext, info)


def signed_in(app: Flask, person: Person) -> Any:
    """A Flask test client signed in as ``person``."""
    client = app.test_client()
    session_cookie_for(app, client, person.id)
    return client


def make_document(
    app: Flask,
    person: Person,
    case_id: str,
    plaintext: bytes = b"%PDF-1.7 test document\n",
    *,
    name: str = "scan.pdf",
    is_finalized: bool = True,
    readers: tuple[Person, ...] = (),
) -> DocHandle:
    """Create (and by default upload, finalize and share) a document through the API."""
    client = signed_in(app, person)
    body, handle = create_body(person, case_id, plaintext, name=name)
    created = client.post(f"/api/v1/cases/{case_id}/documents", json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    if not is_finalized:
        return handle
    size = len(handle.ciphertext)
    for number in range(1, pdoc.part_count(size) + 1):
        first = (number - 1) * pdoc.PART_BYTES
        part = handle.ciphertext[first : first + pdoc.PART_BYTES]
        sent = client.put(
            f"/api/v1/documents/{handle.id}/parts/{number}", data=part, content_type=OCTET
        )
        assert sent.status_code == 200, sent.get_data(as_text=True)
    done = client.post(f"/api/v1/documents/{handle.id}/finalize", content_type="application/json")
    assert done.status_code == 200, done.get_data(as_text=True)
    for reader in readers:
        sealed = pdoc.seal_file_key(
            handle.file_key, handle.raw_id, reader.public.x25519, reader.keys.version
        )
        granted = client.post(
            f"/api/v1/documents/{handle.id}/grants",
            json={"user_id": reader.id, "sealed_key": b64encode(sealed)},
        )
        assert granted.status_code == 201, granted.get_data(as_text=True)
    return handle


def write_random_file(path: Path, size: int, seed: bytes = b"haven") -> bytes:
    """Write ``size`` deterministic pseudo-random bytes; return their SHA-256."""
    digest = hashlib.sha256()
    block = hashlib.shake_256(seed).digest(1024 * 1024)
    counter = 0
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            piece = hashlib.blake2b(counter.to_bytes(8, "big"), digest_size=8).digest() + block
            piece = piece[: min(remaining, len(piece))]
            handle.write(piece)
            digest.update(piece)
            remaining -= len(piece)
            counter += 1
    return digest.digest()


def sha256_file(path: Path) -> bytes:
    """SHA-256 of a file, read in pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1024 * 1024):
            digest.update(piece)
    return digest.digest()


def minio_client(minio: MinioServer) -> Minio:
    """A plain minio-py client on the test MinIO (to read and tamper with objects)."""
    return Minio(
        f"127.0.0.1:{minio.port}",
        access_key=minio.access_key,
        secret_key=minio.secret_key,
        secure=False,
    )


def object_name(app: Flask, document_id: str) -> str:
    """The object name of a document, from the database."""
    db = app.extensions["haven.db"].sessions()
    try:
        doc = db.get(Document, document_id)
        assert doc is not None
        return doc.object_name
    finally:
        db.close()


def read_object(app: Flask, minio: MinioServer, document_id: str) -> bytes:
    """The stored ciphertext of a (small) document."""
    store = app.extensions["haven.storage"]
    response = minio_client(minio).get_object(store.bucket, object_name(app, document_id))
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def replace_object(app: Flask, minio: MinioServer, document_id: str, data: bytes) -> None:
    """Overwrite a document's stored ciphertext (an attacker with bucket access)."""
    import io

    store = app.extensions["haven.storage"]
    minio_client(minio).put_object(
        store.bucket, object_name(app, document_id), io.BytesIO(data), len(data)
    )


def bucket_objects(app: Flask, minio: MinioServer) -> list[str]:
    """Every object name in the app's bucket."""
    store = app.extensions["haven.storage"]
    return [
        o.object_name or "" for o in minio_client(minio).list_objects(store.bucket, recursive=True)
    ]


def fast_documents(client: HavenClient, parallel_parts: int = DEFAULT_PARALLEL_PARTS) -> Documents:
    """Documents with short retry pauses and the smallest parts (5 MiB), so that files of
    a few MiB already take several parts; ``parallel_parts=1`` for parts acknowledged in
    order. Tests assert outcomes, never timings."""
    return Documents(
        client,
        retries=2,
        backoff=0.05,
        part_chunks=pdoc.MIN_PART_CHUNKS,
        parallel_parts=parallel_parts,
    )


@pytest.fixture
def pair(
    create_account: Callable[..., tuple[HavenClient, str]],
) -> tuple[HavenClient, HavenClient, str]:
    """A counsel, the survivor they invited, and their case id (all over real HTTP)."""
    counsel, _ = create_account("counsel")
    survivor, _ = create_account("survivor", invited_by=counsel)
    case_id = survivor.cases()[0]["id"]
    return survivor, counsel, case_id


def random_bytes(size: int) -> bytes:
    """Random test content."""
    return os.urandom(size)
