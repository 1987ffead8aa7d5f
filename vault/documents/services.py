"""Document operations: create, stream parts, finalize, read, grant, revoke, delete, sweep.

The server never sees a file key or a plaintext byte. It checks what it can without them
(shapes, the chunk arithmetic, the uploader's signature, case membership, quota) and
enforces every grant. No database transaction stays open while bytes flow to or from the
object store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import nacl.utils
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.accounts.models import User, UserKey
from vault.accounts.services import frozen_error, sealable, sealable_versions
from vault.audit import services as audit
from vault.audit.models import DownloadPurpose, Event, EventKind
from vault.cases import services as cases
from vault.cases.models import CaseMember
from vault.cases.services import get_case
from vault.db import utcnow
from vault.documents.models import Document, DocumentState, Grant, UploadPart
from vault.errors import (
    Conflict,
    Forbidden,
    HavenError,
    InsufficientStorage,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from vault.protocol import documents as pdoc
from vault.protocol.encoding import b64encode
from vault.protocol.keys import ProtocolError
from vault.storage import (
    STREAM_PIECE_BYTES,
    ObjectReader,
    ObjectStore,
    StorageError,
    StorageFull,
    StorageUnavailable,
)

log = logging.getLogger(__name__)

OBJECT_PREFIX = "doc/"
OBJECT_NAME_BYTES = 32
OCTET_STREAM = "application/octet-stream"


class PayloadTooLarge(HavenError):
    """The document is over the size limit or the owner's quota."""

    status = 413
    code = "too_large"


class LengthRequired(HavenError):
    """A part upload without Content-Length."""

    status = 411
    code = "length_required"


class UnsupportedMediaType(HavenError):
    """A part upload that is not application/octet-stream."""

    status = 415
    code = "unsupported_media_type"


class RangeNotSatisfiable(HavenError):
    """A Range this route does not serve (several ranges, unaligned, or past the end)."""

    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class Readable(Protocol):
    """Anything with read(size), like a request body."""

    def read(self, size: int, /) -> bytes:
        """Read up to ``size`` bytes; b"" at the end."""
        ...


class IncompleteBody(Exception):
    """The request body ended before Content-Length bytes."""


def store_unavailable(exc: Exception | None = None) -> HavenError:
    """The one answer when the object store is down (503, try again later) or full (507)."""
    if isinstance(exc, StorageFull):
        return InsufficientStorage(
            "the document store is full; nothing was stored, try again after it is freed",
        )
    return Unavailable(
        "the document store is unavailable; nothing was changed, try again shortly",
        code="object_store_unavailable",
    )


@dataclass(frozen=True)
class Limits:
    """Size rules from the settings."""

    max_plaintext_bytes: int
    quota_bytes: int
    upload_ttl: timedelta


@dataclass(frozen=True)
class NewDocument:
    """What a client sends to create a document (docs/protocol.md §8.6)."""

    document_id: bytes
    key_version: int
    header: bytes
    metadata: bytes
    signature: bytes
    sealed_key: bytes
    ciphertext_size: int
    chunk_count: int
    part_size: int = pdoc.PART_BYTES


@dataclass(frozen=True)
class NewGrant:
    """A read grant: the file key sealed to a case member, with an optional expiry."""

    grantee_id: str
    sealed_key: bytes
    expires_at: datetime | None


@dataclass(frozen=True)
class Visible:
    """A document as one reader sees it: the sealed key is theirs."""

    document: Document
    sealed_key: bytes
    grant: Grant | None


@dataclass
class SweepReport:
    """What one janitor pass cleaned up."""

    abandoned_uploads: int = 0
    orphan_uploads: int = 0
    orphan_objects: int = 0
    expired_grants: int = 0
    errors: list[str] = field(default_factory=list)


def new_object_name() -> str:
    """A random object name that says nothing about user, case or file."""
    return OBJECT_PREFIX + b64encode(nacl.utils.random(OBJECT_NAME_BYTES))


