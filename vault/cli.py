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
from vault.embedded import Litewitness
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
@click.option(
    "--embedded-witness/--no-embedded-witness",
    default=False,
    help="Start a litewitness with its own key under var/witness (HAVEN_LITEWITNESS_BIN).",
)
@click.option("--witness-port", default=7380, show_default=True, type=int)
def serve_command(
    host: str,
    port: int,
    embedded_minio: bool,
    minio_port: int,
    embedded_witness: bool,
    witness_port: int,
) -> None:
    """Migrate, start the embedded services if asked, and serve."""
    from vault.embedded import start_minio
    from vault.server import serve
    from vault.storage import store

    var = Path("var")
    var.mkdir(exist_ok=True)
    env = dict(os.environ)
    # Pages are served from here unless a proxy says otherwise: their origin may send writes.
    if not env.get("HAVEN_PUBLIC_URL") and not env.get("HAVEN_PUBLIC_URL_FILE"):
        env["HAVEN_PUBLIC_URL"] = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    minio = None
    witness = None
    if embedded_minio:
        binary = env.get("HAVEN_MINIO_BIN", "minio")
        minio, settings = start_minio(binary, var, minio_port)
        env |= settings
    try:
        if embedded_witness:
            binary = env.get("HAVEN_LITEWITNESS_BIN", "litewitness")
            witness = Litewitness(
                binary, var / "witness", "haven.local/embedded-witness", witness_port
            )
            witness.start()
            if not env.get("HAVEN_WITNESSES"):
                env["HAVEN_WITNESSES"] = f"{witness.vkey} {witness.url}"
        app = create_app(env)
        migrate.upgrade(app.config["HAVEN_DATABASE_URL"])
        store(app).ensure_bucket()
        if witness is not None:
            _register_with_witness(app, witness)
        _first_admin_invite(app)
        click.echo(f"Haven is listening on http://{host}:{port}/")
        serve(app, host, port)
    finally:
        if witness is not None:
            witness.close()
        if minio is not None:
            minio.terminate()
            minio.wait(timeout=30)


def _register_with_witness(app: Flask, witness: Litewitness) -> None:
    """Make the embedded witness know this log's origin and every live log key (§15)."""
    from vault.embedded import register_log
    from vault.keyring import keyring
    from vault.protocol import checkpoint
    from vault.protocol.transparency import log_public_key

    origin = app.config["HAVEN_LOG_ORIGIN"]
    with app.app_context():
        ring = keyring()
        vkeys = [
            checkpoint.log_verifier(origin, log_public_key(ring.get("logsign", v))).encode()
            for v in ring.versions("logsign")
        ]
    register_log(witness.db, origin, vkeys)  # what witnessctl add-log/add-key do
    click.echo(f"embedded witness: HAVEN_WITNESS_KEYS={witness.vkey}")


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


@main.group("messages")
def messages_group() -> None:
    """Messaging commands."""


