"""Soak: a bounded run of a realistic mix through the Python client against production settings.

The server is the production code path of tests/integration/test_production.py: gunicorn
from vault/gunicorn_conf.py (its defaults: 2 gthread workers x 8 threads) on PostgreSQL,
MinIO and Redis processes, secure cookies, ProxyFix for one hop. Each of the 32 clients
(the counsel and the survivor of 16 cases, all registered through the Python client)
arrives as from the proxy, from its own address, and loops until the deadline or its cycle
cap, whichever comes first:

- survivor: upload a document (64 KiB to 1 MiB), grant it to counsel, delete its oldest
  once it keeps more than three, send a message, read the conversation, read case events;
- counsel: list the case's documents and download the newest, send a message, read the
  conversation, read case events;
- everyone signs in again (a new device, Argon2id on both sides) every two minutes, or
  every quarter of a soak shorter than eight minutes, the clients staggered;
- four counsel keep an event stream open (resuming with Last-Event-ID when the server ends
  it), as open pages do.

Witnesses: none (``WitnessPolicy.unwitnessed()``, no litewitness), so the soak measures
the app and its stores. Production rate limits apply except message sending, which is
raised because 32 tireless clients send faster than people.

Reported (JSON lines): errors by kind (target 0), operations and HTTP requests by kind,
the gunicorn workers' summed RSS after warm-up and at the end (target growth <= 10 %),
open file descriptors of the master and workers, and the app database's connections in
pg_stat_activity, each at the end beside the start. The duration is HAVEN_SOAK_SECONDS
(default 1800); the warm-up is the first tenth of it, at most 60 s.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests
from click.testing import CliRunner

from tests.bench.harness import Services, emit, log
from tests.integration.test_production import BehindTlsSession, Gunicorn
from vault import migrate
from vault.cli import main as haven_cli
from vault.client import HavenClient, WitnessPolicy
from vault.client.api import ApiError
from vault.client.documents import Documents, OpenedDocument
from vault.client.messages import Messenger, parse_events
from vault.protocol import documents as pdoc
from vault.storage import ObjectStore

CLIENTS = 32
DEFAULT_SECONDS = 1800
LOGIN_EVERY = 120.0  # seconds between sign-ins of one client (production login limits hold)
MAX_CYCLES_PER_SECOND = 2.0  # the cycle cap: count-bounded as well as time-bounded
PAUSE = 0.2  # seconds between a client's cycles
KEEP_DOCUMENTS = 3
LISTENERS = 4
KEEPALIVE_SETTLE = 4.0  # seconds: gunicorn closes idle keep-alive connections after 2
# A dropped event stream is noticed within a second (vault/messages/stream.py); the wait
# leaves room for a slow machine.
STREAM_SETTLE = 17.0
POOL_SIZE = 10  # vault/db.py: connections each worker keeps (overflow ones are closed)
PASSPHRASE = "correct horse battery staple"
PUBLIC_URL = "https://haven.example"


def soak_seconds() -> float:
    """The soak's duration: HAVEN_SOAK_SECONDS, or 30 minutes."""
    value = float(os.environ.get("HAVEN_SOAK_SECONDS", DEFAULT_SECONDS))
    if value < 10:
        raise ValueError("HAVEN_SOAK_SECONDS: at least 10")
    return value


class Tally:
    """Thread-safe counts of operations, errors and HTTP answers, by kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.http: Counter[str] = Counter()
        self.samples: list[str] = []

    def count_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """requests' response hook: count the answer by method and status."""
        with self.lock:
            self.http[f"{response.request.method} {response.status_code}"] += 1

    def run(self, kind: str, call: Callable[[], object]) -> bool:
        """Run one operation; count it as done or as an error (never raise)."""
        try:
            call()
        except Exception as exc:
            with self.lock:
                self.errors[kind] += 1
                if len(self.samples) < 20:
                    # Error codes, or the exception's repr (a transport or protocol
                    # failure, with the client's fixed messages): no content, no keys.
                    what = f"{exc.status} {exc.code}" if isinstance(exc, ApiError) else repr(exc)
                    self.samples.append(f"{kind}: {what[:200]}")
            return False
        with self.lock:
            self.done[kind] += 1
        return True


