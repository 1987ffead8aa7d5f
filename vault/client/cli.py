"""`haven docs`: counsel's document commands (list, pull) and the server's upload janitor;
`haven account`: replacing one's own keys from the Python client; `haven shares`: recovery
shares kept for survivors."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from vault.client import shares as client_shares
from vault.client.api import ApiError, HavenClient
from vault.client.bundle import BundleError, export_bundle
from vault.client.directory import WitnessPolicy
from vault.client.documents import DocumentRefused, Documents, OpenedDocument, safe_file_name
from vault.client.factors import Factors
from vault.client.progress import Progress

MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"


def _passphrase() -> str:
    return os.environ.get("HAVEN_PASSPHRASE") or click.prompt("Passphrase", hide_input=True)


def witness_policy(env: dict[str, str] | None = None) -> WitnessPolicy:
    """HAVEN_WITNESS_KEYS (vkeys split by spaces or ';') and HAVEN_WITNESS_QUORUM, or an
    explicit HAVEN_UNWITNESSED=true; anything else is refused (§15)."""
    env = dict(os.environ) if env is None else env
    vkeys = env.get("HAVEN_WITNESS_KEYS", "").replace(";", " ").split()
    if not vkeys:
        if env.get("HAVEN_UNWITNESSED", "").lower() in ("1", "true", "yes"):
            return WitnessPolicy.unwitnessed()
        raise click.ClickException(
            "set HAVEN_WITNESS_KEYS to your witnesses' verifier keys "
            "(or HAVEN_UNWITNESSED=true to trust the server's log signature alone)"
        )
    try:
        quorum = int(env.get("HAVEN_WITNESS_QUORUM", "1"))
        return WitnessPolicy.of(vkeys, quorum, env.get("HAVEN_LOG_ORIGIN") or None)
    except ValueError as exc:
        raise click.ClickException(f"HAVEN_WITNESS_KEYS/HAVEN_WITNESS_QUORUM: {exc}") from exc


def _second_factor() -> str:
    """Asked only when the account has a second factor (protocol §21.1)."""
    found = os.environ.get("HAVEN_TOTP") or click.prompt("TOTP code (or a recovery code)")
    return str(found)


def _client(server: str, username: str, passphrase: str | None = None) -> HavenClient:
    passphrase = passphrase or _passphrase()
    client = HavenClient(server, witnesses=witness_policy())
    try:
        client.login(username, passphrase, factor=_second_factor)
    except ApiError as exc:
        raise click.ClickException(f"sign-in failed: {exc.message}") from exc
    return client


@contextmanager
def api_errors(prefix: str = "") -> Iterator[None]:
    """End the command with the server's message, after ``prefix``, when a call in it fails."""
    try:
        yield
    except ApiError as exc:
        raise click.ClickException(f"{prefix}{exc.message}") from exc


# A document id is 16 bytes in base64url (protocol §8.1), chosen by the uploading client: one
# in 64 begins with "-", which a command line would otherwise take for an option.
_ID_SHAPE = re.compile(r"-[A-Za-z0-9_-]{21}")


class IdArguments(click.Command):
    """A command whose arguments may be document ids: an id-shaped word that begins with "-"
    is an argument, not an option (``haven links create CASE -Bq... --recipient ...``).

    Options and their values are kept, in their order, before a ``--``; every other word
    follows it, in its order. A word that begins with "-" and is neither an option nor
    id-shaped is kept among the options, so a mistyped option is still named as one.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            return super().parse_args(ctx, args)
        values: dict[str, int] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                for name in (*param.opts, *param.secondary_opts):
                    values[name] = 0 if param.is_flag or param.count else param.nargs
        options: list[str] = []
        words: list[str] = []
        at = 0
        while at < len(args):
            word = args[at]
            name = word.split("=", 1)[0]
            if name in values:
                taken = 1 + (0 if "=" in word else values[name])
                options.extend(args[at : at + taken])
                at += taken
                continue
            if word.startswith("-") and not _ID_SHAPE.fullmatch(word):
                options.append(word)
            else:
                words.append(word)
            at += 1
        return super().parse_args(ctx, [*options, "--", *words])


def _credentials(command: Any) -> Any:
    command = click.option(
        "--username",
        envvar="HAVEN_USERNAME",
        prompt=True,
        help="Your Haven username (or HAVEN_USERNAME).",
    )(command)
    command = click.option(
        "--server",
        envvar="HAVEN_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        help="The Haven server (or HAVEN_URL). The passphrase comes from HAVEN_PASSPHRASE "
        "or a prompt; a TOTP code, where the account has one, from HAVEN_TOTP or a prompt.",
    )(command)
    return command


@click.group("docs")
def docs_group() -> None:
    """Encrypted documents: list and pull a case's files; the upload janitor."""


