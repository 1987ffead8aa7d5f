"""The `haven` command."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app

from vault import create_app, db, migrate
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.keyring import PURPOSES, init_keyring, load_keyring


@click.group()
def main() -> None:
    """Haven: end-to-end encrypted messaging and document vault."""


def with_appcontext(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command inside an app built from the environment."""

    @functools.wraps(command)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        app = create_app()
        try:
            with app.app_context():
                return command(*args, **kwargs)
        finally:
            db.database(app).engine.dispose()

    return wrapped


def _first_admin_invite(app: Flask) -> None:
    with app.app_context():
        session = db.database().sessions()
        try:
            if accounts.count_users(session) == 0:
                _, token = accounts.create_invite(
                    session, Role.ADMIN, None, app.config["HAVEN_INVITE_HOURS"]
                )
                click.echo("No accounts yet. Open this one-time admin invite to register:")
                click.echo(_link(token))
        finally:
            session.close()


def _link(token: bytes) -> str:
    from vault.accounts.views import invite_link

    return invite_link(token)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--embedded-minio/--no-embedded-minio",
    default=False,
    help="Start a single-node MinIO under var/minio (binary from HAVEN_MINIO_BIN).",
)
@click.option("--minio-port", default=9000, show_default=True, type=int)
def serve_command(host: str, port: int, embedded_minio: bool, minio_port: int) -> None:
    """Migrate, start the embedded services if asked, and serve."""
    from vault.embedded import start_minio
    from vault.server import serve
    from vault.storage import store

    var = Path("var")
    var.mkdir(exist_ok=True)
    env = dict(os.environ)
    minio = None
    if embedded_minio:
        binary = env.get("HAVEN_MINIO_BIN", "minio")
        minio, settings = start_minio(binary, var, minio_port)
        env |= settings
    try:
        app = create_app(env)
        migrate.upgrade(app.config["HAVEN_DATABASE_URL"])
        store(app).ensure_bucket()
        _first_admin_invite(app)
        click.echo(f"Haven is listening on http://{host}:{port}/")
        serve(app, host, port)
    finally:
        if minio is not None:
            minio.terminate()
            minio.wait(timeout=30)


@main.group("db")
def db_group() -> None:
    """Database commands."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply every pending migration."""
    migrate.upgrade(current_app.config["HAVEN_DATABASE_URL"])
    click.echo("database is up to date")


@main.group("admin")
def admin_group() -> None:
    """Administration commands."""


@admin_group.command("invite")
@click.option("--role", type=click.Choice(["admin", "counsel"]), required=True)
@with_appcontext
def admin_invite(role: str) -> None:
    """Print a one-time, expiring invite link for an admin or a counsel."""
    session = db.database().sessions()
    try:
        invite, token = accounts.create_invite(
            session, Role(role), None, current_app.config["HAVEN_INVITE_HOURS"]
        )
        click.echo(_link(token))
        click.echo(f"expires {invite.expires_at.isoformat(timespec='minutes')}", err=True)
    finally:
        session.close()


# -- feature commands --


@main.group("log")
def log_group() -> None:
    """Key transparency log commands."""


@log_group.command("verify")
@with_appcontext
def log_verify() -> None:
    """Recompute every leaf, node, head signature and log-key announcement."""
    from vault.directory.services import verify_log
    from vault.protocol.transparency import TransparencyError

    session = db.database().sessions()
    try:
        size = verify_log(session)
    except TransparencyError as exc:
        raise click.ClickException(f"key transparency log is NOT intact: {exc}") from exc
    finally:
        session.close()
    click.echo(f"key transparency log intact: {size} entries")


@main.group("keys")
def keys_group() -> None:
    """Server keyring commands."""


@keys_group.command("init")
def keys_init() -> None:
    """Create every missing server key in the keyring folder."""
    path = Path(os.environ.get("HAVEN_KEYS_DIR", "keys"))
    created = init_keyring(path)
    click.echo(f"created: {', '.join(created)}" if created else "keyring already complete")


@keys_group.command("status")
def keys_status() -> None:
    """Show the live versions of each server key."""
    ring = load_keyring(Path(os.environ.get("HAVEN_KEYS_DIR", "keys")))
    for purpose in PURPOSES:
        versions = ring.versions(purpose)
        click.echo(f"{purpose}: current {versions[-1]}, live {versions}")


if __name__ == "__main__":
    main()
