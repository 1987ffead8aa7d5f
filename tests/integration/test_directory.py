"""Key transparency over real HTTP: clients catch a server that substitutes or rewrites keys."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import delete, select, update

from tests.conftest import PASSPHRASE, LiveServer
from vault.accounts import services as accounts
from vault.accounts.models import UserKey
from vault.client import ApiError, HavenClient
from vault.client.directory import record_entry
from vault.db import database
from vault.directory import services as directory
from vault.directory.models import LogEntry, TreeHeadRow
from vault.protocol import keys as pkeys
from vault.protocol import merkle
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64decode


def _case_pair(
    create_account: Callable[..., tuple[HavenClient, str]],
) -> tuple[HavenClient, HavenClient]:
    counsel, _ = create_account("counsel", username="kt-counsel")
    survivor, _ = create_account("survivor", username="kt-survivor", invited_by=counsel)
    return counsel, survivor


def test_clients_verify_every_key_they_use(
    create_account: Callable[..., tuple[HavenClient, str]], app: Flask
) -> None:
    counsel, _ = _case_pair(create_account)
    [case] = counsel.cases()
    assert len(case["members"]) == 2
    assert counsel.directory.head is not None and counsel.directory.head.size >= 2
    with app.app_context():
        db = database(app).sessions()
        assert directory.verify_log(db) == 2
        db.close()


def _substitute(app: Flask, user_id: str, username: str, *, log_it: bool) -> None:
    """Play a malicious server: swap a user's current public keys for an attacker's."""
    attacker = pkeys.KeyPairs.generate()
    fake = attacker.public(username)
    with app.app_context():
        db = database(app).sessions()
        key = db.scalars(select(UserKey).where(UserKey.user_id == user_id)).one()
        key.x25519, key.ed25519, key.signature = fake.x25519, fake.ed25519, fake.signature
        if log_it:  # the operator signs it into the log, skipping the one-publish rule
            key.logged_at_ms = int(time.time() * 1000)
            entry = kt.KeyEntry(
                "publish",
                user_id,
                key.version,
                fake.x25519,
                fake.ed25519,
                fake.signature,
                key.logged_at_ms,
            )
            key.log_index = directory.write_entry(db, app.extensions["haven.keyring"], entry)
        db.commit()
        db.close()


def test_substituted_key_not_in_the_log_is_caught_by_the_other_party(
    create_account: Callable[..., tuple[HavenClient, str]], app: Flask
) -> None:
    counsel, survivor = _case_pair(create_account)
    assert survivor.account is not None
    _substitute(app, survivor.account.id, "kt-survivor", log_it=False)
    with pytest.raises(kt.TransparencyError, match="not in the log"):
        counsel.cases()


def test_substituted_key_that_is_logged_is_caught_by_its_owner(
    create_account: Callable[..., tuple[HavenClient, str]], app: Flask, live_server: LiveServer
) -> None:
    _, survivor = _case_pair(create_account)
    assert survivor.account is not None
    _substitute(app, survivor.account.id, "kt-survivor", log_it=True)
    # The other party now sees a logged key, but the owner's client sees a key it never made.
    with pytest.raises((kt.TransparencyError, pkeys.ProtocolError)):
        HavenClient(live_server.url, witnesses=live_server.witnesses).login(
            "kt-survivor", PASSPHRASE
        )


def test_a_rolled_back_log_is_refused(
    create_account: Callable[..., tuple[HavenClient, str]], app: Flask
) -> None:
    counsel, _ = _case_pair(create_account)
    counsel.directory.refresh()
    size = counsel.directory.head.size  # type: ignore[union-attr]
    with app.app_context():
        db = database(app).sessions()
        db.execute(delete(TreeHeadRow).where(TreeHeadRow.size == size))
        db.commit()
        db.close()
    with pytest.raises(kt.TransparencyError, match="rolled it back"):
        counsel.directory.refresh()


def test_a_forked_log_fails_consistency(
    create_account: Callable[..., tuple[HavenClient, str]], app: Flask
) -> None:
    counsel, _ = _case_pair(create_account)
    counsel.directory.refresh()
    # The server rewrites history: re-signs a head over a different first leaf.
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        from vault.directory.models import LogNode

        db.execute(
            update(LogNode).where(LogNode.level == 0, LogNode.index == 0).values(hash=b"\x09" * 32)
        )
        db.execute(delete(LogNode).where(LogNode.level > 0))
        db.commit()
        from vault.protocol import merkle

        leaves = [
            n.hash
            for n in db.scalars(select(LogNode).where(LogNode.level == 0).order_by(LogNode.index))
        ]
        tree = merkle.MemoryTree()
        for leaf in leaves:
            tree.append(leaf)
        for level, hashes in enumerate(tree.levels[1:], start=1):
            for index, value in enumerate(hashes):
                db.add(LogNode(level=level, index=index, hash=value))
        key = db.scalars(select(UserKey)).first()
        accounts.publish_key(db, ring, key, kind="supersede")  # type: ignore[arg-type]
        db.commit()
        db.close()
    with pytest.raises(Exception, match="consistency proof"):
        counsel.directory.refresh()


def test_log_verify_command_names_an_edited_entry(
    create_account: Callable[..., tuple[HavenClient, str]],
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vault.cli import main

    _case_pair(create_account)
    monkeypatch.setenv("HAVEN_DATABASE_URL", app.config["HAVEN_DATABASE_URL"])
    monkeypatch.setenv("HAVEN_KEYS_DIR", app.config["HAVEN_KEYS_DIR"])
    runner = CliRunner()
    good = runner.invoke(main, ["log", "verify"])
    assert good.exit_code == 0, good.output
    assert "intact: 2 entries" in good.output
    with app.app_context():
        db = database(app).sessions()
        entry = db.get(LogEntry, 1)
        assert entry is not None
        entry.data = entry.data[:-1] + bytes([entry.data[-1] ^ 1])
        db.commit()
        db.close()
    bad = runner.invoke(main, ["log", "verify"])
    assert bad.exit_code != 0
    assert "entry 1 does not match" in bad.output


def test_inclusion_bounds_are_checked(
    create_account: Callable[..., tuple[HavenClient, str]],
) -> None:
    counsel, _ = _case_pair(create_account)
    for params in ({"index": 5, "size": 2}, {"index": 0, "size": 99}):
        with pytest.raises(ApiError) as err:
            counsel.get("/directory/proofs/inclusion", **params)
        assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        counsel.get("/directory/proofs/inclusion", index="x", size=1)
    assert err.value.status == 400


def test_any_published_key_version_is_served_with_its_inclusion_proof(
    create_account: Callable[..., tuple[HavenClient, str]],
) -> None:
    counsel, survivor = _case_pair(create_account)
    assert counsel.account is not None
    old = counsel.account.public_keys
    counsel.rotate_keys(PASSPHRASE)
    head = survivor.directory.refresh()
    for version in (1, 2):
        answer = survivor.get(f"/users/{counsel.account.id}/keys/{version}")
        record = answer["key"]
        assert record["version"] == version and answer["size"] == head.size
        merkle.verify_inclusion(
            record_entry(counsel.account.id, record).leaf(),
            record["log_index"],
            answer["size"],
            [b64decode(p) for p in answer["proof"]],
            head.root,
        )
    assert (
        b64decode(survivor.get(f"/users/{counsel.account.id}/keys/1")["key"]["x25519"])
        == old.x25519
    )
    with pytest.raises(ApiError) as err:
        survivor.get(f"/users/{counsel.account.id}/keys/3")
    assert (err.value.status, err.value.code) == (404, "no_such_key_version")
