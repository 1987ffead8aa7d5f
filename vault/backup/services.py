"""Write, restore and check backups: plain arguments in, summaries out (docs/protocol.md §27)."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, select
from tqdm import tqdm

from vault import clock, migrate
from vault.backup import database as dump
from vault.backup.fileformat import (
    END,
    KEY,
    KIND_DATA,
    KIND_KEYS,
    KINDS,
    MANIFEST,
    OBJECT,
    ROW,
    TABLE,
    BackupError,
    Reader,
    Writer,
)
from vault.documents.models import Document, DocumentState
from vault.keyring import KEY_BYTES, PURPOSES, load_keyring
from vault.protocol.encoding import b64decode, b64encode
from vault.storage import STREAM_PIECE_BYTES, ObjectStore, StorageError, StorageUnavailable

NAME_LENGTH = struct.Struct(">H")
ATTEMPTS = 3
MISSING_CODES = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


class BackupRaced(BackupError):
    """A document in the snapshot lost its object before it was copied (deleted meanwhile)."""


@dataclass
class Summary:
    """What a backup or restore moved."""

    rows: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    object_bytes: int = 0
    keys: int = 0
    file_bytes: int = 0
    revision: str = ""

    def as_end(self) -> bytes:
        """The END record's payload."""
        return _json(
            {
                "tables": self.rows,
                "objects": self.objects,
                "object_bytes": self.object_bytes,
                "keys": self.keys,
            }
        )


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def progress(total: int | None, what: str) -> tqdm[Any]:
    """A progress bar on a terminal (bytes, rate, time left); silent otherwise."""
    return tqdm(
        total=total,
        desc=what,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    )


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A 0600 file written under a temporary name and renamed into place when complete."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# -- backup -----------------------------------------------------------------------------


def write_backup(engine: Engine, store: ObjectStore, out: Path, public_key: bytes) -> Summary:
    """Write a data backup; try again from a new snapshot if a deletion raced the copy."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with _atomic_file(out) as handle:
                return _write_data(engine, store, handle, public_key)
        except BackupRaced:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _write_data(engine: Engine, store: ObjectStore, handle: BinaryIO, public: bytes) -> Summary:
    """Snapshot, every table's rows, then every object the store lists afterwards."""
    writer = Writer(handle, KIND_DATA, public)
    summary = Summary()
    with dump.snapshot(engine) as conn:
        summary.revision = dump.revision(conn)
        tables = dump.tables(conn)
        manifest = {
            "format": 1,
            "kind": "data",
            "created_at": clock.now().isoformat(),
            "revision": summary.revision,
            "dialect": engine.dialect.name,
            "tables": [t.name for t in tables],
        }
        writer.record(MANIFEST, _json(manifest))
        with progress(None, "database") as bar:
            for table in tables:
                columns = list(table.columns.keys())
                writer.record(TABLE, _json({"name": table.name, "columns": columns}))
                count = 0
                for row in dump.table_rows(conn, table):
                    writer.record(ROW, row)
                    count += 1
                    bar.update(len(row))
                summary.rows[table.name] = count
        # Objects finished before the snapshot are listed below; in-progress uploads never are.
        referenced = set(
            conn.execute(
                select(Document.object_name).where(Document.state == DocumentState.READY)
            ).scalars()
        )
    listing = [
        (o.object_name, int(o.size or 0))
        for o in store.client.list_objects(store.bucket, recursive=True)
        if o.object_name is not None
    ]
    copied = _copy_objects(store, writer, listing, referenced, summary)
    missing = referenced - copied
    if missing:
        raise BackupRaced(f"{len(missing)} documents were deleted during the backup")
    writer.record(END, summary.as_end())
    writer.close()
    summary.file_bytes = writer.written
    return summary


