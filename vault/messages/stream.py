"""Server-sent events: each account's stream of event ids, resumable with Last-Event-ID.

The stream holds no database connection while it waits: each read re-checks the account's
session and reads the next events, in a round with the other accounts reading at that
moment (reads.py). A stream reads when woken (fanout.py) and otherwise only every
``HAVEN_SSE_RECHECK_SECONDS`` (spread at random over ±20 %), so idle streams cost
heartbeats on the socket, not database work; the event tier (docs/deploy.md) holds
thousands of them per process under gevent. The streams of one account in a process woken
by the same wake-up share one read and its frames (SharedRead): an account with twenty open
pages costs one query and one sealed cursor per event, not twenty. Event ids on the wire
are sealed cursors (the global event number under the server data key, bound to the
account), so a client learns nothing about other people's traffic from them.
"""

from __future__ import annotations

import json
import logging
import math
import random
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from flask import Flask

from vault.db import database
from vault.keyring import Keyring, KeyringError
from vault.messages import services
from vault.messages.fanout import Fanout, Subscription
from vault.messages.models import MessageEvent
from vault.messages.reads import BATCH, Round, StreamReader
from vault.ops import metrics
from vault.protocol import serverdata
from vault.protocol.encoding import EncodingError, b64decode, b64encode

log = logging.getLogger(__name__)

RETRY_MS = 3000
CURSOR_KIND = "event-cursor/"
# How often a waiting stream looks whether its client went away (not a write: a look).
GONE_CHECK_SECONDS = 1.0


def cursor_token(ring: Keyring, user_id: str, seq: int) -> str:
    """Seal an event number for one account."""
    version = ring.current_version("data")
    sealed = serverdata.seal_identifier(
        ring.current("data"), version, CURSOR_KIND + user_id, str(seq)
    )
    return b64encode(sealed)


def read_cursor(ring: Keyring, user_id: str, token: str) -> int | None:
    """The event number in a cursor this server sealed for this account, or None."""
    try:
        sealed = b64decode(token)
        key = ring.get("data", serverdata.sealed_version(sealed))
        text = serverdata.open_identifier(key, CURSOR_KIND + user_id, sealed)
    except (EncodingError, serverdata.SealError, KeyringError):
        return None
    return int(text) if text.isdigit() else None


class StreamSlots:
    """A cap on concurrent streams per process, so streams cannot starve other requests,
    and on how many of them read the database at once, so thousands of streams woken
    together queue here instead of exhausting the connection pool."""

    def __init__(self, limit: int, readers: int = 8) -> None:
        self._sem = threading.BoundedSemaphore(limit)
        self.reads = threading.BoundedSemaphore(readers)

    def acquire(self) -> bool:
        """Take a slot if one is free."""
        taken = self._sem.acquire(blocking=False)
        if taken:
            metrics.stream_opened()
        return taken

    def release(self) -> None:
        """Give a slot back."""
        self._sem.release()
        metrics.stream_closed()


def client_gone(sock: socket.socket | None) -> bool:
    """Whether the client closed or reset the connection (it sends nothing after its request)."""
    if sock is None:
        return False
    # poll first: under the event tier's gevent worker a recv on a socket with nothing to
    # read waits for data even with MSG_DONTWAIT, so only a readable socket is read.
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False  # nothing to read, no hang-up: still there
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):  # reset, or already closed
        return True


