"""Document routes: create, stream parts, finalize, list, read, download, share, delete.

Parts are raw request bodies streamed into the object store; downloads are streamed out of
it. JSON bodies follow the usual rules (strict, base64url without padding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BeforeValidator, Field, WithJsonSchema
from werkzeug.exceptions import ClientDisconnected, HTTPException

from vault import clock, db
from vault.accounts.models import Role
from vault.api import (
    B64,
    MAX_INT,
    NO_CONTENT,
    OCTETS,
    Body,
    Header,
    Out,
    Query,
    Reply,
    Timestamp,
    b64_exact,
    b64_max,
    endpoint,
    me,
    ok,
    optional_query_int,
    parse_body,
    query_int,
)
from vault.audit import custody
from vault.audit.chain import app_ring
from vault.audit.models import DownloadPurpose, Event
from vault.audit.views import AuditEntryOut, entry_json
from vault.cases.services import get_case
from vault.documents import services
from vault.documents.models import Document
from vault.errors import Forbidden, HavenError, InvalidRequest, error_response
from vault.ops import metrics
from vault.protocol import documents as pdoc
from vault.protocol.encoding import b64encode
from vault.storage import STREAM_PIECE_BYTES, store

bp = Blueprint("documents", __name__, url_prefix="/api/v1")

MEMBERS = {Role.SURVIVOR, Role.COUNSEL}
MAX_CIPHERTEXT = MAX_INT  # the JSON parser refuses larger integers (§10.1)


def _aware_datetime(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("expected an ISO 8601 date-time string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("the date-time needs a time zone (use Z or +00:00)")
    return parsed.astimezone(UTC)


AwareDatetime = Annotated[
    datetime,
    BeforeValidator(_aware_datetime),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class CreateDocumentBody(Body):
    """A new document: signed record, metadata envelope, the owner's sealed key, sizes."""

    id: b64_exact(pdoc.DOCUMENT_ID_BYTES)  # type: ignore[valid-type]
    key_version: int = Field(ge=1, le=2**31)
    header: b64_exact(pdoc.CONTENT_HEADER_BYTES)  # type: ignore[valid-type]
    metadata: b64_max(pdoc.MAX_METADATA_BYTES)  # type: ignore[valid-type]
    signature: b64_exact(pdoc.SIGNATURE_BYTES)  # type: ignore[valid-type]
    sealed_key: b64_exact(pdoc.SEALED_KEY_BYTES)  # type: ignore[valid-type]
    ciphertext_size: int = Field(ge=pdoc.CHUNK_OVERHEAD_BYTES, le=MAX_CIPHERTEXT)
    chunk_count: int = Field(ge=1, le=2**31)
    # Bounds as for ciphertext_size; the part rule (80 to 2048 whole chunks) is checked by
    # the service, which answers invalid_size like every other size rule (§8.6).
    part_size: int = Field(default=pdoc.PART_BYTES, ge=1, le=MAX_CIPHERTEXT)


class GrantBody(Body):
    """Share with a case member: the file key sealed to their current key, optional expiry."""

    user_id: str = Field(min_length=1, max_length=32)
    sealed_key: b64_exact(pdoc.SEALED_KEY_BYTES)  # type: ignore[valid-type]
    expires_at: AwareDatetime | None = None


class GrantOut(Out):
    """A live read grant on a document."""

    user_id: str
    key_version: int
    created_at: Timestamp
    expires_at: Timestamp | None


class AccessOut(Out):
    """How the caller holds the document: as its owner, or as a reader until a time."""

    role: Literal["owner", "reader"]
    expires_at: Timestamp | None = None


class DocumentRecordOut(Out):
    """What the uploader signed and the server stores of a document (§8.4, §8.7)."""

    id: str
    case_id: str
    owner_id: str
    owner_key_version: int
    header: B64
    metadata: B64
    signature: B64
    ciphertext_size: int
    chunk_count: int
    created_at: Timestamp
    finalized_at: Timestamp | None


class DocumentOut(DocumentRecordOut):
    """A document as its reader needs it: signed record, metadata, the reader's sealed key."""

    sealed_key: B64
    access: AccessOut
    grants: list[GrantOut] | None = Field(None, description="the owner's live grants (owner only)")


