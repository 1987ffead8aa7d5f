"""Stream reads in rounds: one database read answers every account whose streams need one.

A wake-up names the members of a conversation, and at a hundred messages a second several
wake-ups arrive together, so many accounts' streams need a read at the same moment. The
first of them opens a round and yields once (under gevent the other woken streams run
first and join it), then one read checks every joined account's session and fetches each
account's events after its own cursor; the answer is split per account. Each account
still sees only its own conversations' events, and its session is checked on every read.
At most ``HAVEN_SSE_DB_READERS`` rounds read at once; a round waiting for its turn keeps
gathering accounts.

Each reader keeps its database connection between rounds while the process has streams
(no pool checkout and pre-ping per read). A held connection found broken is dropped and the
round is read once more on a fresh one, which the pool pre-pings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from vault.messages import services
from vault.messages.fanout import Hub
from vault.messages.models import MessageEvent

BATCH = 100
AUTOCOMMIT: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}


class ReadFailed(RuntimeError):
    """The round this stream joined failed to read."""


@dataclass
class Round:
    """The accounts one read answers (account id -> cursor), gathered until it starts."""

    wanted: dict[str, int] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    wake: int = -1  # the hub's wake-up count when the read started
    started: float = 0.0  # time.monotonic() when the read started
    sessions: dict[str, str] = field(default_factory=dict)
    events: dict[str, list[MessageEvent]] = field(default_factory=dict)
    failed: bool = False


class StreamReader:
    """The rounds of one process's streams."""

    def __init__(self, engine: Engine, readers: threading.BoundedSemaphore) -> None:
        self._engine = engine
        self._readers = readers
        self._lock = threading.Lock()
        self._open: Round | None = None  # the round still taking accounts
        self._held: list[Connection] = []  # readers' connections between rounds
        self._closed = False

    def read(self, hub: Hub, user_id: str, after: int) -> Round:
        """A read, started after this call, of the account's session and events after ``after``."""
        with self._lock:
            found = self._open
            lead = found is None
            if found is None:
                found = self._open = Round()
            found.wanted.setdefault(user_id, after)
        if lead:
            self._run(hub, found)
        else:
            found.done.wait()
        if found.failed:
            raise ReadFailed("the stream read failed")
        return found

    def gathering(self) -> set[str]:
        """The accounts of the round still taking accounts (none when no round is)."""
        with self._lock:
            return set(self._open.wanted) if self._open is not None else set()

    def _run(self, hub: Hub, round_: Round) -> None:
        try:
            time.sleep(0)  # let the streams woken with this one join (gevent runs them first)
            with self._readers:
                with self._lock:
                    if self._open is round_:
                        self._open = None  # later streams start the next round
                    round_.wake, round_.started = hub.wakes, time.monotonic()
                self._read(hub, round_)
        except BaseException:
            round_.failed = True
            with self._lock:
                if self._open is round_:
                    self._open = None  # a round that failed before it started takes no one
            raise
        finally:
            round_.done.set()

    def _read(self, hub: Hub, round_: Round) -> None:
        for fresh in (False, True):
            conn = self._connect(fresh)
            try:
                # No transaction (AUTOCOMMIT): each statement reads committed rows as in one
                # (read committed), without a BEGIN and a ROLLBACK.
                with Session(bind=conn) as db:
                    round_.sessions, round_.events = services.stream_read(db, round_.wanted, BATCH)
            except DBAPIError as exc:
                conn.close()
                if fresh or not exc.connection_invalidated:
                    raise
                continue  # the held connection had broken (a restart): once more on a new one
            except BaseException:
                conn.close()
                raise
            with self._lock:
                if hub.count() and not self._closed:
                    self._held.append(conn)
                    return
            conn.close()
            return

    def _connect(self, fresh: bool) -> Connection:
        """A held connection, or a new one from the pool (pre-pinged there)."""
        with self._lock:
            if self._held and not fresh:
                return self._held.pop()
        return self._engine.connect().execution_options(**AUTOCOMMIT)

    def release(self, hub: Hub) -> None:
        """Give the held connections back to the pool once the process has no stream."""
        if not hub.count():
            self.close(keep_reading=True)

    def close(self, keep_reading: bool = False) -> None:
        """Give the held connections back to the pool; hold none from now on unless
        ``keep_reading`` (before the engine is disposed: a connection given back to a
        disposed pool is never closed)."""
        with self._lock:
            held, self._held = self._held, []
            self._closed = self._closed or not keep_reading
        for conn in held:
            conn.close()
