"""Outside-link routes: the owner's create, list, approve and revoke; the recipient's look-up,
open and content, which need no account (protocol §23)."""

from __future__ import annotations

import json
from typing import Any, Literal

import nacl.encoding
import nacl.hash
from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import Field

from vault import db
from vault.accounts import services as accounts
from vault.accounts.views import KeyOut, key_json
from vault.api import (
    ANONYMOUS,
    B64,
    NO_CONTENT,
    Body,
    Header,
    Out,
    Timestamp,
    b64_exact,
    b64_max,
    endpoint,
    me,
    ok,
    parse_body,
)
from vault.cases.services import get_case
from vault.db import utcnow
from vault.directory import services as directory
from vault.directory import witnesses
from vault.directory.views import (
    EntryOut,
    HeadOut,
    LogKeyOut,
    entry_json,
    head_json,
    log_keys_json,
)
from vault.documents.services import RangeNotSatisfiable
from vault.documents.views import (
    CONTENT_REPLIES,
    MEMBERS,
    RANGE,
    AwareDatetime,
    DocumentRecordOut,
    _requested_range,
    content_response,
    range_refused,
    record_json,
)
from vault.errors import InvalidRequest, NotFound
from vault.extensions import limiter, setting_limit
from vault.keyring import keyring
from vault.links import services
from vault.links.models import Link
from vault.protocol import links as plink
from vault.protocol.encoding import EncodingError, b64decode, b64encode
from vault.protocol.kdf import KdfParams, WeakParameters
from vault.storage import store

bp = Blueprint("links", __name__, url_prefix="/api/v1")

TICKET = Header(
    "Haven-Link-Ticket",
    "the ticket of a counted open, base64url (§23.5)",
    {"type": "string", "contentEncoding": "base64url"},
)


class LinkKdfIn(Body):
    """Argon2id parameters of a link passphrase (§2.2 rules)."""

    alg: Literal["argon2id13"]
    salt: b64_exact(16)  # type: ignore[valid-type]
    opslimit: int = Field(ge=3, le=16)
    memlimit: int = Field(ge=67108864, le=1073741824)


class CreateLinkBody(Body):
    """A new link: lookup id, token hash, envelope, documents, labels, expiry, opens."""

    lookup_id: b64_exact(plink.LOOKUP_BYTES)  # type: ignore[valid-type]
    token_hash: b64_exact(32)  # type: ignore[valid-type]
    kdf: LinkKdfIn | None = None
    envelope: b64_max(plink.MAX_ENVELOPE_BYTES)  # type: ignore[valid-type]
    document_ids: list[str] = Field(min_length=1, max_length=plink.MAX_DOCUMENTS)
    label: b64_exact(plink.SEALED_LABEL_BYTES)  # type: ignore[valid-type]
    survivor_label: b64_exact(plink.SEALED_LABEL_BYTES) | None = None  # type: ignore[valid-type]
    expires_at: AwareDatetime
    max_opens: int = Field(ge=1, le=services.MAX_OPENS)


class OpenBody(Body):
    """The open token derived from the link secret and passphrase."""

    token: b64_exact(plink.TOKEN_BYTES)  # type: ignore[valid-type]


class LinkOut(Out):
    """A link as the people of its case see it."""

    id: str
    case_id: str
    creator_id: str
    state: Literal["pending", "active", "revoked", "expired", "exhausted"]
    document_ids: list[str]
    label: B64
    has_passphrase: bool
    max_opens: int
    opens: int
    expires_at: Timestamp
    created_at: Timestamp
    approved_at: Timestamp | None
    revoked_at: Timestamp | None


class LinkReply(Out):
    """One link."""

    link: LinkOut


class LinksReply(Out):
    """The links of a case the caller may see."""

    links: list[LinkOut]


class LinkKdfOut(Out):
    """Argon2id parameters of the link passphrase."""

    alg: str
    salt: B64
    opslimit: int
    memlimit: int


class EnvelopeOut(Out):
    """What a recipient needs before the open: passphrase parameters and the envelope."""

    kdf: LinkKdfOut | None
    envelope: B64


class EnvelopeReply(Out):
    """A live link's envelope."""

    link: EnvelopeOut


class UploaderOut(Out):
    """An uploader's username, published keys and log entries (as GET /users/{id}/keys)."""

    user_id: str
    username: str
    current_version: int
    keys: list[KeyOut]
    entries: list[EntryOut]


class ProofOut(Out):
    """An inclusion proof of a leaf in a tree of a size."""

    index: int
    size: int
    proof: list[B64]


