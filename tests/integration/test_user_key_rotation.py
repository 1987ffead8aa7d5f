"""User key rotation (docs/protocol.md §14): a survivor who lost a phone replaces their
keys; afterwards every document and message is readable by exactly the people who could
read it before, the lost phone's session is over, and the log shows the change."""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from tests.conftest import PASSPHRASE, LiveServer
from tests.factories import row_counts
from vault.accounts.models import KeyStatus, User, UserKey
from vault.audit.models import AuditEntry
from vault.cli import main
from vault.client import ApiError, HavenClient
from vault.client.contacts import KeyChanged
from vault.client.documents import Documents
from vault.client.messages import Messenger
from vault.db import database
from vault.directory import services as directory
from vault.messages.models import MessageReseal
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64decode, b64encode

Make = Callable[..., tuple[HavenClient, str]]
T = TypeVar("T")


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app, with the rotation and send limits out of the way of the refusal table and
    of the traffic generator."""
    return make_app(HAVEN_LIMIT_RECOVERY="1000/minute", HAVEN_LIMIT_MESSAGE_SEND="100000/minute")


def _docs(client: HavenClient) -> Documents:
    return Documents(client, retries=2, backoff=0.05, part_chunks=pdoc.MIN_PART_CHUNKS)


def readable_documents(client: HavenClient, case_id: str) -> dict[str, bytes]:
    """Every document this client can open in the case, with its decrypted content."""
    docs = _docs(client)
    listing = docs.case_documents(case_id)
    assert not listing.refused, listing.refused
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for doc in listing.documents:
            dest = Path(tmp) / doc.id
            docs.download(doc.id, dest, document=doc)
            out[doc.id] = dest.read_bytes()
    return out


def readable_messages(client: HavenClient, conversation_id: str) -> dict[str, str]:
    """Every message this client can open in the conversation, verified and decrypted."""
    chat, before = Messenger(client), None
    out: dict[str, str] = {}
    while True:
        page, before = chat.page(conversation_id, before=before, limit=200)
        out |= {m["id"]: chat.open(conversation_id, m).text for m in page if not m["deleted"]}
        if before is None:
            return out


def accepting_key_changes(client: HavenClient, action: Callable[[], T]) -> T:
    """Do ``action``; if a contact's keys changed, accept them as the person would, and redo it."""
    try:
        return action()
    except KeyChanged as changed:
        client.contacts.acknowledge(changed.user_id)
        return action()


def world(make: Make) -> dict[str, Any]:
    """Counsel and survivor in a case with documents both ways and a conversation, one
    more counsel in the case who is shown some things and not others, and a stranger."""
    counsel, _ = make("counsel", username="counsel-ana")
    survivor, recovery = make("survivor", username="maria", invited_by=counsel)
    stranger, _ = make("counsel", username="stranger")
    case_id = survivor.cases()[0]["id"]
    assert counsel.account and survivor.account
    mine, theirs = _docs(survivor), _docs(counsel)
    passport = mine.upload(
        case_id, io.BytesIO(b"passport scan " * 300), doc_type="passport", name="passport.jpg"
    )
    mine.grant(passport.id, counsel.account.id)
    private = mine.upload(
        case_id, io.BytesIO(b"kept to myself"), doc_type="other", name="diary.txt"
    )
    order = theirs.upload(
        case_id, io.BytesIO(b"protective order"), doc_type="protective_order", name="order.pdf"
    )
    theirs.grant(order.id, survivor.account.id)
    theirs.upload(case_id, io.BytesIO(b"counsel notes"), doc_type="other", name="notes.txt")
    chat = Messenger(survivor)
    conversation = chat.create_conversation(case_id, [counsel.account.id])
    chat.send(conversation.id, "hello, I am safe for now")
    Messenger(counsel).send(conversation.id, "thank you, I have your passport")
    gone = chat.send(conversation.id, "this one I take back")
    chat.delete(conversation.id, gone["id"])
    chat.send(conversation.id, "attached my visa", attachments=[private])
    return {
        "counsel": counsel,
        "survivor": survivor,
        "stranger": stranger,
        "recovery": recovery,
        "case_id": case_id,
        "cid": conversation.id,
    }


