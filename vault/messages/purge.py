"""The purge job: expired disappearing messages and old events are deleted for real.

It runs once when the app is created (a database not yet migrated is skipped) and then
every HAVEN_MESSAGE_PURGE_SECONDS (0 turns the timer off) on a daemon thread of each app
process, with its own connection-less engine so no pooled connection sits idle between
runs. Every process may run it; the deletes are idempotent. Listing never shows an
expired message, so the purge interval bounds how long its ciphertext stays on disk,
not what anyone can read. `haven messages purge` runs it by hand.
"""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import timedelta

from flask import Flask
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from vault.db import database
from vault.messages import services

log = logging.getLogger(__name__)


def retention(app: Flask) -> timedelta:
    """How long events are kept for resuming streams."""
    return timedelta(days=app.config["HAVEN_EVENT_RETENTION_DAYS"])


def purge_now(app: Flask) -> services.PurgeResult:
    """Run one purge on the app's database."""
    with database(app).sessions() as db:
        return services.purge(db, retention(app))


def purge_at_start(app: Flask) -> None:
    """Purge once at start-up; a database without the messaging tables yet is skipped."""
    try:
        result = purge_now(app)
    except (OperationalError, ProgrammingError) as exc:
        log.info("start-up purge skipped: %s", type(exc.orig).__name__)
        return
    if result.messages or result.events:
        log.info("start-up purge: %d messages, %d events", result.messages, result.events)


class Purger:
    """A daemon thread that purges on a timer until stopped or its app is gone."""

    def __init__(self, url: str, interval: float, keep: timedelta) -> None:
        self.url = url
        self.interval = interval
        self.keep = keep
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="haven-purge", daemon=True)

    def start(self) -> None:
        """Start the timer."""
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current run."""
        self.stopped.set()

    def _engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            return create_engine(
                self.url,
                poolclass=NullPool,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
        return create_engine(self.url, poolclass=NullPool)

    def _run(self) -> None:
        engine = self._engine()
        try:
            while not self.stopped.wait(self.interval):
                try:
                    with Session(engine, expire_on_commit=False) as db:
                        services.purge(db, self.keep)
                except Exception:
                    log.exception("message purge failed; retrying in %.0f s", self.interval)
        finally:
            engine.dispose()


def start_purger(app: Flask) -> Purger | None:
    """Start the periodic purge for this app unless HAVEN_MESSAGE_PURGE_SECONDS is 0."""
    interval = app.config["HAVEN_MESSAGE_PURGE_SECONDS"]
    if not interval:
        return None
    purger = Purger(app.config["HAVEN_DATABASE_URL"], float(interval), retention(app))
    weakref.finalize(app, purger.stop)
    purger.start()
    return purger