def _gevent_hub() -> Any | None:
    """gevent's hub when gevent has patched this process's sockets (the event tier), else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return None
    return sys.modules["gevent"].get_hub()


class GoneWatch:
    """Whether a stream's client has gone, looked at only when it may have.

    Under gevent (the event tier) a watcher on the socket's readability nudges the stream's
    wait: a hang-up is seen at once, and an idle stream costs no wake-up every
    GONE_CHECK_SECONDS (at ten thousand streams those wake-ups alone filled a core).
    Elsewhere, or once a client has sent bytes after its request (the watcher would then
    fire on every loop turn), the stream looks every GONE_CHECK_SECONDS as before."""

    def __init__(self, sock: socket.socket | None, sub: Subscription) -> None:
        self.sock = sock
        self._stirred = False
        self._watcher: Any = None
        hub = _gevent_hub()
        if sock is None or hub is None:
            return
        try:
            watcher = hub.loop.io(sock.fileno(), 1)  # 1: readable (libev's EV_READ)
        except (OSError, ValueError):
            return

        def stir() -> None:
            self._stirred = True
            sub.nudge()

        watcher.start(stir)
        self._watcher = watcher

    @property
    def period(self) -> float | None:
        """How often a waiting stream must look itself; None while the watcher looks."""
        return None if self._watcher is not None else GONE_CHECK_SECONDS

    def gone(self) -> bool:
        """Whether the client closed or reset the connection."""
        if self._watcher is None:
            return client_gone(self.sock)
        if not self._stirred:
            return False
        self._stirred = False
        if client_gone(self.sock):
            return True
        self.close()  # readable, not closed: look every GONE_CHECK_SECONDS from now on
        return False

    def close(self) -> None:
        """Stop watching the socket (before it is closed)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()


class SharedRead:
    """The last read of one account's streams in this process, shared by its streams woken
    by the same wake-up: one database read for all of them instead of one each.

    A read answers a stream woken by wake-up number ``w`` if it started after that wake-up
    (``wake >= w``: everything committed before the wake was published is in it) and covers
    the stream's position (it read from at or before it, and did not stop at a full batch
    at or before it). A stream's periodic re-read is answered, the same way, by a read that
    started after ``since``: the account's streams then share their periodic re-reads too,
    and each stream is still covered by a read at most a period (±20 %) old."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = -1  # the hub's wake-up count when the read started
        self.started = -math.inf  # time.monotonic() when the read started
        self.after = 0
        self.events: list[MessageEvent] = []
        self.valid_session: str | None = None
        self._frames: dict[int, str] = {}  # the events' frames, each sealed once (§9.9)

    def covers(self, woken_by: int | None, position: int, since: float) -> bool:
        """Whether this read answers a stream at ``position`` woken by ``woken_by`` (None: a
        periodic re-read, answered by a read started after ``since``)."""
        if woken_by is None and self.started < since:
            return False
        if woken_by is not None and self.wake < woken_by:
            return False
        if position < self.after:
            return False
        full = len(self.events) == BATCH
        return not full or position < self.events[-1].seq

    def take(self, found: Round, user_id: str) -> None:
        """Keep the account's part of a round's read."""
        self.wake, self.started, self.after = found.wake, found.started, found.wanted[user_id]
        self.events = found.events.get(user_id, [])
        self.valid_session = found.sessions.get(user_id)
        self._frames = {}

    def answer(
        self, ring: Keyring, user_id: str, session_id: str, position: int
    ) -> tuple[bool, list[tuple[int, str]]]:
        """(session still valid, the frames after ``position``), each sealed once per account."""
        if session_id != self.valid_session:
            return False, []
        frames = []
        for event in self.events:
            if event.seq > position:
                frame = self._frames.get(event.seq)
                if frame is None:
                    token = cursor_token(ring, user_id, event.seq)
                    frame = self._frames[event.seq] = _frame(
                        event.kind.value, token, event_data(event)
                    )
                frames.append((event.seq, frame))
        return True, frames


def _frame(kind: str, token: str, data: dict[str, Any]) -> str:
    return f"id: {token}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def event_data(event: MessageEvent) -> dict[str, Any]:
    """What an event says: ids and the conversation's message number, never content."""
    data: dict[str, Any] = {"conversation_id": event.conversation_id}
    if event.message_id is not None:
        data["message_id"] = event.message_id
        data["seq"] = event.message_seq
    return data


