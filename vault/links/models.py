"""Outside links and the opens they allow (protocol §23).

The server keeps a link's lookup id, the hash of its open token, its sealed envelope and
its recipient label sealed to the case's people; never the link secret, a file key or the
recipient's name in clear.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vault.db import Base, UTCDateTime, new_id, str_enum, utcnow
from vault.protocol import links as plink


class LinkState(enum.StrEnum):
    """Pending the survivor's approval, live, or ended by revoke or decline."""

    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


class Link(Base):
    """One outside link to one or more documents of a case."""

    __tablename__ = "links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    lookup_id: Mapped[bytes] = mapped_column(LargeBinary(plink.LOOKUP_BYTES), unique=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    creator_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[LinkState] = mapped_column(str_enum(LinkState))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    kdf: Mapped[str | None] = mapped_column(String(256), nullable=True)
    envelope: Mapped[bytes | None] = mapped_column(
        LargeBinary(plink.MAX_ENVELOPE_BYTES), nullable=True
    )
    creator_label: Mapped[bytes] = mapped_column(LargeBinary(plink.SEALED_LABEL_BYTES))
    survivor_label: Mapped[bytes | None] = mapped_column(
        LargeBinary(plink.SEALED_LABEL_BYTES), nullable=True
    )
    max_opens: Mapped[int] = mapped_column(Integer)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    documents: Mapped[list[LinkDocument]] = relationship(
        back_populates="link",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="LinkDocument.position",
    )


class LinkDocument(Base):
    """A document a link opens, in the order of the envelope."""

    __tablename__ = "link_documents"

    link_id: Mapped[str] = mapped_column(
        ForeignKey("links.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)

    link: Mapped[Link] = relationship(back_populates="documents")


class LinkOpen(Base):
    """One counted open: a ticket (stored hashed) that fetches content for a short while."""

    __tablename__ = "link_opens"

    ticket_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    link_id: Mapped[str] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
