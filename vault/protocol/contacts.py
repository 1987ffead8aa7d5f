"""The contact book (docs/protocol.md §16): pinned contact keys, encrypted for the account itself.

Pure functions on the plaintext book (a dict in the canonical JSON shape) and on its
encrypted blob. The server stores the blob and its counter and can read neither.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Literal

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from vault.protocol.encoding import EncodingError, b64decode, b64encode, frame, u32, u64
from vault.protocol.kdf import derive_subkey
from vault.protocol.keys import ProtocolError

FORMAT_V1 = 1
BOOK_VERSION = 1
LABEL_BOOK = "haven/v1/contact-book"
CTX_BOOK = b"haven-cb"
SUBKEY_BOOK = 1
NONCE_BYTES = 24
TAG_BYTES = 16
HEADER_BYTES = 1 + 4 + 8 + NONCE_BYTES
MIN_BLOB_BYTES = HEADER_BYTES + TAG_BYTES
MAX_BLOB_BYTES = 256 * 1024
MAX_U32 = 2**32 - 1
MAX_COUNTER = 2**53 - 1  # exact in a JavaScript number
MAX_ID_CHARS = 64

PinStatus = Literal["new", "same", "changed"]


class ContactBookError(ProtocolError):
    """The book does not open, is not in the canonical shape, or breaks a rule."""


class EquivocationError(ContactBookError):
    """A contact's key version was shown with other key bytes than the ones pinned for it."""


def book_key(x25519_secret: bytes) -> bytes:
    """book_key(v) = crypto_kdf_derive_from_key(32, 1, "haven-cb", x25519_secret of v)."""
    return derive_subkey(x25519_secret, SUBKEY_BOOK, CTX_BOOK)


def book_ad(user_id: str, version: int, counter: int) -> bytes:
    """frame("haven/v1/contact-book", utf8(user_id), u32(v), u64(counter))."""
    return frame(LABEL_BOOK, user_id.encode("utf-8"), u32(version), u64(counter))


