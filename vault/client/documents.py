"""Documents over a HavenClient: streaming encrypted uploads, verified streaming downloads.

Nothing here holds a whole file in memory: uploads read the source twice (once to hash it,
as the signed metadata carries its SHA-256, then once more in a pipeline where encryption,
the second hash and parallel part uploads overlap, a few parts in memory), downloads
decrypt chunk by chunk into a temporary file that only gets its real name once the
signature, every chunk, the final tag, the size and the SHA-256 have been checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import os
import queue
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import requests
from requests.exceptions import ChunkedEncodingError

from vault.client.api import Account, ApiError, HavenClient, parse_public_keys, wait_to_retry
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol.encoding import EncodingError, b64decode, b64encode

READ_BYTES = 1024 * 1024
MAX_NAME = 200
# 32 MiB parts: on a good link fewer requests go faster; a phone on weak data uses less.
DEFAULT_PART_CHUNKS = 512
# Parts sent at once: the parallelism the storage bench measures the service at
# (tests/bench/bench_documents.py), enough to keep encryption busy while parts travel.
DEFAULT_PARALLEL_PARTS = 3


class FileChanged(ValueError):
    """The file being uploaded is not the one the upload was started with."""


class DocumentRefused(Exception):
    """A document failed verification. The message names it; nothing was written."""

    def __init__(self, document_id: str, reason: str, name: str | None = None) -> None:
        label = f"document {document_id}" + (f" ({name!r})" if name else "")
        super().__init__(f"{label} refused: {reason}")
        self.document_id = document_id
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class OpenedDocument:
    """A document whose record, signature, key and metadata all verified."""

    id: str
    case_id: str
    owner_id: str
    owner_key_version: int
    info: pdoc.DocumentInfo
    file_key: bytes = field(repr=False)
    header: bytes
    ciphertext_size: int
    created_at: str
    data: dict[str, Any] = field(repr=False)

    @property
    def raw_id(self) -> bytes:
        """The 16-byte document id."""
        return b64decode(self.id)


@dataclass(frozen=True)
class Listing:
    """A case's documents: those that verified, and those refused (with the reason)."""

    documents: list[OpenedDocument]
    refused: list[DocumentRefused]


@dataclass(frozen=True)
class Downloaded:
    """A verified file on disk."""

    document: OpenedDocument
    path: Path
    sha256: bytes


