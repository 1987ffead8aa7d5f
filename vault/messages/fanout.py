"""Wake-ups for event streams: in-process by default, Redis pub/sub across processes.

A publish names the accounts that have new events and nothing else; each stream then
reads the events themselves from the database, so a lost wake-up costs latency (the
stream re-reads every ``HAVEN_SSE_RECHECK_SECONDS``), never an event. With HAVEN_REDIS_URL
set, every app process (gunicorn worker or instance) subscribes to one channel from one
listener thread, started on the first stream in that process and stopped after a minute
without streams, and publishes from one publisher thread, so no request waits on Redis.
In the event tier gunicorn's gevent worker has monkey-patched threading
and sockets before the app loads, so the same listener, locks and wake-up flags are
greenlets and gevent primitives there: one listener per process, cooperative, fanning
each wake-up out to thousands of streams.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import redis

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "haven:message-events"
IDLE_STOP_SECONDS = 60.0


class Beacon:
    """The wake-up flag an account's streams in this process share: a wake-up sets one
    event however many streams the account has open, and each stream tells by the number
    whether it has news."""

    def __init__(self) -> None:
        self.number = 0  # the latest wake-up of the hub that named this account
        self._event = threading.Event()

    def wake(self, number: int) -> None:
        """Mark wake-up ``number`` and wake every stream of the account."""
        self.number = number  # before the swap: a stream that takes the new event sees it
        self.stir()

    def stir(self) -> None:
        """End every current wait of the account's streams (each looks whether it has news)."""
        event, self._event = self._event, threading.Event()
        event.set()

    def event(self) -> threading.Event:
        """The event the next wake-up sets."""
        return self._event


class Subscription:
    """One stream's view of its account's wake-up flag."""

    def __init__(self, hub: Hub, user_id: str, beacon: Beacon) -> None:
        self.hub = hub
        self.user_id = user_id
        self.beacon = beacon
        self.woken_by = 0  # the number of the latest wake-up that reached this stream
        self._seen = beacon.number  # wake-ups before the stream subscribed are not its own

    def nudge(self) -> None:
        """End the current wait early without a wake-up (the stream's socket stirred). The
        account's other streams wake too, find no news and wait again: a hang-up is rare."""
        self.beacon.stir()

    def wait(self, timeout: float) -> bool:
        """Block until woken or nudged or ``timeout`` seconds pass; True when woken."""
        # The number, not wait()'s answer, says whether a wake-up came: gevent's wait answers
        # False when its timeout and a set() land in the same loop turn. The event is taken
        # before the number is looked at, so a wake-up in between sets the event taken.
        event = self.beacon.event()
        if self.beacon.number == self._seen:
            event.wait(timeout)
        if self.beacon.number == self._seen:
            return False
        self._seen = self.woken_by = self.beacon.number
        return True

    def close(self) -> None:
        """Stop receiving wake-ups."""
        self.hub.remove(self)


class Hub:
    """The streams open in this process, by account, and what they share per account."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}
        self._beacons: dict[str, Beacon] = {}  # one per account with a stream open
        self._shared: dict[str, Any] = {}
        self._open = 0  # streams open: asked on every stream read and every wake-up heard
        self.wakes = 0  # wake-ups so far; each is numbered, in order

    def shared(self, user_id: str, make: Callable[[], T]) -> T:
        """The object the streams of one account share, made on first use and dropped with
        the account's last stream."""
        with self._lock:
            found = self._shared.get(user_id)
            if found is None:
                found = self._shared[user_id] = make()
            return cast(T, found)

    def subscribe(self, user_id: str) -> Subscription:
        """Register a stream for an account."""
        with self._lock:
            beacon = self._beacons.get(user_id)
            if beacon is None:
                beacon = self._beacons[user_id] = Beacon()
            sub = Subscription(self, user_id, beacon)
            self._subs.setdefault(user_id, set()).add(sub)
            self._open += 1
        return sub

    def remove(self, sub: Subscription) -> None:
        """Forget a stream."""
        with self._lock:
            subs = self._subs.get(sub.user_id)
            if subs is not None and sub in subs:
                subs.discard(sub)
                self._open -= 1
                if not subs:
                    del self._subs[sub.user_id]
                    del self._beacons[sub.user_id]
                    self._shared.pop(sub.user_id, None)

    def wake(self, user_ids: Iterable[str]) -> None:
        """Wake every local stream of these accounts: one flag per account."""
        with self._lock:
            self.wakes += 1
            for beacon in [b for uid in user_ids if (b := self._beacons.get(uid)) is not None]:
                beacon.wake(self.wakes)  # under the lock: an account's numbers only grow

    def wake_all(self) -> None:
        """Wake every local stream (after a gap in which wake-ups may have been lost)."""
        with self._lock:
            self.wakes += 1
            for beacon in self._beacons.values():
                beacon.wake(self.wakes)

    def count(self) -> int:
        """How many streams are open."""
        with self._lock:
            return self._open


