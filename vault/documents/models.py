"""Documents, the parts of their uploads in progress, and read grants.

The server holds only what docs/protocol.md §8 calls the content header, the metadata
envelope, the uploader's signature and sealed file keys; the content is an object with a
random name in the bucket.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vault.db import Base, UTCDateTime, str_enum, utcnow
from vault.protocol import documents as pdoc


class DocumentState(enum.StrEnum):
    """An upload in progress is pending and visible to nobody; a finalized one is ready."""

    PENDING = "pending"
    READY = "ready"


class Document(Base):
    """One encrypted document in a case, owned by its uploader."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    owner_key_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[DocumentState] = mapped_column(str_enum(DocumentState))
    object_name: Mapped[str] = mapped_column(String(64), unique=True)
    upload_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    header: Mapped[bytes] = mapped_column(LargeBinary(pdoc.CONTENT_HEADER_BYTES))
    metadata_envelope: Mapped[bytes] = mapped_column(LargeBinary(pdoc.MAX_METADATA_BYTES))
    signature: Mapped[bytes] = mapped_column(LargeBinary(pdoc.SIGNATURE_BYTES))
    owner_sealed_key: Mapped[bytes] = mapped_column(LargeBinary(pdoc.SEALED_KEY_BYTES))
    ciphertext_size: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    part_size: Mapped[int] = mapped_column(BigInteger)
    part_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    upload_expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    parts: Mapped[list[UploadPart]] = relationship(
        back_populates="document",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="UploadPart.number",
    )
    grants: Mapped[list[Grant]] = relationship(
        back_populates="document",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Grant.created_at",
    )


class UploadPart(Base):
    """A part of a pending upload that the object store acknowledged."""

    __tablename__ = "document_parts"

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(128))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    document: Mapped[Document] = relationship(back_populates="parts")


class Grant(Base):
    """A live read grant: the file key sealed to one reader, until revoked or expired."""

    __tablename__ = "document_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    grantee_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_version: Mapped[int] = mapped_column(Integer)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary(pdoc.SEALED_KEY_BYTES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)

    document: Mapped[Document] = relationship(back_populates="grants")

    __table_args__ = (UniqueConstraint("document_id", "grantee_id"),)
