"""Live streams held by the event tier, beside today's gthread design (the baseline).

Each design runs against its own PostgreSQL database, one Redis and an app tier (gunicorn,
gthread, vault/gunicorn_conf.py's defaults, ``HAVEN_TIER=app`` beside the event tier) that
takes the sends:

- event tier: one gunicorn process, one gevent worker (vault/gunicorn_events.py);
- baseline: today's single tier, gunicorn gthread with 2 workers x 8 threads serving the
  stream itself (``HAVEN_SSE_MAX_STREAMS`` 4 per worker; clients beyond get 503 and poll).

An asyncio client (aiohttp, one process) opens ``STREAMS`` streams spread over the accounts
of ``PAIRS`` cases (a survivor and a counsel each, ``STREAMS / (2 * PAIRS)`` streams per
account, as several open pages would) and counts the streams that answered ``ready`` and are
still open at the end. It then holds them idle for ``IDLE_SECONDS`` while counting the
database's committed transactions (the per-stream re-reads), and then sends ``RATE``
messages per second for ``SEND_SECONDS`` through the app tier, round robin over the
cases. Send-to-receipt latency runs from just before the POST to the message's arrival on
every open stream of the case's counsel. RSS is the tier's (gunicorn master and workers)
after the sends. Everything is bounded in count and time; loopback only.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from tests.bench.bench_messages import Pair, _percentile
from tests.bench.harness import Services, emit, log
from tests.integration.event_tier import EventTierProcess
from tests.integration.messages_fixtures import AppProcess
from vault import create_app, migrate
from vault.db import database

STREAMS = int(os.environ.get("HAVEN_BENCH_STREAMS", "10000"))
PAIRS = int(os.environ.get("HAVEN_BENCH_STREAM_PAIRS", "250"))
RATE = 100  # messages per second
SEND_SECONDS = 10
IDLE_SECONDS = 30
OPEN_CONCURRENCY = 16
OPEN_SECONDS = 600  # give up opening after this long
BASELINE_STREAMS = 64  # offered to the gthread design; it holds what its cap allows
BASELINE_PAIRS = 8


def _settings(services: Services, root: Path, label: str) -> dict[str, str]:
    name = f"bench_events_{label}_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url(name)
    migrate.upgrade(url)
    return {
        "HAVEN_DATABASE_URL": url,
        "HAVEN_KEYS_DIR": str(root / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_REDIS_URL": services.redis.url,
        "HAVEN_LIMIT_MESSAGE_SEND": "1000000/minute",
        "HAVEN_SERVER_HASH_OPSLIMIT": "1",
        "HAVEN_SERVER_HASH_MEMLIMIT": "8192",
        "HAVEN_MESSAGE_PURGE_SECONDS": "0",
        "HAVEN_SSE_MAX_SECONDS": "1800",
    }


@dataclass
class Streams:
    """What the client saw on its streams."""

    ready: int = 0
    refused: int = 0
    ended: int = 0
    live: dict[str, int] = field(default_factory=dict)  # account id -> open streams
    # message id -> perf_counter arrival times on the streams of its recipient
    arrivals: dict[str, list[float]] = field(default_factory=dict)


async def _follow(
    http: aiohttp.ClientSession,
    url: str,
    who: str,
    cookie: str,
    seen: Streams,
    opened: asyncio.Semaphore,
    stop: asyncio.Event,
) -> None:
    """Open one stream and record ready, message arrivals and its end."""
    async with opened:
        try:
            response = await http.get(
                url, headers={"Accept": "text/event-stream", "Cookie": cookie}
            )
        except (TimeoutError, aiohttp.ClientError):
            seen.refused += 1
            return
        if response.status != 200:
            seen.refused += 1
            response.release()
            return
        first = await response.content.readline()  # "retry: ..."
        if not first:
            seen.refused += 1
            return
    # Whole chunks split into frames with bytes methods, not a readline per line: at ten
    # thousand streams a reader per line costs the client more CPU than the tier it measures.
    is_ready = False
    rest = b""
    try:
        async for chunk in response.content.iter_any():
            if stop.is_set():
                break
            at = time.perf_counter()
            frames = (rest + chunk).split(b"\n\n")
            rest = frames.pop()  # an unfinished frame waits for the next chunk
            for frame in frames:
                if not is_ready:
                    if b"\nevent: ready\n" in frame or b"\nevent: resync\n" in frame:
                        is_ready = True
                        seen.ready += 1
                        seen.live[who] = seen.live.get(who, 0) + 1
                elif b"\nevent: message\n" in frame:
                    mid = frame.split(b'"message_id":"', 1)[1].split(b'"', 1)[0].decode()
                    seen.arrivals.setdefault(mid, []).append(at)
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        pass
    finally:
        if is_ready and not stop.is_set():
            seen.ended += 1
            seen.ready -= 1
            seen.live[who] -= 1
        response.close()


def _xacts(dsn: str) -> int:
    with psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        return int(row[0])


def _rss_bytes(pid: int) -> int:
    """RSS of a process and its children (gunicorn master and workers)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except FileNotFoundError:
            continue
        pids.extend(int(c) for c in children)
    return total


