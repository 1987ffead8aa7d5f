"""Split recovery, no escrow (protocol §22) over real HTTP on PostgreSQL: a survivor who lost
passphrase and recovery key regains everything with her counsel's and a trusted person's
shares, after a waiting period she could have used to cancel; nothing else recovers her."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import fast_documents
from tests.integration.test_accounts import dump_database
from vault import clock
from vault.accounts import services as accounts
from vault.audit.models import AuditEntry
from vault.cli import main
from vault.client import ApiError, HavenClient
from vault.client import shares as client_shares
from vault.db import database
from vault.protocol import keys as pkeys
from vault.protocol import shares as pshares
from vault.protocol.encoding import b64encode

NEW_PASSPHRASE = "a passphrase after losing both"
WAIT = 3600

Accounts = Callable[..., tuple[HavenClient, str]]


@pytest.fixture
def jump() -> Iterator[Callable[[float], None]]:
    """Move the server's clock forward past a waiting period; put it back afterwards."""
    yield clock.jump
    clock.reset()


@pytest.fixture
def split(app: Flask, create_account: Accounts) -> tuple[HavenClient, HavenClient, str, str, str]:
    """Survivor 'sofia' split her recovery key: share 2 to counsel, share 3 printed."""
    app.config["HAVEN_SHARE_RECOVERY_WAIT_SECONDS"] = WAIT
    counsel, _ = create_account("counsel", username="lawyer1")
    survivor, recovery = create_account("survivor", username="sofia", invited_by=counsel)
    assert counsel.account is not None
    printed = client_shares.split_recovery_key(survivor, recovery, counsel.account.id)
    return survivor, counsel, counsel.account.id, recovery, printed


def new_device(live_server: LiveServer) -> HavenClient:
    """A fresh client with no keys, as on a borrowed phone."""
    return HavenClient(live_server.url, witnesses=live_server.witnesses)


def signed_setup(survivor: HavenClient, holder_id: str) -> dict[str, Any]:
    """A well-signed split naming ``holder_id`` for share 2, as a client that skips its own
    check of the holder would send it."""
    assert survivor.account is not None
    record = {"version": 1, "x25519": b64encode(os.urandom(32))}
    body, _ = client_shares.setup_body(survivor.account, os.urandom(32), holder_id, record)
    return body


def survivor_audit(app: Flask, *prefixes: str) -> list[str]:
    """The kinds of audit entries about 'sofia' that start with one of ``prefixes``."""
    with app.app_context():
        db = database(app).sessions()
        try:
            user = accounts.find_user(db, app.extensions["haven.keyring"], "sofia")
            assert user is not None
            kinds = db.scalars(
                select(AuditEntry.kind)
                .where(AuditEntry.subject_id == user.id)
                .order_by(AuditEntry.seq)
            )
            return [k for k in kinds if k.startswith(prefixes)]
        finally:
            db.close()


def expect_error(code: str, call: Callable[[], Any], status: int = 400) -> None:
    """The call fails with this status and error code."""
    with pytest.raises(ApiError) as exc:
        call()
    assert (exc.value.status, exc.value.code) == (status, code)


