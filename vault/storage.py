"""The object store over minio-py (plain S3, so another S3 server can stand in)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlunsplit

from flask import Flask, current_app
from minio import Minio
from minio import time as s3time
from minio.datatypes import Part
from minio.error import MinioException, S3Error
from minio.signer import sign_v4_s3
from urllib3 import BaseHTTPResponse, HTTPHeaderDict, PoolManager, Retry, Timeout
from urllib3.exceptions import HTTPError

from vault.ops import metrics

# Bytes move between client and store in pieces of these sizes, so memory per transfer
# stays bounded whatever the object's size. Uploads forward 1 MiB at a time (larger pieces
# only delay the store); downloads read 4 MiB at a time (fewer, cheaper iterations).
STREAM_PIECE_BYTES = 1024 * 1024
DOWNLOAD_PIECE_BYTES = 4 * 1024 * 1024
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class StorageUnavailable(RuntimeError):
    """The object store did not answer."""


class StorageFull(StorageUnavailable):
    """The object store is out of space (MinIO: XMinioStorageFull, HTTP 507)."""


STORAGE_FULL_CODES = frozenset({"XMinioStorageFull", "StorageFull"})


class StorageError(RuntimeError):
    """The object store answered with an S3 error (NoSuchUpload, NoSuchKey, InvalidPart...)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _is_full(exc: S3Error) -> bool:
    """Out of space. MinIO says so with 507 XMinioStorageFull when a write would not fit,
    and with a 500 InternalError naming ENOSPC when the drive is already full."""
    status = exc.response.status if exc.response is not None else 0
    return (
        exc.code in STORAGE_FULL_CODES
        or status == 507
        or "no space left on device" in (exc.message or "").lower()
    )


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """Translate client errors: no answer or a 5xx is unavailability, a 4xx is an S3 error."""
    try:
        yield
    except S3Error as exc:
        if _is_full(exc):
            metrics.store_error("full")
            raise StorageFull(exc.code or "InsufficientStorage") from exc
        if exc.response is not None and exc.response.status >= 500:
            metrics.store_error("unavailable")
            raise StorageUnavailable(exc.code or "ServerError") from exc
        metrics.store_error("s3_error")
        raise StorageError(exc.code or "S3Error") from exc
    except (MinioException, HTTPError, OSError) as exc:
        metrics.store_error("unavailable")
        raise StorageUnavailable(type(exc).__name__) from exc


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload the store knows of."""

    object_name: str
    upload_id: str
    initiated: datetime | None


class ObjectReader:
    """A streamed object body: iterate for pieces, close when done (or abandoned)."""

    def __init__(self, response: BaseHTTPResponse) -> None:
        self._response = response
        self.length = int(response.headers.get("Content-Length", "0"))

    def __iter__(self) -> Iterator[bytes]:
        """Yield the body in pieces; StorageUnavailable if the store goes away midway."""
        with _guard():
            yield from self._response.stream(DOWNLOAD_PIECE_BYTES)

    def close(self) -> None:
        """Drop the connection (an unread body must not go back to the pool)."""
        self._response.close()
        self._response.release_conn()


class ObjectStore:
    """A bucket on an S3 endpoint."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
    ) -> None:
        # Short connect timeout and no blind retries: a dead store must fail fast as 503.
        http = PoolManager(
            timeout=Timeout(connect=3.0, read=60.0),
            retries=Retry(total=0, connect=0, read=0, redirect=0),
            maxsize=32,
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self.bucket = bucket

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist."""
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
        except (MinioException, HTTPError, OSError) as exc:
            raise StorageUnavailable(str(type(exc).__name__)) from exc

    def ping(self) -> None:
        """Raise StorageUnavailable unless the bucket answers."""
        try:
            if not self.client.bucket_exists(self.bucket):
                raise StorageUnavailable("bucket missing")
        except (MinioException, HTTPError, OSError) as exc:
            raise StorageUnavailable(str(type(exc).__name__)) from exc

    # -- multipart uploads ----------------------------------------------------------------

    def create_upload(self, object_name: str) -> str:
        """Start a multipart upload; return its upload id."""
        with _guard():
            upload_id: str = self.client._create_multipart_upload(
                self.bucket, object_name, {"Content-Type": "application/octet-stream"}
            )
            return upload_id

    def upload_part(
        self, object_name: str, upload_id: str, number: int, body: Iterable[bytes], length: int
    ) -> str:
        """Stream ``length`` bytes from ``body`` into one part; return the part's ETag.

        The body is never held whole: it is signed as UNSIGNED-PAYLOAD (minio-py would
        hash it first) and sent with a fixed Content-Length while it is being read. If the
        body raises or ends early the connection is dropped, and the store keeps nothing.
        """
        query = {"partNumber": str(number), "uploadId": upload_id}
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        with _guard():
            response = self._signed_open("PUT", object_name, query, headers, body)
            etag = response.headers.get("ETag", "").replace('"', "")
        if not etag:
            raise StorageUnavailable("part answer without an ETag")
        return etag

    def complete_upload(
        self, object_name: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        """Join the parts (number, ETag) into the object, atomically."""
        with _guard():
            self.client._complete_multipart_upload(
                self.bucket, object_name, upload_id, [Part(n, etag) for n, etag in parts]
            )

    def abort_upload(self, object_name: str, upload_id: str) -> None:
        """Abort a multipart upload and drop its parts; an unknown upload is not an error."""
        try:
            with _guard():
                self.client._abort_multipart_upload(self.bucket, object_name, upload_id)
        except StorageError as exc:
            if exc.code != "NoSuchUpload":
                raise

    def list_uploads(self, prefix: str) -> Iterator[PendingUpload]:
        """Every multipart upload in progress under a key prefix.

        The whole bucket is listed and filtered here: MinIO matches the S3 ``prefix``
        parameter only against whole object names.
        """
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            with _guard():
                result = self.client._list_multipart_uploads(
                    self.bucket,
                    key_marker=key_marker,
                    upload_id_marker=upload_marker,
                    max_uploads=1000,
                )
            for upload in result.uploads:
                if upload.object_name.startswith(prefix):
                    yield PendingUpload(
                        upload.object_name, upload.upload_id or "", upload.initiated_time
                    )
            if not result.is_truncated or not result.uploads:
                return
            key_marker = result.uploads[-1].object_name
            upload_marker = result.uploads[-1].upload_id

    # -- objects --------------------------------------------------------------------------

    def open(self, object_name: str, first: int = 0, length: int = 0) -> ObjectReader:
        """Open an object (or ``length`` bytes of it from ``first``) for streaming."""
        with _guard():
            response = self.client.get_object(self.bucket, object_name, first, length)
        return ObjectReader(response)

    def put(self, object_name: str, body: Iterable[bytes], length: int) -> None:
        """Stream ``length`` bytes into one object with a single PUT (S3 allows 5 GiB)."""
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        with _guard():
            self._signed_open("PUT", object_name, {}, headers, body).release_conn()

    def size(self, object_name: str) -> int | None:
        """The object's size, or None when there is no such object."""
        try:
            with _guard():
                stat = self.client.stat_object(self.bucket, object_name)
        except StorageError as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}:
                return None
            raise
        return int(stat.size or 0)

    def remove(self, object_name: str) -> None:
        """Delete an object; a missing object is not an error."""
        with _guard():
            self.client.remove_object(self.bucket, object_name)

    def list_objects(self, prefix: str) -> Iterator[tuple[str, datetime | None]]:
        """Names and modification times of the objects under a prefix."""
        with _guard():
            for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                yield obj.object_name, obj.last_modified

    def _signed_open(
        self,
        method: str,
        object_name: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Iterable[bytes] | None,
    ) -> BaseHTTPResponse:
        """Send one signed request whose body is streamed, not hashed first."""
        client: Any = self.client
        region = client._get_region(self.bucket)
        url = client._base_url.build(
            method=method,
            region=region,
            bucket_name=self.bucket,
            object_name=object_name,
            query_params=query,
        )
        creds = client._provider.retrieve() if client._provider else None
        date = s3time.utcnow()
        all_headers: dict[str, Any] = {
            **headers,
            "Host": url.netloc,
            "User-Agent": client._user_agent,
            "x-amz-content-sha256": UNSIGNED_PAYLOAD,
            "x-amz-date": s3time.to_amz_date(date),
        }
        if creds is not None:
            if creds.session_token:
                all_headers["X-Amz-Security-Token"] = creds.session_token
            all_headers = sign_v4_s3(
                method=method,
                url=url,
                region=region,
                headers=all_headers,
                credentials=creds,
                content_sha256=UNSIGNED_PAYLOAD,
                date=date,
            )
        response: BaseHTTPResponse = client._http.urlopen(
            method, urlunsplit(url), body=body, headers=HTTPHeaderDict(all_headers)
        )
        if response.status in (200, 204):
            return response
        try:
            error = S3Error.fromxml(response)
        except Exception as exc:
            if response.status == 507:
                raise StorageFull("store answered 507") from exc
            if response.status >= 500:
                raise StorageUnavailable(f"store answered {response.status}") from exc
            raise StorageError(f"http_{response.status}") from exc
        if _is_full(error):
            raise StorageFull(error.code or "InsufficientStorage") from error
        if response.status >= 500:
            raise StorageUnavailable(error.code or f"store answered {response.status}") from error
        raise error


def init_app(app: Flask) -> None:
    """Attach the object store to the app (connections open lazily)."""
    cfg = app.config
    app.extensions["haven.storage"] = ObjectStore(
        cfg["HAVEN_S3_ENDPOINT"],
        cfg["HAVEN_S3_ACCESS_KEY"],
        cfg["HAVEN_S3_SECRET_KEY"],
        cfg["HAVEN_S3_BUCKET"],
        secure=cfg["HAVEN_S3_SECURE"],
        region=cfg["HAVEN_S3_REGION"],
    )


def store(app: Flask | None = None) -> ObjectStore:
    """The app's object store."""
    obj: ObjectStore = (app or current_app).extensions["haven.storage"]
    return obj