class PartOut(Out):
    """A part the store acknowledged."""

    number: int = Field(ge=1)
    size: int = Field(ge=0)


class UploadOut(Out):
    """An upload's state and the parts the store acknowledged."""

    document_id: str
    state: Literal["pending", "complete"]
    part_size: int
    part_count: int
    ciphertext_size: int
    chunk_count: int
    parts: list[PartOut]
    expires_at: Timestamp


class UploadReply(Out):
    """An upload and the owner's record of its document."""

    upload: UploadOut
    document: DocumentOut


class DocumentsReply(Out):
    """The documents the caller may read."""

    documents: list[DocumentOut]


class DocumentReply(Out):
    """One document."""

    document: DocumentOut


class PartReply(Out):
    """The part just stored."""

    part: PartOut


class GrantCreatedOut(GrantOut):
    """A new grant."""

    document_id: str


class GrantReply(Out):
    """The grant just made."""

    grant: GrantCreatedOut


class EventOut(Out):
    """One event of a case."""

    id: int
    kind: Literal[
        "upload",
        "download",
        "grant",
        "revoke",
        "expiry",
        "delete",
        "member_add",
        "member_request",
        "member_decline",
        "member_remove",
        "duress_alert",
        "link_open",
    ]
    case_id: str
    document_id: str | None
    owner_id: str | None
    actor_id: str | None
    subject_id: str | None
    created_at: Timestamp
    ciphertext_size: int | None = None
    range: list[int] | None = Field(None, min_length=2, max_length=2)
    expires_at: Timestamp | None = None
    purpose: Literal["view", "save"] | None = None


class EventsReply(Out):
    """A page of events, newest first."""

    events: list[EventOut]


class EventsQuery(Query):
    """A page of events."""

    before: int | None = Field(None, ge=1, le=MAX_INT, description="events with id below this")
    limit: int = Field(100, ge=1, le=500, description="how many at most")


class ContentQuery(Query):
    """Why the content is fetched (§8.10)."""

    purpose: Literal["view", "save"] = Field(
        "save", description="view: shown in the app only; save: a copy leaves the app"
    )


RANGE = Header(
    "Range",
    "one byte range of whole chunks: bytes=first-last (§8.8)",
    {"type": "string", "pattern": "^bytes=[0-9]+-[0-9]*$"},
)