def _current_key(db: Session, user: User) -> UserKey:
    key = db.scalars(
        select(UserKey).where(UserKey.user_id == user.id, UserKey.version == user.key_version)
    ).first()
    if key is None:
        raise Conflict("the account has no current public key", code="no_current_key")
    return key


def _check_new_document(db: Session, user: User, case_id: str, new: NewDocument) -> int:
    """Every check that needs no lock; return the plaintext size."""
    if new.key_version != user.key_version:
        raise InvalidRequest(
            f"sign with your current key version {user.key_version}", code="stale_key_version"
        )
    try:
        pdoc.parse_content_header(new.header)
        pdoc.check_metadata_shape(new.metadata)
        sealed_version = pdoc.sealed_key_version(new.sealed_key)
    except ProtocolError as exc:
        raise InvalidRequest(str(exc)) from exc
    try:
        plain = pdoc.plaintext_size(new.ciphertext_size)
        pdoc.check_part_bytes(new.part_size)
    except ProtocolError as exc:
        raise InvalidRequest(str(exc), code="invalid_size") from exc
    if sealed_version != user.key_version:
        raise InvalidRequest(
            "seal the file key to your current key version", code="stale_key_version"
        )
    if new.chunk_count != pdoc.chunk_count(plain):
        raise InvalidRequest("chunk_count does not match ciphertext_size", code="invalid_size")
    if pdoc.part_count(new.ciphertext_size, new.part_size) > pdoc.MAX_PARTS:
        raise PayloadTooLarge("the document has too many parts")
    record = pdoc.SignedDocument(
        document_id=new.document_id,
        case_id=case_id,
        uploader_id=user.id,
        key_version=new.key_version,
        header=new.header,
        ciphertext_size=new.ciphertext_size,
        metadata=new.metadata,
    )
    try:
        record.verify(_current_key(db, user).ed25519, new.signature)
    except ProtocolError as exc:
        raise InvalidRequest(str(exc), code="bad_signature") from exc
    return plain


def create_document(
    db: Session,
    store: ObjectStore,
    user: User,
    case_id: str,
    new: NewDocument,
    limits: Limits,
) -> Document:
    """Register an upload: check it, reserve quota, start the multipart upload."""
    case = get_case(db, user, case_id)
    plain = _check_new_document(db, user, case.id, new)
    if plain > limits.max_plaintext_bytes:
        raise PayloadTooLarge(
            f"a document may hold at most {limits.max_plaintext_bytes} bytes",
            code="document_too_large",
        )
    document_id = b64encode(new.document_id)
    # Lock the owner's row so concurrent creates cannot both fit in the same quota, and
    # a key rotation (§14) either sees this document or makes it refuse.
    owner = db.execute(
        select(User.id, User.key_version, User.rotation_freeze_until)
        .where(User.id == user.id)
        .with_for_update()
    )
    version = sealable(owner, utcnow()).get(user.id)
    if version != new.key_version:
        db.rollback()
        if version is None:
            raise frozen_error()
        raise InvalidRequest(
            f"sign with your current key version {version}", code="stale_key_version"
        )
    used = db.scalar(
        select(func.coalesce(func.sum(Document.ciphertext_size), 0)).where(
            Document.owner_id == user.id
        )
    )
    if int(used or 0) + new.ciphertext_size > limits.quota_bytes:
        raise PayloadTooLarge("this upload would exceed your storage quota", code="quota_exceeded")
    if db.get(Document, document_id) is not None:
        raise Conflict("a document with this id exists", code="document_exists")
    object_name = new_object_name()
    try:
        upload_id = store.create_upload(object_name)
    except (StorageUnavailable, StorageError) as exc:
        db.rollback()
        raise store_unavailable(exc) from exc
    now = utcnow()
    document = Document(
        id=document_id,
        case_id=case.id,
        owner_id=user.id,
        owner_key_version=new.key_version,
        state=DocumentState.PENDING,
        object_name=object_name,
        upload_id=upload_id,
        header=new.header,
        metadata_envelope=new.metadata,
        signature=new.signature,
        owner_sealed_key=new.sealed_key,
        ciphertext_size=new.ciphertext_size,
        chunk_count=new.chunk_count,
        part_size=new.part_size,
        part_count=pdoc.part_count(new.ciphertext_size, new.part_size),
        created_at=now,
        upload_expires_at=now + limits.upload_ttl,
    )
    db.add(document)
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        _abort_quietly(store, object_name, upload_id)
        raise Conflict("a document with this id exists", code="document_exists") from exc
    except BaseException:
        db.rollback()
        _abort_quietly(store, object_name, upload_id)
        raise
    return document