def empty_book() -> dict[str, Any]:
    """A book with no contacts and no pinned head."""
    return {"contacts": {}, "head": None, "version": BOOK_VERSION}


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (non-ASCII characters unescaped)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _int(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ContactBookError(f"{what} must be an integer within {low}..{high}")
    return value


def _key32(value: Any, what: str) -> None:
    try:
        if len(b64decode(value)) != 32:
            raise ContactBookError(f"{what} must be 32 bytes")
    except EncodingError as exc:
        raise ContactBookError(f"{what} is not canonical base64url") from exc


def _version_key(text: Any, what: str) -> int:
    if not isinstance(text, str) or not text.isdigit() or str(int(text)) != text:
        raise ContactBookError(f"{what}: key versions are decimal integers")
    return _int(int(text), what, 1, MAX_U32)


def _exact_keys(value: Any, names: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != names:
        raise ContactBookError(f"{what} must have exactly the fields {sorted(names)}")
    return value


def check_book(value: Any) -> dict[str, Any]:
    """Refuse anything that is not a book in the shape of §16; return it unchanged."""
    book = _exact_keys(value, {"contacts", "head", "version"}, "the book")
    if book["version"] != BOOK_VERSION or type(book["version"]) is not int:
        raise ContactBookError(f"unsupported contact book version {book['version']!r}")
    head = book["head"]
    if head is not None:
        _exact_keys(head, {"root", "size"}, "head")
        _key32(head["root"], "head.root")
        _int(head["size"], "head.size", 0, MAX_COUNTER)
    contacts = book["contacts"]
    if not isinstance(contacts, dict):
        raise ContactBookError("contacts must be an object")
    for user_id, contact in contacts.items():
        if not 1 <= len(user_id) <= MAX_ID_CHARS:
            raise ContactBookError("a contact id has the wrong length")
        fields = {"acknowledged", "keys", "username", "verified"}
        contact = _exact_keys(contact, fields, f"contact {user_id}")
        if not isinstance(contact["username"], str) or not contact["username"]:
            raise ContactBookError(f"contact {user_id}: username must be a string")
        keys = contact["keys"]
        if not isinstance(keys, dict) or not keys:
            raise ContactBookError(f"contact {user_id}: keys must be a non-empty object")
        versions = set()
        for text, record in keys.items():
            versions.add(_version_key(text, f"contact {user_id}"))
            _exact_keys(record, {"ed25519", "x25519"}, f"contact {user_id} key {text}")
            _key32(record["ed25519"], f"contact {user_id} key {text} ed25519")
            _key32(record["x25519"], f"contact {user_id} key {text} x25519")
        if _int(contact["acknowledged"], "acknowledged", 1, MAX_U32) not in versions:
            raise ContactBookError(f"contact {user_id}: acknowledged names no pinned version")
        verified = contact["verified"]
        if verified is not None and _int(verified, "verified", 1, MAX_U32) not in versions:
            raise ContactBookError(f"contact {user_id}: verified names no pinned version")
    return book


def encode_book(book: dict[str, Any]) -> bytes:
    """The canonical plaintext of a checked book."""
    return canonical_json(check_book(book))


def decode_book(plaintext: bytes) -> dict[str, Any]:
    """Parse a plaintext book; refuse it unless it is checked and canonical."""
    try:
        book = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContactBookError("the book is not JSON") from exc
    check_book(book)
    if canonical_json(book) != plaintext:
        raise ContactBookError("the book is not canonical JSON")
    return dict(book)


def parse_header(blob: bytes) -> tuple[int, int]:
    """The key version and counter a blob names (not yet authenticated)."""
    if len(blob) < MIN_BLOB_BYTES:
        raise ContactBookError("the contact book is too short")
    if len(blob) > MAX_BLOB_BYTES:
        raise ContactBookError("the contact book is too large")
    if blob[0] != FORMAT_V1:
        raise ContactBookError(f"unknown contact book format {blob[0]}")
    version, counter = struct.unpack(">IQ", blob[1:13])
    if version < 1 or not 1 <= counter <= MAX_COUNTER:
        raise ContactBookError("the contact book names an impossible version or counter")
    return version, counter


def encrypt_book(
    book: dict[str, Any],
    user_id: str,
    version: int,
    counter: int,
    key: bytes,
    nonce: bytes | None = None,
) -> bytes:
    """0x01 || u32(v) || u64(counter) || nonce || AEAD(plaintext, ad, nonce, book_key(v))."""
    _int(counter, "counter", 1, MAX_COUNTER)
    _int(version, "version", 1, MAX_U32)
    nonce = nacl.utils.random(NONCE_BYTES) if nonce is None else nonce
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        encode_book(book), book_ad(user_id, version, counter), nonce, key
    )
    blob = bytes([FORMAT_V1]) + u32(version) + u64(counter) + nonce + sealed
    if len(blob) > MAX_BLOB_BYTES:
        raise ContactBookError("the contact book is too large")
    return blob


def decrypt_book(blob: bytes, user_id: str, version: int, key: bytes) -> tuple[int, dict[str, Any]]:
    """Open a blob under ``book_key(version)``; return its counter and the checked book."""
    named, counter = parse_header(blob)
    if named != version:
        raise ContactBookError(f"the contact book is under key version {named}, not {version}")
    nonce = blob[13:HEADER_BYTES]
    try:
        plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[HEADER_BYTES:], book_ad(user_id, version, counter), nonce, key
        )
    except nacl.exceptions.CryptoError as exc:
        raise ContactBookError("the contact book does not open with my keys") from exc
    return counter, decode_book(plaintext)


# -- operations on a book ------------------------------------------------------------


def _pinned(record: dict[str, Any], x25519: bytes, ed25519: bytes) -> bool:
    return bool(record["x25519"] == b64encode(x25519) and record["ed25519"] == b64encode(ed25519))


def newest(contact: dict[str, Any]) -> int:
    """The newest key version pinned for a contact."""
    return max(int(v) for v in contact["keys"])


