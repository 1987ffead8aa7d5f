"""`haven backup`, `haven restore` and `haven backup verify` on real PostgreSQL and MinIO.

A deployment is backed up, restored onto an empty database and bucket, and served again:
its documents and messages verify through the Python client. Truncated, altered and
wrongly keyed files are refused and leave the target empty; the file holds no plaintext.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, inspect, text

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import fast_documents, sha256_file, write_random_file
from tests.services import MinioServer, PostgresServer
from vault.backup.fileformat import HEADER_BYTES, parse_public_key
from vault.backup.services import write_backup
from vault.cli import main
from vault.client import HavenClient
from vault.client.messages import Messenger
from vault.keyring import load_keyring
from vault.storage import ObjectReader, ObjectStore, store

MARKER_TEXT = "backup-marker-7f3a: my passport number is X1234567"


def cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `haven ...` with these settings; return (exit code, stdout + stderr)."""
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output


def settings_of(app: Flask, minio: MinioServer, **extra: str) -> dict[str, str]:
    """The environment a `haven` command on the app's host would have."""
    cfg = app.config
    return {
        "HAVEN_DATABASE_URL": cfg["HAVEN_DATABASE_URL"].replace("+psycopg", ""),
        "HAVEN_KEYS_DIR": cfg["HAVEN_KEYS_DIR"],
        **minio.settings(cfg["HAVEN_S3_BUCKET"]),
        **extra,
    }


@pytest.fixture
def backup_key(tmp_path: Path) -> tuple[str, str]:
    """A backup key pair made by `haven backup keygen`: (public key, secret key file)."""
    secret = tmp_path / "backup.secret"
    code, out = cli(["backup", "keygen", str(secret)], {})
    assert code == 0, out
    assert secret.stat().st_mode & 0o077 == 0
    return out.strip().split("=", 1)[1], str(secret)


def empty_target(postgres: PostgresServer, minio: MinioServer) -> tuple[str, str]:
    """A new empty PostgreSQL database and a bucket name: (database URL, bucket)."""
    name = f"restore_{secrets.token_hex(5)}"
    postgres.execute(f"CREATE DATABASE {name}")
    return postgres.url(name).replace("+psycopg", ""), f"restore-{secrets.token_hex(5)}"