def _abort_quietly(store: ObjectStore, object_name: str, upload_id: str) -> None:
    try:
        store.abort_upload(object_name, upload_id)
    except (StorageUnavailable, StorageError):
        log.warning("could not abort an upload; the janitor will")


def _owned(db: Session, user: User, document_id: str, *, lock: bool = False) -> Document:
    """A document the caller owns. Others get 404, or 403 if a live grant shows it to them."""
    query = select(Document).where(Document.id == document_id)
    if lock:
        query = query.with_for_update()
    document = db.scalars(query).first()
    if document is None:
        raise NotFound("no such document")
    if document.owner_id != user.id:
        if document.state == DocumentState.READY and _live_grant(db, document, user.id):
            raise Forbidden("only the document's owner may do this", code="not_owner")
        raise NotFound("no such document")
    return document


def _pending_owned(db: Session, user: User, document_id: str) -> Document:
    document = _owned(db, user, document_id)
    if document.state != DocumentState.PENDING:
        raise Conflict("this upload is already finalized", code="already_finalized")
    if document.upload_expires_at <= utcnow():
        raise Conflict("this upload was abandoned; start again", code="upload_gone")
    return document


def upload_status(db: Session, user: User, document_id: str) -> Document:
    """The caller's upload (pending or complete) with its acknowledged parts."""
    return _owned(db, user, document_id)


def _pieces(body: Readable, length: int) -> Iterator[bytes]:
    """Exactly ``length`` bytes of the request body, in bounded pieces."""
    remaining = length
    while remaining:
        piece = body.read(min(STREAM_PIECE_BYTES, remaining))
        if not piece:
            raise IncompleteBody
        remaining -= len(piece)
        yield piece


def check_part_request(
    db: Session,
    user: User,
    document_id: str,
    number: int,
    content_type: str | None,
    length: int | None,
) -> Document:
    """Everything about a part upload that is known before its body is read."""
    document = _pending_owned(db, user, document_id)
    check_part_request_shape(
        document.ciphertext_size,
        document.part_size,
        document.part_count,
        number,
        content_type,
        length,
    )
    return document


def check_part_request_shape(
    ciphertext_size: int,
    part_bytes: int,
    part_count: int,
    number: int,
    content_type: str | None,
    length: int | None,
) -> None:
    """A part's media type, length and number against its upload (also for §20.11)."""
    if (content_type or "").split(";")[0].strip().lower() != OCTET_STREAM:
        raise UnsupportedMediaType(f"send the part as {OCTET_STREAM}")
    if length is None:
        raise LengthRequired("send the part with a Content-Length")
    if not 1 <= number <= part_count:
        raise InvalidRequest(f"part numbers run from 1 to {part_count}", code="invalid_part")
    expected = pdoc.part_size(ciphertext_size, number, part_bytes)
    if length != expected:
        raise InvalidRequest(
            f"part {number} must be exactly {expected} bytes", code="wrong_part_size"
        )


