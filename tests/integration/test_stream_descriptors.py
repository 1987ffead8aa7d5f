"""Event streams give back every socket they use (issue 12, the soak's growing descriptors).

The production gunicorn (HavenWorker, 2 workers) with live delivery through the real Redis:
many event streams are opened and closed, and the workers' open file descriptors must come
back to what they were once the streams ended. The fan-out listener (one Redis pub/sub
connection per worker, vault/messages/fanout.py) is already running at the baseline and
may stop after its documented idle minute, so the end may be below the baseline, never above.
Connections to PostgreSQL are left out of the count: the pool keeps up to its size open
(vault/db.py), however many streams read through it; the soak checks that bound.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import PASSPHRASE
from tests.integration import test_production
from tests.integration.test_production import Gunicorn, _admin_invite, proxied_client
from vault.client import ApiError, HavenClient
from vault.client.messages import Messenger, parse_events

production = test_production.production  # the production gunicorn fixture, reused

ROUNDS = 40
METRIC_FILE = re.compile(r"/(counter|gauge_[a-z]+|histogram|summary)_\d+\.db$")
SETTLE = 90.0  # seconds to wait for the streams to end: "at all", not a timing assertion
SLOT_WAIT = 60.0  # seconds to wait for a free stream slot: "at all", as before (240 x 0.25 s)
STILL = 2.0  # seconds the descriptors hold still before they count as a baseline
LOOK = 0.5  # seconds between looks (a look reads /proc of every worker)


@pytest.fixture
def quick_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream notices its closed connection at its next heartbeat (1 s), and ends by
    itself after 5 s (the shortest allowed) as every stream does after HAVEN_SSE_MAX_SECONDS."""
    monkeypatch.setenv("HAVEN_SSE_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("HAVEN_SSE_MAX_SECONDS", "5")


def _workers(master: int) -> list[int]:
    text = Path(f"/proc/{master}/task/{master}/children").read_text()
    return [int(pid) for pid in text.split()]


def _descriptors(master: int, database_port: int) -> Counter[str]:
    """The workers' open descriptors: TCP sockets by remote port and state, and the rest."""
    found: Counter[str] = Counter()
    for pid in _workers(master):
        tcp: dict[str, str] = {}
        database: set[str] = set()
        for table in ("tcp", "tcp6"):
            path = Path(f"/proc/{pid}/net/{table}")
            for line in path.read_text().splitlines()[1:] if path.exists() else []:
                fields = line.split()
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                if remote == database_port:
                    database.add(fields[9])
                else:
                    tcp[fields[9]] = f"tcp to {remote} ({fields[3]})" if remote else "listening"
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    if target[8:-1] not in database:
                        found[tcp.get(target[8:-1], "other sockets")] += 1
                elif METRIC_FILE.search(target):
                    # prometheus-client's per-process sample files: one per metric type, opened
                    # the first time a worker writes that type, and kept. Bounded, not a leak.
                    found["metric files"] += 1
                else:
                    found["files and pipes"] += 1
    return found


def _leakable(counts: Counter[str]) -> int:
    """Descriptors that could leak with each stream (everything but metric files)."""
    return sum(n for kind, n in counts.items() if kind != "metric files")


def _open(client: HavenClient) -> requests.Response:
    """Open a stream, asking again soon while no slot is free (a dropped one frees within 1 s)."""
    deadline = time.monotonic() + SLOT_WAIT
    while time.monotonic() < deadline:
        try:
            return Messenger(client).connect_events(read_timeout=30)
        except ApiError as exc:
            if exc.code != "busy":
                raise
        time.sleep(0.05)
    raise AssertionError("no stream slot came free")


def _follow_to_end(client: HavenClient) -> list[str]:
    """Read a stream until the server ends it, then close the client; the kinds of its events."""
    with _open(client) as response:
        kinds = [e.kind for e in parse_events(response.iter_lines(decode_unicode=True))]
    # Its connection, kept alive after the stream ended, is the client's doing: the server
    # would close it only after its keep-alive seconds.
    client.http.close()
    return kinds


def _open_and_drop(client: HavenClient) -> None:
    """Open a stream, read its first event, then drop the connection as a closed tab does."""
    response = _open(client)
    events = parse_events(response.iter_lines(decode_unicode=True))
    assert next(events).kind in {"ready", "resync"}
    raw: Any = response.raw
    with contextlib.suppress(AttributeError, OSError):
        raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
    response.close()


def test_closed_event_streams_leave_no_descriptors_behind(
    quick_heartbeat: None, production: tuple[Gunicorn, dict[str, str], str]
) -> None:
    server, settings, _ = production
    assert server.proc is not None
    master = server.proc.pid
    port = int(urlsplit(settings["HAVEN_DATABASE_URL"]).port or 5432)
    counsel = proxied_client(server.url)
    counsel.register(_admin_invite(settings), "streams-counsel", PASSPHRASE)
    # Warm up: every worker has served a stream (its listener runs) and a plain request.
    for _ in range(6):
        _open_and_drop(counsel)
        assert counsel.cases() == []
    counsel.http.close()  # the client's own kept-alive connections are not the server's doing
    before = _settled(master, port, None)

    def fresh() -> HavenClient:
        client = proxied_client(server.url)
        client.http.cookies.update(counsel.http.cookies)
        return client

    for _ in range(ROUNDS):
        client = fresh()
        _open_and_drop(client)
        client.http.close()
    # Streams the server ends (after HAVEN_SSE_MAX_SECONDS), followed by their clients: as
    # many clients as streams, so a slot freed on either worker is taken at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        ends = list(pool.map(lambda _: _follow_to_end(fresh()), range(8)))
    assert all(kinds and kinds[0] in {"ready", "resync"} for kinds in ends), ends
    after = _settled(master, port, before)
    assert _leakable(after) <= _leakable(before), (before, after)


def _settled(master: int, port: int, target: Counter[str] | None) -> Counter[str]:
    """The descriptors once they held still STILL seconds, or given a target, once within it."""
    deadline = time.monotonic() + SETTLE
    now, since = _descriptors(master, port), time.monotonic()
    while time.monotonic() < deadline:
        if target is not None and _leakable(now) <= _leakable(target):
            return now
        time.sleep(LOOK)
        then, now = now, _descriptors(master, port)
        if now != then:
            since = time.monotonic()
        elif target is None and time.monotonic() - since >= STILL:
            return now
    return now


@pytest.fixture
def slow_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats (the writes that would fail on a closed connection) far beyond the test."""
    monkeypatch.setenv("HAVEN_SSE_HEARTBEAT_SECONDS", "600")
    monkeypatch.setenv("HAVEN_SSE_MAX_SECONDS", "600")


def test_a_dropped_stream_ends_without_waiting_for_its_heartbeat(
    slow_heartbeat: None, production: tuple[Gunicorn, dict[str, str], str]
) -> None:
    server, settings, _ = production
    assert server.proc is not None
    master = server.proc.pid
    port = int(urlsplit(settings["HAVEN_DATABASE_URL"]).port or 5432)
    counsel = proxied_client(server.url)
    counsel.register(_admin_invite(settings), "dropped-counsel", PASSPHRASE)
    for _ in range(4):
        _open_and_drop(counsel)
        assert counsel.cases() == []
    counsel.http.close()
    before = _settled(master, port, None)
    for _ in range(6):
        client = proxied_client(server.url)
        client.http.cookies.update(counsel.http.cookies)
        _open_and_drop(client)
        client.http.close()
    after = _settled(master, port, before)
    assert _leakable(after) <= _leakable(before), (before, after)
