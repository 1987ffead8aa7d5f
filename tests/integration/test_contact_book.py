"""The contact book (docs/protocol.md §16) against the real server and database: storage by
compare-and-swap, the size cap, bad input refused with nothing changed, rollback noticed by
the client, pins and key changes through a real key rotation, and the book moving with it."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from tests.conftest import PASSPHRASE
from tests.factories import Person, make_person, row_counts, session_cookie_for
from tests.integration.attacks import forge_key
from vault.accounts.models import Role
from vault.client import ApiError, HavenClient
from vault.client.contacts import ContactBook, EquivocationError, KeyChanged, RollbackError
from vault.client.documents import Documents
from vault.client.messages import Messenger
from vault.contacts.models import ContactBook as ContactBookRow
from vault.db import database
from vault.protocol import contacts as pcb
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64decode, b64encode

Make = Callable[..., tuple[HavenClient, str]]
URL = "/api/v1/account/contact-book"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app, with the rotation limit out of the way."""
    return make_app(HAVEN_LIMIT_RECOVERY="1000/minute")


def _person(app: Flask, name: str = "survivor.cb") -> Person:
    with app.app_context():
        db = database(app).sessions()
        person = make_person(db, app.extensions["haven.keyring"], Role.SURVIVOR, name)
        db.close()
    return person


def _blob(person: Person, counter: int, book: dict[str, Any] | None = None, **kw: Any) -> str:
    keys = kw.get("keys", person.keys)
    blob = pcb.encrypt_book(
        book or pcb.empty_book(),
        person.id,
        kw.get("version", keys.version),
        kw.get("header_counter", counter),
        pcb.book_key(keys.x25519_secret),
    )
    return b64encode(blob)


def _signed_in(app: Flask, person: Person) -> Any:
    client = app.test_client()
    session_cookie_for(app, client, person.id)
    return client


def _stored(app: Flask, user_id: str) -> tuple[int, bytes] | None:
    with app.app_context():
        db = database(app).sessions()
        row = db.get(ContactBookRow, user_id)
        found = None if row is None else (row.counter, row.book)
        db.close()
    return found


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_compare_and_swap_on_the_counter(app: Flask) -> None:
    person = _person(app)
    client = _signed_in(app, person)
    assert client.get(URL).get_json() == {"counter": 0, "book": None}
    first = _blob(person, 1)
    assert client.put(URL, json={"counter": 1, "book": first}).get_json() == {"counter": 1}
    assert client.get(URL).get_json() == {"counter": 1, "book": first}
    # A second save from the same counter (another session's) is a conflict.
    for counter in (1, 3):
        answer = client.put(URL, json={"counter": counter, "book": _blob(person, counter)})
        assert answer.status_code == 409
        assert answer.get_json()["error"]["code"] == "contact_book_conflict"
    second = _blob(person, 2)
    assert client.put(URL, json={"counter": 2, "book": second}).status_code == 200
    assert client.get(URL).get_json() == {"counter": 2, "book": second}
    # Each account has its own book.
    other = _signed_in(app, _person(app, "survivor.other"))
    assert other.get(URL).get_json() == {"counter": 0, "book": None}


def test_the_server_holds_only_ciphertext(app: Flask) -> None:
    person = _person(app)
    book = pcb.empty_book()
    pcb.pin(book, "c" * 32, "counsel.secret-name", 1, b"\x01" * 32, b"\x02" * 32)
    _signed_in(app, person).put(URL, json={"counter": 1, "book": _blob(person, 1, book)})
    stored = _stored(app, person.id)
    assert stored is not None and b"secret-name" not in stored[1] and b"c" * 32 not in stored[1]


