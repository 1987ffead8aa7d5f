"""Scheduled maintenance: a registry of jobs and a timer thread in every app process.

Each job has a period (a setting, seconds; 0 turns it off). Time is cut into periods
counted from the Unix epoch; in each period, the first process to insert the (job, period)
row of ``job_runs`` runs the job, every other process finds the row taken and skips it
(docs/protocol.md §26.1). The database decides, so any number of processes on one
database run each job exactly once per period, and a process that dies mid-run costs that
period only. Outcomes (counts, never content or ids) are kept for admins.

A feature's job is one function and one ``register(...)`` line at the end of this module.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask

from vault.db import database
from vault.ops import metrics, services

log = logging.getLogger(__name__)

JobFunction = Callable[[Flask], Mapping[str, int]]


class JobFailed(RuntimeError):
    """A job finished its pass but could not do all of it (its counts are kept)."""

    def __init__(self, reason: str, counts: Mapping[str, int]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counts = counts


@dataclass(frozen=True)
class Job:
    """A named job, the setting holding its period in seconds, and that setting's default."""

    name: str
    run: JobFunction
    setting: str
    default: int


REGISTRY: dict[str, Job] = {}


def register(name: str, run: JobFunction, *, setting: str, default: int) -> Job:
    """Add a job (or replace one of the same name); it runs in every process's scheduler."""
    job = Job(name, run, setting, default)
    REGISTRY[name] = job
    return job


def period_of(app: Flask, job: Job) -> int:
    """The job's period in seconds in this app (0: off)."""
    return int(app.config.get(job.setting, job.default))


def run_claimed(app: Flask, job: Job, period: int, seconds: int) -> str | None:
    """Claim (job, period) and run it; the outcome, or None when another process has it."""
    with app.app_context():
        with database(app).sessions() as db:
            row = services.claim(db, job.name, period, seconds)
            if row is None:
                return None
            run_id = row.id
        counts: Mapping[str, int] = {}
        error: str | None = None
        started = time.monotonic()
        try:
            counts = job.run(app)
        except JobFailed as exc:
            counts, error = exc.counts, exc.reason
        except Exception as exc:  # a failed run is recorded, and the next period tries again
            error = type(exc).__name__
            log.error("job failed", extra={"job": job.name, "error": error})
        with database(app).sessions() as db:
            services.finish(db, run_id, counts, error)
    outcome = services.FAILED if error is not None else services.OK
    metrics.job_finished(job.name, outcome, time.monotonic() - started, counts)
    done = {"job": job.name, "period": period, "outcome": outcome, "counts": dict(counts)}
    log.info("job finished", extra=done)
    return outcome


class Scheduler:
    """A daemon thread that runs each due job of the registry once per period."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.stopped = threading.Event()
        self.attempted: dict[str, int] = {}
        self.thread = threading.Thread(target=self._loop, name="haven-jobs", daemon=True)

    def tick_seconds(self) -> float:
        """How often to look for due jobs: a quarter of the shortest period, 0.5 s to 30 s."""
        periods = [p for p in (period_of(self.app, j) for j in REGISTRY.values()) if p > 0]
        return min(30.0, max(0.5, min(periods, default=120) / 4))

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current job."""
        self.stopped.set()

    def run_due(self, now: float | None = None) -> list[str]:
        """Run every job whose current period this process has not tried yet; name those run."""
        now = time.time() if now is None else now
        ran = []
        for job in list(REGISTRY.values()):
            seconds = period_of(self.app, job)
            if seconds <= 0:
                continue
            period = int(now // seconds)
            if self.attempted.get(job.name) == period:
                continue
            self.attempted[job.name] = period
            try:
                if run_claimed(self.app, job, period, seconds) is not None:
                    ran.append(job.name)
            except Exception as exc:  # the database is down: the next period tries again
                metrics.database_error()
                log.error("job not claimed", extra={"job": job.name, "error": type(exc).__name__})
        return ran

    def _loop(self) -> None:
        while not self.stopped.is_set():
            self.run_due()
            self.stopped.wait(self.tick_seconds())


def start_scheduler(app: Flask) -> Scheduler | None:
    """Start this process's scheduler unless jobs are off or this is an event-tier process."""
    if not app.config["HAVEN_JOBS_ENABLED"] or app.config["HAVEN_TIER"] == "events":
        return None
    existing = app.extensions.get("haven.scheduler")
    if isinstance(existing, Scheduler):
        return existing
    scheduler = Scheduler(app)
    app.extensions["haven.scheduler"] = scheduler
    weakref.finalize(app, scheduler.stop)
    scheduler.start()
    return scheduler


# -- the built-in jobs -------------------------------------------------------------------


def sweep_uploads(app: Flask) -> Mapping[str, int]:
    """The upload janitor: abandoned uploads, orphaned parts and objects."""
    from vault.documents.services import sweep_uploads as sweep
    from vault.storage import store

    ttl = timedelta(hours=app.config["HAVEN_UPLOAD_TTL_HOURS"])
    with database(app).sessions() as db:
        report = sweep(db, store(app), ttl)
    counts = {
        "abandoned_uploads": report.abandoned_uploads,
        "orphan_uploads": report.orphan_uploads,
        "orphan_objects": report.orphan_objects,
    }
    if report.errors:
        raise JobFailed("object store unavailable", counts)
    return counts


def expire_grants(app: Flask) -> Mapping[str, int]:
    """Grant expiry: sealed keys past their grant's end are deleted and the expiry audited."""
    from vault.documents.services import expire_grants as expire

    with database(app).sessions() as db:
        return {"expired_grants": expire(db)}


def purge_messages(app: Flask) -> Mapping[str, int]:
    """Disappearing messages past their timer, and events past retention."""
    from vault.messages.purge import purge_now

    result = purge_now(app)
    return {"messages": result.messages, "events": result.events}


def checkpoint_audit(app: Flask) -> Mapping[str, int]:
    """Sign an audit checkpoint at the newest entry, if it has none yet."""
    from vault.audit import chain
    from vault.keyring import keyring

    with database(app).sessions() as db:
        row = chain.checkpoint(db, keyring())
    return {"checkpoints": 0 if row is None else 1}


def intake_retention(app: Flask) -> Mapping[str, int]:
    """Crypto-shred intake reports idle for HAVEN_INTAKE_RETENTION_DAYS (protocol §20.8)."""
    from vault.intake.services import purge
    from vault.storage import store

    with database(app).sessions() as db:
        return {"reports": purge(db, store(app), app.config["HAVEN_INTAKE_RETENTION_DAYS"])}


def prune_runs(app: Flask) -> Mapping[str, int]:
    """Forget job runs older than HAVEN_JOB_RUNS_KEEP_DAYS."""
    keep = timedelta(days=app.config["HAVEN_JOB_RUNS_KEEP_DAYS"])
    with database(app).sessions() as db:
        return {"runs": services.prune(db, keep)}


register("upload_janitor", sweep_uploads, setting="HAVEN_JOB_UPLOADS_SECONDS", default=900)
register("grant_expiry", expire_grants, setting="HAVEN_JOB_GRANTS_SECONDS", default=60)
register("message_purge", purge_messages, setting="HAVEN_MESSAGE_PURGE_SECONDS", default=60)
register("audit_checkpoint", checkpoint_audit, setting="HAVEN_JOB_AUDIT_SECONDS", default=3600)
register("intake_retention", intake_retention, setting="HAVEN_JOB_INTAKE_SECONDS", default=3600)
register("job_runs_prune", prune_runs, setting="HAVEN_JOB_PRUNE_SECONDS", default=86400)
