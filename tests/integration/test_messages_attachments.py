"""Attachments: a message names vault documents; sending it grants the recipients who
cannot read them yet, in the same transaction; deleting it revokes those grants."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.authz import World, build_world
from tests.factories import Person, make_person, row_counts
from tests.integration.documents_fixtures import DocHandle, make_document, signed_in
from tests.integration.messages_fixtures import (
    add_to_case,
    envelope_body,
    make_envelope,
    open_conversation,
)
from vault.accounts.models import Role, User
from vault.audit.models import Event, EventKind
from vault.cases import services as cases
from vault.client import HavenClient
from vault.client.documents import Documents
from vault.client.messages import Messenger
from vault.db import database
from vault.documents.models import Grant
from vault.protocol import documents as pdoc
from vault.protocol.encoding import b64encode


@pytest.fixture
def world(app: Flask) -> World:
    """Survivor + counsel and their conversation, strangers, and a survivor's document."""
    built = build_world(app)
    p = built.people
    built.extra["cid"] = open_conversation(app, p["survivor"], built.case_id, [p["counsel"]])
    built.extra["doc"] = make_document(app, p["survivor"], built.case_id, b"passport scan")
    return built


def key_for(doc: DocHandle, reader: Person, version: int | None = None) -> dict[str, Any]:
    sealed = pdoc.seal_file_key(
        doc.file_key, doc.raw_id, reader.public.x25519, version or reader.keys.version
    )
    return {"document_id": doc.id, "user_id": reader.id, "sealed_key": b64encode(sealed)}


def send(
    app: Flask,
    world: World,
    sender: str,
    docs: list[str],
    keys: list[dict[str, Any]],
    *,
    cid: str | None = None,
    members: list[Person] | None = None,
    ttl: int = 0,
) -> Any:
    p = world.people
    cid = cid or world.extra["cid"]
    people = members or [p["survivor"], p["counsel"]]
    envelope = make_envelope(p[sender], cid, people, "see attached", ttl=ttl)
    envelope = _with_attachments(envelope, docs, p[sender])
    body = envelope_body(envelope) | {"attachment_keys": keys}
    return signed_in(app, p[sender]).post(f"/api/v1/conversations/{cid}/messages", json=body)


def _with_attachments(envelope: Any, docs: list[str], sender: Person) -> Any:
    import dataclasses

    from vault.protocol import messages as pmsg

    header = dataclasses.replace(envelope.header, attachments=tuple(sorted(docs)))
    # Re-encrypt under the new header (the body's associated data is the header).
    key = pmsg.open_key(envelope.sealed_keys[header.recipient_index(sender.id)], sender.keys)
    text = pmsg.decrypt_body(envelope.header, envelope.body, key)
    body = pmsg.encrypt_body(header, text, key, envelope.body[1:25])
    return pmsg.sign(header, body, envelope.sealed_keys, sender.keys)


def can_read(app: Flask, person: Person, doc: DocHandle) -> bool:
    response = signed_in(app, person).get(f"/api/v1/documents/{doc.id}")
    if response.status_code == 404:
        return False
    assert response.status_code == 200, response.get_json()
    sealed = response.get_json()["document"]["sealed_key"]
    from vault.protocol.encoding import b64decode

    assert pdoc.open_file_key(b64decode(sealed), doc.raw_id, person.keys) == doc.file_key
    return True


def audit_kinds(app: Flask, document_id: str) -> list[EventKind]:
    with database(app).sessions() as db:
        return list(
            db.scalars(
                select(Event.kind).where(Event.document_id == document_id).order_by(Event.id)
            )
        )


def test_sending_an_attachment_grants_the_recipient(app: Flask, world: World) -> None:
    p, doc = world.people, world.extra["doc"]
    assert not can_read(app, p["counsel"], doc)
    response = send(app, world, "survivor", [doc.id], [key_for(doc, p["counsel"])])
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["message"]["attachments"] == [doc.id]
    assert can_read(app, p["counsel"], doc)
    assert audit_kinds(app, doc.id)[-1] == EventKind.GRANT
    # Attaching it again needs no key: the counsel reads it already.
    again = send(app, world, "survivor", [doc.id], [])
    assert again.status_code == 201, again.get_json()


def test_deleting_the_message_revokes_its_grants(app: Flask, world: World) -> None:
    p, doc = world.people, world.extra["doc"]
    message = send(app, world, "survivor", [doc.id], [key_for(doc, p["counsel"])]).get_json()
    mid = message["message"]["id"]
    assert can_read(app, p["counsel"], doc)
    deleted = signed_in(app, p["survivor"]).delete(
        f"/api/v1/conversations/{world.extra['cid']}/messages/{mid}",
        content_type="application/json",
    )
    assert deleted.status_code == 204
    assert not can_read(app, p["counsel"], doc)
    assert audit_kinds(app, doc.id)[-2:] == [EventKind.GRANT, EventKind.REVOKE]


def test_a_disappearing_message_grants_until_it_disappears(app: Flask, world: World) -> None:
    p, doc = world.people, world.extra["doc"]
    timer = signed_in(app, p["counsel"]).put(
        f"/api/v1/conversations/{world.extra['cid']}/timer", json={"seconds": 86400}
    )
    assert timer.status_code == 200
    sent = send(app, world, "survivor", [doc.id], [key_for(doc, p["counsel"])], ttl=86400)
    assert sent.status_code == 201, sent.get_json()
    expires = sent.get_json()["message"]["expires_at"]
    with database(app).sessions() as db:
        grant = db.scalars(select(Grant).where(Grant.grantee_id == p["counsel"].id)).one()
        assert grant.expires_at is not None and grant.expires_at.isoformat() == expires