def test_counsel_and_trusted_person_restore_her_account_and_every_document(
    app: Flask,
    live_server: LiveServer,
    split: tuple[HavenClient, HavenClient, str, str, str],
    jump: Callable[[float], None],
    tmp_path: Path,
) -> None:
    survivor, counsel, _, recovery, printed = split
    case_id = survivor.cases()[0]["id"]
    doc = fast_documents(survivor).upload(
        case_id, io.BytesIO(b"T visa form I-914"), doc_type="passport", name="i914.pdf"
    )
    phone = new_device(live_server)
    request = client_shares.start_recovery(phone, "sofia", NEW_PASSPHRASE)
    assert request["state"] == "waiting" and request["released"] == []
    # Her counsel sees the request and releases from the app's API; the trusted person's
    # printed share is typed on her phone.
    held = client_shares.held_shares(counsel)
    assert [(h["owner_username"], h["slot"], h["request"]["id"]) for h in held] == [
        ("sofia", 2, request["id"])
    ]
    assert client_shares.release_share(counsel, "sofia")["released"] == [2]
    entered = client_shares.enter_printed_share(phone, "sofia", NEW_PASSPHRASE, printed)
    assert entered["released"] == [2, 3]
    # Both shares are in, but the waiting period is not over: nothing is handed out.
    status = client_shares.recovery_status(phone, "sofia", NEW_PASSPHRASE)
    assert status["shares"] == [] and status["setup"] is None
    with pytest.raises(client_shares.ShareRefused):
        client_shares.finish_recovery(phone, "sofia", NEW_PASSPHRASE)
    mine = survivor.get("/account/recovery-shares")
    assert mine["request"]["state"] == "waiting"  # her signed-in phone sees it and could cancel
    jump(WAIT + 1)
    account = client_shares.finish_recovery(phone, "sofia", NEW_PASSPHRASE)
    assert survivor.account is not None
    assert account.keys == survivor.account.keys
    out = fast_documents(phone).download(doc.id, tmp_path / "i914.pdf")
    assert out.path.read_bytes() == b"T visa form I-914"
    expect_error("bad_credentials", lambda: new_device(live_server).login("sofia", PASSPHRASE), 401)
    new_device(live_server).login("sofia", NEW_PASSPHRASE)
    # Every holder sees that it happened; the request is closed and its shares gone.
    counsel.login("lawyer1", PASSPHRASE)  # a session idle for the waiting period has ended
    assert client_shares.held_shares(counsel)[0]["request"]["state"] == "completed"
    assert phone.get("/account/recovery-shares")["request"]["state"] == "completed"
    assert survivor_audit(app, "share_recovery", "recovery_share") == [
        "recovery_shares_set",
        "share_recovery_started",
        "recovery_share_released",
        "recovery_share_released",
        "share_recovery_completed",
    ]
    dump = dump_database(app)
    payload = pshares.parse_printed(printed)
    for secret in (payload.share, payload.encode(), pkeys.parse_recovery_key(recovery)):
        assert secret not in dump


def test_a_tampered_share_or_another_accounts_share_is_refused_and_changes_nothing(
    live_server: LiveServer,
    split: tuple[HavenClient, HavenClient, str, str, str],
    create_account: Accounts,
) -> None:
    _, counsel, counsel_id, _, printed = split
    other, other_recovery = create_account("survivor", username="nadia", invited_by=counsel)
    other_printed = client_shares.split_recovery_key(other, other_recovery, counsel_id)
    phone = new_device(live_server)
    client_shares.start_recovery(phone, "sofia", NEW_PASSPHRASE)
    expect_error(
        "share_wrong_account",
        lambda: client_shares.enter_printed_share(phone, "sofia", NEW_PASSPHRASE, other_printed),
    )
    payload = pshares.parse_printed(printed)
    flipped = bytes([payload.share[0] ^ 1]) + payload.share[1:]
    tampered = pshares.format_printed(pshares.SharePayload(payload.setup_id, 3, flipped))
    expect_error(
        "share_invalid",
        lambda: client_shares.enter_printed_share(phone, "sofia", NEW_PASSPHRASE, tampered),
    )
    assert (
        client_shares.recovery_status(phone, "sofia", NEW_PASSPHRASE)["request"]["released"] == []
    )
    # The right share goes in once; a second time is a conflict.
    client_shares.enter_printed_share(phone, "sofia", NEW_PASSPHRASE, printed)
    expect_error(
        "share_released",
        lambda: client_shares.enter_printed_share(phone, "sofia", NEW_PASSPHRASE, printed),
        409,
    )
    # A wrong new passphrase proves nothing.
    expect_error(
        "bad_credentials",
        lambda: client_shares.recovery_status(phone, "sofia", "not the passphrase she chose"),
        401,
    )


def test_her_signed_in_device_cancels_during_the_waiting_period(
    app: Flask,
    live_server: LiveServer,
    split: tuple[HavenClient, HavenClient, str, str, str],
    jump: Callable[[float], None],
) -> None:
    survivor, counsel, _, _, printed = split
    attacker = new_device(live_server)
    client_shares.start_recovery(attacker, "sofia", NEW_PASSPHRASE)
    expect_error(
        "share_recovery_open",
        lambda: client_shares.start_recovery(new_device(live_server), "sofia", NEW_PASSPHRASE),
        409,
    )
    client_shares.enter_printed_share(attacker, "sofia", NEW_PASSPHRASE, printed)
    assert survivor.get("/account/recovery-shares")["request"]["state"] == "waiting"
    assert client_shares.cancel_recovery(survivor)["state"] == "cancelled"
    jump(WAIT + 1)
    expect_error(
        "bad_credentials",
        lambda: client_shares.recovery_status(attacker, "sofia", NEW_PASSPHRASE),
        401,
    )
    counsel.login("lawyer1", PASSPHRASE)
    survivor.login("sofia", PASSPHRASE)  # her own passphrase is untouched
    assert client_shares.held_shares(counsel)[0]["request"]["state"] == "cancelled"
    with pytest.raises(client_shares.ShareRefused):
        client_shares.release_share(counsel, "sofia")
    expect_error("no_share_recovery", lambda: client_shares.cancel_recovery(survivor), 404)
    assert survivor_audit(app, "share_recovery", "recovery_share") == [
        "recovery_shares_set",
        "share_recovery_started",
        "recovery_share_released",
        "share_recovery_cancelled",
        "share_recovery_failed",  # the status asked after the cancel
    ]