def _copy_objects(
    store: ObjectStore,
    writer: Writer,
    listing: list[tuple[str, int]],
    referenced: set[str],
    summary: Summary,
) -> set[str]:
    """Stream each listed object into the backup; return the names copied."""
    copied: set[str] = set()
    total = sum(size for _, size in listing)
    with progress(total, "objects") as bar:
        for number, (name, _) in enumerate(listing, 1):
            bar.set_postfix_str(f"{number}/{len(listing)} files", refresh=False)
            try:
                body = store.open(name)
            except StorageError as exc:
                if exc.code in MISSING_CODES:
                    continue  # deleted since the listing; checked against `referenced` later
                raise
            try:
                encoded = name.encode("utf-8")
                writer.begin(OBJECT, NAME_LENGTH.size + len(encoded) + body.length)
                writer.write(NAME_LENGTH.pack(len(encoded)) + encoded)
                sent = 0
                for piece in body:
                    writer.write(piece)
                    sent += len(piece)
                    bar.update(len(piece))
            finally:
                body.close()
            if sent != body.length:
                raise StorageUnavailable(f"object ended after {sent} of {body.length} bytes")
            copied.add(name)
            summary.objects += 1
            summary.object_bytes += sent
    return copied


def write_keys_backup(keys_dir: Path, out: Path, public_key: bytes) -> Summary:
    """Write the keyring (every live version of every purpose) to its own backup file."""
    ring = load_keyring(keys_dir)
    summary = Summary()
    with _atomic_file(out) as handle:
        writer = Writer(handle, KIND_KEYS, public_key)
        manifest = {"format": 1, "kind": "keys", "created_at": clock.now().isoformat()}
        writer.record(MANIFEST, _json(manifest))
        for purpose, versions in sorted(ring.keys.items()):
            for version, key in sorted(versions.items()):
                record = {"purpose": purpose, "version": version, "key": b64encode(key)}
                writer.record(KEY, _json(record))
                summary.keys += 1
        writer.record(END, summary.as_end())
        writer.close()
        summary.file_bytes = writer.written
    return summary


# -- restore ----------------------------------------------------------------------------


def open_backup(handle: BinaryIO, secret_key: bytes) -> tuple[Reader, dict[str, object]]:
    """Check the header and key, and read the manifest."""
    reader = Reader(handle, secret_key)
    kind, length = reader.record()
    if kind != MANIFEST:
        raise BackupError("the backup does not start with its manifest")
    manifest = json.loads(reader.read(length))
    if manifest.get("kind") != KINDS[reader.kind]:
        raise BackupError("the manifest's kind disagrees with the header")
    return reader, manifest


def prepare_target(engine: Engine, store: ObjectStore, force: bool) -> None:
    """Refuse a database with tables or a bucket with objects, or empty them when forced."""
    try:
        store.ping()
        has_objects = next(iter(store.list_objects("")), None) is not None
    except StorageUnavailable:  # no such bucket (yet); a store that is down fails below
        has_objects = False
    if not force and not dump.is_empty(engine):
        raise BackupError("the target database is not empty (restore --force empties it)")
    if not force and has_objects:
        raise BackupError("the target bucket is not empty (restore --force empties it)")
    store.ensure_bucket()
    if force:
        dump.drop_everything(engine)
        for name, _ in list(store.list_objects("")):
            store.remove(name)


def restore_data(
    url: str, engine: Engine, store: ObjectStore, handle: BinaryIO, secret_key: bytes, force: bool
) -> Summary:
    """Restore a data backup onto an empty database and bucket; on any error leave them empty."""
    reader, manifest = open_backup(handle, secret_key)
    if reader.kind != KIND_DATA:
        raise BackupError("this is a keyring backup: restore it with `haven restore --keys-dir`")
    prepare_target(engine, store, force)
    revision = str(manifest["revision"])
    uploaded: list[str] = []
    try:
        try:
            migrate.upgrade(url, revision)
        except Exception as exc:  # alembic: unknown revision
            raise BackupError(
                f"this Haven release does not know schema revision {revision}: use a newer one"
            ) from exc
        summary = Summary(revision=revision)
        with engine.begin() as conn:
            loader = dump.Loader(conn)
            _load_records(reader, loader, store, uploaded, summary)
            loader.reset_sequences()
        migrate.upgrade(url)
    except BaseException:
        for name in uploaded:
            with contextlib.suppress(StorageUnavailable, StorageError):
                store.remove(name)
        dump.drop_everything(engine)
        raise
    summary.file_bytes = reader.read_bytes
    return summary


