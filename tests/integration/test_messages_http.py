"""Done-when, over real HTTP with real accounts: only the two of them can read their talk."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.conftest import LiveServer
from tests.integration.test_accounts import dump_database
from vault.client import ApiError, HavenClient
from vault.client.messages import Member, Messenger, envelope_json, parse_envelope
from vault.db import database, utcnow
from vault.messages import services
from vault.messages.models import Message
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.keys import ProtocolError

SECRET = "The address of the shelter is 14 Harbour Lane"
REPLY = "Thank you. Your T visa hearing is on the 3rd"

Make = Callable[..., tuple[HavenClient, str]]


@pytest.fixture
def people(create_account: Make) -> dict[str, Messenger]:
    """Real registrations: counsel, the survivor they invite, and an unrelated counsel."""
    counsel, _ = create_account("counsel", username="counsel.rivera")
    survivor, _ = create_account("survivor", username="amira.k", invited_by=counsel)
    stranger, _ = create_account("counsel", username="counsel.other")
    return {
        "counsel": Messenger(counsel),
        "survivor": Messenger(survivor),
        "stranger": Messenger(stranger),
    }


def _ids(people: dict[str, Messenger]) -> dict[str, str]:
    return {k: m.account.id for k, m in people.items()}


def test_only_survivor_and_counsel_can_read_their_messages(
    app: Flask, people: dict[str, Messenger]
) -> None:
    survivor, counsel, stranger = people["survivor"], people["counsel"], people["stranger"]
    ids = _ids(people)
    case_id = survivor.client.cases()[0]["id"]
    conversation = survivor.create_conversation(case_id, [ids["counsel"]])
    sent = survivor.send(conversation.id, SECRET)
    assert sent["seq"] == 1

    read = counsel.read(conversation.id)
    assert [m.text for m in read] == [SECRET]
    assert read[0].sender_username == "amira.k"
    counsel.send(conversation.id, REPLY)
    assert [m.text for m in survivor.read(conversation.id)] == [REPLY, SECRET]
    assert counsel.conversations()[0]["unread"] == 1
    assert survivor.conversations()[0]["unread"] == 1
    assert counsel.mark_read(conversation.id, read[0].seq) == 1
    assert counsel.conversations()[0]["unread"] == 0

    dump = dump_database(app)
    for text in (SECRET, REPLY, "Harbour Lane", "T visa"):
        assert text.encode() not in dump
        assert text.encode("utf-16-le") not in dump
        assert b64encode(text.encode()).encode() not in dump

    # The third account can neither read nor inject.
    for path in (
        f"/conversations/{conversation.id}",
        f"/conversations/{conversation.id}/messages",
        f"/conversations/{conversation.id}/messages/{sent['id']}",
    ):
        with pytest.raises(ApiError) as err:
            stranger.client.get(path)
        assert err.value.status == 404
    assert stranger.conversations() == []
    me = stranger.account
    with_me = dict(conversation.members)
    with_me[me.id] = Member(me.id, me.role, me.username, me.public_keys)
    widened = dataclasses.replace(conversation, members=with_me)
    injected = envelope_json(stranger.compose(widened, "let me in"))
    with pytest.raises(ApiError) as err:
        stranger.client.post(f"/conversations/{conversation.id}/messages", injected)
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        stranger.client.post(f"/cases/{case_id}/conversations", {"members": [ids["survivor"]]})
    assert err.value.status == 404
    assert len(counsel.read(conversation.id)) == 2


def test_replay_into_another_conversation_is_refused_by_server_and_client(
    people: dict[str, Messenger],
) -> None:
    survivor, counsel = people["survivor"], people["counsel"]
    ids = _ids(people)
    case_id = survivor.client.cases()[0]["id"]
    first = survivor.create_conversation(case_id, [ids["counsel"]])
    second = counsel.create_conversation(case_id, [ids["survivor"]])
    survivor.send(first.id, SECRET)
    listed, _ = counsel.page(first.id)
    envelope = {k: v for k, v in listed[0].items() if k in envelope_json(parse_envelope(listed[0]))}

    for sender in (survivor, counsel):
        with pytest.raises(ApiError) as err:
            sender.client.post(f"/conversations/{second.id}/messages", envelope)
        assert err.value.status in {400, 403}
        edited = envelope | {"conversation_id": second.id}
        with pytest.raises(ApiError) as err:
            sender.client.post(f"/conversations/{second.id}/messages", edited)
        assert err.value.status in {400, 403}
    assert counsel.page(second.id)[0] == []

    # A server that showed it in the other conversation would be caught by the client.
    with pytest.raises(ProtocolError):
        counsel.open(second.id, listed[0])
    with pytest.raises(ProtocolError):
        counsel.open(second.id, listed[0] | {"conversation_id": second.id})


@pytest.mark.parametrize(
    "field", ["body", "signature", "sent_at", "sender_id", "ttl", "sealed_key", "id"]
)
def test_client_refuses_anything_that_does_not_verify(
    people: dict[str, Messenger], field: str
) -> None:
    survivor, counsel = people["survivor"], people["counsel"]
    ids = _ids(people)
    conversation = survivor.create_conversation(survivor.client.cases()[0]["id"], [ids["counsel"]])
    survivor.send(conversation.id, SECRET)
    message = counsel.page(conversation.id)[0][0]
    assert counsel.open(conversation.id, message).text == SECRET
    tampered = dict(message)
    if field in {"body", "signature"}:
        raw = bytearray(b64decode(message[field]))
        raw[-1] ^= 1
        tampered[field] = b64encode(bytes(raw))
    elif field == "sealed_key":
        recipients = [dict(r) for r in message["recipients"]]
        recipients[0]["sealed_key"], recipients[1]["sealed_key"] = (
            recipients[1]["sealed_key"],
            recipients[0]["sealed_key"],
        )
        tampered["recipients"] = recipients
    elif field == "sender_id":
        tampered["sender_id"] = ids["counsel"]
        tampered["sender_key_version"] = 1
    elif field == "id":
        tampered["id"] = b64encode(bytes(16))
    elif field == "sent_at":
        tampered["sent_at"] = message["sent_at"] - 86_400_000
    else:
        tampered["ttl"] = 3600
    with pytest.raises(ProtocolError):
        counsel.open(conversation.id, tampered)


def test_disappearing_messages_leave_the_database(
    app: Flask, people: dict[str, Messenger], live_server: LiveServer
) -> None:
    survivor, counsel = people["survivor"], people["counsel"]
    ids = _ids(people)
    conversation = survivor.create_conversation(survivor.client.cases()[0]["id"], [ids["counsel"]])
    survivor.send(conversation.id, "this one stays")
    counsel.set_timer(conversation.id, 3600)
    fading = survivor.send(conversation.id, SECRET)
    assert fading["ttl"] == 3600 and fading["expires_at"]
    assert [m.ttl for m in counsel.read(conversation.id)] == [3600, 0]
    with app.app_context():
        db = database(app).sessions()
        services.purge(db, timedelta(days=14), now=utcnow() + timedelta(hours=2))
        db.close()
    with database(app).engine.connect() as conn:
        rows = conn.execute(select(Message.id)).scalars().all()
        assert fading["id"] not in rows
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 1
    assert [m.text for m in counsel.read(conversation.id)] == ["this one stays"]