def _limits() -> services.Limits:
    cfg = current_app.config
    return services.Limits(
        max_plaintext_bytes=cfg["HAVEN_DOCUMENT_MAX_BYTES"],
        quota_bytes=cfg["HAVEN_DOCUMENT_QUOTA_BYTES"],
        upload_ttl=timedelta(hours=cfg["HAVEN_UPLOAD_TTL_HOURS"]),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def record_json(doc: Document) -> dict[str, Any]:
    """What the uploader signed and the server stores of a document."""
    return {
        "id": doc.id,
        "case_id": doc.case_id,
        "owner_id": doc.owner_id,
        "owner_key_version": doc.owner_key_version,
        "header": b64encode(doc.header),
        "metadata": b64encode(doc.metadata_envelope),
        "signature": b64encode(doc.signature),
        "ciphertext_size": doc.ciphertext_size,
        "chunk_count": doc.chunk_count,
        "created_at": doc.created_at.isoformat(),
        "finalized_at": _iso(doc.finalized_at),
    }


def document_json(visible: services.Visible) -> dict[str, Any]:
    """A document as its reader needs it: signed record, metadata, the reader's sealed key."""
    doc = visible.document
    out = record_json(doc) | {"sealed_key": b64encode(visible.sealed_key)}
    if visible.grant is None:
        out["access"] = {"role": "owner"}
        out["grants"] = [
            {
                "user_id": g.grantee_id,
                "key_version": g.key_version,
                "created_at": g.created_at.isoformat(),
                "expires_at": _iso(g.expires_at),
            }
            for g in doc.grants
            if g.expires_at is None or g.expires_at > clock.now()
        ]
    else:
        out["access"] = {"role": "reader", "expires_at": _iso(visible.grant.expires_at)}
    return out


def upload_json(doc: Document) -> dict[str, Any]:
    """An upload's state and the parts the store acknowledged."""
    return {
        "document_id": doc.id,
        "state": "complete" if doc.state.value == "ready" else "pending",
        "part_size": doc.part_size,
        "part_count": doc.part_count,
        "ciphertext_size": doc.ciphertext_size,
        "chunk_count": doc.chunk_count,
        "parts": [{"number": p.number, "size": p.size} for p in doc.parts],
        "expires_at": doc.upload_expires_at.isoformat(),
    }


def event_json(event: Event) -> dict[str, Any]:
    """One event."""
    out: dict[str, Any] = {
        "id": event.seq,
        "kind": event.kind.value,
        "case_id": event.case_id,
        "document_id": event.document_id,
        "owner_id": event.owner_id,
        "actor_id": event.actor_id,
        "subject_id": event.subject_id,
        "created_at": event.created_at.isoformat(),
    }
    if event.ciphertext_size is not None:
        out["ciphertext_size"] = event.ciphertext_size
    if event.range_first is not None:
        out["range"] = [event.range_first, event.range_last]
    if event.expires_at is not None:
        out["expires_at"] = event.expires_at.isoformat()
    if event.purpose is not None:
        out["purpose"] = event.purpose.value
    return out


@bp.get("/cases/<case_id>/documents")
@endpoint(
    "Documents of a case that you own or hold a live grant for",
    roles=MEMBERS,
    replies=ok(DocumentsReply),
)
def list_documents(case_id: str) -> Response:
    """List the documents I can read in one of my cases."""
    visible = services.list_documents(db.session(), me(), case_id)
    return jsonify({"documents": [document_json(v) for v in visible]})


@bp.post("/cases/<case_id>/documents")
@endpoint(
    "Create a document and start its upload (metadata, signature, your sealed key, sizes)",
    roles=MEMBERS,
    body=CreateDocumentBody,
    replies=ok(UploadReply, 201),
)
def create_document(case_id: str) -> tuple[Response, int]:
    """Register the upload; parts follow with PUT, then finalize."""
    session = db.session()
    get_case(session, me(), case_id)
    body = parse_body(CreateDocumentBody)
    new = services.NewDocument(
        document_id=body.id,
        key_version=body.key_version,
        header=body.header,
        metadata=body.metadata,
        signature=body.signature,
        sealed_key=body.sealed_key,
        ciphertext_size=body.ciphertext_size,
        chunk_count=body.chunk_count,
        part_size=body.part_size,
    )
    doc = services.create_document(session, store(), me(), case_id, new, _limits())
    owner_view = services.Visible(doc, doc.owner_sealed_key, None)
    return jsonify({"upload": upload_json(doc), "document": document_json(owner_view)}), 201


@bp.get("/documents/<document_id>/upload")
@endpoint(
    "Your upload's state, acknowledged parts and record (to resume)",
    roles=MEMBERS,
    replies=ok(UploadReply),
)
def upload_status(document_id: str) -> Response:
    """What the server has of my upload, with my own record of the document."""
    doc = services.upload_status(db.session(), me(), document_id)
    owner_view = services.Visible(doc, doc.owner_sealed_key, None)
    return jsonify({"upload": upload_json(doc), "document": document_json(owner_view)})


class RequestBody:
    """The request body, opened only when the service starts reading it."""

    def read(self, size: int) -> bytes:
        """Read up to ``size`` bytes; b"" when the client went away early."""
        try:
            data: bytes = request.stream.read(size)
        except ClientDisconnected:
            return b""
        return data


def drain_body() -> None:
    """Read what is left of a part body so the client sees the error, not a reset."""
    length = request.content_length
    if length is None or length > pdoc.MAX_PART_BYTES:
        return
    try:
        while request.stream.read(STREAM_PIECE_BYTES):
            pass
    except (HTTPException, OSError):
        pass


@bp.put("/documents/<document_id>/parts/<int:part_number>")
@endpoint(
    "Stream one part of the ciphertext as application/octet-stream (raw bytes)",
    roles=MEMBERS,
    media_type=services.OCTET_STREAM,
    replies=ok(PartReply),
)
def upload_part(document_id: str, part_number: int) -> Response:
    """Store one part; resending a part replaces it."""
    return receive_part(
        lambda kind, length, body: services.upload_part(
            db.session(), store(), me(), document_id, part_number, kind, length, body
        )
    )


def receive_part(save: Callable[[str | None, int | None, RequestBody], Any]) -> Response:
    """Run a part upload's service on this request's type, length and body (also §20.11);
    a refused part's body is drained so the client reads the error."""
    request.max_content_length = pdoc.MAX_PART_BYTES
    try:
        part = save(request.content_type, request.content_length, RequestBody())
    except HavenError:
        drain_body()
        raise
    metrics.part_stored(part.size)
    return jsonify({"part": {"number": part.number, "size": part.size}})


@bp.post("/documents/<document_id>/finalize")
@endpoint("Join the parts and make the document visible", roles=MEMBERS, replies=ok(DocumentReply))
def finalize(document_id: str) -> Response:
    """Complete the upload once every part is acknowledged."""
    user = me()
    doc = services.finalize(db.session(), store(), user, document_id)
    visible = services.Visible(doc, doc.owner_sealed_key, None)
    return jsonify({"document": document_json(visible)})


@bp.get("/documents/<document_id>")
@endpoint("One document you own or hold a live grant for", roles=MEMBERS, replies=ok(DocumentReply))
def get_document(document_id: str) -> Response:
    """Show one document."""
    user = me()
    visible = services.visible_document(db.session(), user, document_id)
    return jsonify({"document": document_json(visible)})


class CheckpointOut(Out):
    """An audit-chain checkpoint signed by the log key (§13)."""

    seq: int
    hash: B64
    timestamp_ms: int
    key_version: int
    signature: B64


class CustodyReply(Out):
    """A document's audit entries, the entries linking them to checkpoints, the checkpoints."""

    document_id: str
    entries: list[AuditEntryOut]
    links: list[AuditEntryOut]
    checkpoints: list[CheckpointOut]


@bp.get("/documents/<document_id>/custody")
@endpoint(
    "A document's audit-chain entries with the checkpoints that sign them (§24.4)",
    roles=MEMBERS,
    replies=ok(CustodyReply),
)
def get_custody(document_id: str) -> Response:
    """The chain of custody of a document the caller may read."""
    visible = services.visible_document(db.session(), me(), document_id)
    found = custody.document_custody(db.session(), visible.document.id, app_ring())
    checkpoints = [
        {
            "seq": c.seq,
            "hash": b64encode(c.hash),
            "timestamp_ms": c.timestamp_ms,
            "key_version": c.key_version,
            "signature": b64encode(c.signature),
        }
        for c in found.checkpoints
    ]
    return jsonify(
        {
            "document_id": visible.document.id,
            "entries": [entry_json(e) for e in found.entries],
            "links": [entry_json(e) for e in found.links],
            "checkpoints": checkpoints,
        }
    )


def _requested_range() -> tuple[int, int | None] | None:
    if "Range" not in request.headers:
        return None
    parsed = request.range
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        raise services.RangeNotSatisfiable("send one byte range: bytes=first-last", 0)
    start, stop = parsed.ranges[0]
    return start, stop


def _purpose() -> DownloadPurpose:
    """The declared purpose of a content request: ``save`` unless it says ``view`` (§8.10)."""
    given = request.args.getlist("purpose")
    if len(given) > 1:
        raise InvalidRequest("query parameter 'purpose' is given once", code="invalid_field")
    try:
        return DownloadPurpose(given[0] if given else DownloadPurpose.SAVE.value)
    except ValueError:
        raise InvalidRequest(
            "query parameter 'purpose' is 'view' or 'save'", code="invalid_field"
        ) from None


CONTENT_REPLIES = (
    Reply(200, None, OCTETS, "the whole ciphertext"),
    Reply(
        206, None, OCTETS, "the requested whole chunks", {"Content-Range": "bytes first-last/size"}
    ),
)


def range_refused(exc: services.RangeNotSatisfiable) -> Response:
    """The 416 of a range that is not whole chunks, with the size when known."""
    response = error_response(exc.status, exc.code, exc.message)
    if exc.size:
        response.headers["Content-Range"] = f"bytes */{exc.size}"
    return response


def content_response(dl: services.Download) -> Response:
    """Stream an opened download: 200 for all of it, 206 with Content-Range for a range."""

    def stream() -> Iterator[bytes]:
        try:
            yield from dl.reader
        finally:
            dl.close()

    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(dl.length),
        "Accept-Ranges": "bytes",
    }
    status = 200
    if dl.byte_range is not None:
        status = 206
        first, last = dl.byte_range
        headers["Content-Range"] = f"bytes {first}-{last}/{dl.document.ciphertext_size}"
    return Response(stream(), status=status, headers=headers, direct_passthrough=True)