def pin(
    book: dict[str, Any],
    user_id: str,
    username: str,
    version: int,
    x25519: bytes,
    ed25519: bytes,
    *,
    current: bool = True,
) -> PinStatus:
    """Pin a contact's (verified) key record on first use; report whether it changed.

    "new": first seen (acknowledged at once). "same": the version is pinned with these
    bytes and acknowledged. "changed": a newer version than the acknowledged one. A version
    pinned with other bytes raises EquivocationError; so does a ``current`` record older
    than one already seen (the server showing superseded keys as current).
    """
    _int(version, "version", 1, MAX_U32)
    entry = {"ed25519": b64encode(ed25519), "x25519": b64encode(x25519)}
    contacts = book["contacts"]
    contact = contacts.get(user_id)
    if contact is None:
        contacts[user_id] = {
            "acknowledged": version,
            "keys": {str(version): entry},
            "username": username,
            "verified": None,
        }
        return "new"
    known = contact["keys"].get(str(version))
    if known is not None and not _pinned(known, x25519, ed25519):
        raise EquivocationError(
            f"{contact['username']}'s key version {version} was shown before with other keys"
        )
    if current and version < newest(contact):
        raise EquivocationError(
            f"{contact['username']}'s keys are shown at version {version}, "
            f"older than version {newest(contact)} already seen"
        )
    contact["keys"][str(version)] = entry
    contact["username"] = username
    return "changed" if version > contact["acknowledged"] else "same"


def needs_acknowledgement(book: dict[str, Any], user_id: str) -> bool:
    """Whether the contact's newest keys are newer than the ones the user accepted."""
    contact = book["contacts"].get(user_id)
    return contact is not None and newest(contact) > int(contact["acknowledged"])


def acknowledge(book: dict[str, Any], user_id: str) -> None:
    """The user accepts the contact's newest keys for encrypting."""
    contact = book["contacts"][user_id]
    contact["acknowledged"] = newest(contact)


def mark_verified(book: dict[str, Any], user_id: str, version: int) -> None:
    """The user compared the safety number at ``version`` (the newest; it is acknowledged)."""
    contact = book["contacts"][user_id]
    if version != newest(contact):
        raise ContactBookError("only the contact's newest keys can be marked verified")
    contact["verified"] = version
    contact["acknowledged"] = version


def is_verified(book: dict[str, Any], user_id: str) -> bool:
    """Whether the safety number was compared for the contact's newest keys."""
    contact = book["contacts"].get(user_id)
    return contact is not None and contact["verified"] == newest(contact)


def set_head(book: dict[str, Any], size: int, root: bytes) -> None:
    """Pin a newer verified key-log head; refuse a smaller one or another root at one size."""
    head = book["head"]
    if head is not None:
        if size < head["size"]:
            raise ContactBookError("the key log is smaller than the head this account pinned")
        if size == head["size"] and b64encode(root) != head["root"]:
            raise EquivocationError("the key log shows another root at the size already pinned")
    book["head"] = {"root": b64encode(root), "size": size}


def merge(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Join two books (mine changed locally, theirs newer on the server): every pinned key,
    the later acknowledgement and verification, the larger head. Conflicting bytes for one
    (contact, version) or two roots at one size raise EquivocationError."""
    out: dict[str, Any] = json.loads(canonical_json(theirs))
    for user_id, contact in mine["contacts"].items():
        other = out["contacts"].get(user_id)
        if other is None:
            out["contacts"][user_id] = json.loads(canonical_json(contact))
            continue
        for text, record in contact["keys"].items():
            seen = other["keys"].get(text)
            if seen is not None and seen != record:
                raise EquivocationError(f"{contact['username']}'s key version {text} differs")
            other["keys"][text] = dict(record)
        other["acknowledged"] = max(other["acknowledged"], contact["acknowledged"])
        versions = [v for v in (other["verified"], contact["verified"]) if v is not None]
        other["verified"] = max(versions) if versions else None
    head, other_head = mine["head"], out["head"]
    if head is not None and (other_head is None or head["size"] >= other_head["size"]):
        set_head(out, head["size"], b64decode(head["root"]))
    return check_book(out)