# Each body follows a first save (counter 1), so a good one would carry counter 2.
BAD: list[tuple[str, Callable[[Person], dict[str, Any]], int, str]] = [
    ("no body", lambda p: {}, 400, "invalid_field"),
    ("counter zero", lambda p: {"counter": 0, "book": _blob(p, 2)}, 400, "invalid_field"),
    ("counter as text", lambda p: {"counter": "2", "book": _blob(p, 2)}, 400, "invalid_field"),
    ("counter too big", lambda p: {"counter": 2**53, "book": _blob(p, 2)}, 400, "invalid_field"),
    ("book padded", lambda p: {"counter": 2, "book": _blob(p, 2) + "="}, 400, "invalid_field"),
    ("book null", lambda p: {"counter": 2, "book": None}, 400, "invalid_field"),
    ("extra field", lambda p: {"counter": 2, "book": _blob(p, 2), "x": 1}, 400, "invalid_field"),
    ("too short", lambda p: {"counter": 2, "book": b64encode(b"\x01" * 20)}, 400, "invalid_field"),
    (
        "header names another counter",
        lambda p: {"counter": 2, "book": _blob(p, 2, header_counter=3)},
        400,
        "invalid_field",
    ),
    (
        "another format byte",
        lambda p: {"counter": 2, "book": b64encode(b"\x02" + bytes(60))},
        400,
        "invalid_field",
    ),
    (
        "under another key version",
        lambda p: {"counter": 2, "book": _blob(p, 2, version=2)},
        409,
        "stale_key_version",
    ),
    (
        "stale counter",
        lambda p: {"counter": 1, "book": _blob(p, 1)},
        409,
        "contact_book_conflict",
    ),
    (
        "over the size cap",
        lambda p: {"counter": 2, "book": b64encode(b"\x01" + bytes(pcb.MAX_BLOB_BYTES))},
        413,
        "contact_book_too_large",
    ),
    (
        "body over the request limit",
        lambda p: {"counter": 2, "book": "A" * (pcb.MAX_BLOB_BYTES * 2)},
        413,
        "request_entity_too_large",
    ),
]