def _describe(doc: OpenedDocument, names: dict[str, str]) -> str:
    info = doc.info
    expiry = f" expires {info.expires_on.isoformat()}" if info.expires_on else ""
    owner = names.get(doc.owner_id, doc.owner_id)
    return (
        f"{doc.id}  {info.doc_type:<17} {info.size:>12}  {info.name}  "
        f"(from {owner}, signature ok{expiry})"
    )


@docs_group.command("list")
@_credentials
@click.argument("case_id", required=False)
def list_command(server: str, username: str, case_id: str | None) -> None:
    """List your cases, or the documents of CASE_ID you may read (each one verified)."""
    client = _client(server, username)
    if case_id is None:
        for case in client.cases():
            people = ", ".join(f"{m['username']} ({m['role']})" for m in case["members"])
            click.echo(f"{case['id']}  {people}")
        return
    names = _member_names(client, case_id)
    listing = Documents(client).case_documents(case_id)
    for doc in listing.documents:
        click.echo(_describe(doc, names))
    for refused in listing.refused:
        click.echo(f"REFUSED {refused}", err=True)
    if listing.refused:
        raise SystemExit(1)


def _member_names(client: HavenClient, case_id: str) -> dict[str, str]:
    case = client.get(f"/cases/{case_id}")["case"]
    return {m["user_id"]: m["username"] for m in case["members"]}


def _target(out: Path, name: str, taken: set[str]) -> Path:
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    candidate, n = name, 1
    while candidate.lower() in taken or (out / candidate).exists():
        n += 1
        candidate = f"{stem} ({n}){dot}{suffix}"
    taken.add(candidate.lower())
    return out / candidate