def _load_records(
    reader: Reader,
    loader: dump.Loader,
    store: ObjectStore,
    uploaded: list[str],
    summary: Summary,
) -> None:
    """Apply records until END; check END's counts against what was applied."""
    table = ""
    total = os.fstat(reader.src.fileno()).st_size if hasattr(reader.src, "fileno") else None
    with progress(total, "restore") as bar:

        def tick() -> None:
            bar.update(reader.read_bytes - bar.n)

        while True:
            tick()
            kind, length = reader.record()
            if kind == TABLE:
                header = json.loads(reader.read(length))
                table = str(header["name"])
                loader.begin_table(table, list(header["columns"]))
                summary.rows[table] = 0
            elif kind == ROW:
                loader.add_row(reader.read(length))
                summary.rows[table] += 1
            elif kind == OBJECT:
                (size,) = NAME_LENGTH.unpack(reader.read(NAME_LENGTH.size))
                name = reader.read(size).decode("utf-8")
                body_length = length - NAME_LENGTH.size - size
                holder = _Holder()
                try:
                    pieces = _checked(reader.pieces(body_length), holder, tick)
                    store.put(name, pieces, body_length)
                except (StorageUnavailable, StorageError) as exc:
                    if holder.error is not None:
                        raise holder.error from exc
                    raise
                uploaded.append(name)
                summary.objects += 1
                summary.object_bytes += body_length
            elif kind == END:
                end = json.loads(reader.read(length))
                reader.finish()
                break
            else:
                raise BackupError(f"unexpected record type {kind} in a data backup")
    loader.flush()
    expected = {"tables": end["tables"], "objects": end["objects"]}
    if expected != {"tables": summary.rows, "objects": summary.objects}:
        raise BackupError("the backup's END record disagrees with its contents")


class _Holder:
    """The first error a streamed body raised (the HTTP client may hide it)."""

    error: BaseException | None = None


def _checked(pieces: Iterator[bytes], holder: _Holder, tick: Callable[[], None]) -> Iterable[bytes]:
    """Pieces for an upload, joined to about 1 MiB (fewer socket writes), keeping a
    decryption error for the caller to raise."""
    held: list[bytes] = []
    size = 0
    try:
        for piece in pieces:
            held.append(piece)
            size += len(piece)
            if size >= STREAM_PIECE_BYTES:
                tick()
                yield b"".join(held)
                held, size = [], 0
        if held:
            yield b"".join(held)
    except BackupError as exc:
        holder.error = exc
        raise


def restore_keys(handle: BinaryIO, secret_key: bytes, keys_dir: Path, force: bool) -> Summary:
    """Write a keyring backup's keys into an empty keys folder (0700 folders, 0600 files)."""
    reader, _ = open_backup(handle, secret_key)
    if reader.kind != KIND_KEYS:
        raise BackupError("this is a data backup: restore it without --keys-dir")
    if keys_dir.exists() and any(keys_dir.rglob("*.key")) and not force:
        raise BackupError(f"{keys_dir} already holds keys (restore --force replaces them)")
    keys: list[tuple[str, int, bytes]] = []
    while True:
        kind, length = reader.record()
        if kind == END:
            reader.read(length)
            reader.finish()
            break
        if kind != KEY:
            raise BackupError(f"unexpected record type {kind} in a keyring backup")
        item = json.loads(reader.read(length))
        key = b64decode(item["key"])
        if len(key) != KEY_BYTES or item["purpose"] not in PURPOSES:
            raise BackupError("a key in the backup has the wrong length or purpose")
        keys.append((str(item["purpose"]), int(item["version"]), key))
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for purpose, version, key in keys:
        folder = keys_dir / purpose
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / f"{version}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
    load_keyring(keys_dir)
    return Summary(keys=len(keys), file_bytes=reader.read_bytes)