@bp.get("/documents/<document_id>/content")
@endpoint(
    "Stream the ciphertext; a Range of whole chunks gives part of it (206)",
    roles=MEMBERS,
    replies=CONTENT_REPLIES,
    headers=[RANGE],
    query=ContentQuery,
)
def download(document_id: str) -> Response:
    """Stream the object from the store, all of it or a chunk-aligned range."""
    purpose = _purpose()
    try:
        byte_range = _requested_range()
        dl = services.open_content(
            db.session(),
            store(),
            me(),
            document_id,
            byte_range,
            is_head=request.method == "HEAD",
            purpose=purpose,
        )
    except services.RangeNotSatisfiable as exc:
        return range_refused(exc)
    return content_response(dl)


@bp.delete("/documents/<document_id>")
@endpoint(
    "Delete your document (or cancel your upload); a receipt stays",
    roles=MEMBERS,
    replies=NO_CONTENT,
)
def delete_document(document_id: str) -> tuple[str, int]:
    """Remove the object, the keys and the metadata."""
    services.delete_document(db.session(), store(), me(), document_id)
    return "", 204


@bp.post("/documents/<document_id>/grants")
@endpoint(
    "Share your document with a member of its case, optionally until a time",
    roles=MEMBERS,
    body=GrantBody,
    replies=ok(GrantReply, 201),
)
def grant_access(document_id: str) -> tuple[Response, int]:
    """Add a read grant (the file key sealed to the reader)."""
    session = db.session()
    user = me()
    visible = services.visible_document(session, user, document_id)
    if visible.grant is not None:
        raise Forbidden("only the document's owner may share it", code="not_owner")
    body = parse_body(GrantBody)
    grant = services.grant_access(
        session,
        user,
        document_id,
        services.NewGrant(body.user_id, body.sealed_key, body.expires_at),
    )
    return jsonify(
        {
            "grant": {
                "document_id": document_id,
                "user_id": grant.grantee_id,
                "key_version": grant.key_version,
                "created_at": grant.created_at.isoformat(),
                "expires_at": _iso(grant.expires_at),
            }
        }
    ), 201


@bp.delete("/documents/<document_id>/grants/<user_id>")
@endpoint("Revoke a reader's grant on your document", roles=MEMBERS, replies=NO_CONTENT)
def revoke_access(document_id: str, user_id: str) -> tuple[str, int]:
    """Delete the grant and the reader's sealed key."""
    services.revoke_access(db.session(), me(), document_id, user_id)
    return "", 204


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    if default is None:
        return optional_query_int(name, minimum=lo, maximum=hi, code="invalid_field")
    return query_int(name, minimum=lo, maximum=hi, default=default, code="invalid_field")


@bp.get("/cases/<case_id>/events")
@endpoint(
    "Events of a case, newest first: all for its survivor, your own for counsel",
    roles=MEMBERS,
    replies=ok(EventsReply),
    query=EventsQuery,
)
def case_events(case_id: str) -> Response:
    """Who uploaded, opened, shared, revoked and deleted what, and when."""
    before = _int_arg("before", None, 1, MAX_INT)
    limit = _int_arg("limit", EventsQuery.model_fields["limit"].default, 1, 500)
    assert limit is not None
    events = services.case_events(db.session(), me(), case_id, before, limit)
    return jsonify({"events": [event_json(e) for e in events]})
