"""Test vectors of the contact book (docs/protocol.md §16), from fixed inputs only.

The account's X25519 secret and each blob's nonce are fixed here; in real use they are
random. Everything else follows from them, so both clients reproduce every byte.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from vault.protocol import contacts as pcb
from vault.protocol.encoding import b64encode


def _bytes(label: str, n: int) -> bytes:
    """Deterministic filler bytes for a named input (as in generate.py)."""
    return hashlib.shake_256(label.encode()).digest(n)


def _sample_book() -> dict[str, Any]:
    """Two contacts: one rotated (version 2 not yet acknowledged), one verified; a head."""
    book = pcb.empty_book()
    counsel = "c0ffee00c0ffee00c0ffee00c0ffee00"
    survivor = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
    pcb.pin(book, counsel, "counsel.a", 1, _bytes("x:c:1", 32), _bytes("e:c:1", 32))
    pcb.mark_verified(book, counsel, 1)
    pcb.pin(book, counsel, "counsel.a", 2, _bytes("x:c:2", 32), _bytes("e:c:2", 32))
    pcb.pin(book, survivor, "survivor.ü", 1, _bytes("x:s:1", 32), _bytes("e:s:1", 32))
    pcb.mark_verified(book, survivor, 1)
    pcb.set_head(book, 12, _bytes("root:12", 32))
    return book


def contacts_vectors() -> dict[str, Any]:
    """Book keys, canonical plaintexts, associated data and blobs with fixed nonces."""
    secret = _bytes("contact-book:x25519:v3", 32)
    key = pcb.book_key(secret)
    user_id = "0123456789abcdef0123456789abcdef"
    books = []
    for name, book, version, counter in (
        ("empty", pcb.empty_book(), 3, 1),
        ("two contacts", _sample_book(), 3, 7),
        ("large counter", _sample_book(), 3, 2**53 - 1),
    ):
        nonce = _bytes(f"contact-book:nonce:{name}", pcb.NONCE_BYTES)
        blob = pcb.encrypt_book(book, user_id, version, counter, key, nonce)
        books.append(
            {
                "name": name,
                "book": book,
                "plaintext": b64encode(pcb.encode_book(book)),
                "version": version,
                "counter": counter,
                "nonce": b64encode(nonce),
                "ad": b64encode(pcb.book_ad(user_id, version, counter)),
                "blob": b64encode(blob),
            }
        )
    good = pcb.encrypt_book(_sample_book(), user_id, 3, 7, key, _bytes("bad", 24))
    tampered_counter = good[:5] + (8).to_bytes(8, "big") + good[13:]
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    not_canonical = copy.deepcopy(_sample_book())
    return {
        "user_id": user_id,
        "x25519_secret": b64encode(secret),
        "book_key": b64encode(key),
        "books": books,
        # Each must be refused by decrypt_book(blob, user_id, 3, book_key).
        "refused": [
            {"why": "counter changed in the header", "blob": b64encode(tampered_counter)},
            {"why": "ciphertext bit flipped", "blob": b64encode(flipped)},
            {"why": "another format byte", "blob": b64encode(b"\x02" + good[1:])},
            {"why": "another key version", "blob": b64encode(good[:4] + b"\x04" + good[5:])},
            {"why": "truncated", "blob": b64encode(good[: pcb.MIN_BLOB_BYTES - 1])},
        ],
        "not_canonical_plaintext": b64encode(
            pcb.canonical_json(not_canonical).replace(b'"version":1}', b'"version": 1}')
        ),
    }