def _session(address: str, tally: Tally) -> BehindTlsSession:
    """An HTTP session arriving as from the proxy: one forwarded hop over HTTPS."""
    http = BehindTlsSession()
    http.headers.update({"X-Forwarded-Proto": "https", "X-Forwarded-For": address})
    http.hooks["response"].append(tally.count_response)
    return http


def _client(url: str, address: str, tally: Tally) -> HavenClient:
    client = HavenClient(url, witnesses=WitnessPolicy.unwitnessed())
    client.http = _session(address, tally)
    return client


class Person:
    """One simulated user: a device (client), their case and conversation."""

    def __init__(self, url: str, index: int, role: str, tally: Tally, scratch: Path) -> None:
        self.url = url
        self.address = f"198.51.100.{index + 1}"
        self.role = role
        self.username = f"soak-{role}-{index}"
        self.tally = tally
        self.client = _client(url, self.address, tally)
        self.case_id = ""
        self.conversation_id = ""
        self.peer_id = ""
        self.signed_in_at = time.monotonic()
        self.login_every = LOGIN_EVERY
        self.cycles = 0
        self.mine: list[str] = []  # my documents, oldest first
        self.scratch = scratch  # downloads land here and are deleted at once
        self._use(self.client)

    def _use(self, client: HavenClient) -> None:
        """Make ``client`` this person's device, with its own vault and messenger."""
        self.client = client
        self.documents = Documents(client, retries=2, backoff=0.5, part_chunks=pdoc.MIN_PART_CHUNKS)
        self.messenger = Messenger(client)

    def login(self) -> None:
        """Sign in from a new device."""
        client = _client(self.url, self.address, self.tally)
        client.login(self.username, PASSPHRASE)
        self._use(client)
        self.signed_in_at = time.monotonic()

    def upload(self) -> None:
        """Upload a fresh scan and share it with counsel."""
        size = random.randint(64 * 1024, 1024 * 1024)
        doc = self.documents.upload(
            self.case_id, io.BytesIO(os.urandom(size)), doc_type="passport", name="scan.jpg"
        )
        self.mine.append(doc.id)
        self.tally.run("grant", lambda: self.documents.grant(doc.id, self.peer_id))

    def prune(self) -> None:
        """Delete my oldest document (a replaced scan)."""
        self.documents.delete(self.mine.pop(0))

    def download_newest(self) -> None:
        """List the case's documents and download the newest one I may read."""
        listing = self.documents.case_documents(self.case_id)
        if listing.refused:
            raise RuntimeError(f"{len(listing.refused)} documents refused")
        newest: OpenedDocument | None = max(
            listing.documents, key=lambda d: d.created_at, default=None
        )
        if newest is None:
            return
        target = self.scratch / secrets.token_hex(8)
        try:
            self.documents.download(newest.id, target, document=newest)
        except ApiError as exc:
            if exc.status != 404:  # deleted by its owner between listing and download
                raise
        finally:
            target.unlink(missing_ok=True)

    def send(self, cycle: int) -> None:
        """Send a message into the case's conversation."""
        self.messenger.send(self.conversation_id, f"soak message {cycle} from {self.role}")

    def read(self) -> None:
        """Read, verify and decrypt the newest messages."""
        self.messenger.read(self.conversation_id, limit=20)

    def case_events(self) -> None:
        """Read the case's newest events."""
        self.documents.events(self.case_id, limit=20)

    def cycle(self, number: int) -> None:
        """One round of this person's mix."""
        run = self.tally.run
        if time.monotonic() - self.signed_in_at > self.login_every:
            run("login", self.login)
        if self.role == "survivor":
            run("upload", self.upload)
            if len(self.mine) > KEEP_DOCUMENTS:
                run("delete_document", self.prune)
        else:
            run("list_and_download", self.download_newest)
        run("send", lambda: self.send(number))
        run("read_messages", self.read)
        run("case_events", self.case_events)