def _sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1024 * 1024):
            digest.update(piece)
    return digest.digest()


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".haven-", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pull_case(
    client: HavenClient, case_id: str, out: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """Download, decrypt and verify every readable document of a case; write the manifest."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in out.glob(".haven-*.partial"):  # left by an interrupted pull
        stale.unlink()
    documents = Documents(client)
    names = _member_names(client, case_id)
    listing = documents.case_documents(case_id)
    previous = _previous_manifest(out)
    entries: list[dict[str, Any]] = []
    failures = [str(r) for r in listing.refused]
    taken: set[str] = set()
    progress = Progress("pull", sum(d.info.size for d in listing.documents), len(listing.documents))
    for doc in listing.documents:
        info = doc.info
        path: Path | None = None
        old = previous.get(doc.id)
        if old is not None and (out / old).is_file() and _sha256_file(out / old) == info.sha256:
            path = out / old
            taken.add(old.lower())
        else:
            path = _target(out, safe_file_name(info.name, doc.id), taken)
            try:
                documents.download(doc.id, path, document=doc, on_chunk=progress.chunk(info.size))
            except DocumentRefused as exc:
                failures.append(str(exc))
                taken.discard(path.name.lower())
                continue
            except (ApiError, OSError) as exc:
                failures.append(f"document {doc.id} ({info.name!r}) not downloaded: {exc}")
                taken.discard(path.name.lower())
                continue
        progress.file_done()
        entries.append(
            {
                "document_id": doc.id,
                "file": path.name,
                "name": info.name,
                "mime_type": info.mime_type,
                "document_type": info.doc_type,
                "size": info.size,
                "sha256": info.sha256.hex(),
                "expires_on": info.expires_on.isoformat() if info.expires_on else None,
                "uploaded_by": names.get(doc.owner_id, doc.owner_id),
                "uploaded_by_id": doc.owner_id,
                "signed_with_key_version": doc.owner_key_version,
                "uploaded_at": doc.created_at,
            }
        )
    progress.close()
    manifest = {
        "case_id": case_id,
        "server": client.base_url,
        "pulled_by": client.account.username if client.account else None,
        "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "documents": entries,
        "refused": failures,
    }
    _write_atomic(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    sums = "".join(f"{e['sha256']}  {e['file']}\n" for e in entries)
    _write_atomic(out / CHECKSUMS, sums)
    return entries, failures


def _previous_manifest(out: Path) -> dict[str, str]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return {e["document_id"]: Path(e["file"]).name for e in data["documents"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@docs_group.command("pull")
@_credentials
@click.argument("case_id")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the decrypted files, manifest.json and SHA256SUMS.",
)
def pull_command(server: str, username: str, case_id: str, out: Path) -> None:
    """Decrypt and verify every document of CASE_ID you may read into a folder."""
    client = _client(server, username)
    entries, failures = pull_case(client, case_id, out)
    for entry in entries:
        click.echo(f"{entry['sha256']}  {entry['file']}")
    for failure in failures:
        click.echo(f"REFUSED {failure}", err=True)
    click.echo(f"{len(entries)} verified, {len(failures)} refused; manifest in {out / MANIFEST}")
    if failures:
        raise SystemExit(1)


@docs_group.command("bundle")
@_credentials
@click.argument("case_id")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--document",
    "document_ids",
    multiple=True,
    help="A document id to include (repeat it); all you may read when left out.",
)
@click.option(
    "--content",
    type=click.Choice(["plaintext", "ciphertext"]),
    default="plaintext",
    show_default=True,
    help="Decrypted files, or the stored ciphertext (the file keys are in the bundle either way).",
)
def bundle_command(
    server: str, username: str, case_id: str, out: Path, document_ids: tuple[str, ...], content: str
) -> None:
    """Export an evidence bundle of CASE_ID to OUT (.zip) that verifies offline."""
    client = _client(server, username)
    try:
        result = export_bundle(client, case_id, out, document_ids=document_ids, content=content)
    except BundleError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{len(result.document_ids)} documents, {result.parts} parts, {result.size} bytes "
        f"in {result.path}"
    )
    if not result.has_verifier:
        click.echo("verify.html was not found (build web/ or set HAVEN_VERIFIER_HTML)", err=True)


@click.command("verify")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--log-key",
    "log_keys",
    multiple=True,
    help="A key-log public key (base64url) you got from the organisation; repeatable.",
)
@click.option(
    "--witness",
    "witnesses",
    multiple=True,
    help="A witness verifier key to require instead of the bundle's own list; repeatable.",
)
@click.option("--quorum", type=int, default=0, help="How many of --witness must have cosigned.")
def verify_command(
    bundle: Path, log_keys: tuple[str, ...], witnesses: tuple[str, ...], quorum: int
) -> None:
    """Check an evidence bundle (zip or folder) offline and name every part that fails."""
    from vault.client.verify import verify_bundle
    from vault.protocol.encoding import EncodingError, b64decode

    try:
        pinned = [b64decode(k) for k in log_keys]
    except EncodingError as exc:
        raise click.ClickException(f"--log-key: {exc}") from exc
    result = verify_bundle(
        bundle,
        log_keys=pinned,
        witnesses=list(witnesses) or None,
        quorum=quorum or (1 if witnesses else 0),
    )
    for line in result.checked:
        click.echo(f"ok  {line}")
    for failure in result.failures:
        click.echo(f"FAILED {failure}", err=True)
    if not result.is_valid:
        raise SystemExit(1)
    click.echo("The bundle verifies: every part is as the manifest and the signatures say.")


@docs_group.command("janitor")
@click.option(
    "--every",
    type=int,
    default=0,
    help="Repeat every N seconds (0: run once). Safe to run on several replicas.",
)
def janitor_command(every: int) -> None:
    """Abort abandoned uploads, remove orphaned objects, expire grants (server side)."""
    from datetime import timedelta

    from vault import create_app, db
    from vault.documents.services import sweep
    from vault.storage import store

    app = create_app()
    ttl = timedelta(hours=app.config["HAVEN_UPLOAD_TTL_HOURS"])
    try:
        while True:
            with app.app_context():
                session = db.database().sessions()
                try:
                    report = sweep(session, store(), ttl)
                finally:
                    session.close()
            click.echo(
                f"abandoned uploads {report.abandoned_uploads}, orphan uploads "
                f"{report.orphan_uploads}, orphan objects {report.orphan_objects}, expired "
                f"grants {report.expired_grants}"
                + (f"; errors: {', '.join(report.errors)}" if report.errors else "")
            )
            if not every:
                break
            time.sleep(every)
    finally:
        db.database(app).engine.dispose()
    if report.errors:
        raise SystemExit(1)


@click.group("account")
def account_group() -> None:
    """Your own account, from the Python client."""


@account_group.command("rotate-keys")
@_credentials
def rotate_keys_command(server: str, username: str) -> None:
    """Replace your keys (a lost or seized device): every document and message stays
    readable, every other session ends, and a new recovery key is printed once."""
    passphrase = _passphrase()
    client = _client(server, username, passphrase)
    with api_errors("key rotation failed: "):
        recovery = client.rotate_keys(passphrase)
    assert client.account is not None
    click.echo(f"Your keys are now version {client.account.keys.version}.")
    click.echo("Your new recovery key (the old one no longer works). Write it down now:")
    click.echo(recovery)


@account_group.command("totp-setup")
@_credentials
def totp_setup_command(server: str, username: str) -> None:
    """Turn TOTP on: add the printed secret to an authenticator app, then type a code."""
    client = _client(server, username)
    factors = Factors(client)
    with api_errors("TOTP set-up failed: "):
        found = factors.begin_totp()
        click.echo(f"Secret: {found['secret']}")
        click.echo(f"URI:    {found['uri']}")
        codes = factors.confirm_totp(click.prompt("Code from the app").strip())
    click.echo("TOTP is on. One-time recovery codes (each works once). Keep them safe now:")
    for code in codes:
        click.echo(code)


@account_group.command("totp-remove")
@_credentials
def totp_remove_command(server: str, username: str) -> None:
    """Turn TOTP off (refused where your role must keep a second factor)."""
    client = _client(server, username)
    with api_errors("TOTP removal failed: "):
        Factors(client).remove_totp()
    click.echo("TOTP is off.")


@click.group("case")
def case_group() -> None:
    """Who is in a case: counsel ask to add a colleague, the survivor approves or declines."""


@case_group.command("add-counsel")
@_credentials
@click.argument("case_id")
@click.argument("colleague")
def add_counsel_command(server: str, username: str, case_id: str, colleague: str) -> None:
    """Ask your client to let COLLEAGUE (a counsel's username) into CASE_ID."""
    client = _client(server, username)
    with api_errors("could not ask: "):
        client.request_counsel(case_id, colleague)
    click.echo(
        f"Request recorded. If {colleague} is a counsel account, your client will be asked "
        "to approve it; until then they see nothing of the case."
    )


@case_group.command("requests")
@_credentials
@click.argument("case_id")
def requests_command(server: str, username: str, case_id: str) -> None:
    """List counsel waiting for your approval to join CASE_ID (survivors)."""
    client = _client(server, username)
    with api_errors():
        pending = client.member_requests(case_id)
        members = {
            m["user_id"]: m["username"] for m in client.get(f"/cases/{case_id}")["case"]["members"]
        }
    if not pending:
        click.echo("No one is waiting for your approval.")
    for item in pending:
        asker = members.get(item["requested_by"], "a former member")
        click.echo(f"{item['id']}  {item['username']}  (asked by {asker}, {item['requested_at']})")


def _answer(server: str, username: str, case_id: str, request_id: str, approve: bool) -> None:
    client = _client(server, username)
    with api_errors():
        if approve:
            client.approve_member(case_id, request_id)
        else:
            client.decline_member(case_id, request_id)
    click.echo("Approved: they are now in the case." if approve else "Declined.")


@case_group.command("approve")
@_credentials
@click.argument("case_id")
@click.argument("request_id")
def approve_command(server: str, username: str, case_id: str, request_id: str) -> None:
    """Let the counsel of REQUEST_ID into CASE_ID."""
    _answer(server, username, case_id, request_id, approve=True)


@case_group.command("decline")
@_credentials
@click.argument("case_id")
@click.argument("request_id")
def decline_command(server: str, username: str, case_id: str, request_id: str) -> None:
    """Refuse the counsel of REQUEST_ID: nothing of CASE_ID reaches them."""
    _answer(server, username, case_id, request_id, approve=False)


@case_group.command("remove")
@_credentials
@click.argument("case_id")
@click.argument("counsel")
def remove_command(server: str, username: str, case_id: str, counsel: str) -> None:
    """Take COUNSEL (a username) out of CASE_ID: they lose the case and every grant in it."""
    client = _client(server, username)
    with api_errors():
        members = client.get(f"/cases/{case_id}")["case"]["members"]
        found = [m["user_id"] for m in members if m["username"] == counsel]
        if not found:
            raise click.ClickException(f"{counsel} is not in this case")
        client.remove_counsel(case_id, found[0])
    click.echo(f"{counsel} is no longer in the case.")


@click.group("shares")
def shares_group() -> None:
    """Recovery shares you keep for survivors (split recovery, protocol §22)."""


@shares_group.command("held")
@_credentials
def held_command(server: str, username: str) -> None:
    """List the recovery shares you keep and any recovery waiting for them."""
    client = _client(server, username)
    try:
        held = client_shares.held_shares(client)
    except (ApiError, client_shares.ShareRefused) as exc:
        raise click.ClickException(str(exc)) from exc
    if not held:
        click.echo("You keep no recovery shares.")
    for item in held:
        request = item["request"]
        state = "no recovery requested"
        if request is not None:
            state = f"recovery {request['state']} (started {request['created_at']})"
        click.echo(f"{item['owner_username']}  share {item['slot']}  {state}")


@shares_group.command("release")
@_credentials
@click.argument("owner")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def release_command(server: str, username: str, owner: str, yes: bool) -> None:
    """Release your share to OWNER's waiting recovery (only if she asked you herself)."""
    if not yes:
        click.confirm(
            f"Release your recovery share for {owner}? Do this only if {owner} asked you "
            "herself, in person or on a call you trust.",
            abort=True,
        )
    client = _client(server, username)
    try:
        request = client_shares.release_share(client, owner)
    except (ApiError, client_shares.ShareRefused) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Released. Her recovery can finish after {request['ready_at']}.")
