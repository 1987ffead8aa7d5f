"""Leak searches after a scenario: every database value, every file MinIO stores, the app's
log lines. Shared by the integration and browser tests that promise something is nowhere."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from tests.factories import tables
from tests.services import MinioServer
from vault.db import database


def dump_database(app: Flask) -> bytes:
    """Every value of every row of every table, as one byte string."""
    engine = database(app).engine
    out = bytearray()
    with engine.connect() as conn:
        for table in tables(engine):
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        out += bytes(value)
                    else:
                        out += str(value).encode()
                    out += b"\x00"
    return bytes(out)


def minio_files(minio: MinioServer) -> list[Path]:
    """Every file under MinIO's data folder; a folder MinIO empties meanwhile (its trash) is
    skipped, as os.walk skips folders it cannot read."""
    return [
        Path(top, name)
        for top, _, names in os.walk(minio.root / "data")
        for name in names
        if Path(top, name).is_file()
    ]


def assert_stored_nowhere(
    app: Flask, minio: MinioServer, records: Iterable[logging.LogRecord], needles: dict[str, bytes]
) -> None:
    """No needle in any database value, any stored MinIO file or any of the log `records`."""
    dump = dump_database(app)
    logged = "\n".join(r.getMessage() for r in records).encode()
    for label, needle in needles.items():
        assert needle not in dump, f"{label} in the database"
        assert needle not in logged, f"{label} in the server's log"
    for file in minio_files(minio):
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            continue  # removed by MinIO while we read
        for label, needle in needles.items():
            assert needle not in data, f"{label} in {file}"