class DirectoryOut(Out):
    """The key-log material a recipient checks the uploaders' keys against (§23.5)."""

    log_keys: list[LogKeyOut]
    checkpoint: str
    checkpoint_size: int
    heads: list[HeadOut]
    proofs: list[ProofOut]


class OpenOut(Out):
    """The counted open: its number, the ticket for content and until when it works."""

    number: int
    ticket: B64
    expires_at: Timestamp


class OpenReply(Out):
    """An open: ticket, documents, uploaders and the key-log material."""

    open: OpenOut
    documents: list[DocumentRecordOut]
    uploaders: list[UploaderOut]
    directory: DirectoryOut


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def link_json(link: Link, viewer_id: str) -> dict[str, Any]:
    """A link as the people of its case see it; the label is the one sealed to the viewer."""
    now = utcnow()
    state = link.state.value
    if state == "active" and link.expires_at <= now:
        state = "expired"
    elif state == "active" and link.opens >= link.max_opens:
        state = "exhausted"
    label = link.creator_label if viewer_id == link.creator_id else link.survivor_label
    assert label is not None
    return {
        "id": link.id,
        "case_id": link.case_id,
        "creator_id": link.creator_id,
        "state": state,
        "document_ids": [d.document_id for d in link.documents],
        "label": b64encode(label),
        "has_passphrase": link.kdf is not None,
        "max_opens": link.max_opens,
        "opens": link.opens,
        "expires_at": link.expires_at.isoformat(),
        "created_at": link.created_at.isoformat(),
        "approved_at": _iso(link.approved_at),
        "revoked_at": _iso(link.revoked_at),
    }


def _kdf_text(kdf: LinkKdfIn | None) -> str | None:
    if kdf is None:
        return None
    try:
        KdfParams(kdf.salt, kdf.opslimit, kdf.memlimit, kdf.alg).check()
    except WeakParameters as exc:
        raise InvalidRequest(f"kdf: {exc}", code="invalid_field") from exc
    return json.dumps(
        {
            "alg": kdf.alg,
            "salt": b64encode(kdf.salt),
            "opslimit": kdf.opslimit,
            "memlimit": kdf.memlimit,
        },
        separators=(",", ":"),
    )


@bp.post("/cases/<case_id>/links")
@endpoint(
    "Create an outside link to your documents (pending the survivor's approval for counsel)",
    roles=MEMBERS,
    body=CreateLinkBody,
    replies=ok(LinkReply, 201),
)
def create_link(case_id: str) -> tuple[Response, int]:
    """Store a link's lookup id, token hash, envelope and sealed labels."""
    session = db.session()
    user = me()
    get_case(session, user, case_id)
    body = parse_body(CreateLinkBody)
    new = services.NewLink(
        lookup_id=body.lookup_id,
        token_hash=body.token_hash,
        kdf=_kdf_text(body.kdf),
        envelope=body.envelope,
        document_ids=tuple(body.document_ids),
        creator_label=body.label,
        survivor_label=body.survivor_label,
        expires_at=body.expires_at,
        max_opens=body.max_opens,
    )
    link = services.create_link(session, user, case_id, new)
    return jsonify({"link": link_json(link, user.id)}), 201


@bp.get("/cases/<case_id>/links")
@endpoint(
    "Links of a case: all of them for its survivor, your own for counsel",
    roles=MEMBERS,
    replies=ok(LinksReply),
)
def list_links(case_id: str) -> Response:
    """List links, newest first."""
    user = me()
    links = services.list_links(db.session(), user, case_id)
    return jsonify({"links": [link_json(link, user.id) for link in links]})


@bp.post("/links/<link_id>/approve")
@endpoint(
    "Approve a link counsel made for your documents (the case's survivor)",
    roles=MEMBERS,
    replies=ok(LinkReply),
)
def approve_link(link_id: str) -> Response:
    """Make a pending link live."""
    user = me()
    link = services.approve_link(db.session(), user, link_id)
    return jsonify({"link": link_json(link, user.id)})


@bp.delete("/links/<link_id>")
@endpoint(
    "Revoke a link, or decline a pending one; it stops at once", roles=MEMBERS, replies=NO_CONTENT
)
def revoke_link(link_id: str) -> tuple[str, int]:
    """End the link: its envelope and open tickets are deleted."""
    services.revoke_link(db.session(), me(), link_id)
    return "", 204


