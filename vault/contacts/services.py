"""Storing an account's encrypted contact book: read it, replace it by compare-and-swap.

The server never holds the book's key. It checks only the clear header (format byte, the
account's current key version, the counter) so a client cannot store a book its own next
session could not open, and it keeps the counter strictly increasing by one per save.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, String, column, insert, select, table, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.contacts.models import ContactBook
from vault.errors import Conflict, HavenError, InvalidRequest, NotFound
from vault.protocol import contacts as pcb

# The accounts table by name: contacts sits below accounts (whose key rotation carries the
# book), so it reads the one column it needs without importing the accounts package.
USERS = table("users", column("id", String), column("key_version", Integer))


class BookTooLarge(HavenError):
    """The encrypted book is over the size cap."""

    status = 413
    code = "contact_book_too_large"


@dataclass(frozen=True)
class StoredBook:
    """The newest saved book (None before the first save) and its counter (0 then)."""

    counter: int
    book: bytes | None


def get_book(db: Session, user_id: str) -> StoredBook:
    """The account's book as last saved."""
    row = db.get(ContactBook, user_id)
    return StoredBook(0, None) if row is None else StoredBook(row.counter, row.book)


def _conflict(stored: int) -> Conflict:
    return Conflict(
        f"the contact book changed (counter {stored}); load it again, merge and retry",
        code="contact_book_conflict",
    )


def check_blob(blob: bytes, counter: int, key_version: int) -> None:
    """Refuse a blob whose clear header disagrees with the request or the account."""
    if len(blob) > pcb.MAX_BLOB_BYTES:
        raise BookTooLarge(f"the contact book is limited to {pcb.MAX_BLOB_BYTES} bytes")
    try:
        version, named = pcb.parse_header(blob)
    except pcb.ContactBookError as exc:
        raise InvalidRequest(f"book: {exc}", code="invalid_field") from exc
    if named != counter:
        raise InvalidRequest("book: its header names another counter", code="invalid_field")
    if version != key_version:
        raise Conflict(
            f"encrypt the contact book under key version {key_version}, not {version}",
            code="stale_key_version",
        )


def store_book(db: Session, user_id: str, counter: int, blob: bytes) -> None:
    """Replace the book if ``counter`` is the stored one plus one (no commit).

    The update is conditional on the stored counter (and the first save an insert on the
    primary key), so two saves from the same counter cannot both succeed, on PostgreSQL
    and on SQLite alike. A conflict on the first save rolls the transaction back.
    """
    if counter == 1:
        try:
            db.execute(insert(ContactBook).values(user_id=user_id, counter=1, book=blob))
        except IntegrityError:
            db.rollback()
            raise _conflict(get_book(db, user_id).counter) from None
        return
    done = db.execute(
        update(ContactBook)
        .where(ContactBook.user_id == user_id, ContactBook.counter == counter - 1)
        .values(counter=counter, book=blob)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise _conflict(get_book(db, user_id).counter)


def save_book(db: Session, user_id: str, counter: int, blob: bytes) -> int:
    """Check and store a new version of the account's book; return its counter."""
    # A share lock on the account: a key rotation (which updates the row) finishes first,
    # so a book under the old version is refused rather than stored after it.
    key_version = db.execute(
        select(USERS.c.key_version).where(USERS.c.id == user_id).with_for_update(read=True)
    ).scalar_one_or_none()
    if key_version is None:
        raise NotFound("no such account")
    try:
        check_blob(blob, counter, key_version)
        store_book(db, user_id, counter, blob)
    except HavenError:
        db.rollback()
        raise
    db.commit()
    return counter