class Listener:
    """An open page: one event stream, resumed with Last-Event-ID until the deadline."""

    def __init__(self, person: Person, deadline: float) -> None:
        self.deadline = deadline
        self.tally = person.tally
        self.client = HavenClient(person.url, witnesses=WitnessPolicy.unwitnessed())
        self.client.http = _session(person.address, person.tally)
        self.client.http.cookies.update(person.client.http.cookies)
        self.response: requests.Response | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last: str | None = None
        while time.monotonic() < self.deadline:

            def follow() -> None:
                nonlocal last
                try:
                    self.response = Messenger(self.client).connect_events(last, read_timeout=60)
                    with self.response:
                        for event in parse_events(self.response.iter_lines(decode_unicode=True)):
                            last = event.id or last
                            with self.tally.lock:
                                self.tally.done[f"stream_event_{event.kind}"] += 1
                except requests.RequestException:
                    if time.monotonic() < self.deadline:
                        raise  # dropped by stop() at the deadline is how it ends

            if not self.tally.run("event_stream", follow) and time.monotonic() < self.deadline:
                time.sleep(1)

    def stop(self) -> None:
        """Drop the connection (the stream would otherwise wait for its next heartbeat)."""
        response = self.response
        if response is not None:
            raw: Any = response.raw
            with contextlib.suppress(AttributeError, OSError):  # already closed
                raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=30)


def _settings(services: Services, root: Path) -> tuple[dict[str, str], str]:
    name = f"bench_soak_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    bucket = "bench-soak"
    settings = {
        "HAVEN_DATABASE_URL": services.postgres.url(name),
        "HAVEN_REDIS_URL": services.redis.url,
        "HAVEN_SECURE_COOKIES": "true",
        "HAVEN_PROXY_HOPS": "1",
        "HAVEN_PUBLIC_URL": PUBLIC_URL,
        "HAVEN_KEYS_DIR": str(root / "keys"),
        "HAVEN_LIMIT_MESSAGE_SEND": "600/minute",
        **services.minio.settings(bucket),
    }
    result = CliRunner().invoke(haven_cli, ["keys", "init"], env=settings)
    if result.exit_code != 0:
        raise RuntimeError(f"keys init failed: {result.output}")
    migrate.upgrade(settings["HAVEN_DATABASE_URL"])
    minio = services.minio
    ObjectStore(
        settings["HAVEN_S3_ENDPOINT"], minio.access_key, minio.secret_key, bucket
    ).ensure_bucket()
    return settings, name


def _invite(settings: dict[str, str]) -> str:
    result = CliRunner().invoke(haven_cli, ["admin", "invite", "--role", "counsel"], env=settings)
    if result.exit_code != 0:
        raise RuntimeError(f"admin invite failed: {result.output}")
    return str(result.output.strip().splitlines()[0])


def _enroll(url: str, invite: str, index: int, tally: Tally, scratch: Path) -> list[Person]:
    """Register a counsel and the survivor they invite; open their conversation."""
    counsel = Person(url, 2 * index, "counsel", tally, scratch)
    survivor = Person(url, 2 * index + 1, "survivor", tally, scratch)
    counsel.client.register(invite, counsel.username, PASSPHRASE)
    survivor.client.register(
        counsel.client.create_invite("survivor"), survivor.username, PASSPHRASE
    )
    [case] = survivor.client.cases()
    assert counsel.client.account is not None and survivor.client.account is not None
    conversation = survivor.messenger.create_conversation(case["id"], [counsel.client.account.id])
    for me, peer in ((counsel, survivor), (survivor, counsel)):
        me.case_id, me.conversation_id = case["id"], conversation.id
        assert peer.client.account is not None
        me.peer_id = peer.client.account.id
    return [counsel, survivor]


@dataclass(frozen=True)
class Snapshot:
    """The server's resources at one moment."""

    rss: int
    fds: int
    connections: int
    workers: tuple[int, ...]
    sockets: dict[str, int]