def test_an_admin_alone_can_never_recover_an_account(
    live_server: LiveServer,
    split: tuple[HavenClient, HavenClient, str, str, str],
    create_account: Accounts,
    jump: Callable[[float], None],
) -> None:
    survivor, *_ = split
    admin, _ = create_account("admin", username="operator")
    assert admin.account is not None
    setup = signed_setup(survivor, admin.account.id)
    expect_error("bad_holder", lambda: survivor.post("/account/recovery-shares", setup))
    phone = new_device(live_server)
    request = client_shares.start_recovery(phone, "sofia", NEW_PASSPHRASE)
    assert client_shares.held_shares(admin) == []
    share = {
        "setup_id": survivor.get("/account/recovery-shares")["setup"]["setup_id"],
        "slot": 2,
        "commitment": survivor.get("/account/recovery-shares")["setup"]["holders"][0]["commitment"],
        "sealed_share": "A" * 132,
    }
    expect_error(
        "not_found",
        lambda: admin.post(f"/recovery-shares/requests/{request['id']}/release", share),
        404,
    )
    jump(WAIT + 1)  # the waiting period alone releases nothing: both holders must act
    status = client_shares.recovery_status(phone, "sofia", NEW_PASSPHRASE)
    assert status["shares"] == [] and status["request"]["released"] == []


def test_a_setup_must_be_signed_by_her_and_sealed_to_her_counsels_current_key(
    split: tuple[HavenClient, HavenClient, str, str, str], create_account: Accounts
) -> None:
    survivor, _, counsel_id, recovery, _ = split
    stranger, _ = create_account("counsel", username="lawyer2")
    assert stranger.account is not None
    with pytest.raises(client_shares.ShareRefused):  # her client checks first
        client_shares.split_recovery_key(survivor, recovery, stranger.account.id)
    setup = signed_setup(survivor, stranger.account.id)
    expect_error("bad_holder", lambda: survivor.post("/account/recovery-shares", setup))
    setup["holders"][0]["user_id"] = counsel_id
    setup["holders"][0]["key_version"] = 2
    expect_error("stale_key_version", lambda: survivor.post("/account/recovery-shares", setup), 409)
    body: dict[str, Any] = {
        "setup_id": "A" * 22,
        "key_version": 1,
        "signature": "A" * 86,
        "holders": [
            {"slot": 2, "kind": "printed", "commitment": "A" * 43},
            {"slot": 3, "kind": "printed", "commitment": "Q" * 43},
        ],
    }
    expect_error("bad_signature", lambda: survivor.post("/account/recovery-shares", body))
    expect_error(
        "invalid_field",
        lambda: survivor.post("/account/recovery-shares", body | {"holders": body["holders"][:1]}),
    )
    assert survivor.get("/account/recovery-shares")["setup"]["holders"][0]["user_id"] == counsel_id


def test_keys_replaced_by_counsel_reseal_the_share_and_by_her_drop_the_split(
    live_server: LiveServer, split: tuple[HavenClient, HavenClient, str, str, str]
) -> None:
    survivor, counsel, _, _, _ = split
    counsel.rotate_keys(PASSPHRASE)
    held = client_shares.held_shares(counsel)
    assert held[0]["key_version"] == 2
    client_shares.start_recovery(new_device(live_server), "sofia", NEW_PASSPHRASE)
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_UNWITNESSED": "true",
        "HAVEN_USERNAME": "lawyer1",
        "HAVEN_PASSPHRASE": PASSPHRASE,
    }
    listed = CliRunner(env=env).invoke(main, ["shares", "held"])
    assert listed.exit_code == 0 and "sofia  share 2  recovery waiting" in listed.output
    released = CliRunner(env=env).invoke(main, ["shares", "release", "sofia", "--yes"])
    assert released.exit_code == 0, released.output
    assert survivor.get("/account/recovery-shares")["request"]["released"] == [2]
    survivor.rotate_keys(PASSPHRASE)  # a new recovery key: the old split rebuilds nothing
    mine = survivor.get("/account/recovery-shares")
    assert mine["setup"] is None and mine["request"]["state"] == "cancelled"
    assert client_shares.held_shares(counsel) == []
