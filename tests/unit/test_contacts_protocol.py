"""The contact book (protocol §16): vectors, canonical JSON, pinning rules, merging."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.vectors import generate
from vault.protocol import contacts as pcb
from vault.protocol.encoding import b64decode

VECTORS = json.loads((generate.HERE / "contacts.json").read_text(encoding="utf-8"))
X1, E1, X2, E2 = (bytes([n]) * 32 for n in (1, 2, 3, 4))


def test_book_key_is_the_kdf_of_the_x25519_secret() -> None:
    secret = b64decode(VECTORS["x25519_secret"])
    assert pcb.book_key(secret) == b64decode(VECTORS["book_key"])


@pytest.mark.parametrize("case", VECTORS["books"], ids=lambda c: c["name"])
def test_each_vector_decrypts_to_its_book(case: dict[str, Any]) -> None:
    key = b64decode(VECTORS["book_key"])
    blob = b64decode(case["blob"])
    assert pcb.parse_header(blob) == (case["version"], case["counter"])
    counter, book = pcb.decrypt_book(blob, VECTORS["user_id"], case["version"], key)
    assert counter == case["counter"]
    assert book == case["book"]
    assert pcb.encode_book(book) == b64decode(case["plaintext"])


@pytest.mark.parametrize("case", VECTORS["refused"], ids=lambda c: c["why"])
def test_tampered_blobs_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(pcb.ContactBookError):
        pcb.decrypt_book(
            b64decode(case["blob"]), VECTORS["user_id"], 3, b64decode(VECTORS["book_key"])
        )


def test_a_book_of_another_account_does_not_open() -> None:
    case = VECTORS["books"][1]
    with pytest.raises(pcb.ContactBookError, match="does not open"):
        pcb.decrypt_book(b64decode(case["blob"]), "someone-else", 3, b64decode(VECTORS["book_key"]))


def test_non_canonical_plaintext_is_refused() -> None:
    with pytest.raises(pcb.ContactBookError, match="canonical"):
        pcb.decode_book(b64decode(VECTORS["not_canonical_plaintext"]))


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.update(version=2),
        lambda b: b.update(extra=1),
        lambda b: b.update(head={"root": "AA", "size": 1}),
        lambda b: b.update(head={"root": "A" * 43, "size": -1}),
        lambda b: b["contacts"].update(
            u={"acknowledged": 1, "keys": {}, "username": "a", "verified": None}
        ),
        lambda b: b["contacts"]["u"].update(acknowledged=2),
        lambda b: b["contacts"]["u"].update(verified=3),
        lambda b: b["contacts"]["u"].update(acknowledged=True),
        lambda b: b["contacts"]["u"]["keys"].update({"01": b["contacts"]["u"]["keys"]["1"]}),
        lambda b: b["contacts"]["u"]["keys"]["1"].update(x25519="AAAA"),
    ],
)
def test_books_of_the_wrong_shape_are_refused(change: Any) -> None:
    book = pcb.empty_book()
    pcb.pin(book, "u", "user.a", 1, X1, E1)
    change(book)
    with pytest.raises(pcb.ContactBookError):
        pcb.check_book(book)


def test_pin_on_first_use_then_a_key_change_needs_acknowledgement() -> None:
    book = pcb.empty_book()
    assert pcb.pin(book, "u", "user.a", 1, X1, E1) == "new"
    assert pcb.pin(book, "u", "user.a", 1, X1, E1) == "same"
    assert not pcb.needs_acknowledgement(book, "u")
    pcb.mark_verified(book, "u", 1)
    assert pcb.is_verified(book, "u")
    assert pcb.pin(book, "u", "user.a", 2, X2, E2) == "changed"
    assert pcb.needs_acknowledgement(book, "u")
    assert not pcb.is_verified(book, "u")
    assert pcb.pin(book, "u", "user.a", 2, X2, E2) == "changed"
    pcb.acknowledge(book, "u")
    assert pcb.pin(book, "u", "user.a", 2, X2, E2) == "same"
    assert not pcb.is_verified(book, "u")
    pcb.mark_verified(book, "u", 2)
    assert pcb.is_verified(book, "u")
    # An older version checked for a signature (not current) is fine; as current it is not.
    assert pcb.pin(book, "u", "user.a", 1, X1, E1, current=False) == "same"
    with pytest.raises(pcb.EquivocationError, match="older"):
        pcb.pin(book, "u", "user.a", 1, X1, E1)


def test_other_bytes_for_a_pinned_version_are_equivocation() -> None:
    book = pcb.empty_book()
    pcb.pin(book, "u", "user.a", 1, X1, E1)
    with pytest.raises(pcb.EquivocationError):
        pcb.pin(book, "u", "user.a", 1, X2, E1)
    with pytest.raises(pcb.EquivocationError):
        pcb.pin(book, "u", "user.a", 1, X1, E2, current=False)
    assert pcb.newest(book["contacts"]["u"]) == 1


def test_heads_only_grow() -> None:
    book = pcb.empty_book()
    pcb.set_head(book, 5, X1)
    pcb.set_head(book, 5, X1)
    pcb.set_head(book, 9, X2)
    with pytest.raises(pcb.ContactBookError, match="smaller"):
        pcb.set_head(book, 8, X1)
    with pytest.raises(pcb.EquivocationError):
        pcb.set_head(book, 9, X1)


def test_merge_joins_pins_and_keeps_the_later_state() -> None:
    mine, theirs = pcb.empty_book(), pcb.empty_book()
    pcb.pin(mine, "a", "user.a", 1, X1, E1)
    pcb.pin(mine, "a", "user.a", 2, X2, E2)
    pcb.acknowledge(mine, "a")
    pcb.pin(theirs, "a", "user.a", 1, X1, E1)
    pcb.mark_verified(theirs, "a", 1)
    pcb.pin(theirs, "b", "user.b", 1, X2, E2)
    pcb.set_head(theirs, 10, X1)
    pcb.set_head(mine, 4, X2)
    merged = pcb.merge(mine, theirs)
    assert set(merged["contacts"]) == {"a", "b"}
    assert merged["contacts"]["a"]["acknowledged"] == 2
    assert merged["contacts"]["a"]["verified"] == 1
    assert not pcb.is_verified(merged, "a")
    assert merged["head"]["size"] == 10
    forked = pcb.empty_book()
    pcb.pin(forked, "a", "user.a", 1, X2, E2)
    with pytest.raises(pcb.EquivocationError):
        pcb.merge(forked, theirs)


def test_a_book_too_large_is_refused() -> None:
    book = pcb.empty_book()
    for n in range(2000):
        pcb.pin(book, f"user{n:028d}", "user.n", 1, X1, E1)
    with pytest.raises(pcb.ContactBookError, match="too large"):
        pcb.encrypt_book(book, "me", 1, 1, pcb.book_key(X1))