def stream_part(
    store: ObjectStore, object_name: str, upload_id: str, number: int, body: Readable, length: int
) -> str:
    """Stream exactly ``length`` body bytes into one store part; its etag (also for §20.11)."""
    try:
        return store.upload_part(object_name, upload_id, number, _pieces(body, length), length)
    except IncompleteBody as exc:
        raise InvalidRequest(
            "the body ended before Content-Length bytes", code="incomplete_body"
        ) from exc
    except StorageUnavailable as exc:
        raise store_unavailable(exc) from exc
    except StorageError as exc:
        if exc.code == "NoSuchUpload":
            raise Conflict("this upload was abandoned; start again", code="upload_gone") from exc
        log.error("object store refused a part: %s", exc.code)
        raise store_unavailable(exc) from exc


def complete_parts(
    store: ObjectStore,
    object_name: str,
    upload_id: str | None,
    parts: list[tuple[int, str]],
    size: int,
) -> None:
    """Join acknowledged parts into the object (a join an earlier call made counts as done)."""
    try:
        if upload_id is not None:
            store.complete_upload(object_name, upload_id, parts)
    except StorageUnavailable as exc:
        raise store_unavailable(exc) from exc
    except StorageError as exc:
        # An earlier finalize may have completed the upload and lost its commit.
        if exc.code != "NoSuchUpload" or _stored_size(store, object_name) != size:
            log.error("object store refused to complete an upload: %s", exc.code)
            raise Conflict(
                "the object store refused the parts; ask for the status and resend",
                code="upload_incomplete",
            ) from exc


def upload_part(
    db: Session,
    store: ObjectStore,
    user: User,
    document_id: str,
    number: int,
    content_type: str | None,
    length: int | None,
    body: Readable,
) -> UploadPart:
    """Stream one part of the ciphertext into the store and acknowledge it."""
    document = check_part_request(db, user, document_id, number, content_type, length)
    assert length is not None and document.upload_id is not None
    object_name, upload_id = document.object_name, document.upload_id
    db.rollback()  # no transaction stays open while the part streams
    etag = stream_part(store, object_name, upload_id, number, body, length)
    document = _pending_owned(db, user, document_id)
    part = db.get(UploadPart, (document.id, number))
    if part is None:
        part = UploadPart(document_id=document.id, number=number)
        db.add(part)
    part.size = length
    part.etag = etag
    part.uploaded_at = utcnow()
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict("the same part arrived twice at once; ask for the status") from exc
    return part


def finalize(db: Session, store: ObjectStore, user: User, document_id: str) -> Document:
    """Join the parts and make the document visible, once every part is in place."""
    document = _owned(db, user, document_id)
    if document.state == DocumentState.READY:
        return document
    document = _pending_owned(db, user, document_id)
    got = {p.number: p for p in document.parts}
    missing = [
        n
        for n in range(1, document.part_count + 1)
        if n not in got
        or got[n].size != pdoc.part_size(document.ciphertext_size, n, document.part_size)
    ]
    if missing:
        raise Conflict(
            f"{len(missing)} of {document.part_count} parts are missing, first {missing[0]}",
            code="upload_incomplete",
        )
    parts = [(n, got[n].etag) for n in range(1, document.part_count + 1)]
    object_name, upload_id, size = (
        document.object_name,
        document.upload_id,
        document.ciphertext_size,
    )
    db.rollback()
    complete_parts(store, object_name, upload_id, parts, size)
    now = utcnow()
    result = db.execute(
        update(Document)
        .where(
            Document.id == document_id,
            Document.state == DocumentState.PENDING,
            Document.upload_expires_at > now,
        )
        .values(state=DocumentState.READY, finalized_at=now, upload_id=None)
    )
    if getattr(result, "rowcount", 0) != 1:
        db.rollback()
        current = _owned(db, user, document_id)
        if current.state == DocumentState.READY:
            return current  # a concurrent finalize won
        raise Conflict("this upload was abandoned; start again", code="upload_gone")
    db.execute(delete(UploadPart).where(UploadPart.document_id == document_id))
    audit.record(
        db,
        EventKind.UPLOAD,
        case_id=document.case_id,
        document_id=document_id,
        owner_id=user.id,
        actor_id=user.id,
        ciphertext_size=size,
        at=now,
    )
    db.commit()
    return _owned(db, user, document_id)


