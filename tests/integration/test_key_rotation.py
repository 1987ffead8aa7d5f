"""Server key rotation under live traffic: session, data and log signing keys."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, update

from tests.conftest import PASSPHRASE, LiveServer
from vault.accounts.models import User
from vault.admin import services as admin
from vault.audit.models import AuditEntry
from vault.client import ApiError, HavenClient
from vault.db import database
from vault.directory import services as directory
from vault.errors import Conflict
from vault.keyring import load_keyring
from vault.protocol import serverdata

REFRESH_WAIT = 2.2  # processes re-read keys/ at most every 2 s


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app, with the pre-login limit out of the way of the traffic generator."""
    return make_app(HAVEN_LIMIT_PRELOGIN="100000/minute")


@contextmanager
def live_traffic(
    base: str, cookies: requests.cookies.RequestsCookieJar, username: str
) -> Iterator[tuple[list[int], requests.Session]]:
    """Keep authenticated reads and pre-login lookups going; collect every status code."""
    statuses: list[int] = []
    stop = threading.Event()
    session = requests.Session()
    session.cookies = cookies.copy()

    def run() -> None:
        while not stop.is_set():
            statuses.append(session.get(f"{base}/api/v1/account", timeout=10).status_code)
            r = session.post(
                f"{base}/api/v1/auth/prelogin", json={"username": username}, timeout=10
            )
            statuses.append(r.status_code)
            time.sleep(0.02)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield statuses, session
    finally:
        stop.set()
        thread.join(timeout=30)


