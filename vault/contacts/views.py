"""Contact book routes: the signed-in account reads and replaces its own encrypted book."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pydantic import Field

from vault import db
from vault.api import ANY_ROLE, B64, Body, Out, b64_max, endpoint, me, ok, parse_body
from vault.contacts import services
from vault.protocol import contacts as pcb
from vault.protocol.encoding import b64encode

bp = Blueprint("contacts", __name__, url_prefix="/api/v1")

# base64url of the largest book, the JSON around it, and room for the 413 check to run.
MAX_BODY_BYTES = pcb.MAX_BLOB_BYTES * 4 // 3 + 4096


class ContactBookBody(Body):
    """A new version of the book: the counter it replaces plus one, and the blob."""

    counter: int = Field(ge=1, le=pcb.MAX_COUNTER)
    book: b64_max(2 * pcb.MAX_BLOB_BYTES)  # type: ignore[valid-type]


class BookReply(Out):
    """The book as last saved (counter 0 and book null before the first save)."""

    counter: int = Field(ge=0, le=pcb.MAX_COUNTER)
    book: B64 | None


class CounterReply(Out):
    """The counter now stored."""

    counter: int = Field(ge=1, le=pcb.MAX_COUNTER)


@bp.get("/account/contact-book")
@endpoint(
    "My encrypted contact book and its counter (0 and null before the first save)",
    replies=ok(BookReply),
)
def get_book() -> Response:
    """The book as last saved; the server cannot read it."""
    stored = services.get_book(db.session(), me().id)
    book = None if stored.book is None else b64encode(stored.book)
    return jsonify({"counter": stored.counter, "book": book})


@bp.put("/account/contact-book")
@endpoint(
    "Replace my encrypted contact book if counter is the stored counter plus one",
    roles=ANY_ROLE,
    body=ContactBookBody,
    replies=ok(CounterReply),
)
def put_book() -> Response:
    """Compare-and-swap on the counter; 409 contact_book_conflict sends the client to merge."""
    request.max_content_length = MAX_BODY_BYTES
    body = parse_body(ContactBookBody)
    counter = services.save_book(db.session(), me().id, body.counter, body.book)
    return jsonify({"counter": counter})
