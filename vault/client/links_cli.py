"""`haven links`: outside links from the Python client (protocol §23)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import click

from vault import clock
from vault.client.api import ApiError, HavenClient
from vault.client.cli import IdArguments, _client, _credentials, api_errors, witness_policy
from vault.client.links import LinkRefused, Links, open_link


def _link_passphrase(ask: bool) -> str | None:
    given = os.environ.get("HAVEN_LINK_PASSPHRASE")
    if given:
        return given
    return click.prompt("Link passphrase", hide_input=True) if ask else None


@click.group("links")
def links_group() -> None:
    """Links that show documents to an outside recipient without an account."""


@links_group.command("create", cls=IdArguments)
@_credentials
@click.argument("case_id")
@click.argument("document_ids", nargs=-1, required=True)
@click.option("--recipient", required=True, help="Who the link is for (kept encrypted).")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 90))
@click.option("--max-opens", default=1, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--with-passphrase",
    is_flag=True,
    help="Also require a passphrase (HAVEN_LINK_PASSPHRASE or a prompt); give it separately.",
)
def create_command(
    server: str,
    username: str,
    case_id: str,
    document_ids: tuple[str, ...],
    recipient: str,
    days: int,
    max_opens: int,
    with_passphrase: bool,
) -> None:
    """Make a link to DOCUMENT_IDS of CASE_ID and print its URL once."""
    client = _client(server, username)
    passphrase = _link_passphrase(with_passphrase)
    try:
        made = Links(client).create(
            case_id,
            list(document_ids),
            recipient,
            clock.now() + timedelta(days=days),
            max_opens,
            passphrase,
        )
    except (ApiError, ValueError) as exc:
        raise click.ClickException(f"could not make the link: {exc}") from exc
    if made.link["state"] == "pending":
        click.echo("The survivor must approve this link in the app before it opens.")
    click.echo(f"Link {made.link['id']} (shown once; the server cannot show it again):")
    click.echo(made.url)


@links_group.command("list")
@_credentials
@click.argument("case_id")
def list_command(server: str, username: str, case_id: str) -> None:
    """List the links of CASE_ID you may see."""
    with api_errors():
        links = Links(_client(server, username)).list(case_id)
    if not links:
        click.echo("No links.")
    for link in links:
        click.echo(
            f"{link['id']}  {link['recipient']}  {link['state']}  "
            f"{link['opens']}/{link['max_opens']} opens  until {link['expires_at']}"
        )


def _manage(server: str, username: str, link_id: str, *, approve: bool) -> None:
    links = Links(_client(server, username))
    with api_errors():
        if approve:
            links.approve(link_id)
        else:
            links.revoke(link_id)
    click.echo("Approved: the link now opens." if approve else "Revoked: the link no longer opens.")


@links_group.command("approve")
@_credentials
@click.argument("link_id")
def approve_command(server: str, username: str, link_id: str) -> None:
    """Consent to LINK_ID, which counsel made for your documents."""
    _manage(server, username, link_id, approve=True)


@links_group.command("revoke")
@_credentials
@click.argument("link_id")
def revoke_command(server: str, username: str, link_id: str) -> None:
    """Stop LINK_ID at once (or decline it while it waits for approval)."""
    _manage(server, username, link_id, approve=False)


@links_group.command("open")
@click.argument("url")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--ask-passphrase", is_flag=True, help="Prompt for the link's passphrase.")
def open_command(url: str, out: Path, ask_passphrase: bool) -> None:
    """Open URL (counts as one open), verify each document and save it into --out."""
    server = url.split("/app/", 1)[0]
    client = HavenClient(server, witnesses=witness_policy())
    out.mkdir(parents=True, exist_ok=True)
    try:
        opened = open_link(client, url, out, _link_passphrase(ask_passphrase))
    except LinkRefused as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Open {opened.number} of this link. Every check passed:")
    for item in opened.files:
        click.echo(
            f"  {item.name}: {item.size} bytes, SHA-256 {item.sha256}, signed by "
            f"{item.uploader} (key in the witnessed key log), uploaded {item.uploaded_at}"
        )