def _stored_size(store: ObjectStore, object_name: str) -> int | None:
    try:
        return store.size(object_name)
    except StorageUnavailable as exc:
        raise store_unavailable(exc) from exc


def _live_grant(db: Session, document: Document, user_id: str) -> Grant | None:
    grant = db.scalars(
        select(Grant).where(Grant.document_id == document.id, Grant.grantee_id == user_id)
    ).first()
    if grant is None or (grant.expires_at is not None and grant.expires_at <= utcnow()):
        return None
    if db.get(CaseMember, (document.case_id, user_id)) is None:
        return None
    return grant


def visible_document(db: Session, user: User, document_id: str) -> Visible:
    """A finalized document the caller owns or holds a live grant for; 404 otherwise."""
    document = db.get(Document, document_id)
    if document is None or document.state != DocumentState.READY:
        raise NotFound("no such document")
    if document.owner_id == user.id:
        return Visible(document, document.owner_sealed_key, None)
    grant = _live_grant(db, document, user.id)
    if grant is None:
        raise NotFound("no such document")
    return Visible(document, grant.sealed_key, grant)


def list_documents(db: Session, user: User, case_id: str) -> list[Visible]:
    """Finalized documents of a case that the caller owns or holds a live grant for."""
    case = get_case(db, user, case_id)
    now = utcnow()
    query = (
        select(Document, Grant)
        .outerjoin(Grant, (Grant.document_id == Document.id) & (Grant.grantee_id == user.id))
        .where(Document.case_id == case.id, Document.state == DocumentState.READY)
        .order_by(Document.finalized_at, Document.id)
    )
    out = []
    for document, grant in db.execute(query).all():
        if document.owner_id == user.id:
            out.append(Visible(document, document.owner_sealed_key, None))
        elif grant is not None and (grant.expires_at is None or grant.expires_at > now):
            out.append(Visible(document, grant.sealed_key, grant))
    return out


def aligned_range(size: int, start: int, stop: int | None) -> tuple[int, int]:
    """Check a byte range [start, stop) against chunk boundaries; give (first, last)."""
    stop = size if stop is None else min(stop, size)
    unit = pdoc.CHUNK_CIPHERTEXT_BYTES
    if start < 0 or start >= size or stop <= start:
        raise RangeNotSatisfiable("the range is outside the document", size)
    if start % unit or (stop != size and stop % unit):
        raise RangeNotSatisfiable(f"ranges start and end on {unit}-byte chunk boundaries", size)
    return start, stop - 1


@dataclass
class Download:
    """An opened download: the reader streams the (partial) object."""

    document: Document
    reader: Iterator[bytes]
    close: Callable[[], None]
    length: int
    byte_range: tuple[int, int] | None


def open_object(
    db: Session, store: ObjectStore, document: Document, first_last: tuple[int, int] | None
) -> ObjectReader:
    """Open a document's object (all of it, or whole chunks); 503 or 404 ends the transaction."""
    try:
        if first_last is None:
            return store.open(document.object_name)
        return store.open(document.object_name, first_last[0], first_last[1] - first_last[0] + 1)
    except StorageUnavailable as exc:
        db.rollback()
        raise store_unavailable(exc) from exc
    except StorageError as exc:
        db.rollback()
        log.error("document content missing from the store: %s", exc.code)
        raise NotFound("the document's content is missing", code="content_missing") from exc