class LocalFanout:
    """The embedded default: one process, wake-ups delivered in memory."""

    def __init__(self) -> None:
        self.hub = Hub()

    def publish(self, user_ids: Iterable[str]) -> None:
        """Wake these accounts' streams in this process."""
        self.hub.wake(list(user_ids))

    def subscribe(self, user_id: str) -> Subscription:
        """Open a wake-up flag for an account's stream."""
        return self.hub.subscribe(user_id)


class RedisFanout:
    """Wake-ups through one Redis pub/sub channel shared by every app process."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.url = url
        self.channel = channel
        self.hub = Hub()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._client: redis.Redis | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pending: set[str] = set()
        self._wanted = threading.Event()
        self._publisher: threading.Thread | None = None

    def _after_fork(self) -> None:
        """A forked worker starts with no streams, no client and no threads of its own."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self.hub = Hub()
            self._client = None
            self._thread = None
            self._lock = threading.Lock()
            self._pending = set()
            self._wanted = threading.Event()
            self._publisher = None

    def _redis(self) -> redis.Redis:
        self._after_fork()
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
            )
        return self._client

    def publish(self, user_ids: Iterable[str]) -> None:
        """Queue a wake-up for these accounts; this process's publisher thread announces it
        to every process, merged with any others waiting. Never fails or holds a request."""
        ids = set(user_ids)
        if not ids:
            return
        self._after_fork()
        if self._stop.is_set():  # closed: no thread or connection is started again
            self.hub.wake(list(ids))
            return
        with self._lock:
            self._pending |= ids
            if self._publisher is None or not self._publisher.is_alive():
                self._publisher = threading.Thread(
                    target=self._publish_pending, name="haven-fanout-publish", daemon=True
                )
                self._publisher.start()
        self._wanted.set()

    def _publish_pending(self) -> None:
        """Publish the waiting wake-ups, as one message, until closed."""
        while True:
            self._wanted.wait()
            self._wanted.clear()  # before taking: a wake-up queued after the take sets it again
            with self._lock:
                ids, self._pending = sorted(self._pending), set()
            if ids:
                self._send(ids)
            if self._stop.is_set():
                return

    def _send(self, ids: list[str]) -> None:
        """Publish one wake-up; if Redis fails, wake this process's streams at least."""
        try:
            self._redis().publish(self.channel, json.dumps(ids))
        except redis.RedisError as exc:
            # The events are committed; streams find them at their next heartbeat.
            log.warning("fan-out publish failed: %s", type(exc).__name__)
            self.hub.wake(ids)

    def subscribe(self, user_id: str) -> Subscription:
        """Open a wake-up flag and make sure this process listens to the channel."""
        self._after_fork()
        sub = self.hub.subscribe(user_id)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._listen, name="haven-fanout", daemon=True
                )
                self._thread.start()
        return sub

    def close(self) -> None:
        """Stop the listener thread and the publisher (after what it holds), and drop the
        publishing connection."""
        self._stop.set()
        self._wanted.set()
        for thread in (self._thread, self._publisher):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        if self._client is not None:
            self._client.close()
            self._client = None

    def _listen(self) -> None:
        backoff = 0.5
        idle_since: float | None = None
        while not self._stop.is_set():
            client = redis.Redis.from_url(
                self.url, socket_connect_timeout=5, health_check_interval=30
            )
            pubsub: Any = None
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self.channel)
                # Anything published before the subscription took hold was missed.
                self.hub.wake_all()
                backoff = 0.5
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.hub.wake(_decode(message.get("data")))
                    if self.hub.count():
                        idle_since = None
                        continue
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > IDLE_STOP_SECONDS and self._stop_if_idle():
                        return
            except redis.RedisError as exc:
                log.warning("fan-out listener lost Redis: %s", type(exc).__name__)
                self.hub.wake_all()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                try:
                    if pubsub is not None:
                        pubsub.close()
                    client.close()
                except redis.RedisError:
                    pass

    def _stop_if_idle(self) -> bool:
        with self._lock:
            if self.hub.count():
                return False
            self._thread = None
            return True


def _decode(data: Any) -> list[str]:
    try:
        ids = json.loads(data)
    except (TypeError, ValueError):
        return []
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, str)]


Fanout = LocalFanout | RedisFanout


def make_fanout(redis_url: str | None) -> Fanout:
    """Redis pub/sub when a URL is configured, in-process otherwise."""
    return RedisFanout(redis_url) if redis_url else LocalFanout()
