"""`haven intake`: a team member's inbox from the command line, a reporter's submit and
return, and the server's retention purge (protocol §20)."""

from __future__ import annotations

import mimetypes
import os
import sys
from pathlib import Path

import click

from vault.client.api import ApiError, HavenClient
from vault.client.cli import _client, _credentials, api_errors, witness_policy
from vault.client.intake import Entry, Inbox, Reporter
from vault.protocol import intake as pin
from vault.protocol.keys import ProtocolError


@click.group("intake")
def intake_group() -> None:
    """Anonymous intake: the team's inbox, a reporter's side, the retention purge."""


def _show(entries: list[Entry]) -> None:
    for entry in entries:
        who = entry.author_id or "reporter"
        if isinstance(entry.content, pin.Report):
            report = entry.content
            click.echo(f"#{entry.seq} {who}: {report.text}")
            click.echo(
                f"    language: {report.language or '-'}; contact: {report.contact_way or '-'}"
                f" ({report.contact_time or '-'}); in danger now: {report.danger}"
            )
        elif isinstance(entry.content, pin.Attachment):
            att = entry.content
            click.echo(f"#{entry.seq} {who}: attached {att.name} ({att.size} bytes)")
        else:
            click.echo(f"#{entry.seq} {who}: {entry.content}")


def _inbox(server: str, username: str) -> Inbox:
    return Inbox(_client(server, username))


@intake_group.command("inbox")
@_credentials
def inbox_command(server: str, username: str) -> None:
    """List the intake reports, newest activity first."""
    for report in _inbox(server, username).reports():
        click.echo(
            f"{report['id']}  {report['status']:<8} {report['assignee_id'] or '-':<22} "
            f"last activity {report['last_activity_at']}"
        )


@intake_group.command("read")
@_credentials
@click.argument("report_id")
def read_command(server: str, username: str, report_id: str) -> None:
    """Decrypt and show a report's thread (an audit event)."""
    inbox = _inbox(server, username)
    with api_errors():
        _show(inbox.read(report_id))


@intake_group.command("reply")
@_credentials
@click.argument("report_id")
@click.argument("text")
def reply_command(server: str, username: str, report_id: str, text: str) -> None:
    """Send a reply the reporter reads with her receipt."""
    inbox = _inbox(server, username)
    with api_errors():
        inbox.reply(report_id, text)
    click.echo("sent")


@intake_group.command("assign")
@_credentials
@click.argument("report_id")
@click.argument("user_id")
def assign_command(server: str, username: str, report_id: str, user_id: str) -> None:
    """Assign a report to a team member."""
    inbox = _inbox(server, username)
    with api_errors():
        inbox.assign(report_id, user_id)
    click.echo("assigned")


@intake_group.command("handled")
@_credentials
@click.argument("report_id")
def handled_command(server: str, username: str, report_id: str) -> None:
    """Mark a report handled."""
    inbox = _inbox(server, username)
    with api_errors():
        inbox.handled(report_id)
    click.echo("marked handled")


def _reporter(server: str) -> Reporter:
    return Reporter(HavenClient(server, witnesses=witness_policy()))


_server = click.option(
    "--server", envvar="HAVEN_URL", default="http://127.0.0.1:8000", show_default=True
)


@intake_group.command("submit")
@_server
@click.option("--language", default="")
@click.option("--contact-way", default="")
@click.option("--contact-time", default="")
@click.option("--danger", type=click.Choice(pin.DANGER), default="unknown")
def submit_command(
    server: str, language: str, contact_way: str, contact_time: str, danger: str
) -> None:
    """Send a report without an account (text on standard input); print the receipt once."""
    text = sys.stdin.read().strip()
    if not text:
        raise click.ClickException("write the report on standard input")
    report = pin.Report(text, language, contact_way, contact_time, danger)
    submitted = _reporter(server).submit(report)
    click.echo("Your receipt (write it down; it is shown only this once):")
    click.echo(submitted.receipt)


@intake_group.command("return")
@_server
@click.option("--reply", "text", default=None, help="Add this message to the report.")
@click.option(
    "--attach",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Add this file to the report (repeatable).",
)
def return_command(server: str, text: str | None, files: tuple[Path, ...]) -> None:
    """Come back with a receipt (HAVEN_RECEIPT or a prompt): show replies, optionally answer
    and add files."""
    receipt = os.environ.get("HAVEN_RECEIPT") or click.prompt("Receipt", hide_input=True)
    reporter = _reporter(server)
    try:
        _show(reporter.come_back(receipt))
        if text:
            reporter.add(text)
            click.echo("sent")
        for path in files:
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            reporter.attach(path.read_bytes(), path.name, mime)
            click.echo(f"attached {path.name}")
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    except ProtocolError as exc:
        raise click.ClickException(str(exc)) from exc


@intake_group.command("purge")
def purge_command() -> None:
    """Crypto-shred reports idle for HAVEN_INTAKE_RETENTION_DAYS (server side)."""
    from vault import create_app, db
    from vault.intake.services import purge
    from vault.storage import store

    app = create_app()
    with app.app_context():
        session = db.database().sessions()
        try:
            count = purge(session, store(app), app.config["HAVEN_INTAKE_RETENTION_DAYS"])
        finally:
            session.close()
    click.echo(f"shredded {count} idle report(s)")