def open_content(
    db: Session,
    store: ObjectStore,
    user: User,
    document_id: str,
    byte_range: tuple[int, int | None] | None,
    *,
    is_head: bool = False,
    purpose: DownloadPurpose = DownloadPurpose.SAVE,
) -> Download:
    """Open the ciphertext (or whole chunks) to stream; record the download and its purpose."""
    visible = visible_document(db, user, document_id)
    document = visible.document
    first_last = (
        aligned_range(document.ciphertext_size, *byte_range) if byte_range is not None else None
    )
    if is_head:
        db.rollback()
        length = (
            first_last[1] - first_last[0] + 1
            if first_last is not None
            else document.ciphertext_size
        )
        return Download(document, iter(()), lambda: None, length, first_last)
    reader = open_object(db, store, document, first_last)
    try:
        audit.record(
            db,
            EventKind.DOWNLOAD,
            case_id=document.case_id,
            document_id=document.id,
            owner_id=document.owner_id,
            actor_id=user.id,
            byte_range=first_last,
            purpose=purpose,
        )
        db.commit()
    except BaseException:
        reader.close()
        raise
    return Download(document, iter(reader), reader.close, reader.length, first_last)


def grant_access(db: Session, user: User, document_id: str, new: NewGrant) -> Grant:
    """Share a document with another member of its case (the file key sealed to them)."""
    visible = visible_document(db, user, document_id)
    document = visible.document
    if document.owner_id != user.id:
        raise Forbidden("only the document's owner may share it", code="not_owner")
    now = utcnow()
    # A share lock on the reader's membership: a survivor removing them (§17.3) waits for
    # this grant and then deletes it, or went first and this finds no member.
    member = db.scalars(
        select(CaseMember)
        .where(CaseMember.case_id == document.case_id, CaseMember.user_id == new.grantee_id)
        .with_for_update(read=True)
    ).first()
    if member is None or new.grantee_id == user.id:
        raise InvalidRequest(
            "grants go to another member of the document's case", code="not_a_case_member"
        )
    grantee = db.get(User, new.grantee_id)
    assert grantee is not None
    if grantee.is_disabled:
        raise InvalidRequest("this account is disabled", code="not_a_case_member")
    try:
        version = pdoc.sealed_key_version(new.sealed_key)
    except ProtocolError as exc:
        raise InvalidRequest(str(exc)) from exc
    if version != grantee.key_version:
        raise InvalidRequest(
            f"seal the file key to the reader's current key version {grantee.key_version}",
            code="stale_key_version",
        )
    if new.expires_at is not None and new.expires_at <= now:
        raise InvalidRequest("expires_at must be in the future", code="invalid_expiry")
    existing = db.scalars(
        select(Grant)
        .where(Grant.document_id == document.id, Grant.grantee_id == new.grantee_id)
        .with_for_update()
    ).first()
    if existing is not None:
        if existing.expires_at is None or existing.expires_at > now:
            raise Conflict("this reader already holds a live grant", code="already_granted")
        expire_grant(db, document, existing, now)
        db.flush()
    grant = add_grant(
        db, document, user.id, new.grantee_id, version, new.sealed_key, new.expires_at, now
    )
    # Read the reader's key version again under a share lock: a key rotation (§14) that
    # took their row first has committed by now and is refused here; one that comes
    # later waits for this grant and re-seals it.
    current = sealable_versions(db, [new.grantee_id], lock=True).get(new.grantee_id)
    if current != version:
        db.rollback()
        if current is None:
            raise frozen_error()
        raise InvalidRequest(
            "the reader's key version changed; fetch it again", code="stale_key_version"
        )
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict("this reader already holds a live grant", code="already_granted") from exc
    return grant


def add_grant(
    db: Session,
    document: Document,
    actor_id: str,
    grantee_id: str,
    key_version: int,
    sealed_key: bytes,
    expires_at: datetime | None,
    now: datetime,
) -> Grant:
    """Store a read grant and its event in the caller's transaction (no commit)."""
    grant = Grant(
        document_id=document.id,
        grantee_id=grantee_id,
        key_version=key_version,
        sealed_key=sealed_key,
        created_at=now,
        expires_at=expires_at,
    )
    db.add(grant)
    audit.record(
        db,
        EventKind.GRANT,
        case_id=document.case_id,
        document_id=document.id,
        owner_id=document.owner_id,
        actor_id=actor_id,
        subject_id=grantee_id,
        expires_at=expires_at,
        at=now,
    )
    return grant


