"""An active operator forges keys or blinds monitoring: both clients refuse before sealing."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import pytest
import sqlalchemy
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func, select

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.attacks import forge_key, hide_entries
from vault.client import HavenClient
from vault.client.documents import Documents
from vault.client.messages import Messenger
from vault.db import database
from vault.documents.models import Grant
from vault.messages.models import Message
from vault.protocol import keys as pkeys
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64decode, b64encode


def _pair(
    create_account: Callable[..., tuple[HavenClient, str]],
) -> tuple[HavenClient, HavenClient, str]:
    counsel, _ = create_account("counsel", username="op-counsel")
    survivor, _ = create_account("survivor", username="op-survivor", invited_by=counsel)
    [case] = survivor.get("/cases")["cases"]
    return counsel, survivor, case["id"]


def _count(app: Flask, model: type) -> int:
    with app.app_context():
        db = database(app).sessions()
        try:
            return int(db.scalar(select(func.count()).select_from(model)) or 0)
        finally:
            db.close()


def _log_verify(app: Flask, monkeypatch: pytest.MonkeyPatch) -> str:
    from vault.cli import main

    monkeypatch.setenv("HAVEN_DATABASE_URL", app.config["HAVEN_DATABASE_URL"])
    monkeypatch.setenv("HAVEN_KEYS_DIR", app.config["HAVEN_KEYS_DIR"])
    result = CliRunner().invoke(main, ["log", "verify"])
    assert result.exit_code != 0, result.output
    return result.output


def test_forged_same_version_publish_is_refused_before_anything_is_sealed(
    create_account: Callable[..., tuple[HavenClient, str]],
    app: Flask,
    live_server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counsel, survivor, case_id = _pair(create_account)
    assert counsel.account is not None
    pinned = HavenClient(live_server.url, witnesses=live_server.witnesses)
    pinned.login("op-survivor", PASSPHRASE)
    pinned.cases()  # this device pins the counsel's real key first
    docs = Documents(survivor)
    passport = docs.upload(case_id, io.BytesIO(b"passport scan"), doc_type="passport", name="p.pdf")
    grants, messages = _count(app, Grant), _count(app, Message)

    forge_key(app, counsel.account.id)

    with pytest.raises(kt.EquivocationError, match="two different keys for version 1"):
        docs.grant(passport.id, counsel.account.id)
    with pytest.raises(kt.EquivocationError):
        Messenger(survivor).create_conversation(case_id, [counsel.account.id])
    with pytest.raises(kt.EquivocationError):
        Documents(pinned).grant(passport.id, counsel.account.id)
    with pytest.raises(kt.EquivocationError):
        pinned.cases()
    assert (_count(app, Grant), _count(app, Message)) == (grants, messages)
    # The counsel's own device refuses to sign in: the server serves a key it never made.
    with pytest.raises(pkeys.ProtocolError, match="does not match my keys"):
        HavenClient(live_server.url, witnesses=live_server.witnesses).login(
            "op-counsel", PASSPHRASE
        )
    assert "two different keys for version 1" in _log_verify(app, monkeypatch)


def test_a_key_logged_but_hidden_from_its_owner_is_caught_by_the_owner(
    create_account: Callable[..., tuple[HavenClient, str]],
    app: Flask,
    live_server: LiveServer,
) -> None:
    counsel, survivor, _ = _pair(create_account)
    assert counsel.account is not None
    forge_key(app, counsel.account.id, serve=False)
    # The counsel is shown their real key, but the log holds a second version 1 in their name.
    with pytest.raises(kt.TransparencyError, match="never made"):
        HavenClient(live_server.url, witnesses=live_server.witnesses).login(
            "op-counsel", PASSPHRASE
        )
    with pytest.raises(kt.EquivocationError, match="two different keys"):
        survivor.cases()


def test_a_pinned_key_served_with_other_bytes_is_refused(
    create_account: Callable[..., tuple[HavenClient, str]],
    app: Flask,
) -> None:
    counsel, survivor, _ = _pair(create_account)
    assert counsel.account is not None
    survivor.cases()
    original = survivor.directory.pins[(counsel.account.id, 1)]
    # The client's pin is what it holds: a record for version 1 with other bytes is refused
    # even by the history rule alone, and the pin refuses it before any history is read.
    forged = kt.KeyEntry(
        "publish", counsel.account.id, 1, b"\x01" * 32, b"\x02" * 32, b"\x03" * 64, 1
    )
    with pytest.raises(kt.EquivocationError, match="not the key I pinned"):
        survivor.directory.pin(forged)
    assert survivor.directory.pins[(counsel.account.id, 1)] == original


def test_a_hidden_column_is_caught_by_the_owner_and_by_log_verify(
    create_account: Callable[..., tuple[HavenClient, str]],
    app: Flask,
    live_server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counsel, survivor, _ = _pair(create_account)
    assert counsel.account is not None
    size = survivor.directory.refresh().size
    forge_key(app, counsel.account.id, version=2, serve=False)
    hide_entries(app, counsel.account.id, after=size)
    # /directory/mine reads the entry bytes, not the edited column.
    mine = counsel.get("/directory/mine")["entries"]
    assert [e["index"] for e in mine][-1] == size
    with pytest.raises(kt.TransparencyError, match="never made"):
        HavenClient(live_server.url, witnesses=live_server.witnesses).login(
            "op-counsel", PASSPHRASE
        )
    output = _log_verify(app, monkeypatch)
    assert f"entry {size}: columns (kind, user_id, key_version) disagree with its leaf" in output


def test_the_server_refuses_a_second_publish_for_a_version(
    create_account: Callable[..., tuple[HavenClient, str]], app: Flask
) -> None:
    from vault.accounts import services as accounts
    from vault.accounts.models import UserKey

    counsel, _, _ = _pair(create_account)
    assert counsel.account is not None
    with app.app_context():
        db = database(app).sessions()
        try:
            key = db.scalars(select(UserKey).where(UserKey.user_id == counsel.account.id)).one()
            with pytest.raises(kt.EquivocationError, match="one-publish rule"):
                accounts.publish_key(db, app.extensions["haven.keyring"], key)
            db.rollback()
        finally:
            db.close()


def test_inclusion_proofs_hand_out_no_entries(
    create_account: Callable[..., tuple[HavenClient, str]],
) -> None:
    _, survivor, _ = _pair(create_account)
    answer = survivor.get("/directory/proofs/inclusion", index=0, size=2)
    assert set(answer) == {"proof"}


def _shift_key_version(app: Flask, user_id: str, by: int) -> None:
    """Move the account's current key version in the database, with no log entry for it."""
    from sqlalchemy import update

    from vault.accounts.models import User

    with app.app_context():
        db = database(app).sessions()
        try:
            db.execute(
                update(User).where(User.id == user_id).values(key_version=User.key_version + by)
            )
            db.commit()
        finally:
            db.close()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_server_answers_a_contacts_keys_from_one_moment(
    create_account: Callable[..., tuple[HavenClient, str]], app: Flask
) -> None:
    """The root of the disagreement below: the server read an account's version, then its
    keys and log entries, and a rotation committing between them gave an answer whose halves
    disagree. The rotation now lands exactly there, and the answer is still one moment's."""
    counsel, survivor, _ = _pair(create_account)
    assert counsel.account is not None
    cid = counsel.account.id
    path = f"/users/{cid}/keys"
    armed: list[bool] = []

    def rotate_before_the_keys_are_read(
        _conn: object, _cursor: object, sql: str, *_: object
    ) -> None:
        if armed and "FROM user_keys" in sql:
            armed.clear()  # once: the rotation's own requests read keys too
            counsel.rotate_keys(PASSPHRASE)

    engine = database(app).engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", rotate_before_the_keys_are_read)
    try:
        armed.append(True)
        answer = survivor.get(path)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", rotate_before_the_keys_are_read)
    assert not armed, "the rotation did not run while the answer was read"
    publishes = [e for e in answer["entries"] if e["kind"] == "publish"]
    assert answer["current_version"] == 1
    assert [k["version"] for k in answer["keys"]] == [1]
    assert len(publishes) == 1
    after = survivor.get(path)
    assert after["current_version"] == 2  # the rotation did commit, after that moment
    assert len([e for e in after["entries"] if e["kind"] == "publish"]) == 2


