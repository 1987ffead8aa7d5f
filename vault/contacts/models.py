"""One encrypted contact book per account, with the counter that orders its versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, UTCDateTime, utcnow


class ContactBook(Base):
    """The newest book an account's clients saved; the server cannot read it."""

    __tablename__ = "contact_books"

    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    counter: Mapped[int] = mapped_column(BigInteger)
    book: Mapped[bytes] = mapped_column(LargeBinary(256 * 1024))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("counter >= 1", name="counter_positive"),)