def _lookup(raw: str) -> bytes:
    """A lookup id from the path; anything malformed is the same 404 as an unknown link."""
    try:
        lookup = b64decode(raw)
    except EncodingError:
        lookup = b""
    if len(lookup) != plink.LOOKUP_BYTES:
        raise NotFound("no such link")
    return lookup


def _per_link() -> str:
    """Rate-limit key for the link in the path (hashed, so no lookup id is kept)."""
    raw = str((request.view_args or {}).get("lookup", ""))
    digest = nacl.hash.blake2b(raw.encode(), digest_size=16, encoder=nacl.encoding.HexEncoder)
    return "link:" + digest.decode()


# One budget for looking a link up and opening it, per address and per link (§23.6).
LINK_IP_LIMIT = limiter.shared_limit(setting_limit("HAVEN_LIMIT_LINK_IP"), scope="link-ip")
LINK_LIMIT = limiter.shared_limit(
    setting_limit("HAVEN_LIMIT_LINK"), scope="link", key_func=_per_link
)


@bp.get("/link/<lookup>")
@endpoint(
    "A live link's passphrase parameters and envelope (no account)",
    roles=ANONYMOUS,
    replies=ok(EnvelopeReply),
)
@LINK_IP_LIMIT
@LINK_LIMIT
def link_envelope(lookup: str) -> Response:
    """The same 404 for a link that is unknown, pending, expired, revoked or exhausted."""
    link = services.find_live(db.session(), _lookup(lookup))
    kdf = json.loads(link.kdf) if link.kdf else None
    assert link.envelope is not None
    return jsonify({"link": {"kdf": kdf, "envelope": b64encode(link.envelope)}})


def _directory(uploaders: list[tuple[Any, list[Any]]]) -> dict[str, Any]:
    session = db.session()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    size, note = witnesses.newest_checkpoint(app, session)
    latest = directory.latest_head(session)
    heads = [latest] if size in (0, latest.size) else [directory.head_at(session, size), latest]
    proofs = []
    for _, keys in uploaders:
        for key in keys:
            for head in heads:
                if key.log_index is not None and key.log_index < head.size:
                    proof = directory.inclusion(session, key.log_index, head.size)
                    proofs.append(
                        {
                            "index": key.log_index,
                            "size": head.size,
                            "proof": [b64encode(p) for p in proof],
                        }
                    )
    return {
        "log_keys": log_keys_json(session),
        "checkpoint": note,
        "checkpoint_size": size,
        "heads": [head_json(h) for h in heads],
        "proofs": proofs,
    }


@bp.post("/link/<lookup>/open")
@endpoint(
    "Count one open of a live link (the token proves the secret and passphrase)",
    roles=ANONYMOUS,
    body=OpenBody,
    replies=ok(OpenReply),
)
@LINK_IP_LIMIT
@LINK_LIMIT
def open_link(lookup: str) -> Response:
    """Count the open, record it in the survivor's history, hand out a content ticket."""
    raw = _lookup(lookup)
    body = parse_body(OpenBody)
    session = db.session()
    opened = services.open_link(session, raw, body.token)
    uploaders = services.publishers(session, opened.documents)
    ring = keyring()
    return jsonify(
        {
            "open": {
                "number": opened.number,
                "ticket": b64encode(opened.ticket),
                "expires_at": opened.expires_at.isoformat(),
            },
            "documents": [record_json(d) for d in opened.documents],
            "uploaders": [
                {
                    "user_id": user.id,
                    "username": accounts.display_name(ring, user),
                    "current_version": user.key_version,
                    "keys": [key_json(k) for k in keys],
                    "entries": [entry_json(e) for e in directory.entries_for(session, user.id)],
                }
                for user, keys in uploaders
            ],
            "directory": _directory(uploaders),
        }
    )


@bp.get("/link/<lookup>/documents/<document_id>/content")
@endpoint(
    "Stream a linked document's ciphertext with the ticket of an open (no account)",
    roles=ANONYMOUS,
    replies=CONTENT_REPLIES,
    headers=[RANGE, TICKET],
)
def link_content(lookup: str, document_id: str) -> Response:
    """The same 404 without a live ticket of this link naming this document."""
    raw = _lookup(lookup)
    try:
        ticket = b64decode(request.headers.get(TICKET.name, ""))
    except EncodingError:
        ticket = b""
    try:
        dl = services.open_content(
            db.session(), store(), raw, ticket, document_id, _requested_range()
        )
    except RangeNotSatisfiable as exc:
        return range_refused(exc)
    response = content_response(dl)
    response.headers["Cache-Control"] = "no-store"
    return response