def test_a_version_and_log_that_disagree_are_looked_at_again_and_refused_if_they_still_do(
    create_account: Callable[..., tuple[HavenClient, str]],
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server reads an account's version and its log entries in separate statements, so
    a rotation committing between them gave one answer whose halves disagree, and a sender
    took an honest rotation for equivocation (seen in a full run). The client looks again;
    a server whose version and log stay apart is still refused."""
    counsel, survivor, _ = _pair(create_account)
    assert counsel.account is not None
    cid = counsel.account.id
    path = f"/users/{cid}/keys"
    record = survivor.get(path)["keys"][-1]
    get = survivor.get
    looks: list[int] = []
    catches_up = [True]

    def rotation_lands_between(url: str, **params: object) -> dict[str, object]:
        answer: dict[str, object] = get(url, **params)
        if url == path:
            looks.append(int(str(answer["current_version"])))
            if catches_up.pop() if catches_up else False:
                _shift_key_version(app, cid, -1)  # the other half of the answer catches up
        return answer

    _shift_key_version(app, cid, 1)
    monkeypatch.setattr(survivor, "get", rotation_lands_between)
    survivor.verify_contact(cid, "op-counsel", record)
    assert looks == [2, 1]

    _shift_key_version(app, cid, 1)
    looks.clear()
    with pytest.raises(kt.EquivocationError, match="not the log's newest"):
        survivor.verify_contact(cid, "op-counsel", record)
    assert looks == [2, 2]


def test_keys_seen_in_an_answer_that_was_looked_at_again_stay_pinned(
    create_account: Callable[..., tuple[HavenClient, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server answers once with the real version 1 and a version that disagrees, so the
    client looks again, and then with other keys for version 1 that agree with everything
    else. Every version a client has seen is pinned (§12.5 step 5): the first answer's too."""
    counsel, survivor, _ = _pair(create_account)
    assert counsel.account is not None
    cid = counsel.account.id
    path = f"/users/{cid}/keys"
    get = survivor.get
    honest = get(path)
    [real] = [e for e in honest["entries"] if e["kind"] == "publish"]
    forged = dataclasses.replace(
        kt.KeyEntry.decode(b64decode(real["data"])), x25519=bytes(range(32))
    )
    answers = [
        honest | {"current_version": 2},
        honest | {"entries": [real | {"data": b64encode(forged.encode())}]},
    ]

    def fork(url: str, **params: object) -> object:
        return answers.pop(0) if url == path and answers else get(url, **params)

    monkeypatch.setattr(survivor, "get", fork)
    record = honest["keys"][0] | {"x25519": b64encode(forged.x25519)}
    with pytest.raises(kt.EquivocationError, match="not the key I pinned"):
        survivor.directory.check_contact(cid, record)
    assert not answers  # both answers were read