def test_a_reader_may_attach_what_everyone_reads_but_not_share_further(
    app: Flask, world: World
) -> None:
    p, doc = world.people, world.extra["doc"]
    send(app, world, "survivor", [doc.id], [key_for(doc, p["counsel"])])
    forwarded = send(app, world, "counsel", [doc.id], [])
    assert forwarded.status_code == 201, forwarded.get_json()
    with database(app).sessions() as db:
        ring = app.extensions["haven.keyring"]
        second = make_person(db, ring, Role.COUNSEL, "counsel.e")
    add_to_case(app, world.case_id, second)
    trio = [p["survivor"], p["counsel"], second]
    cid = open_conversation(app, p["counsel"], world.case_id, [p["survivor"], second])
    before = row_counts(app)
    response = send(app, world, "counsel", [doc.id], [key_for(doc, second)], cid=cid, members=trio)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "not_owner"
    assert row_counts(app) == before


def _other_case_document(app: Flask, world: World) -> DocHandle:
    """A document the counsel owns in another of their cases."""
    with database(app).sessions() as db:
        ring = app.extensions["haven.keyring"]
        other = make_person(
            db, ring, Role.SURVIVOR, "survivor.z", invited_by=world.people["counsel"].id
        )
        user = db.get(User, other.id)
        assert user is not None
        case_id = cases.list_cases(db, user)[0].id
    return make_document(app, world.people["counsel"], case_id, b"other case")


BAD: list[tuple[str, Callable[[Flask, World], tuple[str, list[str], list[Any]]], int, str]] = [
    (
        "unknown document",
        lambda a, w: ("survivor", [b64encode(bytes(16))], []),
        400,
        "unknown_attachment",
    ),
    (
        "a stranger's document",
        lambda a, w: (
            "survivor",
            [make_document(a, w.people["stranger_survivor"], w.stranger_case_id).id],
            [],
        ),
        400,
        "unknown_attachment",
    ),
    (
        "a document of another case",
        lambda a, w: ("counsel", [_other_case_document(a, w).id], []),
        400,
        "attachment_not_in_case",
    ),
    (
        "missing key",
        lambda a, w: ("survivor", [w.extra["doc"].id], []),
        400,
        "missing_attachment_key",
    ),
    (
        "key for the owner",
        lambda a, w: (
            "survivor",
            [w.extra["doc"].id],
            [
                key_for(w.extra["doc"], w.people["counsel"]),
                key_for(w.extra["doc"], w.people["survivor"]),
            ],
        ),
        400,
        "unexpected_attachment_key",
    ),
    (
        "key for a stranger",
        lambda a, w: (
            "survivor",
            [w.extra["doc"].id],
            [
                key_for(w.extra["doc"], w.people["counsel"]),
                key_for(w.extra["doc"], w.people["stranger_counsel"]),
            ],
        ),
        400,
        "unexpected_attachment_key",
    ),
    (
        "key for another key version",
        lambda a, w: (
            "survivor",
            [w.extra["doc"].id],
            [key_for(w.extra["doc"], w.people["counsel"], 2)],
        ),
        409,
        "stale_key_version",
    ),
    (
        "key without attachment",
        lambda a, w: ("survivor", [], [key_for(w.extra["doc"], w.people["counsel"])]),
        400,
        "unexpected_attachment_key",
    ),
]


@pytest.mark.parametrize(("name", "make", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_attachments_are_refused_and_nothing_changes(
    app: Flask,
    world: World,
    name: str,
    make: Callable[[Flask, World], tuple[str, list[str], list[Any]]],
    status: int,
    code: str,
) -> None:
    sender, docs, keys = make(app, world)
    before = row_counts(app)
    response = send(app, world, sender, docs, keys)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert row_counts(app) == before
    assert not can_read(app, world.people["counsel"], world.extra["doc"])


def test_end_to_end_the_counsel_downloads_what_the_survivor_attached(
    create_account: Callable[..., tuple[HavenClient, str]], tmp_path: Path
) -> None:
    counsel, _ = create_account("counsel", username="counsel.lee")
    survivor, _ = create_account("survivor", username="nadia.r", invited_by=counsel)
    case_id = survivor.cases()[0]["id"]
    scan = b"%PDF-1.7 birth certificate " * 1000
    uploaded = Documents(survivor).upload(
        case_id,
        io.BytesIO(scan),
        doc_type="birth_certificate",
        name="birth.pdf",
        mime_type="application/pdf",
    )
    messenger = Messenger(survivor)
    assert counsel.account is not None
    conversation = messenger.create_conversation(case_id, [counsel.account.id])
    messenger.send(conversation.id, "my birth certificate", attachments=[uploaded])

    received = Messenger(counsel).read(conversation.id)
    assert [m.text for m in received] == ["my birth certificate"]
    assert received[0].attachments == (uploaded.id,)
    got = Documents(counsel).download(received[0].attachments[0], tmp_path / "birth.pdf")
    assert (tmp_path / "birth.pdf").read_bytes() == scan
    assert got.document.info.name == "birth.pdf"