@messages_group.command("purge")
@with_appcontext
def messages_purge() -> None:
    """Delete expired disappearing messages and events past retention, now."""
    from vault.messages.purge import purge_now

    result = purge_now(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo(f"purged {result.messages} expired messages and {result.events} events")


@main.group("audit")
def audit_group() -> None:
    """Audit chain commands."""


@audit_group.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Walk the hash chain and check every signed checkpoint; name the first bad entry."""
    from vault.admin.checks import verify_audit_chain

    session = db.database().sessions()
    try:
        result = verify_audit_chain(session)
    finally:
        session.close()
    if not result.intact:
        raise click.ClickException(f"audit chain is NOT intact: {result.problem}")
    click.echo(f"audit chain intact: {result.entries} entries")


@audit_group.command("checkpoint")
@with_appcontext
def audit_checkpoint() -> None:
    """Sign a checkpoint at the newest entry now."""
    from vault.audit import chain
    from vault.keyring import keyring

    session = db.database().sessions()
    try:
        row = chain.checkpoint(session, keyring())
    finally:
        session.close()
    click.echo(f"checkpoint at entry {row.seq}" if row else "newest entry already checkpointed")


from vault.client.cli import (  # noqa: E402 - feature commands register here
    account_group,
    case_group,
    docs_group,
    shares_group,
    verify_command,
)

main.add_command(docs_group)
main.add_command(account_group)
main.add_command(case_group)
main.add_command(verify_command)

from vault.client.links_cli import links_group  # noqa: E402 - feature commands register here

main.add_command(links_group)
main.add_command(shares_group)

from vault.client.intake_cli import intake_group  # noqa: E402 - feature commands register here

main.add_command(intake_group)

from vault.client.figures_cli import figures_group  # noqa: E402 - feature commands register here

main.add_command(figures_group)


@main.group("log")
def log_group() -> None:
    """Key transparency log commands."""


@log_group.command("verify")
@with_appcontext
def log_verify() -> None:
    """Recompute the log from its entries' bytes and name every row that disagrees."""
    from vault.admin.checks import verify_key_log

    session = db.database().sessions()
    try:
        result = verify_key_log(session)
    finally:
        session.close()
    if not result.intact:
        raise click.ClickException(f"key transparency log is NOT intact: {result.problem}")
    click.echo(f"key transparency log intact: {result.entries} entries")


@log_group.command("vkey")
@with_appcontext
def log_vkey() -> None:
    """Print "<origin> <verifier key>" for each live log key: what a witness registers."""
    from vault.keyring import keyring
    from vault.protocol import checkpoint
    from vault.protocol.transparency import log_public_key

    origin = current_app.config["HAVEN_LOG_ORIGIN"]
    ring = keyring()
    for version in ring.versions("logsign"):
        public = log_public_key(ring.get("logsign", version))
        click.echo(f"{origin} {checkpoint.log_verifier(origin, public).encode()}")


@log_group.command("cosign")
@with_appcontext
def log_cosign() -> None:
    """Ask every configured witness to cosign the newest head now."""
    from vault.directory.witnesses import configured, cosign_for_app

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    done = cosign_for_app(app)
    click.echo(f"newest head cosigned by {done} of {len(configured(app))} witnesses")


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
@with_appcontext
def keys_status() -> None:
    """Show the live versions of each server key and how many ciphertexts use each."""
    from vault.admin.services import key_status

    session = db.database().sessions()
    try:
        rows = key_status(session, load_keyring(Path(current_app.config["HAVEN_KEYS_DIR"])))
    finally:
        session.close()
    for purpose in PURPOSES:
        mine = [r for r in rows if r.purpose == purpose]
        current = next(r.version for r in mine if r.is_current)
        live = ", ".join(
            f"v{r.version}" + (f" ({r.uses} in use)" if r.uses is not None else "") for r in mine
        )
        click.echo(f"{purpose}: current {current}; live {live}")


def _admin_call(action: Callable[..., Any], *args: Any) -> Any:
    from vault.errors import HavenError

    session = db.database().sessions()
    try:
        return action(session, *args)
    except HavenError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        session.close()


@keys_group.command("rotate")
@click.argument("purpose", type=click.Choice(PURPOSES))
@with_appcontext
def keys_rotate(purpose: str) -> None:
    """Make a new current version; for the data key, re-encrypt everything under it."""
    from vault.admin import services as admin

    path = Path(current_app.config["HAVEN_KEYS_DIR"])
    version = _admin_call(admin.rotate, path, purpose)
    click.echo(f"{purpose}: version {version} is now current")
    if purpose == "data":
        done = _admin_call(admin.reencrypt_all, load_keyring(path))
        click.echo(f"re-encrypted {done} identifiers under data key {version}")
    if purpose == "session":
        click.echo("older session keys keep verifying until `haven keys retire session`")


@keys_group.command("retire")
@click.argument("purpose", type=click.Choice(PURPOSES))
@click.argument("version", type=int)
@with_appcontext
def keys_retire(purpose: str, version: int) -> None:
    """Drop an old version once nothing can need it any more."""
    from vault.admin import services as admin

    path = Path(current_app.config["HAVEN_KEYS_DIR"])
    lifetime = current_app.config["HAVEN_SESSION_MAX_SECONDS"]
    _admin_call(admin.retire, path, purpose, version, lifetime)
    click.echo(f"{purpose}: version {version} retired")


from vault.backup.commands import backup_group, restore_command  # noqa: E402 - registered here

main.add_command(backup_group)
main.add_command(restore_command)

if __name__ == "__main__":
    main()
