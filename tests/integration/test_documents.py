"""The document vault over real HTTP, with PostgreSQL and MinIO, driven by the Python client."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import (
    bucket_objects,
    fast_documents,
    minio_client,
    object_name,
    pair,
    read_object,
    sha256_file,
    write_random_file,
)
from tests.leaks import dump_database
from tests.leaks import minio_files as _minio_files
from tests.services import MinioServer
from vault.client import ApiError, HavenClient
from vault.client.documents import FileChanged
from vault.protocol import documents as pdoc
from vault.protocol.encoding import b64encode

__all__ = ["pair"]

MiB = 1024 * 1024
Pair = tuple[HavenClient, HavenClient, str]


def _needles(path: Path, name: str, file_key: bytes) -> dict[str, bytes]:
    """Byte strings that must appear nowhere on the server side."""
    size = path.stat().st_size
    needles = {"name": name.encode(), "name (b64)": b64encode(name.encode()).encode()}
    with path.open("rb") as handle:
        for label, offset in (("start", 0), ("middle", size // 2), ("end", size - 256)):
            handle.seek(offset)
            needles[f"file bytes at {label}"] = handle.read(256)
    needles["file key"] = file_key
    needles["file key (b64)"] = b64encode(file_key).encode()
    needles["file key (hex)"] = file_key.hex().encode()
    return needles


def test_passport_scan_is_shared_downloaded_revoked_and_never_stored_in_clear(
    pair: Pair, app: Flask, minio: MinioServer, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    name = "passport-amira-khalil.pdf"
    source = tmp_path / name
    digest = write_random_file(source, 20 * MiB, seed=b"passport")
    mine = fast_documents(survivor)
    theirs = fast_documents(counsel)

    uploaded = mine.upload(case_id, source, doc_type="passport")
    assert uploaded.info.name == name
    assert uploaded.info.sha256 == digest
    doc_id = uploaded.id

    # No grant: the document does not exist for the counsel.
    for path in (f"/documents/{doc_id}", f"/documents/{doc_id}/content"):
        with pytest.raises(ApiError) as err:
            counsel.get(path)
        assert err.value.status == 404
    assert theirs.case_documents(case_id).documents == []

    assert counsel.account is not None
    mine.grant(doc_id, counsel.account.id)
    listed = theirs.case_documents(case_id)
    assert [d.id for d in listed.documents] == [doc_id]
    out = tmp_path / "counsel"
    out.mkdir()
    got = theirs.download(doc_id, out / "passport.pdf")
    assert got.sha256 == digest
    assert sha256_file(got.path) == digest
    assert got.path.read_bytes() == source.read_bytes()
    assert got.document.info.doc_type == "passport"
    assert sorted(p.name for p in out.iterdir()) == ["passport.pdf"]

    mine.revoke(doc_id, counsel.account.id)
    for path in (f"/documents/{doc_id}", f"/documents/{doc_id}/content"):
        with pytest.raises(ApiError) as err:
            counsel.get(path)
        assert err.value.status == 404
    assert theirs.case_documents(case_id).documents == []

    # The server side holds neither the file's bytes, nor its name, nor its key.
    needles = _needles(source, name, uploaded.file_key)
    objects = bucket_objects(app, minio)
    assert objects == [object_name(app, doc_id)]
    assert name not in objects[0] and survivor.account is not None
    assert survivor.account.id not in objects[0] and case_id not in objects[0]
    stored = read_object(app, minio, doc_id)
    assert len(stored) == pdoc.ciphertext_size(20 * MiB)
    dump = dump_database(app)
    assert uploaded.header in dump  # the dump is not vacuous
    for label, needle in needles.items():
        assert needle not in stored, label
        assert needle not in dump, label
    for file in _minio_files(minio):
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            continue  # emptied from MinIO's own trash while the folder was being read
        for label, needle in needles.items():
            assert needle not in data, f"{label} in {file}"
    kinds = [e["kind"] for e in mine.events(case_id)]
    assert kinds == ["revoke", "download", "grant", "upload"]


class Dropped(Exception):
    """The connection a test cut while a part was being sent."""


def _drop_at(part: int) -> Callable[[int], None]:
    """An ``on_part`` callback that cuts the upload once ``part`` is acknowledged."""

    def drop(number: int) -> None:
        if number == part:
            raise Dropped

    return drop


def _random_file(path: Path, size: int) -> tuple[Path, str]:
    """A file of random bytes and its SHA-256."""
    return path, write_random_file(path, size)


def test_upload_resumes_from_the_last_acknowledged_part(
    pair: Pair, live_server: LiveServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source, digest = _random_file(tmp_path / "birth-certificate.png", 17 * MiB + 5)
    first_device = fast_documents(survivor, parallel_parts=1)
    with pytest.raises(Dropped):
        first_device.upload(case_id, source, doc_type="birth_certificate", on_part=_drop_at(1))
    listing = survivor.get(f"/cases/{case_id}/documents")["documents"]
    assert listing == []
    pending = survivor.get(f"/documents/{_only_pending(survivor, live_server)}/upload")
    doc_id = pending["upload"]["document_id"]
    assert [p["number"] for p in pending["upload"]["parts"]] == [1]
    parts = pdoc.part_count(pdoc.ciphertext_size(17 * MiB + 5), pdoc.MIN_PART_BYTES)
    assert parts == 4
    assert pending["upload"]["part_count"] == parts
    assert pending["upload"]["part_size"] == pdoc.MIN_PART_BYTES

    # A new process (same account, another login) picks it up from part 2.
    assert survivor.account is not None
    second = HavenClient(live_server.url, witnesses=live_server.witnesses)
    second.login(survivor.account.username, PASSPHRASE)
    sent: list[int] = []
    done = fast_documents(second).resume(doc_id, source, on_part=sent.append)
    assert sorted(sent) == list(range(2, parts + 1))
    assert done.info.sha256 == digest
    got = fast_documents(second).download(doc_id, tmp_path / "copy.png")
    assert sha256_file(got.path) == digest


def test_parallel_upload_cut_short_resumes_with_exactly_the_missing_parts(
    pair: Pair, live_server: LiveServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source, digest = _random_file(tmp_path / "passport.png", 27 * MiB + 3)
    parts = pdoc.part_count(pdoc.ciphertext_size(27 * MiB + 3), pdoc.MIN_PART_BYTES)
    assert parts == 6

    docs = fast_documents(survivor)  # the default: several parts in flight at once
    assert docs.parallel_parts > 1
    with pytest.raises(Dropped):
        docs.upload(case_id, source, doc_type="passport", on_part=_drop_at(2))
    doc_id = _only_pending(survivor, live_server)
    acked = {p["number"] for p in survivor.get(f"/documents/{doc_id}/upload")["upload"]["parts"]}
    assert 2 in acked
    sent: list[int] = []
    done = fast_documents(survivor).resume(doc_id, source, on_part=sent.append)
    assert sorted(sent) == [n for n in range(1, parts + 1) if n not in acked]
    assert done.info.sha256 == digest
    got = fast_documents(survivor).download(doc_id, tmp_path / "copy.png")
    assert sha256_file(got.path) == digest


def _only_pending(client: HavenClient, live_server: LiveServer) -> str:
    """The id of the single pending upload of this client's account, from the database."""
    from vault.db import database
    from vault.documents.models import Document, DocumentState

    db = database(live_server.app).sessions()
    try:
        assert client.account is not None
        rows = (
            db.query(Document)
            .filter(Document.owner_id == client.account.id)
            .filter(Document.state == DocumentState.PENDING)
            .all()
        )
        assert len(rows) == 1
        return rows[0].id
    finally:
        db.close()