def expire_grant(db: Session, document: Document, grant: Grant, now: datetime) -> None:
    """Remove a grant past its expiry, leaving an expiry event (no commit)."""
    audit.record(
        db,
        EventKind.EXPIRY,
        case_id=document.case_id,
        document_id=document.id,
        owner_id=document.owner_id,
        subject_id=grant.grantee_id,
        expires_at=grant.expires_at,
        at=now,
    )
    db.delete(grant)


def remove_grant(
    db: Session, document: Document, grant: Grant, actor_id: str, now: datetime
) -> None:
    """Revoke a grant, deleting the reader's sealed file key, with a revoke event (no commit)."""
    audit.record(
        db,
        EventKind.REVOKE,
        case_id=document.case_id,
        document_id=document.id,
        owner_id=document.owner_id,
        actor_id=actor_id,
        subject_id=grant.grantee_id,
        at=now,
    )
    db.delete(grant)


@cases.on_member_removed
def revoke_grants_of_former_member(db: Session, case_id: str, user_id: str, actor_id: str) -> None:
    """A counsel leaving a case loses every grant in it (each a revoke event), so being
    let in again later does not bring old grants back."""
    grants = db.execute(
        select(Grant, Document)
        .join(Document, Document.id == Grant.document_id)
        .where(Document.case_id == case_id, Grant.grantee_id == user_id)
        .order_by(Grant.id)
        .with_for_update(of=Grant)
    ).all()
    now = utcnow()
    for grant, document in grants:
        remove_grant(db, document, grant, actor_id, now)


def revoke_access(db: Session, user: User, document_id: str, grantee_id: str) -> None:
    """Withdraw a grant; the reader's sealed copy of the file key is deleted with it."""
    visible = visible_document(db, user, document_id)
    document = visible.document
    if document.owner_id != user.id:
        raise Forbidden("only the document's owner may revoke access", code="not_owner")
    grant = db.scalars(
        select(Grant)
        .where(Grant.document_id == document.id, Grant.grantee_id == grantee_id)
        .with_for_update()
    ).first()
    if grant is None:
        raise NotFound("no such grant")
    remove_grant(db, document, grant, user.id, utcnow())
    db.commit()


def delete_document(db: Session, store: ObjectStore, user: User, document_id: str) -> None:
    """Delete a document: its object, keys and metadata go; a deletion receipt stays."""
    document = _owned(db, user, document_id, lock=True)
    try:
        if document.state == DocumentState.PENDING:
            if document.upload_id is not None:
                store.abort_upload(document.object_name, document.upload_id)
            store.remove(document.object_name)
        else:
            store.remove(document.object_name)
    except (StorageUnavailable, StorageError) as exc:
        db.rollback()
        raise store_unavailable(exc) from exc
    if document.state == DocumentState.READY:
        audit.record(
            db,
            EventKind.DELETE,
            case_id=document.case_id,
            document_id=document.id,
            owner_id=document.owner_id,
            actor_id=user.id,
            ciphertext_size=document.ciphertext_size,
        )
    db.delete(document)
    db.commit()


def case_events(
    db: Session, user: User, case_id: str, before: int | None, limit: int
) -> list[Event]:
    """A case's events: all of them for its survivor, those involving them for counsel."""
    case = get_case(db, user, case_id)
    return audit.case_events(
        db,
        case.id,
        viewer_id=user.id,
        sees_all=case.survivor_id == user.id,
        before=before,
        limit=limit,
    )


# -- janitor ----------------------------------------------------------------------------


def sweep(
    db: Session, store: ObjectStore, ttl: timedelta, now: datetime | None = None
) -> SweepReport:
    """Abort abandoned uploads, drop orphans, expire grants. Safe to run from many replicas."""
    now = now or utcnow()
    report = sweep_uploads(db, store, ttl, now)
    _sweep_grants(db, now, report)
    return report