class ServerFigures:
    """The gunicorn master and workers, and the database, as /proc and PostgreSQL see them."""

    def __init__(self, server: Gunicorn, services: Services, database: str) -> None:
        assert server.proc is not None
        self.master = server.proc.pid
        self.postgres = services.postgres
        self.services = services
        self.server_port = server.port
        self.database = database

    def workers(self) -> list[int]:
        """The worker pids (children of the master)."""
        text = Path(f"/proc/{self.master}/task/{self.master}/children").read_text()
        return sorted(int(pid) for pid in text.split())

    def rss(self) -> int:
        """Resident memory of all workers, summed, in bytes."""
        total = 0
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def fds(self) -> int:
        """Open file descriptors of the master and its workers."""
        return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in [self.master, *self.workers()])

    def sockets(self) -> dict[str, int]:
        """The workers' TCP sockets by what is at the other end."""
        ports = {
            self.postgres.port: "postgres",
            self.services.redis.port: "redis",
            self.services.minio.port: "minio",
        }
        found: Counter[str] = Counter()
        for pid in self.workers():
            peers: dict[str, str] = {}
            for table in ("tcp", "tcp6"):
                path = Path(f"/proc/{pid}/net/{table}")
                for line in path.read_text().splitlines()[1:] if path.exists() else []:
                    fields = line.split()
                    local, remote, inode = fields[1], fields[2], fields[9]
                    port = int(remote.rsplit(":", 1)[1], 16)
                    if port == 0:
                        peers[inode] = "listening"
                    elif int(local.rsplit(":", 1)[1], 16) == self.server_port:
                        peers[inode] = "clients"
                    else:
                        peers[inode] = ports.get(port, "other peers")
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        found[peers.get(target[8:-1], "other sockets")] += 1
                    else:
                        found["files and pipes"] += 1
        return dict(sorted(found.items()))

    def connections(self) -> int:
        """The app database's connections in pg_stat_activity."""
        dsn = f"host=127.0.0.1 port={self.postgres.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchone()
        return int(row[0]) if row else 0

    def snapshot(self) -> Snapshot:
        """RSS, descriptors, database connections and worker pids now."""
        return Snapshot(
            self.rss(), self.fds(), self.connections(), tuple(self.workers()), self.sockets()
        )


def _report(
    tally: Tally,
    wall: float,
    boot: Snapshot,
    start: Snapshot,
    end: Snapshot,
    peak: int,
) -> None:
    mib = 1024 * 1024
    errors = sum(tally.errors.values())
    operations = sum(tally.done.values())
    common = {"clients": CLIENTS, "seconds": round(wall, 1)}
    emit(
        "soak_errors",
        errors,
        "errors",
        target=0,
        by_kind=dict(sorted(tally.errors.items())),
        samples=tally.samples,
        **common,
    )
    emit(
        "soak_operations",
        operations,
        "operations",
        per_second=round(operations / wall, 2),
        by_kind=dict(sorted(tally.done.items())),
        http_requests=sum(tally.http.values()),
        http_by_status=dict(sorted(tally.http.items())),
        witnesses="none: WitnessPolicy.unwitnessed(), no litewitness",
        **common,
    )
    emit(
        "soak_server_rss",
        end.rss / mib,
        "MiB",
        start.rss / mib,
        growth_pct=round(100 * (end.rss - start.rss) / start.rss, 2),
        target_growth_pct=10,
        at_boot_mib=round(boot.rss / mib, 1),
        peak_sampled_mib=round(peak / mib, 1),
        peak_is="highest of the samples taken every 2 s (sign-ins hash with 64 MiB each)",
        baseline_is="all gunicorn workers' VmRSS summed, at rest after the warm-up",
        workers_restarted=end.workers != boot.workers,
        **common,
    )
    emit(
        "soak_open_fds",
        end.fds,
        "fds",
        start.fds,
        at_boot=boot.fds,
        workers_at_start=start.sockets,
        workers_at_end=end.sockets,
        baseline_is="gunicorn master and workers' /proc/<pid>/fd, at rest after the warm-up",
        **common,
    )
    emit(
        "soak_db_connections",
        end.connections,
        "connections",
        start.connections,
        at_boot=boot.connections,
        pool_limit=POOL_SIZE * len(end.workers),
        baseline_is="pg_stat_activity rows on the app's database, at rest after the warm-up",
        **common,
    )


