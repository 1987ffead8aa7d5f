"""Stream reads in rounds: one database read answers every account whose streams need one.

A wake-up names the members of a conversation, and at a hundred messages a second several
wake-ups arrive together, so many accounts' streams need a read at the same moment. The
first of them opens a round and yields once (under gevent the other woken streams run
first and join it), then one read checks every joined account's session and fetches each
account's events after its own cursor; the answer is split per account. Each account
still sees only its own conversations' events, and its session is checked on every read.
At most ``HAVEN_SSE_DB_READERS`` rounds read at once; a round waiting for its turn keeps
gathering accounts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from vault.accounts import services as accounts
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

    def __init__(
        self, sessions: sessionmaker[Session], readers: threading.BoundedSemaphore
    ) -> None:
        self._sessions = sessions
        self._readers = readers
        self._lock = threading.Lock()
        self._open: Round | None = None  # the round still taking accounts

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

    def _run(self, hub: Hub, round_: Round) -> None:
        time.sleep(0)  # let the streams woken with this one join (gevent runs them first)
        try:
            with self._readers:
                with self._lock:
                    if self._open is round_:
                        self._open = None  # later streams start the next round
                    round_.wake, round_.started = hub.wakes, time.monotonic()
                with self._sessions() as db:
                    # No transaction: each statement reads committed rows as in one (read
                    # committed), without a BEGIN and a ROLLBACK.
                    db.connection(execution_options=AUTOCOMMIT)
                    round_.sessions = accounts.valid_session_ids(db, round_.wanted)
                    round_.events = services.events_after_many(db, round_.wanted, BATCH)
        except BaseException:
            round_.failed = True
            raise
        finally:
            round_.done.set()
