"""One row per scheduled job and period: the claim that makes one process run it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, UTCDateTime


class JobRun(Base):
    """A job's run for one period: who claimed it first runs it; counts only, no content."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    # The period's number: whole periods since 1970-01-01 UTC (epoch seconds // period).
    period: Mapped[int] = mapped_column(BigInteger)
    period_seconds: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # running, ok or failed
    outcome: Mapped[str] = mapped_column(String(16))
    # JSON object of counts ({"abandoned_uploads": 2}); an error's class name when failed.
    counts: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str | None] = mapped_column(String(128), nullable=True)

    __table_args__ = (UniqueConstraint("job", "period"),)
