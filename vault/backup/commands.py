"""The `haven backup` and `haven restore` commands (docs/deploy.md, "Backups")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from vault import db


class _BackupGroup(click.Group):
    """`haven backup OUT` means `haven backup write OUT`; subcommands keep their names."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Insert `write` before a first argument that names no subcommand."""
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["write", *args]
        return super().parse_args(ctx, args)


SECRET_KEY_OPTION = click.option(
    "--secret-key",
    "secret_key_file",
    envvar="HAVEN_BACKUP_SECRET_KEY_FILE",
    required=True,
    type=click.Path(dir_okay=False),
    help="File with the offline backup secret key (base64url), from `haven backup keygen`.",
)


@click.group("backup", cls=_BackupGroup)
def backup_group() -> None:
    """Encrypted backups: `haven backup OUT`, `keys OUT`, `verify IN`, `keygen FILE`."""


def _backup_call(action: Callable[..., Any], *args: Any) -> Any:
    from vault.backup.fileformat import BackupError
    from vault.storage import StorageError, StorageUnavailable

    try:
        return action(*args)
    except (BackupError, StorageError, StorageUnavailable, OSError) as exc:
        raise click.ClickException(str(exc) or type(exc).__name__) from exc
    except SQLAlchemyError as exc:  # its text may quote rows: name the kind of error only
        cause = getattr(exc, "orig", None) or exc
        raise click.ClickException(f"database error: {type(cause).__name__}") from exc
    except (ValueError, KeyError) as exc:  # a record that does not fit the schema
        raise click.ClickException(f"the backup does not fit this database: {exc}") from exc


def _public_key(cfg: dict[str, Any]) -> bytes:
    key: bytes | None = cfg["HAVEN_BACKUP_PUBLIC_KEY"]
    if key is None:
        raise click.ClickException(
            "set HAVEN_BACKUP_PUBLIC_KEY to the backup public key (`haven backup keygen` makes one)"
        )
    return key


def _object_store(cfg: dict[str, Any], bucket: str | None = None) -> Any:
    from vault.storage import ObjectStore

    return ObjectStore(
        cfg["HAVEN_S3_ENDPOINT"],
        cfg["HAVEN_S3_ACCESS_KEY"],
        cfg["HAVEN_S3_SECRET_KEY"],
        bucket or cfg["HAVEN_S3_BUCKET"],
        secure=cfg["HAVEN_S3_SECURE"],
        region=cfg["HAVEN_S3_REGION"],
    )


def _summary_line(summary: Any) -> str:
    rows = sum(summary.rows.values())
    return (
        f"{rows} rows in {len(summary.rows)} tables, {summary.objects} objects"
        f" ({summary.object_bytes} bytes); file {summary.file_bytes} bytes"
    )


@backup_group.command("write")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def backup_write(out: Path) -> None:
    """Write the database and every object, encrypted to the backup public key, to OUT."""
    from vault.backup.services import write_backup
    from vault.config import load_config

    cfg = load_config()
    engine = db.make_engine(cfg["HAVEN_DATABASE_URL"])
    try:
        summary = _backup_call(write_backup, engine, _object_store(cfg), out, _public_key(cfg))
    finally:
        engine.dispose()
    click.echo(f"backup written to {out}: {_summary_line(summary)}")


@backup_group.command("keys")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def backup_keys(out: Path) -> None:
    """Write the server keyring, encrypted to the backup public key, to its own file OUT."""
    from vault.backup.services import write_keys_backup
    from vault.config import load_config

    cfg = load_config()
    path = Path(cfg["HAVEN_KEYS_DIR"])
    summary = _backup_call(write_keys_backup, path, out, _public_key(cfg))
    click.echo(f"keyring backup written to {out}: {summary.keys} keys")


@backup_group.command("keygen")
@click.argument("secret_out", type=click.Path(dir_okay=False, path_type=Path))
def backup_keygen(secret_out: Path) -> None:
    """Make a backup key pair: the secret into SECRET_OUT (keep it offline), print the public."""
    from vault.backup.fileformat import generate_keypair
    from vault.protocol.encoding import b64encode

    public, secret = generate_keypair()
    try:
        fd = os.open(secret_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise click.ClickException(f"{secret_out} exists; not overwriting a key") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(b64encode(secret) + "\n")
    click.echo(f"HAVEN_BACKUP_PUBLIC_KEY={b64encode(public)}")


@backup_group.command("verify")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@SECRET_KEY_OPTION
@click.option(
    "--scratch-database",
    help="Empty database URL to restore into, emptied after (default: SQLite).",
)
@click.option(
    "--scratch-bucket", help="Empty bucket to restore into, emptied after (default: a new one)."
)
def backup_verify(
    source: Path, secret_key_file: str, scratch_database: str | None, scratch_bucket: str | None
) -> None:
    """Restore SOURCE into a scratch database and bucket and check every document and message."""
    import secrets
    import tempfile

    from sqlalchemy.orm import Session

    from vault.backup.database import drop_everything
    from vault.backup.fileformat import read_secret_key
    from vault.backup.services import restore_data
    from vault.backup.verify import check_restored
    from vault.config import load_config

    cfg = load_config()
    secret = _backup_call(read_secret_key, secret_key_file)
    bucket = scratch_bucket or f"{cfg['HAVEN_S3_BUCKET']}-verify-{secrets.token_hex(4)}"
    store = _object_store(cfg, bucket)
    with tempfile.TemporaryDirectory(prefix="haven-verify-") as scratch:
        url = scratch_database or f"sqlite:///{scratch}/verify.db"
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = db.make_engine(url)
        try:
            with open(source, "rb") as handle:
                summary = _backup_call(restore_data, url, engine, store, handle, secret, False)
            with Session(engine) as session:
                report = _backup_call(check_restored, session, store)
        finally:
            if scratch_database is not None:
                drop_everything(engine)  # scratch: the next drill needs it empty again
            engine.dispose()
            _backup_call(_empty_bucket, store, scratch_bucket is None)
    click.echo(f"restored {_summary_line(summary)}")
    click.echo(
        f"checked {report.documents} documents, {report.messages} messages,"
        f" {report.audit_entries} audit entries, {report.log_entries} key-log entries"
    )
    if report.problems:
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
        raise click.ClickException(f"the backup does NOT verify: {len(report.problems)} problems")
    click.echo("backup verifies")


def _empty_bucket(store: Any, remove: bool) -> None:
    for name, _ in list(store.list_objects("")):
        store.remove(name)
    if remove:
        store.client.remove_bucket(store.bucket)


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@SECRET_KEY_OPTION
@click.option("--force", is_flag=True, help="Empty a non-empty target first (deletes its data).")
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Restore a keyring backup into this folder instead.",
)
def restore_command(source: Path, secret_key_file: str, force: bool, keys_dir: Path | None) -> None:
    """Restore a backup onto an empty database and bucket (or a keyring into --keys-dir)."""
    from vault.backup.fileformat import read_secret_key
    from vault.backup.services import restore_data, restore_keys
    from vault.config import load_config

    secret = _backup_call(read_secret_key, secret_key_file)
    with open(source, "rb") as handle:
        if keys_dir is not None:
            summary = _backup_call(restore_keys, handle, secret, keys_dir, force)
            click.echo(f"restored {summary.keys} keys into {keys_dir}")
            return
        cfg = load_config()
        url = cfg["HAVEN_DATABASE_URL"]
        engine = db.make_engine(url)
        try:
            summary = _backup_call(
                restore_data, url, engine, _object_store(cfg), handle, secret, force
            )
        finally:
            engine.dispose()
    click.echo(f"restored {_summary_line(summary)}")
