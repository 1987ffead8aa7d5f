"""The object store over minio-py (plain S3, so another S3 server can stand in)."""

from __future__ import annotations

from flask import Flask, current_app
from minio import Minio
from minio.error import MinioException
from urllib3 import PoolManager, Retry, Timeout
from urllib3.exceptions import HTTPError


class StorageUnavailable(RuntimeError):
    """The object store did not answer."""


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