def _drive(people: list[Person], until: float, max_cycles: int, figures: ServerFigures) -> int:
    """Run every person's loop on its own thread until ``until``; return the peak RSS seen."""

    def loop(person: Person) -> None:
        while person.cycles < max_cycles and time.monotonic() < until:
            person.cycle(person.cycles)
            person.cycles += 1
            time.sleep(PAUSE)

    threads = [threading.Thread(target=loop, args=(p,), daemon=True) for p in people]
    for thread in threads:
        thread.start()
    peak = 0
    next_report = time.monotonic() + 60
    while any(t.is_alive() for t in threads):
        time.sleep(2)
        rss = figures.rss()
        peak = max(peak, rss)
        if time.monotonic() >= next_report:
            next_report += 60
            done = sum(people[0].tally.done.values())
            log(f"bench soak: {rss / 2**20:.0f} MiB, {done} operations")
    for thread in threads:
        thread.join()
    return peak


def _settle(figures: ServerFigures, seconds: float) -> Snapshot:
    """The server at rest: clients idle, keep-alive connections closed, pools returned."""
    time.sleep(seconds)
    return figures.snapshot()


def run(services: Services) -> None:
    """Run the soak for HAVEN_SOAK_SECONDS and report errors, RSS, descriptors, connections."""
    seconds = soak_seconds()
    root = services.root / "soak"
    scratch = root / "downloads"
    scratch.mkdir(parents=True, exist_ok=True)
    settings, database = _settings(services, root)
    server = Gunicorn(settings, root / "gunicorn.log")
    for name in ("WEB_CONCURRENCY", "HAVEN_THREADS"):  # vault/gunicorn_conf.py's own defaults
        server.settings.pop(name)
    server.start()
    tally = Tally()
    people: list[Person] = []
    listeners: list[Listener] = []
    try:
        figures = ServerFigures(server, services, database)
        boot = figures.snapshot()
        log(f"bench soak: registering {CLIENTS} clients")
        invites = [_invite(settings) for _ in range(CLIENTS // 2)]  # CliRunner: one at a time
        with ThreadPoolExecutor(4) as pool:
            for pair in pool.map(
                lambda i: _enroll(server.url, invites[i], i, tally, scratch), range(CLIENTS // 2)
            ):
                people.extend(pair)
        log(f"bench soak: {CLIENTS} clients for {seconds:.0f} s")
        began = time.monotonic()
        deadline = began + seconds
        max_cycles = int(seconds * MAX_CYCLES_PER_SECOND)
        for person in people:
            person.login_every = min(LOGIN_EVERY, seconds / 4)
            person.signed_in_at = began - random.uniform(0, person.login_every)  # staggered
        # Warm-up: code loaded, caches filled, pools opened; then the start figures at rest.
        peak = _drive(people, began + min(60.0, seconds / 10), max_cycles, figures)
        start = _settle(figures, KEEPALIVE_SETTLE)
        log(f"bench soak: after warm-up {start.rss / 2**20:.0f} MiB at rest, {dict(tally.done)}")
        listeners = [Listener(p, deadline) for p in people if p.role == "counsel"][:LISTENERS]
        for listener in listeners:
            listener.thread.start()
        peak = max(peak, _drive(people, deadline, max_cycles, figures))
        for listener in listeners:
            listener.stop()
        wall = time.monotonic() - began
        end = _settle(figures, STREAM_SETTLE)
        _report(tally, wall, boot, start, end, peak)
    finally:
        for listener in listeners:
            listener.stop()
        server.stop()