def snapshot(w: dict[str, Any]) -> dict[str, Any]:
    """What each person can read now."""
    return {
        who: (readable_documents(w[who], w["case_id"]), readable_messages(w[who], w["cid"]))
        for who in ("counsel", "survivor")
    }


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_after_a_rotation_everything_stays_readable_by_exactly_the_same_people(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    w = world(create_account)
    survivor: HavenClient = w["survivor"]
    assert survivor.account is not None
    before = snapshot(w)
    # The survivor: passport, diary, the order shared with them; counsel: the passport,
    # the diary (attached to a message), and both of their own.
    assert len(before["survivor"][0]) == 3 and len(before["counsel"][0]) == 4
    assert len(before["survivor"][1]) == 3 == len(before["counsel"][1])
    # Each account's reseal set is what it can read, and only that.
    counsel_set = w["counsel"].post("/account/keys/reseal")
    assert {d["id"] for d in counsel_set["documents"]} == set(before["counsel"][0])
    assert {m["id"] for m in counsel_set["messages"]} == set(before["counsel"][1])
    assert w["stranger"].post("/account/keys/reseal") == {
        "key_version": 1,
        "documents": [],
        "messages": [],
    }
    lost_phone = HavenClient(live_server.url, witnesses=live_server.witnesses)
    lost_phone.login("maria", PASSPHRASE)

    new_recovery = survivor.rotate_keys(PASSPHRASE)

    assert survivor.account.keys.version == 2
    assert new_recovery != w["recovery"]
    assert snapshot(w) == before
    # The lost phone's session is over; a fresh device signs in at version 2.
    with pytest.raises(ApiError) as ended:
        lost_phone.get("/account")
    assert ended.value.status == 401
    fresh = HavenClient(live_server.url, witnesses=live_server.witnesses)
    assert fresh.login("maria", PASSPHRASE).keys.version == 2
    assert readable_documents(fresh, w["case_id"]) == before["survivor"][0]
    assert readable_messages(fresh, w["cid"]) == before["survivor"][1]
    # The stranger could read nothing before and can read nothing now.
    with pytest.raises(ApiError) as refused:
        w["stranger"].get(f"/cases/{w['case_id']}/documents")
    assert refused.value.status == 404
    # The new recovery key works; the old one, which wrapped the old keys, does not.
    with pytest.raises(ApiError):
        HavenClient(live_server.url, witnesses=live_server.witnesses).recover(
            "maria", w["recovery"], "a brand new passphrase 1"
        )
    recovered = HavenClient(live_server.url, witnesses=live_server.witnesses).recover(
        "maria", new_recovery, PASSPHRASE + " 2"
    )
    assert recovered.keys.version == 2


def test_new_messages_and_grants_go_to_the_new_key_and_the_log_shows_the_change(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    w = world(create_account)
    survivor, counsel = w["survivor"], w["counsel"]
    survivor.rotate_keys(PASSPHRASE)
    assert survivor.account is not None and counsel.account is not None
    # Counsel's client sees version 2 (in the log): a key change it must accept (§16) ...
    with pytest.raises(KeyChanged):
        Messenger(counsel).send(w["cid"], "not before I accept")
    counsel.contacts.acknowledge(survivor.account.id)
    # ... and then it seals new messages to it.
    reply = Messenger(counsel).send(w["cid"], "new key, same conversation")
    assert {
        r["key_version"] for r in reply["recipients"] if r["user_id"] == survivor.account.id
    } == {2}
    assert readable_messages(survivor, w["cid"])[reply["id"]] == "new key, same conversation"
    late = _docs(counsel).upload(
        w["case_id"], io.BytesIO(b"late filing"), doc_type="other", name="late.pdf"
    )
    grant = _docs(counsel).grant(late.id, survivor.account.id)
    assert grant["key_version"] == 2
    assert late.id in readable_documents(survivor, w["case_id"])
    keys = counsel.get(f"/users/{survivor.account.id}/keys")["keys"]
    assert [(k["version"], k["status"]) for k in keys] == [(1, "superseded"), (2, "current")]
    kinds = [e["kind"] for e in survivor.get("/directory/mine")["entries"]]
    assert kinds[-2:] == ["publish", "supersede"]
    with app.app_context():
        db = database(app).sessions()
        assert directory.verify_log(db) >= 5
        rotated = db.scalars(select(AuditEntry).where(AuditEntry.kind == "keys_rotated")).one()
        assert json.loads(rotated.detail) == {"from": 1, "to": 2, "documents": 3, "messages": 3}
        db.close()
    # A second rotation re-seals the reseals and what was sealed to version 2.
    messages, documents = (
        readable_messages(survivor, w["cid"]),
        readable_documents(survivor, w["case_id"]),
    )
    survivor.rotate_keys(PASSPHRASE)
    assert survivor.account.keys.version == 3
    assert readable_messages(survivor, w["cid"]) == messages and len(messages) == 4
    assert readable_documents(survivor, w["case_id"]) == documents and len(documents) == 4


def test_a_compromised_key_must_rotate_and_rotation_clears_the_flag(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    w = world(create_account)
    boss, _ = create_account("admin", username="boss")
    survivor_id = w["survivor"].account.id
    boss.post(f"/admin/accounts/{survivor_id}/compromised")
    again = HavenClient(live_server.url, witnesses=live_server.witnesses)
    again.login("maria", PASSPHRASE)
    assert again.get("/account")["account"]["must_rotate_keys"] is True
    with pytest.raises(ApiError) as blocked:
        Messenger(again).send(w["cid"], "can I still send?")
    assert blocked.value.code == "must_rotate_keys"
    again.rotate_keys(PASSPHRASE, new_passphrase="a new passphrase after the scare")
    assert again.get("/account")["account"]["must_rotate_keys"] is False
    with pytest.raises(ApiError):
        HavenClient(live_server.url, witnesses=live_server.witnesses).login("maria", PASSPHRASE)
    HavenClient(live_server.url, witnesses=live_server.witnesses).login(
        "maria", "a new passphrase after the scare"
    )
    Messenger(again).send(w["cid"], "new keys now")
    keys = w["counsel"].get(f"/users/{survivor_id}/keys")["keys"]
    statuses = {k["version"]: k["status"] for k in keys}
    assert statuses == {1: "compromised", 2: "current"}
    assert len(readable_messages(w["counsel"], w["cid"])) == 4


def _rotation_body(client: HavenClient, **overrides: Any) -> dict[str, Any]:
    """A well-formed rotation request for a signed-in client (documents and messages
    re-sealed as the client would), with some fields replaced."""
    from vault.client.api import _public_json, reseal_file_key, reseal_message_key
    from vault.protocol.kdf import passphrase_keys, recovery_keys

    assert client.account is not None
    old, name = client.account.keys, client.account.username
    new = pkeys.KeyPairs.generate(version=old.version + 1)
    rkeys = recovery_keys(pkeys.generate_recovery_key())
    found = client.post("/account/keys/reseal")
    body = {
        "current_auth_key": b64encode(passphrase_keys(PASSPHRASE, client.prelogin(name)).auth_key),
        "public_keys": _public_json(new.public(name)),
        "passphrase": client._new_passphrase(PASSPHRASE, new, name),
        "recovery_auth_key": b64encode(rkeys.auth_key),
        "recovery_wrapped_keys": b64encode(pkeys.wrap_bundle(new, name, rkeys.wrap_key)),
        "documents": [
            {"id": d["id"], "sealed_key": b64encode(reseal_file_key(d, old, new))}
            for d in found["documents"]
        ],
        "messages": [
            {
                "id": m["id"],
                "sealed_key": b64encode(reseal_message_key(m, old, new.public(name).x25519)),
            }
            for m in found["messages"]
        ],
    }
    return body | overrides


def test_a_rotation_that_misses_or_invents_an_item_changes_nothing(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    w = world(create_account)
    survivor: HavenClient = w["survivor"]
    body = _rotation_body(survivor)
    before = row_counts(app)
    cases = {
        "missing document": (body | {"documents": body["documents"][1:]}, 409),
        "missing message": (body | {"messages": body["messages"][1:]}, 409),
        "listed twice": (body | {"documents": body["documents"] * 2}, 400),
        "wrong version": (body | {"public_keys": {**body["public_keys"], "version": 3}}, 409),
        "old version seal": (
            body
            | {
                "documents": [
                    {
                        **d,
                        "sealed_key": survivor.post("/account/keys/reseal")["documents"][0][
                            "sealed_key"
                        ],
                    }
                    for d in body["documents"][:1]
                ]
                + body["documents"][1:]
            },
            400,
        ),
        "message key format 2": (
            body
            | {
                "messages": [
                    {**m, "sealed_key": b64encode(b"\x02" + b64decode(m["sealed_key"])[1:])}
                    for m in body["messages"][:1]
                ]
                + body["messages"][1:]
            },
            400,
        ),
        "wrong passphrase": (body | {"current_auth_key": b64encode(bytes(32))}, 401),
        "bad signature": (
            body | {"public_keys": {**body["public_keys"], "signature": b64encode(bytes(64))}},
            400,
        ),
    }
    # Larger than the general JSON limit (256 KiB) but within the rotation limit: read,
    # and refused for what it says (a document missing), not for its size.
    padding = [
        {"id": f"d{i:020d}", "sealed_key": body["documents"][0]["sealed_key"]} for i in range(2500)
    ]
    cases["a large set"] = (body | {"documents": body["documents"][1:] + padding}, 409)
    codes = {
        "missing document": "reseal_set_changed",
        "listed twice": "invalid_field",
        "old version seal": "invalid_field",
        "message key format 2": "invalid_field",
        "wrong passphrase": "bad_credentials",
        "wrong version": "stale_key_version",
    }
    for label, (bad, status) in cases.items():
        answer = survivor.http.post(f"{live_server.url}/api/v1/account/keys", json=bad, timeout=30)
        assert answer.status_code == status, (label, answer.text)
        assert set(answer.json()) == {"error"}, label
        if label in codes:
            assert answer.json()["error"]["code"] == codes[label], (label, answer.text)
    assert _counts_without_audit(row_counts(app)) == _counts_without_audit(before)
    with app.app_context():
        db = database(app).sessions()
        user = db.get(User, survivor.account.id)  # type: ignore[union-attr]
        assert user is not None and user.key_version == 1
        assert [
            k.status for k in db.scalars(select(UserKey).where(UserKey.user_id == user.id))
        ] == [KeyStatus.CURRENT]
        db.close()
    # The untouched body still works; an id that is not (or no longer) readable is ignored.
    invented = {**body["messages"][0], "id": "x" * 22}
    good = body | {"messages": [*body["messages"], invented]}
    answer = survivor.http.post(f"{live_server.url}/api/v1/account/keys", json=good, timeout=30)
    assert answer.status_code == 200, answer.text
    with app.app_context():
        db = database(app).sessions()
        reseals = db.scalars(select(MessageReseal.message_id)).all()
        assert sorted(reseals) == sorted(m["id"] for m in body["messages"])
        db.close()


def _counts_without_audit(counts: dict[str, int]) -> dict[str, int]:
    """Row counts except the audit chain, which records failed attempts by design."""
    return {t: n for t, n in counts.items() if t not in {"audit_log", "audit_checkpoints"}}


def test_a_message_sent_to_the_old_key_during_a_rotation_is_refused_or_resealed(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    """The race of §14: counsel composes to version 1, the survivor rotates, then the
    message arrives. It must be refused (stale key) rather than stored unreadable."""
    w = world(create_account)
    counsel, survivor = w["counsel"], w["survivor"]
    chat = Messenger(counsel)
    conversation = chat.conversation(w["cid"])
    envelope = chat.compose(conversation, "composed before the rotation")
    survivor.rotate_keys(PASSPHRASE)
    with pytest.raises(ApiError) as stale:
        chat.send_envelope(envelope)
    assert stale.value.code == "stale_key_version"
    sent = accepting_key_changes(
        counsel, lambda: chat.send(w["cid"], "sent again after fetching keys")
    )
    assert sent["recipients"]
    texts = set(readable_messages(survivor, w["cid"]).values())
    assert "sent again after fetching keys" in texts
    assert "composed before the rotation" not in texts


def test_messages_sent_while_a_rotation_runs_all_stay_readable(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    """Counsel keeps sending while the survivor rotates twice: every message the server
    accepted is readable by the survivor afterwards, whichever side of the rotation it
    landed on. The refusals a sender may see are a stale key and a recipient preparing a
    rotation, both of which it retries; the rotation itself never has to give up."""
    w = world(create_account)
    counsel, survivor = w["counsel"], w["survivor"]
    accepted: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        chat = Messenger(counsel)
        i = 0
        while not stop.is_set():
            try:
                accepted.append(chat.send(w["cid"], f"during rotation {i}")["id"])
            except ApiError as exc:
                if exc.code not in {"stale_key_version", "keys_rotating"}:
                    failures.append(exc)
                    return
                time.sleep(0.05)
            except KeyChanged as exc:  # the person accepts the new keys and goes on
                counsel.contacts.acknowledge(exc.user_id)
            except BaseException as exc:
                failures.append(exc)
                return
            i += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.3)
        survivor.rotate_keys(PASSPHRASE)
        time.sleep(0.3)
        survivor.rotate_keys(PASSPHRASE)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert failures == []
    assert len(accepted) > 3
    readable = readable_messages(survivor, w["cid"])
    assert set(accepted) <= set(readable)


def test_haven_account_rotate_keys_from_the_command_line(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    w = world(create_account)
    before = readable_messages(w["counsel"], w["cid"])
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_UNWITNESSED": "true",
        "HAVEN_USERNAME": "maria",
        "HAVEN_PASSPHRASE": PASSPHRASE,
    }
    result = CliRunner(env=env).invoke(main, ["account", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "version 2" in result.output
    recovery = result.output.strip().splitlines()[-1]
    pkeys.parse_recovery_key(recovery)  # a well-formed key, printed once
    fresh = HavenClient(live_server.url, witnesses=live_server.witnesses)
    assert fresh.login("maria", PASSPHRASE).keys.version == 2
    assert readable_messages(fresh, w["cid"]) == before == readable_messages(w["counsel"], w["cid"])
    wrong = CliRunner(env=env | {"HAVEN_PASSPHRASE": "not the passphrase at all"}).invoke(
        main, ["account", "rotate-keys"]
    )
    assert wrong.exit_code != 0 and "sign-in failed" in wrong.output


def test_while_a_rotation_is_prepared_nothing_new_is_sealed_to_the_account(
    app: Flask, create_account: Make, live_server: LiveServer
) -> None:
    """Starting a rotation freezes the account: sends and grants to it are refused with
    keys_rotating until it publishes (or the freeze runs out), so the set its client
    re-seals cannot grow under it."""
    w = world(create_account)
    counsel, survivor = w["counsel"], w["survivor"]
    assert survivor.account is not None
    late = _docs(counsel).upload(
        w["case_id"], io.BytesIO(b"late filing"), doc_type="other", name="late.pdf"
    )
    body = _rotation_body(survivor)  # starts the rotation
    with pytest.raises(ApiError) as frozen:
        Messenger(counsel).send(w["cid"], "while you rotate")
    assert (frozen.value.status, frozen.value.code) == (409, "keys_rotating")
    with pytest.raises(ApiError) as frozen_grant:
        _docs(counsel).grant(late.id, survivor.account.id)
    assert (frozen_grant.value.status, frozen_grant.value.code) == (409, "keys_rotating")
    with pytest.raises(ApiError) as own_upload:
        _docs(survivor).upload(w["case_id"], io.BytesIO(b"x"), doc_type="other", name="x.txt")
    assert own_upload.value.code == "keys_rotating"
    # A freeze that ran out lets traffic through; the set then grows, and the stale
    # request is sent back for the new set rather than leaving a message unreadable.
    with app.app_context():
        db = database(app).sessions()
        user = db.get(User, survivor.account.id)
        assert user is not None
        user.rotation_freeze_until = user.created_at
        db.commit()
        db.close()
    arrived = Messenger(counsel).send(w["cid"], "after the freeze ran out")
    answer = survivor.http.post(f"{live_server.url}/api/v1/account/keys", json=body, timeout=30)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "reseal_set_changed")
    survivor.rotate_keys(PASSPHRASE)  # starts again and publishes
    assert readable_messages(survivor, w["cid"])[arrived["id"]] == "after the freeze ran out"
    # The freeze is over; counsel accepts the survivor's new keys and shares.
    accepting_key_changes(counsel, lambda: _docs(counsel).grant(late.id, survivor.account.id))
    assert late.id in readable_documents(survivor, w["case_id"])
