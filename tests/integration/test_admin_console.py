"""The admin console's routes: recent sign-in, invites, re-encryption progress, verification."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from tests.conftest import PASSPHRASE, LiveServer
from vault import clock
from vault.audit.models import AuditEntry
from vault.client import ApiError, HavenClient
from vault.db import database

Create = Callable[..., tuple[HavenClient, str]]


@pytest.fixture
def jump() -> Iterator[Callable[[float], None]]:
    """Move the server's clock forward; put it back afterwards."""
    yield clock.jump
    clock.reset()


def _refused(call: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def _kinds(admin: HavenClient) -> list[str]:
    return [e["kind"] for e in admin.get("/admin/audit", limit=200)["entries"]]


def test_admin_changes_need_a_recent_sign_in_and_the_passphrase_renews_it(
    create_account: Create, jump: Callable[[float], None]
) -> None:
    admin, _ = create_account("admin")
    target, _ = create_account("counsel")
    target_id = target.account.id  # type: ignore[union-attr]
    jump(11 * 60)  # past the 10-minute window, within the 15-minute idle timeout
    policy = admin.get("/admin/factor-policy")["required_for_staff"]
    writes: list[Callable[[], Any]] = [
        lambda: admin.post("/admin/keys/rotate", {"purpose": "data"}),
        lambda: admin.post("/admin/keys/reencrypt"),
        lambda: admin.post("/admin/keys/retire", {"purpose": "data", "version": 1}),
        lambda: admin.post(f"/admin/accounts/{target_id}/disabled", {"is_disabled": True}),
        lambda: admin.post(f"/admin/accounts/{target_id}/compromised"),
        lambda: admin.post("/admin/invites/nope/revoke"),
        lambda: admin.post("/admin/factor-policy", {"required_for_staff": not policy}),
    ]
    before = admin.get("/admin/keys")
    for write in writes:
        error = _refused(write)
        assert (error.status, error.code) == (403, "recent_sign_in_required")
    assert admin.get("/admin/keys") == before  # nothing changed
    assert admin.get("/admin/accounts")["accounts"][1]["is_disabled"] is False
    assert admin.get("/admin/factor-policy")["required_for_staff"] is policy
    # Reads and verification need no recent sign-in.
    assert admin.post("/admin/audit/verify")["intact"] is True

    wrong = _refused(lambda: admin.reauth("not the passphrase at all"))
    assert (wrong.status, wrong.code) == (401, "bad_credentials")
    assert _refused(writes[0]).code == "recent_sign_in_required"
    admin.reauth(PASSPHRASE)
    assert admin.post("/admin/keys/rotate", {"purpose": "data"})["version"] == 2
    assert _kinds(admin)[:3] == ["server_key_rotated", "reauth", "reauth_failed"]
    # A passphrase proof is no full sign-in: second factors still need one (§21.4).
    totp = _refused(lambda: admin.post("/account/factors/totp"))
    assert (totp.status, totp.code) == (403, "recent_sign_in_required")
    jump(11 * 60)
    assert _refused(writes[0]).code == "recent_sign_in_required"


def test_reauth_refuses_bad_input_and_other_roles(create_account: Create) -> None:
    admin, _ = create_account("admin")
    counsel, _ = create_account("counsel")
    for body in ({}, {"auth_key": "short"}, {"auth_key": "A" * 43, "extra": 1}):
        error = _refused(lambda b=body: admin.post("/admin/reauth", b))  # type: ignore[misc]
        assert error.status == 400 and error.code in {"invalid_field", "invalid_request"}
    error = _refused(lambda: counsel.reauth(PASSPHRASE))
    assert (error.status, error.code) == (403, "forbidden")


def test_open_invites_list_and_revoke(
    create_account: Create, live_server: LiveServer, invite: Callable[..., str]
) -> None:
    admin, _ = create_account("admin")
    counsel, _ = create_account("counsel")
    link = admin.create_invite("counsel")
    counsel.create_invite("survivor")  # a counsel's survivor invite is not the admins' to see
    server_made = invite("admin")
    rows = admin.get("/admin/invites")["invites"]
    assert [r["role"] for r in rows] == ["counsel", "admin"]  # oldest first
    assert rows[0]["created_by"] == admin.account.id  # type: ignore[union-attr]
    assert rows[1]["created_by"] is None
    assert not any(server_made in str(r) or link in str(r) for r in rows)  # never a token

    admin.post(f"/admin/invites/{rows[0]['id']}/revoke")
    assert [r["id"] for r in admin.get("/admin/invites")["invites"]] == [rows[1]["id"]]
    again = _refused(lambda: admin.post(f"/admin/invites/{rows[0]['id']}/revoke"))
    assert (again.status, again.code) == (409, "invite_not_open")
    missing = _refused(lambda: admin.post("/admin/invites/unknown/revoke"))
    assert (missing.status, missing.code) == (404, "not_found")
    refused = _refused(
        lambda: HavenClient(live_server.url, witnesses=live_server.witnesses).register(
            link, "latecomer", PASSPHRASE
        )
    )
    assert refused.code == "invite_invalid"
    assert _kinds(admin)[0] == "invite_revoked"


def test_reencryption_progress_counts_accounts_until_done(create_account: Create) -> None:
    admin, _ = create_account("admin")
    for _ in range(3):
        create_account("counsel")
    assert admin.get("/admin/keys/reencrypt") == {"version": 1, "done": 4, "total": 4}
    admin.post("/admin/keys/rotate", {"purpose": "data"})
    assert admin.get("/admin/keys/reencrypt") == {"version": 2, "done": 0, "total": 4}
    assert admin.post("/admin/keys/reencrypt") == {"reencrypted": 4}
    assert admin.post("/admin/keys/reencrypt") == {"reencrypted": 0}
    assert admin.get("/admin/keys/reencrypt") == {"version": 2, "done": 4, "total": 4}
    assert _kinds(admin)[0] == "data_reencrypted"
    admin.post("/admin/keys/retire", {"purpose": "data", "version": 1})
    assert [k["version"] for k in admin.get("/admin/keys")["keys"] if k["purpose"] == "data"] == [2]


def test_accounts_show_key_status_and_no_activity(create_account: Create) -> None:
    admin, _ = create_account("admin")
    counsel, _ = create_account("counsel")
    counsel_id = counsel.account.id  # type: ignore[union-attr]
    admin.post(f"/admin/accounts/{counsel_id}/compromised")
    rows = {r["id"]: r for r in admin.get("/admin/accounts")["accounts"]}
    assert rows[counsel_id]["key_status"] == "compromised"
    assert rows[admin.account.id]["key_status"] == "current"  # type: ignore[union-attr]
    assert set(rows[counsel_id]) == {
        "id",
        "role",
        "username",
        "is_disabled",
        "key_version",
        "key_status",
        "created_at",
    }


def test_verify_now_reports_intact_then_the_first_tampered_entry(
    create_account: Create, app: Flask
) -> None:
    admin, _ = create_account("admin")
    create_account("counsel")
    audit = admin.post("/admin/audit/verify")
    assert audit["intact"] is True and audit["problem"] is None and audit["entries"] > 0
    log = admin.post("/admin/log/verify")
    assert log == {"intact": True, "entries": 2, "problem": None}
    status = admin.get("/admin/log")
    assert status["head"]["size"] == 2
    assert status["witnesses"] == []

    db = database(app).sessions()
    db.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(kind="edited"))
    db.commit()
    db.close()
    broken = admin.post("/admin/audit/verify")
    assert broken["intact"] is False
    assert broken["problem"] == "entry 2 was edited: its hash does not match"
    assert broken["entries"] == audit["entries"]