@dataclass
class Result:
    """One design's figures."""

    ramp_seconds: float
    sent: int
    failed: int
    held: int
    p99_ms: float
    p50_ms: float
    store_p99_ms: float
    receipts: int
    missing: int
    rss_bytes: int
    idle_xacts_per_second: float


async def _drive(
    stream_url: str,
    app_url: str,
    pairs: list[Pair],
    streams: int,
    dsn: str,
    tier_pid: int,
) -> Result:
    seen = Streams()
    stop = asyncio.Event()
    cookies = {
        person: f"{name}={value}"
        for pair in pairs
        for person, (name, value) in pair.cookies.items()
    }
    people = list(cookies)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        opened = asyncio.Semaphore(OPEN_CONCURRENCY)
        url = f"{stream_url}/api/v1/events"
        tasks = [
            asyncio.create_task(
                _follow(
                    http,
                    url,
                    people[i % len(people)],
                    cookies[people[i % len(people)]],
                    seen,
                    opened,
                    stop,
                )
            )
            for i in range(streams)
        ]
        began = time.monotonic()
        while seen.ready + seen.refused + seen.ended < streams:
            if time.monotonic() - began > OPEN_SECONDS:
                break
            await asyncio.sleep(1)
            if int(time.monotonic() - began) % 30 == 0:
                log(f"bench event tier: {seen.ready} streams ready, {seen.refused} refused")
        ramp = time.monotonic() - began
        log(f"bench event tier: {seen.ready} streams ready in {ramp:.0f} s")

        x0, t0 = await asyncio.to_thread(_xacts, dsn), time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        x1, t1 = await asyncio.to_thread(_xacts, dsn), time.monotonic()
        # Per thousand open streams, so designs holding different numbers compare.
        idle_rate = (x1 - x0) / (t1 - t0) / max(1, seen.ready) * 1000

        bodies = {
            pair.cid: pair.envelopes(pair.survivor, 1 + RATE * SEND_SECONDS // len(pairs))
            for pair in pairs
        }
        sessions = {pair.cid: cookies[pair.survivor.id] for pair in pairs}
        sent: dict[str, tuple[float, str]] = {}  # message id -> (t0, counsel id)
        stored: dict[str, float] = {}  # message id -> when the 201 arrived
        failures: list[str] = []

        async def send(pair: Pair) -> None:
            body = bodies[pair.cid].pop()
            at = time.perf_counter()
            try:
                async with poster.post(
                    f"{app_url}/api/v1/conversations/{pair.cid}/messages",
                    json=body,
                    headers={"Cookie": sessions[pair.cid]},
                ) as response:
                    if response.status != 201:
                        failures.append(f"{response.status}")
                        return
                    mid = (await response.json())["message"]["id"]
                    sent[mid] = (at, pair.counsel.id)
                    stored[mid] = time.perf_counter()
            except aiohttp.ClientError as exc:
                failures.append(type(exc).__name__)

        posts = []
        # Its own connections, closed after each send: no race with the server's keep-alive.
        poster = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        start = time.perf_counter()
        for i in range(RATE * SEND_SECONDS):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(send(pairs[i % len(pairs)])))
        await asyncio.gather(*posts)
        await poster.close()
        await asyncio.sleep(5)  # let the last receipts arrive
        rss = _rss_bytes(tier_pid)
        held = seen.ready
        latencies: list[float] = []
        after_store: list[float] = []
        missing = 0
        for mid, (at, counsel) in sent.items():
            got = seen.arrivals.get(mid, [])
            latencies.extend(x - at for x in got)
            after_store.extend(max(0.0, x - stored[mid]) for x in got)
            missing += max(0, seen.live.get(counsel, 0) - len(got))
        if failures:
            log(f"bench event tier: {len(failures)} sends failed, e.g. {failures[:3]}")
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Result(
        ramp_seconds=ramp,
        sent=len(sent),
        failed=len(failures),
        held=held,
        p99_ms=_percentile(latencies, 0.99) * 1000 if latencies else float("nan"),
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        store_p99_ms=_percentile(after_store, 0.99) * 1000 if after_store else float("nan"),
        receipts=len(latencies),
        missing=missing,
        rss_bytes=rss,
        idle_xacts_per_second=idle_rate,
    )