def test_minio_stopped_mid_upload_gives_503_nothing_visible_then_resumes(
    pair: Pair, app: Flask, minio: MinioServer, live_server: LiveServer, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    source = tmp_path / "visa.pdf"
    digest = write_random_file(source, 20 * MiB)
    docs = fast_documents(survivor, parallel_parts=1)

    def stop_after_first(number: int) -> None:
        if number == 1:
            minio.stop()

    try:
        with pytest.raises(ApiError) as err:
            docs.upload(case_id, source, doc_type="visa_permit", on_part=stop_after_first)
        assert err.value.status == 503
        assert err.value.code == "object_store_unavailable"
        doc_id = _only_pending(survivor, live_server)
        assert survivor.get(f"/cases/{case_id}/documents")["documents"] == []
        for client in (survivor, counsel):
            with pytest.raises(ApiError) as missing:
                client.get(f"/documents/{doc_id}")
            assert missing.value.status == 404
        status = survivor.get(f"/documents/{doc_id}/upload")["upload"]
        assert status["state"] == "pending"
        assert [p["number"] for p in status["parts"]] == [1]
        # Creating while the store is down: 503, and no row appears.
        with pytest.raises(ApiError) as down:
            docs.upload(case_id, source, doc_type="visa_permit")
        assert down.value.status == 503
        assert len(_pending_ids(app)) == 1
    finally:
        minio.start()

    sent: list[int] = []
    done = docs.resume(doc_id, source, on_part=sent.append)
    assert sent == list(range(2, status["part_count"] + 1))
    got = docs.download(done.id, tmp_path / "visa-copy.pdf")
    assert got.sha256 == digest
    assert got.path.read_bytes() == source.read_bytes()


def _pending_ids(app: Flask) -> list[str]:
    from vault.db import database
    from vault.documents.models import Document, DocumentState

    db = database(app).sessions()
    try:
        return [d.id for d in db.query(Document).filter(Document.state == DocumentState.PENDING)]
    finally:
        db.close()


def test_minio_down_before_download_gives_503_and_no_file(
    pair: Pair, minio: MinioServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "order.pdf"
    source.write_bytes(os.urandom(300_000))
    docs = fast_documents(survivor)
    doc = docs.upload(case_id, source, doc_type="protective_order")
    out = tmp_path / "out"
    out.mkdir()
    minio.stop()
    try:
        with pytest.raises(ApiError) as err:
            docs.download(doc.id, out / "order.pdf")
        assert err.value.status == 503
        assert err.value.code == "object_store_unavailable"
        assert list(out.iterdir()) == []
    finally:
        minio.start()
    assert docs.download(doc.id, out / "order.pdf").path.read_bytes() == source.read_bytes()


def test_minio_dying_mid_download_leaves_no_file(
    pair: Pair, minio: MinioServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "report.pdf"
    write_random_file(source, 64 * MiB)
    docs = fast_documents(survivor)
    doc = docs.upload(case_id, source, doc_type="police_report")
    out = tmp_path / "out"
    out.mkdir()

    def stop_early(index: int) -> None:
        if index == 1:
            minio.stop()

    try:
        with pytest.raises((ApiError, requests.RequestException)) as err:
            docs.download(doc.id, out / "report.pdf", on_chunk=stop_early)
        if isinstance(err.value, ApiError):
            assert err.value.status == 503
        assert list(out.iterdir()) == []
    finally:
        minio.start()
    got = docs.download(doc.id, out / "report.pdf")
    assert got.sha256 == hashlib.sha256(source.read_bytes()).digest()


def test_dropped_download_resumes_with_a_chunk_aligned_range(pair: Pair, tmp_path: Path) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "form.pdf"
    digest = write_random_file(source, 3 * pdoc.CHUNK_PLAINTEXT_BYTES + 99)
    docs = fast_documents(survivor)
    doc = docs.upload(case_id, source, doc_type="immigration_form")
    dropped: list[int] = []

    def drop_once(index: int) -> None:
        if index == 2 and not dropped:
            dropped.append(index)
            raise requests.ConnectionError("simulated drop")

    got = docs.download(doc.id, tmp_path / "copy.pdf", on_chunk=drop_once)
    assert dropped == [2]
    assert got.sha256 == digest
    ranged = [e for e in docs.events(case_id) if e["kind"] == "download" and "range" in e]
    first = 2 * pdoc.CHUNK_CIPHERTEXT_BYTES
    assert ranged[0]["range"] == [first, pdoc.ciphertext_size(source.stat().st_size) - 1]


def test_range_requests_serve_whole_chunks_only(
    pair: Pair, app: Flask, minio: MinioServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "id.jpg"
    write_random_file(source, 2 * pdoc.CHUNK_PLAINTEXT_BYTES + 10)
    doc = fast_documents(survivor).upload(case_id, source, doc_type="national_id")
    stored = read_object(app, minio, doc.id)
    size = len(stored)
    first, last = pdoc.chunk_range(1, size)
    answer = survivor.request(
        "GET", f"/documents/{doc.id}/content", headers={"Range": f"bytes={first}-{last}"}
    )
    assert answer.status_code == 206
    assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert answer.content == stored[first : last + 1]
    tail_first, tail_last = pdoc.chunk_range(2, size)
    assert tail_last == size - 1
    tail = survivor.request(
        "GET", f"/documents/{doc.id}/content", headers={"Range": f"bytes={tail_first}-"}
    )
    assert tail.status_code == 206
    assert tail.content == stored[tail_first:]
    for bad in ("bytes=1-100", "bytes=0-99", f"bytes=-{size}", "bytes=0-1,5-6", f"bytes={size}-"):
        with pytest.raises(ApiError) as err:
            survivor.request("GET", f"/documents/{doc.id}/content", headers={"Range": bad})
        assert err.value.status == 416, bad
        assert err.value.code == "range_not_satisfiable"


def test_owner_deletes_object_keys_and_metadata_and_a_receipt_remains(
    pair: Pair, app: Flask, minio: MinioServer, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    source = tmp_path / "medical.pdf"
    source.write_bytes(os.urandom(100_000))
    docs = fast_documents(survivor)
    doc = docs.upload(case_id, source, doc_type="medical_record")
    assert counsel.account is not None
    docs.grant(doc.id, counsel.account.id)
    name = object_name(app, doc.id)
    with pytest.raises(ApiError) as refused:
        fast_documents(counsel).delete(doc.id)
    assert refused.value.status == 403
    docs.delete(doc.id)
    assert name not in bucket_objects(app, minio)
    for client in (survivor, counsel):
        with pytest.raises(ApiError) as err:
            client.get(f"/documents/{doc.id}")
        assert err.value.status == 404
    dump = dump_database(app)
    assert doc.header not in dump
    assert b64encode(doc.raw_id).encode() in dump  # the receipt names the document
    receipts = [e for e in docs.events(case_id) if e["kind"] == "delete"]
    assert receipts[0]["document_id"] == doc.id
    assert receipts[0]["ciphertext_size"] == doc.ciphertext_size
    assert minio_client(minio).bucket_exists(app.extensions["haven.storage"].bucket)


def test_counsel_shares_a_filled_form_with_the_survivor_and_events_show_who_opened_what(
    pair: Pair, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    form = tmp_path / "i-914.pdf"
    form.write_bytes(os.urandom(70_000))
    counsel_docs = fast_documents(counsel)
    doc = counsel_docs.upload(case_id, form, doc_type="immigration_form")
    assert survivor.account is not None and counsel.account is not None
    counsel_docs.grant(doc.id, survivor.account.id)
    got = fast_documents(survivor).download(doc.id, tmp_path / "form-copy.pdf")
    assert got.path.read_bytes() == form.read_bytes()
    survivor_view = fast_documents(survivor).events(case_id)
    opened = [e for e in survivor_view if e["kind"] == "download"]
    assert opened[0]["actor_id"] == survivor.account.id
    assert opened[0]["owner_id"] == counsel.account.id
    with pytest.raises(ApiError) as err:
        fast_documents(survivor).grant(doc.id, counsel.account.id)
    assert err.value.status == 403


class _KillingBody:
    """A part body that stops MinIO once half of it has been sent."""

    def __init__(self, size: int, minio: MinioServer) -> None:
        self.size = size
        self.sent = 0
        self.minio = minio

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        if self.sent >= self.size:
            return b""
        if self.sent >= self.size // 2 and self.minio.proc is not None:
            self.minio.stop()
        piece = b"\0" * min(amount if amount > 0 else 65536, self.size - self.sent)
        self.sent += len(piece)
        return piece


def test_minio_killed_while_a_part_streams_gives_503_and_keeps_nothing(
    pair: Pair, minio: MinioServer, live_server: LiveServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "permit.pdf"
    digest = write_random_file(source, 9 * MiB)

    class Stop(Exception):
        pass

    def stop(_: int) -> None:
        raise Stop

    docs = fast_documents(survivor, parallel_parts=1)
    with pytest.raises(Stop):
        docs.upload(case_id, source, doc_type="visa_permit", on_part=stop)
    doc_id = _only_pending(survivor, live_server)
    upload = survivor.get(f"/documents/{doc_id}/upload")["upload"]
    body = _KillingBody(pdoc.part_size(upload["ciphertext_size"], 2, upload["part_size"]), minio)
    try:
        with pytest.raises(ApiError) as err:
            survivor.request(
                "PUT",
                f"/documents/{doc_id}/parts/2",
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            )
        assert err.value.status == 503
        assert err.value.code == "object_store_unavailable"
        assert body.sent == body.size  # the server read the rest, so the 503 arrived
    finally:
        minio.start()
    status = survivor.get(f"/documents/{doc_id}/upload")["upload"]
    assert [p["number"] for p in status["parts"]] == [1]
    done = docs.resume(doc_id, source)
    assert docs.download(done.id, tmp_path / "copy.pdf").sha256 == digest


def test_a_counsel_brought_in_by_consent_sees_documents_only_once_shared(
    pair: Pair, create_account: Callable[..., tuple[HavenClient, str]], tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    colleague, _ = create_account("counsel")
    assert colleague.account is not None and counsel.account is not None
    with pytest.raises(ApiError) as err:
        survivor.post(f"/cases/{case_id}/members", {"username": colleague.account.username})
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        colleague.post(f"/cases/{case_id}/members", {"username": colleague.account.username})
    assert err.value.status == 404
    counsel.request_counsel(case_id, colleague.account.username)
    (pending,) = survivor.member_requests(case_id)
    case = survivor.approve_member(case_id, pending["id"])
    assert case["id"] == case_id
    seen = {m["user_id"]: m for m in survivor.get(f"/cases/{case_id}")["case"]["members"]}
    assert seen[colleague.account.id]["added_by"] == counsel.account.id
    assert seen[colleague.account.id]["role"] == "counsel"
    events = fast_documents(survivor).events(case_id)
    assert [e["kind"] for e in events[:2]] == ["member_add", "member_request"]
    assert events[0]["actor_id"] == survivor.account.id  # type: ignore[union-attr]
    assert events[1]["actor_id"] == counsel.account.id
    assert {e["subject_id"] for e in events[:2]} == {colleague.account.id}
    # The new counsel is in the case but sees no document until one is shared.
    source = tmp_path / "order.pdf"
    source.write_bytes(b"protective order")
    doc = fast_documents(survivor).upload(case_id, source, doc_type="protective_order")
    theirs = fast_documents(colleague)
    assert theirs.case_documents(case_id).documents == []
    fast_documents(survivor).grant(doc.id, colleague.account.id)
    got = theirs.download(doc.id, tmp_path / "copy.pdf")
    assert got.path.read_bytes() == b"protective order"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_whole_flow_on_sqlite(pair: Pair, tmp_path: Path) -> None:
    survivor, counsel, case_id = pair
    assert counsel.account is not None
    source = tmp_path / "id.png"
    digest = write_random_file(source, 9 * MiB + 1)
    docs = fast_documents(survivor)
    doc = docs.upload(case_id, source, doc_type="national_id")
    docs.grant(doc.id, counsel.account.id)
    got = fast_documents(counsel).download(doc.id, tmp_path / "copy.png")
    assert got.sha256 == digest
    docs.revoke(doc.id, counsel.account.id)
    docs.delete(doc.id)
    assert [e["kind"] for e in docs.events(case_id)] == [
        "delete",
        "revoke",
        "download",
        "grant",
        "upload",
    ]


def test_a_file_that_changes_during_upload_is_never_finalized(
    pair: Pair, live_server: LiveServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "scan.pdf"
    # The client reads ahead of what is acknowledged; the edit must land beyond what it can
    # have read when part 1 is. One part at a time bounds that: part 1 is being sent, part 2
    # queued, part 3 encrypted and waiting, and two read-ahead buffers hold parts 4 and 5, so
    # at most 5 parts of 5 MiB (25 MiB) are read. With several senders the other parts'
    # acknowledgements free buffers while part 1 is acknowledged, and there is no such bound:
    # a run once read the whole file first and, rightly, finalized what it had read.
    write_random_file(source, 32 * MiB)

    def change_the_file(number: int) -> None:
        if number == 1:
            with source.open("r+b") as handle:
                handle.seek(30 * MiB)
                handle.write(b"edited")

    docs = fast_documents(survivor, parallel_parts=1)
    with pytest.raises(FileChanged):
        docs.upload(case_id, source, doc_type="other", on_part=change_the_file)
    doc_id = _only_pending(survivor, live_server)
    assert survivor.get(f"/documents/{doc_id}/upload")["upload"]["state"] == "pending"
    # Resuming with the changed file is refused before a byte is re-encrypted.
    with pytest.raises(FileChanged):
        docs.resume(doc_id, source)
    docs.delete(doc_id)
    assert survivor.get(f"/cases/{case_id}/documents")["documents"] == []
