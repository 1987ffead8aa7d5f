"""Documents on a distributed, erasure-coded MinIO that loses nodes (docs/deploy.md,
"Distributed object store").

Four MinIO processes with two drives each form one erasure set of eight drives with two
parity drives (one node's worth). Through the real app and the Python client: a node killed
during an upload and another during a download change nothing a user sees; a second node
lost at once is beyond parity and the app answers 503 ``object_store_unavailable`` in the one
error shape; when the nodes return, every acknowledged document is still there and verifies.

The app talks to node 1; the tests kill the others. (In production a load balancer or DNS
name spreads the app over every node: docs/deploy.md.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from tests.integration.documents_fixtures import (
    object_name,
    pair,
    sha256_file,
    write_random_file,
)
from tests.services import DistributedMinio, wait_for
from vault.client import ApiError, HavenClient
from vault.client.documents import Documents, OpenedDocument
from vault.db import database
from vault.documents.models import Document, DocumentState
from vault.protocol import documents as pdoc
from vault.storage import store

__all__ = ["pair"]

Pair = tuple[HavenClient, HavenClient, str]
# Node indexes (0-based): the app's node is never killed here.
APP_NODE = 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributedMinio]:
    """This module's four-node MinIO; each test leaves every node running."""
    store = DistributedMinio(tmp_path_factory.mktemp("distributed-minio"))
    store.start()
    yield store
    store.close()


@pytest.fixture
def app(make_app: Callable[..., Flask], cluster: DistributedMinio) -> Flask:
    """The app on a fresh bucket of the distributed store (through node 1), every node up
    (a failed test may have left one down)."""
    for node in range(cluster.nodes):
        if cluster.procs[node] is None:
            cluster.revive(node)
    return make_app(**cluster.settings(f"dist-{secrets.token_hex(5)}", node=APP_NODE))


def patient(client: HavenClient) -> Documents:
    """Documents with 5 MiB parts sent one at a time (a node dies between known parts) and
    enough retries to ride out MinIO noticing a lost node."""
    return Documents(
        client, retries=6, backoff=0.25, part_chunks=pdoc.MIN_PART_CHUNKS, parallel_parts=1
    )


def stored_on(cluster: DistributedMinio, app: Flask, node: int, document_id: str) -> bool:
    """Both drives of ``node`` hold the object's metadata (its erasure shards are there).

    Each call also reads the object's metadata through S3, as any download does: MinIO
    queues an object it finds missing on an online drive for healing.
    """
    bucket = app.config["HAVEN_S3_BUCKET"]
    name = object_name(app, document_id)
    assert store(app).size(name) is not None
    return all(
        (cluster.drive(node, n) / bucket / name / "xl.meta").exists()
        for n in range(1, cluster.drives_per_node + 1)
    )


def pending_upload(app: Flask, case_id: str) -> str:
    """The id of the case's one unfinished upload (the client that lost it knows it too)."""
    db = database(app).sessions()
    try:
        ids = db.scalars(
            select(Document.id).where(
                Document.case_id == case_id, Document.state == DocumentState.PENDING
            )
        ).all()
    finally:
        db.close()
    assert len(ids) == 1
    return ids[0]


def verify_all(reader: HavenClient, docs: dict[str, bytes], folder: Path, tag: str) -> None:
    """Download every document as ``reader``: signature, size and SHA-256 all check out."""
    folder.mkdir(exist_ok=True)
    for doc_id, digest in docs.items():
        got = patient(reader).download(doc_id, folder / f"{tag}-{doc_id}")
        assert got.sha256 == digest
        assert sha256_file(got.path) == digest


def upload_shared(
    owner: HavenClient,
    reader: HavenClient,
    case_id: str,
    source: Path,
    on_part: Callable[[int], None] | None = None,
) -> OpenedDocument:
    """Upload a file and share it with ``reader``."""
    assert reader.account is not None
    doc = patient(owner).upload(case_id, source, doc_type="passport", on_part=on_part)
    patient(owner).grant(doc.id, reader.account.id)
    return doc