@pytest.mark.parametrize(("why", "body", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_and_changes_nothing(
    app: Flask, why: str, body: Callable[[Person], dict[str, Any]], status: int, code: str
) -> None:
    person = _person(app)
    client = _signed_in(app, person)
    assert client.put(URL, json={"counter": 1, "book": _blob(person, 1)}).status_code == 200
    before, stored = row_counts(app), _stored(app, person.id)
    answer = client.put(URL, json=body(person))
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["code"] == code
    assert set(answer.get_json()["error"]) == {"code", "message"}
    assert row_counts(app) == before
    assert _stored(app, person.id) == stored


def test_a_text_body_is_refused(app: Flask) -> None:
    person = _person(app)
    answer = _signed_in(app, person).put(URL, data="{}", content_type="text/plain")
    assert answer.status_code == 415
    assert _stored(app, person.id) is None


# -- the Python client -------------------------------------------------------------------


def _case(make: Make) -> tuple[HavenClient, HavenClient]:
    counsel, _ = make("counsel", username="counsel-cb")
    survivor, _ = make("survivor", username="survivor-cb", invited_by=counsel)
    return counsel, survivor


def _member(client: HavenClient, user_id: str) -> dict[str, Any]:
    for case in client.get("/cases")["cases"]:  # as served: cases() would pin them itself
        for member in case["members"]:
            if member["user_id"] == user_id:
                return dict(member)
    raise AssertionError("not a member")


def test_client_pins_and_a_key_rotation_is_a_key_change(create_account: Make) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account and survivor.account
    book = ContactBook(survivor)
    member = _member(survivor, counsel.account.id)
    assert book.pin(member["user_id"], member["username"], member["public_keys"]) == "new"
    assert book.pin(member["user_id"], member["username"], member["public_keys"]) == "same"
    book.mark_verified(counsel.account.id, 1)
    assert book.is_verified(counsel.account.id)
    book.require_acknowledged(counsel.account.id)

    counsel.rotate_keys(PASSPHRASE)

    # A new session of the survivor's account (another device) sees the same pins.
    again = ContactBook(survivor)
    assert again.is_verified(counsel.account.id)
    member = _member(survivor, counsel.account.id)
    assert again.pin(member["user_id"], member["username"], member["public_keys"]) == "changed"
    assert again.needs_acknowledgement(counsel.account.id)
    assert not again.is_verified(counsel.account.id)
    with pytest.raises(KeyChanged):
        again.require_acknowledged(counsel.account.id)
    again.acknowledge(counsel.account.id)
    again.require_acknowledged(counsel.account.id)
    assert not again.is_verified(counsel.account.id)
    again.mark_verified(counsel.account.id, 2)
    assert again.is_verified(counsel.account.id)
    book.load()
    assert book.is_verified(counsel.account.id) and book.counter == again.counter


def test_client_refuses_equivocation(create_account: Make) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account
    book = ContactBook(survivor)
    member = _member(survivor, counsel.account.id)
    book.pin(member["user_id"], member["username"], member["public_keys"])
    # The operator's forgery: version 1 again, correctly self-signed, other keys.
    forged = pkeys.KeyPairs.generate(version=1).public(member["username"])
    record = {
        "version": 1,
        "x25519": b64encode(forged.x25519),
        "ed25519": b64encode(forged.ed25519),
        "signature": b64encode(forged.signature),
    }
    counter = book.counter
    with pytest.raises(EquivocationError):
        book.pin(member["user_id"], member["username"], record)
    fresh = ContactBook(survivor)
    with pytest.raises(EquivocationError):
        fresh.pin(member["user_id"], member["username"], record)
    assert fresh.counter == counter


def test_client_merges_after_a_conflict(create_account: Make) -> None:
    counsel, survivor = _case(create_account)
    stranger, _ = create_account("counsel", username="other-cb")
    assert counsel.account and stranger.account
    one, two = ContactBook(survivor), ContactBook(survivor)
    one.load()
    two.load()
    c = _member(survivor, counsel.account.id)
    one.pin(c["user_id"], c["username"], c["public_keys"])
    s = stranger.get("/account")["account"]
    two.pin(s["id"], s["username"], s["public_keys"])  # conflict, reload, merge, save
    assert two.counter == 2
    one.load()
    assert set(one.book["contacts"]) == {counsel.account.id, stranger.account.id}
    one.set_head(5, b"\x07" * 32)
    two.load()
    assert two.head == (5, b"\x07" * 32)
    with pytest.raises(pcb.ContactBookError):
        two.set_head(4, b"\x07" * 32)


def test_client_notices_a_rolled_back_book(app: Flask, create_account: Make) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account and survivor.account
    book = ContactBook(survivor)
    c = _member(survivor, counsel.account.id)
    book.pin(c["user_id"], c["username"], c["public_keys"])
    old = _stored(app, survivor.account.id)
    book.mark_verified(counsel.account.id, 1)
    assert old is not None and book.counter == 2
    with app.app_context():
        db = database(app).sessions()
        db.execute(update(ContactBookRow).values(counter=old[0], book=old[1]))
        db.commit()
        with pytest.raises(RollbackError):
            book.load()
        # The counter column and the authenticated counter must agree.
        db.execute(update(ContactBookRow).values(counter=5))
        db.commit()
        db.close()
    with pytest.raises(pcb.ContactBookError, match="counter"):
        ContactBook(survivor).load()


def _rotate_with_book(
    client: HavenClient, book: ContactBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotate with ``book`` as the client's contact book, which the rotation carries."""
    monkeypatch.setattr(client, "contacts", book)
    client.rotate_keys(PASSPHRASE)


def test_the_book_moves_with_a_key_rotation(
    app: Flask, create_account: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account and survivor.account
    book = ContactBook(survivor)
    c = _member(survivor, counsel.account.id)
    book.pin(c["user_id"], c["username"], c["public_keys"])
    book.mark_verified(counsel.account.id, 1)
    _rotate_with_book(survivor, book, monkeypatch)
    stored = _stored(app, survivor.account.id)
    assert stored is not None and stored[0] == 3 and pcb.parse_header(stored[1]) == (2, 3)
    after = ContactBook(survivor)
    assert after.is_verified(counsel.account.id) and not after.lost


def test_a_rotation_with_a_stale_book_changes_nothing(
    app: Flask, create_account: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account and survivor.account
    book = ContactBook(survivor)
    c = _member(survivor, counsel.account.id)
    book.pin(c["user_id"], c["username"], c["public_keys"])
    stale = ContactBook(survivor)
    stale.load()
    book.mark_verified(counsel.account.id, 1)  # counter 2 now; stale still thinks 1
    monkeypatch.setattr(stale, "load", lambda: None)  # it does not see the newer save
    before = row_counts(app)
    with pytest.raises(ApiError) as refused:
        _rotate_with_book(survivor, stale, monkeypatch)
    assert refused.value.status == 409 and refused.value.code == "contact_book_conflict"
    assert survivor.get("/account")["account"]["key_version"] == 1
    assert _stored(app, survivor.account.id) is not None
    assert _stored(app, survivor.account.id)[0] == 2  # type: ignore[index]
    after = row_counts(app)
    assert {k: v for k, v in after.items() if not k.startswith("audit")} == {
        k: v for k, v in before.items() if not k.startswith("audit")
    }


def test_a_book_left_under_a_replaced_key_is_lost_not_fatal(create_account: Make) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account
    book = ContactBook(survivor)
    c = _member(survivor, counsel.account.id)
    book.pin(c["user_id"], c["username"], c["public_keys"])
    # A client that does not carry the book through the rotation (an older one).
    survivor.contacts.rotation_body = lambda new: None  # type: ignore[method-assign]
    survivor.rotate_keys(PASSPHRASE)
    after = ContactBook(survivor)
    after.load()
    assert after.lost and after.book == pcb.empty_book()
    c = _member(survivor, counsel.account.id)
    assert after.pin(c["user_id"], c["username"], c["public_keys"]) == "new"
    assert not after.lost and after.counter == 2


def test_a_rotation_with_a_book_under_the_old_keys_changes_nothing(
    app: Flask, create_account: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account and survivor.account
    book = ContactBook(survivor)
    c = _member(survivor, counsel.account.id)
    book.pin(c["user_id"], c["username"], c["public_keys"])
    old_keys = survivor.account.keys
    real = book.rotation_body
    monkeypatch.setattr(book, "rotation_body", lambda new: real(old_keys))
    before = row_counts(app)
    with pytest.raises(ApiError) as refused:
        _rotate_with_book(survivor, book, monkeypatch)
    assert refused.value.status == 409 and refused.value.code == "stale_key_version"
    assert survivor.get("/account")["account"]["key_version"] == 1
    assert _stored(app, survivor.account.id) is not None
    assert _stored(app, survivor.account.id)[0] == 1  # type: ignore[index]
    after = row_counts(app)
    assert {k: v for k, v in after.items() if not k.startswith("audit")} == {
        k: v for k, v in before.items() if not k.startswith("audit")
    }


def test_a_forged_same_version_publish_is_refused_before_anything_is_sealed(
    app: Flask, create_account: Make
) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account
    book = ContactBook(survivor)
    c = _member(survivor, counsel.account.id)
    book.pin(c["user_id"], c["username"], c["public_keys"])
    # The operator writes another version 1 for the counsel, self-signed, and logs it.
    forged = forge_key(app, counsel.account.id).public(c["username"])
    # Another session of the survivor: the log check passes, the pin does not.
    fresh = ContactBook(survivor)
    shown = _member(survivor, counsel.account.id)
    assert b64decode(shown["public_keys"]["x25519"]) == forged.x25519
    with pytest.raises(EquivocationError, match="shown before with other keys"):
        fresh.pin(shown["user_id"], shown["username"], shown["public_keys"])
    assert (
        fresh.book["contacts"][counsel.account.id]["keys"]["1"]["x25519"]
        == c["public_keys"]["x25519"]
    )


def test_the_client_asks_before_sealing_to_a_changed_key(create_account: Make) -> None:
    counsel, survivor = _case(create_account)
    assert counsel.account and survivor.account
    [case] = survivor.cases()  # pins the counsel's version 1 in the survivor's book
    chat = Messenger(survivor)
    conversation = chat.create_conversation(case["id"], [counsel.account.id])
    chat.send(conversation.id, "before")
    passport = Documents(survivor).upload(
        case["id"], io.BytesIO(b"passport"), doc_type="passport", name="p.pdf"
    )
    counsel.rotate_keys(PASSPHRASE)

    # A fresh device of the survivor remembers the pin through the book on the server.
    device = HavenClient(survivor.base_url, witnesses=survivor.directory.witnesses)
    device.login(survivor.account.username, PASSPHRASE)
    with pytest.raises(KeyChanged):
        Messenger(device).send(conversation.id, "after")
    with pytest.raises(KeyChanged):
        Documents(device).grant(passport.id, counsel.account.id)
    assert [m.text for m in Messenger(counsel).read(conversation.id)] == ["before"]
    assert not device.contacts.is_verified(counsel.account.id)
    device.contacts.acknowledge(counsel.account.id)
    Messenger(device).send(conversation.id, "after")
    Documents(device).grant(passport.id, counsel.account.id)
    assert [m.text for m in Messenger(counsel).read(conversation.id)] == ["after", "before"]