def sweep_uploads(
    db: Session, store: ObjectStore, ttl: timedelta, now: datetime | None = None
) -> SweepReport:
    """Abort abandoned uploads and drop orphans (the scheduled upload janitor)."""
    now = now or utcnow()
    report = SweepReport()
    try:
        _sweep_abandoned(db, store, now, report)
        _sweep_orphans(db, store, now - ttl, report)
    except StorageUnavailable:
        db.rollback()
        report.errors.append("object store unavailable")
    return report


def expire_grants(db: Session, now: datetime | None = None) -> int:
    """Expire grants past their end (the scheduled grant expiry); how many."""
    report = SweepReport()
    _sweep_grants(db, now or utcnow(), report)
    return report.expired_grants


def _sweep_abandoned(db: Session, store: ObjectStore, now: datetime, report: SweepReport) -> None:
    """Pending uploads past their time: claim the row first, then clean the store."""
    stale = db.execute(
        select(Document.id, Document.object_name, Document.upload_id).where(
            Document.state == DocumentState.PENDING, Document.upload_expires_at <= now
        )
    ).all()
    db.rollback()
    for document_id, object_name, upload_id in stale:
        claimed = db.execute(
            delete(Document).where(
                Document.id == document_id,
                Document.state == DocumentState.PENDING,
                Document.upload_expires_at <= now,
            )
        )
        db.commit()
        if getattr(claimed, "rowcount", 0) != 1:
            continue
        # If the store fails from here on, nothing names these any more: the orphan
        # sweep of a later pass removes them.
        if upload_id is not None:
            store.abort_upload(object_name, upload_id)
        for upload in store.list_uploads(object_name):
            if upload.object_name == object_name:
                store.abort_upload(object_name, upload.upload_id)
        store.remove(object_name)
        report.abandoned_uploads += 1


def _sweep_orphans(
    db: Session, store: ObjectStore, older_than: datetime, report: SweepReport
) -> None:
    """Uploads and objects under the document prefix that no document row names."""
    for upload in store.list_uploads(OBJECT_PREFIX):
        if upload.initiated is not None and upload.initiated > older_than:
            continue
        known = db.scalar(
            select(func.count())
            .select_from(Document)
            .where(
                Document.object_name == upload.object_name,
                Document.upload_id == upload.upload_id,
            )
        )
        db.rollback()
        if not known:
            store.abort_upload(upload.object_name, upload.upload_id)
            report.orphan_uploads += 1
    for name, modified in store.list_objects(OBJECT_PREFIX):
        if modified is not None and modified > older_than:
            continue
        known = db.scalar(
            select(func.count()).select_from(Document).where(Document.object_name == name)
        )
        db.rollback()
        if not known:
            store.remove(name)
            report.orphan_objects += 1


def _sweep_grants(db: Session, now: datetime, report: SweepReport) -> None:
    """Grants past their expiry: delete the sealed key, record the expiry."""
    expired = db.execute(
        select(
            Grant.id,
            Grant.grantee_id,
            Grant.expires_at,
            Document.id,
            Document.case_id,
            Document.owner_id,
        )
        .join(Document, Document.id == Grant.document_id)
        .where(Grant.expires_at.is_not(None), Grant.expires_at <= now)
    ).all()
    db.rollback()
    for grant_id, grantee_id, expires_at, document_id, case_id, owner_id in expired:
        result = db.execute(delete(Grant).where(Grant.id == grant_id))
        if getattr(result, "rowcount", 0) == 1:
            audit.record(
                db,
                EventKind.EXPIRY,
                case_id=case_id,
                document_id=document_id,
                owner_id=owner_id,
                subject_id=grantee_id,
                expires_at=expires_at,
                at=now,
            )
            report.expired_grants += 1
        db.commit()
