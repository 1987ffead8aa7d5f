"""Job runs in the database: claim a (job, period) once, record its outcome, list them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.db import utcnow
from vault.ops.models import JobRun

RUNNING, OK, FAILED = "running", "ok", "failed"


def claim(db: Session, job: str, period: int, period_seconds: int) -> JobRun | None:
    """Insert the (job, period) row; None when another process claimed it first."""
    row = JobRun(
        job=job,
        period=period,
        period_seconds=period_seconds,
        started_at=utcnow(),
        outcome=RUNNING,
        counts="{}",
    )
    db.add(row)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return None
    return row


def finish(db: Session, run_id: int, counts: Mapping[str, int], error: str | None = None) -> None:
    """Record the outcome of a claimed run: its counts, or the class name of its error."""
    row = db.get(JobRun, run_id)
    if row is None:
        return
    row.finished_at = utcnow()
    row.outcome = FAILED if error is not None else OK
    row.counts = json.dumps({str(k): int(v) for k, v in counts.items()}, sort_keys=True)
    row.error = error[:128] if error is not None else None
    db.commit()


def prune(db: Session, keep: timedelta, now: datetime | None = None) -> int:
    """Delete runs that started longer than ``keep`` ago."""
    cutoff = (now or utcnow()) - keep
    result = db.execute(delete(JobRun).where(JobRun.started_at < cutoff))
    db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def recent_runs(db: Session, limit: int) -> list[JobRun]:
    """The newest runs, newest first."""
    rows = db.scalars(
        select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
    )
    return list(rows)


def last_runs(db: Session, jobs: list[str]) -> dict[str, JobRun]:
    """Each job's newest run."""
    found: dict[str, JobRun] = {}
    for job in jobs:
        row = db.scalars(
            select(JobRun).where(JobRun.job == job).order_by(JobRun.period.desc()).limit(1)
        ).first()
        if row is not None:
            found[job] = row
    return found