def test_session_key_rotation_keeps_sessions_and_retire_ends_idle_ones(
    app: Flask, create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    busy, _ = create_account("counsel", username="busy")
    idle = HavenClient(live_server.url, witnesses=live_server.witnesses)
    idle.login("busy", PASSPHRASE)
    idle_cookies = idle.http.cookies.copy()  # signed with session key 1
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    with live_traffic(live_server.url, busy.http.cookies, "busy") as (statuses, traffic):
        assert admin.rotate(db, path, "session") == 2
        time.sleep(REFRESH_WAIT)
        assert idle.get("/account")["account"]["username"] == "busy"  # old-key cookie verifies
        idle.http.cookies = idle_cookies.copy()
        admin.retire(db, path, "session", 1, session_lifetime=0)
        time.sleep(REFRESH_WAIT)
    db.close()
    assert statuses and set(statuses) == {200}, statuses
    # The busy client's cookie was re-signed with the new key on every request; the idle
    # one, last signed with the retired key, no longer verifies.
    assert traffic.get(f"{live_server.url}/api/v1/account", timeout=10).status_code == 200
    with pytest.raises(ApiError) as err:
        idle.get("/account")
    assert err.value.status == 401
    assert load_keyring(path).versions("session") == [2]


def test_session_key_retire_waits_for_one_session_lifetime(app: Flask) -> None:
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    admin.rotate(db, path, "session")
    with pytest.raises(Conflict, match="may still be live"):
        admin.retire(db, path, "session", 1, app.config["HAVEN_SESSION_MAX_SECONDS"])
    db.close()


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_data_key_rotation_reencrypts_online_and_retires_when_unused(
    app: Flask, create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    people = [create_account("counsel", username=f"data{i}")[0] for i in range(3)]
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    with live_traffic(live_server.url, people[0].http.cookies, "data0") as (statuses, _):
        assert admin.rotate(db, path, "data") == 2
        time.sleep(REFRESH_WAIT)
        with pytest.raises(Conflict, match="ciphertexts still use data key 1"):
            admin.retire(db, path, "data", 1, 0)
        assert admin.reencrypt_data(db, load_keyring(path), batch=2) == 2
        assert admin.reencrypt_all(db, load_keyring(path)) == 1
        admin.retire(db, path, "data", 1, 0)
        time.sleep(REFRESH_WAIT)
    status = {(r.purpose, r.version): r.uses for r in admin.key_status(db, load_keyring(path))}
    db.close()
    assert statuses and set(statuses) == {200}, statuses
    assert status[("data", 2)] == 3
    assert ("data", 1) not in status
    again = HavenClient(live_server.url, witnesses=live_server.witnesses).login("data2", PASSPHRASE)
    assert again.username == "data2"
    new_counsel, _ = create_account("counsel", username="after-rotation")
    assert new_counsel.get("/account")["account"]["username"] == "after-rotation"


def test_log_key_rotation_is_announced_and_followed_by_clients(
    app: Flask, create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    counsel, _ = create_account("counsel", username="logfollower")
    counsel.directory.refresh()
    assert set(counsel.directory.log_keys) == {1}
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    assert admin.rotate(db, path, "logsign") == 2
    time.sleep(REFRESH_WAIT)
    create_account("survivor", invited_by=counsel)  # appends; the new head is signed by v2
    head = counsel.directory.refresh()
    assert head.key_version == 2
    assert set(counsel.directory.log_keys) == {1, 2}
    admin.retire(db, path, "logsign", 1, 0)
    assert directory.verify_log(db) == 2
    db.close()
    counsel.cases()


def test_admin_marks_a_key_compromised_and_contacts_see_it(
    app: Flask, create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    counsel, _ = create_account("counsel", username="warned")
    survivor, _ = create_account("survivor", username="lost-phone", invited_by=counsel)
    boss, _ = create_account("admin", username="boss")
    assert survivor.account is not None
    answer = boss.post(f"/admin/accounts/{survivor.account.id}/compromised")
    assert answer["key"]["status"] == "compromised"
    with pytest.raises(ApiError):
        survivor.get("/account")  # sessions ended
    again = HavenClient(live_server.url, witnesses=live_server.witnesses)
    again.login("lost-phone", PASSPHRASE)
    assert again.get("/account")["account"]["must_rotate_keys"] is True
    [case] = counsel.get("/cases")["cases"]
    statuses = {m["username"]: m["public_keys"]["status"] for m in case["members"]}
    assert statuses["lost-phone"] == "compromised"
    figures = boss.get("/admin/figures")["figures"]
    assert figures["accounts_survivor"] == 1 and figures["cases"] == 1
    listed = boss.get("/admin/accounts")["accounts"]
    assert {a["username"] for a in listed} == {"warned", "lost-phone", "boss"}


def test_data_key_reencryption_leaves_a_concurrently_written_row_alone(
    app: Flask,
    create_account: Callable[..., tuple[HavenClient, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A row written between the batch's read and its write keeps the concurrent value."""
    for i in range(3):
        create_account("counsel", username=f"guard{i}")
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    admin.rotate(db, path, "data")
    ring = load_keyring(path)
    key, version = ring.current("data"), ring.current_version("data")
    target = db.scalars(select(User).order_by(User.id).limit(1)).first()
    assert target is not None
    name = serverdata.open_identifier(ring.get("data", 1), "username", target.username_sealed)
    written = serverdata.seal_identifier(key, version, "username", name)
    seal = serverdata.seal_identifier

    def seal_after_a_concurrent_write(*args: Any) -> bytes:
        monkeypatch.setattr(serverdata, "seal_identifier", seal)
        with database(app).engine.begin() as other:
            other.execute(
                update(User)
                .where(User.id == target.id)
                .values(
                    username_sealed=written,
                    username_lookup=serverdata.lookup_hash(key, name),
                    data_key_version=version,
                    lookup_key_version=version,
                )
            )
        return seal(*args)

    monkeypatch.setattr(serverdata, "seal_identifier", seal_after_a_concurrent_write)
    total = int(db.scalar(select(func.count()).select_from(User)) or 0)
    assert admin.reencrypt_all(db, ring) == total - 1
    db.expire_all()
    assert db.get(User, target.id).username_sealed == written  # type: ignore[union-attr]
    assert admin.reencryption_progress(db, ring).done == total
    db.close()


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_data_key_reencryption_in_many_batches_reseals_every_row_once(
    app: Flask, create_account: Callable[..., tuple[HavenClient, str]]
) -> None:
    """One-row batches: reads run ahead and writes behind, and every row is re-sealed once."""
    for i in range(3):
        create_account("counsel", username=f"batch{i}")
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    old = load_keyring(path).current("data")
    names = {
        u.id: serverdata.open_identifier(old, "username", u.username_sealed)
        for u in db.scalars(select(User))
    }
    admin.rotate(db, path, "data")
    ring = load_keyring(path)
    assert admin.reencrypt_all(db, ring, batch=1) == len(names)
    key = ring.current("data")
    db.expire_all()
    for user in db.scalars(select(User)):
        assert serverdata.sealed_version(user.username_sealed) == 2
        assert serverdata.open_identifier(key, "username", user.username_sealed) == names[user.id]
        assert user.username_lookup == serverdata.lookup_hash(key, names[user.id])
    counts = [
        json.loads(detail)["count"]
        for detail in db.scalars(
            select(AuditEntry.detail).where(AuditEntry.kind == "data_reencrypted")
        )
    ]
    assert counts == [1] * len(names)
    db.close()