def test_a_node_lost_during_an_upload_and_another_during_a_download_loses_nothing(
    app: Flask, cluster: DistributedMinio, pair: Pair, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    docs: dict[str, bytes] = {}

    before = tmp_path / "before.bin"
    digest_before = write_random_file(before, 6 * 1024 * 1024, seed=b"before")
    first = upload_shared(survivor, counsel, case_id, before)
    docs[first.id] = digest_before

    # Node 4 dies once the first of three parts is acknowledged: the rest still go in.
    during = tmp_path / "during.bin"
    digest_during = write_random_file(during, 11 * 1024 * 1024, seed=b"during")
    parts_seen: list[int] = []

    def kill_after_first_part(number: int) -> None:
        parts_seen.append(number)
        if number == 1:
            cluster.kill(3)

    second = upload_shared(survivor, counsel, case_id, during, on_part=kill_after_first_part)
    docs[second.id] = digest_during
    assert parts_seen == [1, 2, 3]
    assert cluster.procs[3] is None
    verify_all(counsel, docs, tmp_path / "one-down", "one-down")

    # Node 4 returns; MinIO heals what was written without it onto its drives when it next
    # reads the object (and on its own background scan).
    cluster.revive(3)
    wait_for(lambda: stored_on(cluster, app, 3, second.id), "the object healed onto node 4", 120)

    # Node 3 dies while the download streams: MinIO rebuilds the rest from parity.
    chunks: list[int] = []

    def kill_during_download(index: int) -> None:
        chunks.append(index)
        if len(chunks) == 1:
            cluster.kill(2)

    out = tmp_path / "download.bin"
    got = patient(counsel).download(second.id, out, on_chunk=kill_during_download)
    assert got.sha256 == digest_during and sha256_file(out) == digest_during
    assert cluster.procs[2] is None
    assert len(chunks) == pdoc.chunk_count(11 * 1024 * 1024)

    listing = patient(counsel).case_documents(case_id)
    assert not listing.refused
    assert {d.id for d in listing.documents} == set(docs)

    cluster.revive(2)
    verify_all(counsel, docs, tmp_path / "all-back", "all-back")


def test_a_second_node_lost_is_a_503_and_every_acknowledged_document_survives(
    app: Flask, cluster: DistributedMinio, pair: Pair, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    docs: dict[str, bytes] = {}
    for size_mib in (1, 6):
        source = tmp_path / f"kept-{size_mib}.bin"
        digest = write_random_file(source, size_mib * 1024 * 1024, seed=b"kept%d" % size_mib)
        docs[upload_shared(survivor, counsel, case_id, source).id] = digest

    # One node down is within parity; a second one, mid-upload, is beyond it.
    cluster.kill(2)
    pending = tmp_path / "pending.bin"
    digest_pending = write_random_file(pending, 11 * 1024 * 1024, seed=b"pending")
    acked: list[int] = []

    def lose_second_node(number: int) -> None:
        acked.append(number)
        if number == 1:
            cluster.kill(1)

    uploads = Documents(
        survivor, retries=1, backoff=0.1, part_chunks=pdoc.MIN_PART_CHUNKS, parallel_parts=1
    )
    with pytest.raises(ApiError) as refused:
        uploads.upload(case_id, pending, doc_type="passport", on_part=lose_second_node)
    assert (refused.value.status, refused.value.code) == (503, "object_store_unavailable")
    assert acked == [1]

    # Reading is beyond quorum too: a clear 503 in the one error shape, with Retry-After.
    some_id = next(iter(docs))
    raw = counsel.http.get(f"{counsel.base_url}/api/v1/documents/{some_id}/content", timeout=60)
    assert raw.status_code == 503
    assert raw.json() == {
        "error": {"code": "object_store_unavailable", "message": raw.json()["error"]["message"]}
    }
    assert raw.headers["Retry-After"] == "5"
    with pytest.raises(ApiError) as unreadable:
        Documents(counsel, retries=0).download(some_id, tmp_path / "unreadable.bin")
    assert (unreadable.value.status, unreadable.value.code) == (503, "object_store_unavailable")
    assert not (tmp_path / "unreadable.bin").exists()

    # The nodes return: every acknowledged document verifies, and the interrupted upload
    # resumes from its acknowledged part and finalizes.
    cluster.revive(1)
    cluster.revive(2)
    verify_all(counsel, docs, tmp_path / "after", "after")
    status_id = pending_upload(app, case_id)
    status = survivor.get(f"/documents/{status_id}/upload")["upload"]
    assert [p["number"] for p in status["parts"]] == [1]
    resumed = patient(survivor).resume(status_id, pending)
    assert resumed.info.sha256 == digest_pending
    assert counsel.account is not None
    patient(survivor).grant(resumed.id, counsel.account.id)
    docs[resumed.id] = digest_pending
    verify_all(counsel, docs, tmp_path / "resumed", "resumed")
    assert requests.get(f"{counsel.base_url}/readyz", timeout=10).status_code == 200