class EventStream:
    """The response body of one stream; WSGI servers call close() when it ends."""

    def __init__(
        self,
        app: Flask,
        user_id: str,
        session_id: str,
        cursor: str | None,
        deadline: float,
        release: Callable[[], None],
        sock: socket.socket | None = None,
    ) -> None:
        self.app = app
        self.sock = sock
        self.user_id = user_id
        self.session_id = session_id
        self.cursor = cursor
        self.deadline = deadline
        self._release: Callable[[], None] | None = release
        self._gen = self._events()

    def __iter__(self) -> Iterator[str]:
        return self._gen

    def close(self) -> None:
        """End the stream and give back its slot (once)."""
        self._gen.close()
        release, self._release = self._release, None
        if release is not None:
            release()

    def _events(self) -> Generator[str, None, None]:
        ring: Keyring = self.app.extensions["haven.keyring"]
        fanout: Fanout = self.app.extensions["haven.fanout"]
        heartbeat = float(self.app.config["HAVEN_SSE_HEARTBEAT_SECONDS"])
        recheck = float(self.app.config["HAVEN_SSE_RECHECK_SECONDS"])
        reads = self.app.extensions["haven.stream_slots"].reads
        reader: StreamReader = self.app.extensions["haven.stream_reader"]
        sessions = database(self.app).sessions
        sub = fanout.subscribe(self.user_id)
        shared = sub.hub.shared(self.user_id, SharedRead)
        watch = GoneWatch(self.sock, sub)
        subscribed = time.monotonic()  # a read started later misses nothing without a wake-up
        try:
            cursor = read_cursor(ring, self.user_id, self.cursor) if self.cursor else None
            with reads, sessions() as db:
                start = services.stream_start(db, cursor)
            position = start.position
            yield f"retry: {RETRY_MS}\n\n"
            kind = "resync" if start.is_resync or (self.cursor and cursor is None) else "ready"
            yield _frame(kind, cursor_token(ring, self.user_id, position), {})
            # A stream resumed from a cursor reads what it missed at once. One that starts now
            # has nothing to read yet: its request just checked the session, and anything
            # committed after stream_start wakes it (it subscribed before). So its first read
            # waits for a wake-up or its periodic re-read: opening costs one read, not two.
            resumed = cursor is not None and not start.is_resync
            due = 0.0 if resumed else time.monotonic() + _spread(recheck)
            woken_by: int | None = None  # None: a periodic re-read
            while time.monotonic() < self.deadline:
                if time.monotonic() >= due:
                    with shared.lock:
                        now = time.monotonic()
                        since = max(now - 0.8 * recheck, subscribed)
                        if not shared.covers(woken_by, position, since):
                            shared.take(reader.read(sub.hub, self.user_id, position), self.user_id)
                        alive, frames = shared.answer(ring, self.user_id, self.session_id, position)
                        more = len(shared.events) == BATCH  # the read stopped at a full batch
                        answered = shared.started
                    if not alive:
                        yield _frame("end", cursor_token(ring, self.user_id, position), {})
                        return
                    if frames:
                        # One write for all the frames of a read: one send on the socket.
                        position = frames[-1][0]
                        yield "".join(frame for _, frame in frames)
                    if more:
                        continue
                    # The next periodic re-read is due a period after the read that answered.
                    due = answered + _spread(recheck)
                    woken_by = None
                wait = min(heartbeat, max(0.0, self.deadline - time.monotonic()))
                woken = _wait(sub, watch, wait)
                if woken is None:
                    return  # the client left: end now, not at a later write that fails
                if woken:
                    due, woken_by = 0.0, sub.woken_by
                else:
                    yield ": keepalive\n\n"
        finally:
            watch.close()
            sub.close()
            reader.release(sub.hub)


def _spread(seconds: float) -> float:
    """A periodic re-read's delay, spread so many streams' re-reads spread over the period."""
    return seconds * random.uniform(0.8, 1.2)  # noqa: S311


def _wait(sub: Subscription, watch: GoneWatch, seconds: float) -> bool | None:
    """Wait for a wake-up up to ``seconds``; None as soon as the client has gone."""
    until = time.monotonic() + seconds
    while True:
        if watch.gone():
            return None
        left = until - time.monotonic()
        if left <= 0:
            return False
        period = watch.period
        if sub.wait(left if period is None else min(left, period)):
            return True