def table_names(url: str) -> list[str]:
    """The tables a database has."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


class RacingDelete(ObjectStore):
    """The target's store, where a user deletes a document just as the backup reaches it."""

    def __init__(self, settings: dict[str, str], minio: MinioServer, bucket: str) -> None:
        super().__init__(settings["HAVEN_S3_ENDPOINT"], minio.access_key, minio.secret_key, bucket)
        self.url = settings["HAVEN_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
        self.deleted: str | None = None
        self.opened_after_delete = False

    def open(self, object_name: str, first: int = 0, length: int = 0) -> ObjectReader:
        """Delete the first document object asked for (object, then row), then open."""
        if self.deleted is None:
            self.deleted = object_name
            self.remove(object_name)
            engine = create_engine(self.url)
            with engine.begin() as conn:
                conn.execute(
                    text("DELETE FROM documents WHERE object_name = :n"), {"n": object_name}
                )
            engine.dispose()
        else:
            self.opened_after_delete = True
        return super().open(object_name, first, length)


def test_backup_restore_onto_empty_postgres_and_minio_then_everything_verifies(
    app: Flask,
    live_server: LiveServer,
    create_account: Callable[..., tuple[HavenClient, str]],
    make_app: Callable[..., Flask],
    postgres: PostgresServer,
    minio: MinioServer,
    backup_key: tuple[str, str],
    tmp_path: Path,
) -> None:
    counsel, _ = create_account("counsel", username="backup-counsel")
    survivor, _ = create_account("survivor", username="backup-survivor", invited_by=counsel)
    assert counsel.account is not None
    [case] = survivor.cases()
    source = tmp_path / "passport.jpg"
    digest = write_random_file(source, 6 * 1024 * 1024 + 123, seed=b"backup")
    doc = fast_documents(survivor).upload(case["id"], source, doc_type="passport")
    fast_documents(survivor).grant(doc.id, counsel.account.id)
    chat = Messenger(survivor)
    conversation = chat.create_conversation(case["id"], [counsel.account.id])
    chat.send(conversation.id, MARKER_TEXT)
    Messenger(counsel).send(conversation.id, "Received.")
    # An upload in progress is excluded from the backup: its parts are not an object yet.
    objects = store(app)
    upload = objects.create_upload("doc/in-progress")
    objects.upload_part("doc/in-progress", upload, 1, [b"p" * 1024], 1024)
    second_file = tmp_path / "second.bin"
    write_random_file(second_file, 1024, seed=b"second")

    public, secret = backup_key
    env = settings_of(app, minio, HAVEN_BACKUP_PUBLIC_KEY=public)
    out = tmp_path / "haven.backup"
    code, output = cli(["backup", str(out)], env)
    assert code == 0, output
    assert "1 objects" in output

    # No plaintext: usernames, message text, document bytes; nor the stored ciphertexts.
    data = out.read_bytes()
    [name] = [n for n, _ in objects.list_objects("")]
    reader = objects.open(name)
    stored = next(iter(reader))[:4096]
    reader.close()
    for marker in (
        b"backup-counsel",
        b"backup-survivor",
        MARKER_TEXT.encode(),
        source.read_bytes()[:64],
        stored[100:164],
        name.encode(),
        doc.id.encode(),
    ):
        assert marker not in data

    # Keyring: its own file, never in the data backup.
    keys_out = tmp_path / "keys.backup"
    code, output = cli(["backup", "keys", str(keys_out)], env)
    assert code == 0, output
    ring = load_keyring(Path(env["HAVEN_KEYS_DIR"]))
    for versions in ring.keys.values():
        for key in versions.values():
            assert key not in data and key not in keys_out.read_bytes()
    restored_keys = tmp_path / "restored-keys"
    code, output = cli(
        ["restore", str(keys_out), "--secret-key", secret, "--keys-dir", str(restored_keys)], {}
    )
    assert code == 0, output
    assert load_keyring(restored_keys).keys == ring.keys

    # Restore onto an empty database and bucket, and serve them with the restored keyring.
    url, bucket = empty_target(postgres, minio)
    target = {**env, "HAVEN_DATABASE_URL": url, **minio.settings(bucket)}
    code, output = cli(["restore", str(out), "--secret-key", secret], target)
    assert code == 0, output
    target_store = ObjectStore(
        target["HAVEN_S3_ENDPOINT"], minio.access_key, minio.secret_key, bucket
    )
    assert [n for n, _ in target_store.list_objects("")] == [name]
    assert list(target_store.list_uploads("")) == []
    code, output = cli(["restore", str(out), "--secret-key", secret], target)
    assert code != 0 and "not empty" in output

    restored = make_app(
        HAVEN_DATABASE_URL=url, HAVEN_KEYS_DIR=str(restored_keys), **minio.settings(bucket)
    )
    with LiveServer(restored) as server:
        counsel2 = HavenClient(server.url, witnesses=server.witnesses)
        counsel2.login("backup-counsel", PASSPHRASE)
        survivor2 = HavenClient(server.url, witnesses=server.witnesses)
        survivor2.login("backup-survivor", PASSPHRASE)
        again = tmp_path / "again"
        again.mkdir()
        got = fast_documents(counsel2).download(doc.id, again / "p.jpg")
        assert got.sha256 == digest and sha256_file(got.path) == digest
        for reader_client in (counsel2, survivor2):
            texts = [m.text for m in Messenger(reader_client).read(conversation.id)]
            assert texts == ["Received.", MARKER_TEXT]
        counsel2.cases()  # key-log inclusion and consistency still verify
        # The restored deployment takes new writes (its counters moved past restored rows).
        Messenger(survivor2).send(conversation.id, "after the restore")
        second = fast_documents(survivor2).upload(case["id"], second_file, doc_type="other")
        fast_documents(survivor2).grant(second.id, counsel2.account.id)  # type: ignore[union-attr]

    # The drill as a tool: scratch SQLite database and scratch bucket, every check passes.
    code, output = cli(["backup", "verify", str(out), "--secret-key", secret], env)
    assert code == 0, output
    assert "checked 1 documents, 2 messages" in output and "backup verifies" in output
    buckets = {b.name for b in store(app).client.list_buckets()}
    assert not any("-verify-" in b for b in buckets)

    # A document deleted after the snapshot, before its object is copied (as delete_document
    # does: object first, then the row): the backup starts again from a new snapshot.
    racing = RacingDelete(target, minio, bucket)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    summary = write_backup(engine, racing, tmp_path / "raced.backup", parse_public_key(public))
    engine.dispose()
    assert racing.deleted is not None and racing.opened_after_delete
    assert summary.rows["documents"] == 1 and summary.objects == 1

    # A damaged database is caught: one message's signature and one document's size altered.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE messages SET signature = :s WHERE id = (SELECT min(id) FROM messages)"),
            {"s": bytes(64)},
        )
        conn.execute(text("UPDATE documents SET ciphertext_size = ciphertext_size + 1"))
    engine.dispose()
    damaged = tmp_path / "damaged.backup"
    assert cli(["backup", str(damaged)], target)[0] == 0
    code, output = cli(["backup", "verify", str(damaged), "--secret-key", secret], target)
    assert code != 0 and "does NOT verify" in output
    assert "the message signature does not verify" in output
    assert "the uploader's signature does not verify" in output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_truncated_altered_or_wrongly_keyed_backups_are_refused_and_change_nothing(
    app: Flask,
    postgres: PostgresServer,
    minio: MinioServer,
    backup_key: tuple[str, str],
    tmp_path: Path,
) -> None:
    """An SQLite deployment (the embedded default) with one object, backed up."""
    objects = store(app)
    body = secrets.token_bytes(200_000)
    objects.put("doc/orphan-object", [body[:70_000], body[70_000:]], len(body))
    public, secret = backup_key
    env = settings_of(app, minio, HAVEN_BACKUP_PUBLIC_KEY=public)
    good = tmp_path / "good.backup"
    code, output = cli(["backup", str(good)], env)
    assert code == 0, output
    data = good.read_bytes()
    assert body[1000:1064] not in data

    other_secret = tmp_path / "other.secret"
    assert cli(["backup", "keygen", str(other_secret)], {})[0] == 0
    cases = {
        "truncated": (data[: len(data) - 100], "truncated"),
        "cut at a chunk": (data[: HEADER_BYTES + 2 * (65536 + 17)], "truncated"),
        "header only": (data[:HEADER_BYTES], "truncated"),
        "altered": (
            data[:150_000] + bytes([data[150_000] ^ 1]) + data[150_001:],
            "altered or damaged",
        ),
        "altered header": (data[:20] + bytes([data[20] ^ 1]) + data[21:], "wrong backup key"),
        "trailing bytes": (data + b"x", "was altered"),
        "not a backup": (b"PGDMP" + data[5:], "not a Haven backup"),
    }
    url, bucket = empty_target(postgres, minio)
    target = {**env, "HAVEN_DATABASE_URL": url, **minio.settings(bucket)}
    scratch = ObjectStore(target["HAVEN_S3_ENDPOINT"], minio.access_key, minio.secret_key, bucket)
    for label, (content, message) in cases.items():
        bad = tmp_path / "bad.backup"
        bad.write_bytes(content)
        code, output = cli(["restore", str(bad), "--secret-key", secret], target)
        assert code != 0 and message in output, (label, output)
        assert table_names(url) == [], label
        assert (
            list(scratch.list_objects("")) == [] if scratch.client.bucket_exists(bucket) else True
        )
    code, output = cli(["restore", str(good), "--secret-key", str(other_secret)], target)
    assert code != 0 and "wrong backup key" in output
    assert table_names(url) == []

    # The good file restores (PostgreSQL from an SQLite backup), and --force replaces it.
    assert cli(["restore", str(good), "--secret-key", secret], target)[0] == 0
    assert [n for n, _ in scratch.list_objects("")] == ["doc/orphan-object"]
    code, output = cli(["restore", str(good), "--secret-key", secret, "--force"], target)
    assert code == 0, output
    reader = scratch.open("doc/orphan-object")
    assert b"".join(reader) == body
    reader.close()