def _read_into(source: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``source`` (fewer bytes only at the end of the file)."""
    readinto = getattr(source, "readinto", None)
    got = 0
    while got < len(view):
        if readinto is not None:
            count = readinto(view[got:]) or 0
        else:
            piece = source.read(len(view) - got)
            view[got : got + len(piece)] = piece
            count = len(piece)
        if not count:
            break
        got += count
    return got


def _buffers(count: int, size: int) -> queue.Queue[bytearray]:
    """``count`` reusable buffers of ``size`` bytes, taken from and given back to a queue."""
    pool: queue.Queue[bytearray] = queue.Queue()
    for _ in range(count):
        pool.put(bytearray(size))
    return pool


def _encrypt_part(
    encryptor: pdoc.ContentEncryptor, plain: memoryview, chunks: int, out: bytearray
) -> int:
    """Write one part's ciphertext into ``out`` and return its length: its plaintext chunks
    pushed in order, the stream's last FINAL. One buffer, so that it goes out in one
    ``sendall``."""
    size = pdoc.CHUNK_PLAINTEXT_BYTES
    end = 0
    for first in range(0, max(1, len(plain)), size):
        final = encryptor.index == chunks - 1
        cipher = encryptor.push(bytes(plain[first : first + size]), is_final=final)
        out[end : end + len(cipher)] = cipher
        end += len(cipher)
    return end


def hash_file(source: BinaryIO) -> tuple[int, bytes]:
    """Size and SHA-256 of a seekable file, read in bounded pieces."""
    source.seek(0)
    digest = hashlib.sha256()
    size = 0
    while piece := source.read(READ_BYTES):
        digest.update(piece)
        size += len(piece)
    return size, digest.digest()


def open_with_key(record: pdoc.SignedDocument, file_key: bytes) -> pdoc.DocumentInfo:
    """Check the file key's commitment, open the metadata and check the signed sizes."""
    commitment, _ = pdoc.parse_content_header(record.header)
    if commitment != pdoc.FileKeys.derive(file_key).commitment:
        raise pkeys.ProtocolError("the file key does not match the content header")
    info = pdoc.open_metadata(
        record.metadata,
        file_key,
        record.document_id,
        record.case_id,
        record.uploader_id,
        record.header,
    )
    if pdoc.ciphertext_size(info.size) != record.ciphertext_size:
        raise pkeys.ProtocolError("the signed sizes do not agree")
    return info


class Documents:
    """The document vault as one signed-in client sees it."""

    def __init__(
        self,
        client: HavenClient,
        *,
        retries: int = 3,
        backoff: float = 1.0,
        part_chunks: int = DEFAULT_PART_CHUNKS,
        parallel_parts: int = DEFAULT_PARALLEL_PARTS,
    ) -> None:
        pdoc.check_part_bytes(part_chunks * pdoc.CHUNK_CIPHERTEXT_BYTES)
        self.client = client
        self.retries = retries
        self.backoff = backoff
        self.part_bytes = part_chunks * pdoc.CHUNK_CIPHERTEXT_BYTES
        # Parts sent at once. With one, parts are acknowledged (and ``on_part`` called) in
        # order and a failure leaves nothing after it sent; with more, in any order.
        self.parallel_parts = max(1, parallel_parts)
        self._signers: dict[tuple[str, int], bytes] = {}

    # -- keys -----------------------------------------------------------------------------

    @property
    def _account(self) -> Account:
        if self.client.account is None:
            raise RuntimeError("sign in first")
        return self.client.account

    def _members(self, case_id: str) -> dict[str, dict[str, Any]]:
        case = self.client.get(f"/cases/{case_id}")["case"]
        return {m["user_id"]: m for m in case["members"]}

    def _signer_key(self, case_id: str, user_id: str, version: int) -> bytes:
        """The uploader's Ed25519 key of a version: self-signed and in the key log."""
        cached = self._signers.get((user_id, version))
        if cached is not None:
            return cached
        member = self._members(case_id).get(user_id)
        if member is None:
            raise pkeys.ProtocolError("the uploader is not a member of the case")
        keys = self.client.get(f"/users/{user_id}/keys")["keys"]
        for key in keys:
            if key["version"] == version:
                self.client.verify_contact(user_id, member["username"], key)
                record = parse_public_keys(key)
                self._signers[(user_id, version)] = record.ed25519
                return record.ed25519
        raise pkeys.ProtocolError(f"the uploader has no key version {version}")

    def _reader_keys(self, case_id: str, user_id: str) -> pkeys.PublicKeys:
        member = self._members(case_id).get(user_id)
        if member is None:
            raise ApiError(400, "not_a_case_member", "that account is not in the case")
        self.client.trust_contact(user_id, member["username"], member["public_keys"])
        return parse_public_keys(member["public_keys"])

    # -- reading --------------------------------------------------------------------------

    def open(self, data: dict[str, Any], expected_id: str | None = None) -> OpenedDocument:
        """Verify a document record from the server and unlock it; DocumentRefused if not."""
        document_id = str(data.get("id", expected_id or "?"))
        if expected_id is not None and document_id != expected_id:
            raise DocumentRefused(expected_id, "the server answered with another document")
        name: str | None = None
        try:
            record = pdoc.SignedDocument.from_json({**data, "id": document_id})
            signer = self._signer_key(record.case_id, record.uploader_id, record.key_version)
            record.verify(signer, b64decode(data["signature"]))
            file_key = pdoc.open_file_key(
                b64decode(data["sealed_key"]), record.document_id, self._account.keys
            )
            info = open_with_key(record, file_key)
            name = info.name
            header = record.header
        except (pkeys.ProtocolError, EncodingError, KeyError, TypeError, ValueError) as exc:
            raise DocumentRefused(document_id, str(exc), name) from exc
        return OpenedDocument(
            id=document_id,
            case_id=record.case_id,
            owner_id=record.uploader_id,
            owner_key_version=record.key_version,
            info=info,
            file_key=file_key,
            header=header,
            ciphertext_size=record.ciphertext_size,
            created_at=str(data.get("finalized_at") or data.get("created_at")),
            data=data,
        )

    def get(self, document_id: str) -> OpenedDocument:
        """One document, verified."""
        data = self.client.get(f"/documents/{document_id}")["document"]
        return self.open(data, expected_id=document_id)

    def case_documents(self, case_id: str) -> Listing:
        """Every document of a case I may read, each verified on its own."""
        documents, refused = [], []
        for data in self.client.get(f"/cases/{case_id}/documents")["documents"]:
            try:
                opened = self.open(data)
                if opened.case_id != case_id:
                    raise DocumentRefused(
                        opened.id, "it was signed for another case", opened.info.name
                    )
                documents.append(opened)
            except DocumentRefused as exc:
                refused.append(exc)
        return Listing(documents, refused)

    # -- upload ---------------------------------------------------------------------------

    def upload(
        self,
        case_id: str,
        source: Path | BinaryIO,
        *,
        doc_type: str,
        name: str | None = None,
        mime_type: str | None = None,
        expires_on: dt.date | None = None,
        on_part: Callable[[int], None] | None = None,
    ) -> OpenedDocument:
        """Encrypt and upload a file as a stream; resume by itself after dropped parts."""
        if isinstance(source, Path):
            with source.open("rb") as handle:
                return self.upload(
                    case_id,
                    handle,
                    doc_type=doc_type,
                    name=name or source.name,
                    mime_type=mime_type,
                    expires_on=expires_on,
                    on_part=on_part,
                )
        if name is None:
            raise ValueError("name the document")
        account = self._account
        size, digest = hash_file(source)
        guessed = mimetypes.guess_type(name)[0] if mime_type is None else mime_type
        info = pdoc.DocumentInfo(
            name=name,
            mime_type=(guessed or "application/octet-stream").lower(),
            size=size,
            doc_type=doc_type,
            expires_on=expires_on,
            sha256=digest,
        )
        info.check()
        raw_id = pdoc.generate_document_id()
        file_key = pdoc.generate_file_key()
        header = pdoc.ContentEncryptor(file_key).header
        metadata = pdoc.seal_metadata(info, file_key, raw_id, case_id, account.id, header)
        record = pdoc.SignedDocument(
            document_id=raw_id,
            case_id=case_id,
            uploader_id=account.id,
            key_version=account.keys.version,
            header=header,
            ciphertext_size=pdoc.ciphertext_size(size),
            metadata=metadata,
        )
        sealed = pdoc.seal_file_key(
            file_key, raw_id, account.public_keys.x25519, account.keys.version
        )
        body = {
            "id": b64encode(raw_id),
            "key_version": account.keys.version,
            "header": b64encode(header),
            "metadata": b64encode(metadata),
            "signature": b64encode(record.sign(account.keys)),
            "sealed_key": b64encode(sealed),
            "ciphertext_size": record.ciphertext_size,
            "chunk_count": pdoc.chunk_count(size),
            "part_size": self.part_bytes,
        }
        upload = self.client.post(f"/cases/{case_id}/documents", body)["upload"]
        return self._complete(
            b64encode(raw_id), file_key, header, source, info, upload, on_part, check=False
        )

    def resume(
        self,
        document_id: str,
        source: Path | BinaryIO,
        on_part: Callable[[int], None] | None = None,
    ) -> OpenedDocument:
        """Continue an interrupted upload of the same file from the last acknowledged part."""
        if isinstance(source, Path):
            with source.open("rb") as handle:
                return self.resume(document_id, handle, on_part)
        data = self.client.get(f"/documents/{document_id}/upload")
        if data["upload"]["state"] == "complete":
            return self.get(document_id)
        # The status carries my own record of the pending document: sealed key, header and
        # metadata, all checked as on any download before a byte is re-encrypted.
        opened = self.open(data["document"], expected_id=document_id)
        return self._complete(
            document_id,
            opened.file_key,
            opened.header,
            source,
            opened.info,
            data["upload"],
            on_part,
            check=True,
        )

    def _complete(
        self,
        document_id: str,
        file_key: bytes,
        header: bytes,
        source: BinaryIO,
        info: pdoc.DocumentInfo,
        upload: dict[str, Any],
        on_part: Callable[[int], None] | None,
        *,
        check: bool,
    ) -> OpenedDocument:
        """Send the missing parts and finalize, retrying what a dropped connection broke.

        Before the same stream is pushed again the file must still hash to the signed
        SHA-256: other plaintext under the same header would reuse secretstream nonces.
        The hash is taken again while encrypting, and a changed file is never finalized.
        """
        attempt = 0
        while True:
            if check:
                size, digest = hash_file(source)
                if size != info.size or digest != info.sha256:
                    raise FileChanged("the file is not the one this upload was started with")
            try:
                if attempt:
                    # Inside the retry: the status can meet the same outage as the finalize.
                    upload = self.client.get(f"/documents/{document_id}/upload")["upload"]
                acked = {p["number"] for p in upload["parts"]}
                sent_digest = self._send_parts(
                    document_id,
                    file_key,
                    header,
                    source,
                    info.size,
                    int(upload["part_size"]),
                    acked,
                    on_part,
                )
                if sent_digest != info.sha256:
                    raise FileChanged("the file changed while it was being uploaded")
                # A repeated finalize completes the upload once (protocol §8.6).
                finalize = f"/documents/{document_id}/finalize"
                data = self.client.post(finalize, idempotent=True)["document"]
                return self.open(data, expected_id=document_id)
            except (requests.ConnectionError, requests.Timeout, ApiError) as exc:
                attempt = wait_to_retry(exc, attempt, self.retries, self.backoff)
                check = True

    def _send_parts(
        self,
        document_id: str,
        file_key: bytes,
        header: bytes,
        source: BinaryIO,
        plaintext_size: int,
        part_bytes: int,
        acked: set[int],
        on_part: Callable[[int], None] | None,
    ) -> bytes:
        """Send every part not yet acknowledged, re-encrypting the same stream from its start.

        One pass over the file on three kinds of thread: a reader reads each part's
        plaintext into a reused buffer and hashes it, one part ahead; this thread only
        encrypts, part after part (secretstream is sequential); ``parallel_parts`` senders
        send finished parts from reused ciphertext buffers. At most two plaintext and
        ``parallel_parts + 2`` ciphertext parts are in memory. Return the SHA-256 of the
        plaintext that was read.
        """
        pdoc.check_part_bytes(part_bytes)
        _, stream_header = pdoc.parse_content_header(header)
        encryptor = pdoc.ContentEncryptor(file_key, stream_header)
        total = pdoc.ciphertext_size(plaintext_size)
        chunks = pdoc.chunk_count(plaintext_size)
        count = pdoc.part_count(total, part_bytes)
        plain_bytes = part_bytes // pdoc.CHUNK_CIPHERTEXT_BYTES * pdoc.CHUNK_PLAINTEXT_BYTES
        digest = hashlib.sha256()
        source.seek(0)
        # Reused buffers: no fresh part-sized allocation (and its page faults) per part.
        plains = _buffers(2, min(plain_bytes, plaintext_size))
        bodies = _buffers(self.parallel_parts + 2, min(part_bytes, total))
        read: queue.Queue[tuple[bytearray, int] | BaseException] = queue.Queue()
        parts: queue.Queue[tuple[int, bytearray, int] | None] = queue.Queue(1)
        failed: list[BaseException] = []
        stop = threading.Event()

        def read_ahead() -> None:
            # One read and one hash update per part: the GIL is given up once per part,
            # not once per 64 KiB chunk.
            try:
                for number in range(1, count + 1):
                    buffer = plains.get()
                    if stop.is_set():
                        return
                    expected = min(plain_bytes, plaintext_size - (number - 1) * plain_bytes)
                    view = memoryview(buffer)[:expected]
                    if _read_into(source, view) != expected:
                        raise FileChanged("the file got shorter while it was being uploaded")
                    digest.update(view)
                    read.put((buffer, expected))
            except BaseException as exc:  # handed to the caller's thread below
                read.put(exc)

        def send() -> None:
            while (item := parts.get()) is not None:
                number, body, size = item
                try:
                    if failed:
                        continue  # drain: the producer learns of the failure at its next put
                    self.client.request(
                        "PUT",
                        f"/documents/{document_id}/parts/{number}",
                        data=memoryview(body)[:size],
                        headers={"Content-Type": "application/octet-stream"},
                    )
                    if on_part is not None:
                        on_part(number)
                except BaseException as exc:  # handed to the caller's thread below
                    failed.append(exc)
                finally:
                    bodies.put(body)

        threads = [threading.Thread(target=read_ahead, daemon=True)]
        threads += [threading.Thread(target=send, daemon=True) for _ in range(self.parallel_parts)]
        for thread in threads:
            thread.start()
        try:
            for number in range(1, count + 1):
                if failed:
                    break
                got = read.get()
                if isinstance(got, BaseException):
                    raise got
                plain, expected = got
                body = bodies.get()
                size = _encrypt_part(encryptor, memoryview(plain)[:expected], chunks, body)
                plains.put(plain)
                if number in acked:
                    bodies.put(body)
                else:
                    parts.put((number, body, size))
        finally:
            stop.set()
            plains.put(bytearray())  # wakes a reader waiting for a buffer
            for _ in threads[1:]:
                parts.put(None)
            for thread in threads:
                thread.join()
        if failed:
            raise failed[0]
        if source.read(1):
            raise FileChanged("the file grew while it was being uploaded")
        return digest.digest()

    # -- download -------------------------------------------------------------------------

    def download(
        self,
        document_id: str,
        dest: Path,
        *,
        on_chunk: Callable[[int], None] | None = None,
        document: OpenedDocument | None = None,
        purpose: Literal["view", "save"] = "save",
    ) -> Downloaded:
        """Decrypt into ``dest`` (which must not exist) or leave nothing; a file is a "save"."""
        opened = document or self.get(document_id)
        if dest.exists():
            raise FileExistsError(dest)
        fd, tmp_name = tempfile.mkstemp(prefix=".haven-", suffix=".partial", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = self._decrypt_into(opened, out, on_chunk, purpose)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(dest.parent)
        return Downloaded(opened, dest, digest)

    def _decrypt_into(
        self,
        doc: OpenedDocument,
        out: BinaryIO,
        on_chunk: Callable[[int], None] | None,
        purpose: Literal["view", "save"] = "save",
    ) -> bytes:
        decryptor = pdoc.ContentDecryptor(doc.file_key, doc.header)
        digest = hashlib.sha256()
        written = 0
        offset = 0
        attempt = 0
        name = doc.info.name
        while not decryptor.is_finished:
            try:
                for chunk in self._fetch(doc.id, offset, purpose):
                    try:
                        plain = decryptor.pull(chunk)
                    except pkeys.ProtocolError as exc:
                        raise DocumentRefused(doc.id, str(exc), name) from exc
                    out.write(plain)
                    digest.update(plain)
                    written += len(plain)
                    offset += len(chunk)
                    if on_chunk is not None:
                        on_chunk(decryptor.index)
                break
            except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError):
                attempt += 1
                if attempt > self.retries or offset >= doc.ciphertext_size:
                    raise
                time.sleep(self.backoff * 2 ** (attempt - 1))
        try:
            decryptor.finish()
        except pkeys.ProtocolError as exc:
            raise DocumentRefused(doc.id, str(exc), name) from exc
        if offset != doc.ciphertext_size:
            raise DocumentRefused(doc.id, "the content has a different length than signed", name)
        if written != doc.info.size or digest.digest() != doc.info.sha256:
            raise DocumentRefused(doc.id, "the SHA-256 or size does not match the signed one", name)
        return digest.digest()

    def _fetch(
        self, document_id: str, offset: int, purpose: Literal["view", "save"] = "save"
    ) -> Iterator[bytes]:
        """Whole ciphertext chunks from ``offset`` (a chunk boundary) to the end."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.client.request(
            "GET",
            f"/documents/{document_id}/content",
            headers=headers,
            params={"purpose": purpose},
            stream=True,
        )
        try:
            expected = 206 if offset else 200
            if response.status_code != expected:
                raise requests.ConnectionError(f"unexpected status {response.status_code}")
            buffer = bytearray()
            for piece in response.iter_content(chunk_size=pdoc.CHUNK_CIPHERTEXT_BYTES):
                buffer += piece
                while len(buffer) >= pdoc.CHUNK_CIPHERTEXT_BYTES:
                    yield bytes(buffer[: pdoc.CHUNK_CIPHERTEXT_BYTES])
                    del buffer[: pdoc.CHUNK_CIPHERTEXT_BYTES]
            if buffer:
                yield bytes(buffer)
        finally:
            response.close()

    # -- sharing and deleting -------------------------------------------------------------

    def grant(
        self, document_id: str, user_id: str, expires_at: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Seal my document's file key to a case member's current key and grant them access."""
        doc = self.get(document_id)
        reader = self._reader_keys(doc.case_id, user_id)
        sealed = pdoc.seal_file_key(doc.file_key, doc.raw_id, reader.x25519, reader.version)
        body: dict[str, Any] = {"user_id": user_id, "sealed_key": b64encode(sealed)}
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        grant: dict[str, Any] = self.client.post(f"/documents/{document_id}/grants", body)["grant"]
        return grant

    def revoke(self, document_id: str, user_id: str) -> None:
        """Withdraw a reader's grant."""
        self.client.request("DELETE", f"/documents/{document_id}/grants/{user_id}")

    def delete(self, document_id: str) -> None:
        """Delete my document (crypto-shredding: its keys and metadata go with it)."""
        self.client.request("DELETE", f"/documents/{document_id}")

    def events(
        self, case_id: str, *, before: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The case's events I may see, newest first; ``before`` is an event id of this case."""
        params: dict[str, Any] = {}
        if before is not None:
            params["before"] = before
        if limit is not None:
            params["limit"] = limit
        events: list[dict[str, Any]] = self.client.get(f"/cases/{case_id}/events", **params)[
            "events"
        ]
        return events


def safe_file_name(name: str, document_id: str) -> str:
    """A file name that stays inside the output folder, whatever the uploader wrote."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip().lstrip(".")
    name = re.sub(r"\s+", " ", name)
    while len(name.encode("utf-8")) > MAX_NAME:
        name = name[:-1]
    return name or f"document-{document_id}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