@contextmanager
def _processes(*procs: AppProcess) -> Iterator[None]:
    try:
        for proc in procs:  # one at a time: two importing at once missed 60 s under load
            proc.start()
        yield
    finally:
        for proc in procs:
            proc.stop()


def _design(services: Services, root: Path, label: str, streams: int, count: int) -> Result:
    root.mkdir(parents=True, exist_ok=True)
    settings = _settings(services, root, label)
    app = create_app(settings)
    log(f"bench event tier ({label}): creating {count} cases")
    pairs = [Pair(app, i) for i in range(count)]
    try:
        if label == "gevent":
            app_tier = AppProcess({**settings, "HAVEN_TIER": "app"}, log=root / "app.log")
            tier = EventTierProcess(settings, workers=1, log=root / "events.log")
            procs: tuple[AppProcess, ...] = (app_tier, tier)
        else:
            app_tier = tier = AppProcess(settings, workers=2, threads=8, log=root / "app.log")
            procs = (app_tier,)
        with _processes(*procs):
            assert tier.proc is not None
            return asyncio.run(
                _drive(
                    tier.url,
                    app_tier.url,
                    pairs,
                    streams,
                    settings["HAVEN_DATABASE_URL"],
                    tier.proc.pid,
                )
            )
    finally:
        database(app).engine.dispose()


def run(services: Services) -> None:
    """Streams held, p99 send-to-receipt at RATE msg/s and RSS: event tier vs gthread."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    streams = min(STREAMS, hard - 2000)
    root = services.root / "event_tier"
    base = _design(services, root / "gthread", "gthread", BASELINE_STREAMS, BASELINE_PAIRS)
    tier = _design(services, root / "gevent", "gevent", streams, PAIRS)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    common: dict[str, Any] = {"rate_per_s": RATE, "seconds": SEND_SECONDS}
    emit(
        "event_tier_streams_held",
        tier.held,
        "streams",
        base.held,
        offered=streams,
        accounts=2 * PAIRS,
        open_seconds=round(tier.ramp_seconds, 1),
        baseline_offered=BASELINE_STREAMS,
        streams_per_account=round(streams / (2 * PAIRS), 1),
        baseline_is="gunicorn gthread, 2 workers x 8 threads, HAVEN_SSE_MAX_STREAMS default",
    )
    emit(
        "event_tier_delivery_p99",
        tier.p99_ms,
        "ms",
        base.p99_ms,
        p50_ms=round(tier.p50_ms, 3),
        baseline_p50_ms=round(base.p50_ms, 3),
        # From the 201 answer (the message is stored and its wake-up published) to receipt:
        # the event tier's part, without the app tier's queue at a rate it cannot keep.
        after_store_p99_ms=round(tier.store_p99_ms, 3),
        baseline_after_store_p99_ms=round(base.store_p99_ms, 3),
        receipts=tier.receipts,
        missing=tier.missing,
        sent=tier.sent,
        failed_sends=tier.failed,
        baseline_failed_sends=base.failed,
        baseline_receipts=base.receipts,
        baseline_missing=base.missing,
        **common,
    )
    emit(
        "event_tier_rss",
        tier.rss_bytes / 2**20,
        "MiB",
        base.rss_bytes / 2**20,
        streams=tier.held,
        baseline_streams=base.held,
    )
    emit(
        "event_tier_idle_db_transactions",
        tier.idle_xacts_per_second,
        "per s per 1000 streams",
        base.idle_xacts_per_second,
        streams=tier.held,
        baseline_streams=base.held,
        seconds=IDLE_SECONDS,
        note="committed PostgreSQL transactions while every stream idles",
    )
