"""Fixtures: real PostgreSQL, Redis and MinIO processes, apps, live servers and accounts."""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wsgi import ClosingIterator

from tests import contract
from tests.dbpool import pool_for
from tests.services import (
    MinioServer,
    PostgresServer,
    RedisServer,
    free_port,
    litewitness_binary,
)
from vault import create_app, migrate
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.client import HavenClient, WitnessPolicy
from vault.db import database
from vault.embedded import Litewitness, register_log
from vault.keyring import keyring
from vault.protocol import checkpoint
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64encode

PASSPHRASE = "correct horse battery staple"

# Server-side hashing of auth subkeys is cheap in tests; `make bench` measures the real cost.
FAST_SERVER_HASH = {"HAVEN_SERVER_HASH_OPSLIMIT": "1", "HAVEN_SERVER_HASH_MEMLIMIT": "8192"}
# Scheduled jobs (vault/ops/jobs.py) stay off, here and in app subprocesses, unless a test
# turns them on; the message purge then runs on its own timer as before.
os.environ.setdefault("HAVEN_JOBS_ENABLED", "false")


@pytest.fixture(scope="session")
def services_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the session's server processes."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole test session, with a migrated template."""
    server = PostgresServer()
    server.start()
    server.execute("CREATE DATABASE haven_template")
    migrate.upgrade(server.url("haven_template"))
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server(services_root: Path) -> Iterator[RedisServer]:
    """A real Redis server for the whole test session."""
    server = RedisServer(services_root / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def minio(services_root: Path) -> Iterator[MinioServer]:
    """A real MinIO server for the whole test session."""
    server = MinioServer(services_root / "minio")
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def litewitness(services_root: Path) -> Iterator[Litewitness]:
    """A real litewitness for the whole session: its own ssh-agent and fresh Ed25519 key."""
    witness = Litewitness(
        litewitness_binary(), services_root / "witness", "witness.test/w1", free_port()
    )
    witness.start()
    yield witness
    witness.close()


@pytest.fixture
def make_witnessed_app(
    make_app: Callable[..., Flask], litewitness: Litewitness
) -> Callable[..., Flask]:
    """Return a callable that builds an app whose key log the session's witness cosigns.

    Each test's log gets its own origin, registered with the witness with the app's log key
    (what `witnessctl add-log` and `add-key` do), so tests never look like forks of each other.
    """
    origin = f"haven.test/{secrets.token_hex(6)}"

    def _make(**overrides: str) -> Flask:
        settings = {
            "HAVEN_LOG_ORIGIN": origin,
            "HAVEN_WITNESSES": f"{litewitness.vkey} {litewitness.url}",
            "HAVEN_WITNESS_QUORUM": "1",
            "HAVEN_WITNESS_TIMEOUT_SECONDS": "2",
            "HAVEN_WITNESS_RETRY_SECONDS": "0",
            **overrides,
        }
        app = make_app(**settings)
        with app.app_context():
            log_key = kt.log_public_key(keyring().current("logsign"))
        register_log(
            litewitness.db,
            app.config["HAVEN_LOG_ORIGIN"],
            [checkpoint.log_verifier(app.config["HAVEN_LOG_ORIGIN"], log_key).encode()],
        )
        return app

    return _make


def witness_policy(app: Flask) -> WitnessPolicy:
    """The policy a client of this app is built with: the witnesses the test configured."""
    keys = tuple(key for key, _ in app.config["HAVEN_WITNESSES"])
    if not keys:
        return WitnessPolicy.unwitnessed()
    return WitnessPolicy(keys, app.config["HAVEN_WITNESS_QUORUM"])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file to copy for each test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: PostgreSQL unless the test asks for SQLite.

    A PostgreSQL one is emptied when the test ends and, once it is the template again, is
    the next test's (tests/dbpool.py); otherwise it is dropped: kept, a worker's few hundred
    databases (about 12 MB each) filled the disk and took minutes to delete at the end.
    The SQLite template is migrated only in a worker that runs a SQLite test.
    """
    backend = getattr(request, "param", "postgresql")
    if backend == "sqlite":
        path = tmp_path / "haven.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    postgres: PostgresServer = request.getfixturevalue("postgres")
    pool = pool_for(postgres)  # a module may have a server of its own (test_faults.py)
    name = pool.take()
    yield postgres.url(name)
    pool.give_back(name)


def app_settings(
    database_url: str, keys_dir: Path, minio: MinioServer, bucket: str
) -> dict[str, str]:
    """The settings every test app starts from: a database, a bucket, keys and fast hashing."""
    return {
        "HAVEN_TESTING": "true",
        "HAVEN_DATABASE_URL": database_url,
        "HAVEN_KEYS_DIR": str(keys_dir),
        "HAVEN_SECURE_COOKIES": "false",
        # Envelopes built by tests say ttl 0; test_messages checks the one-week default.
        "HAVEN_MESSAGE_DEFAULT_TIMER": "0",
        "HAVEN_JOBS_ENABLED": "false",
        # Staff are not sent to second-factor set-up unless a test asks (test_factors.py).
        "HAVEN_FACTOR_REQUIRE_STAFF": "false",
        **FAST_SERVER_HASH,
        **minio.settings(bucket),
    }


def build_app(settings: dict[str, str]) -> Flask:
    """An app on these settings, with the contract checks installed and its bucket made."""
    app = create_app(settings)
    contract.install(app)
    from vault.storage import store

    store(app).ensure_bucket()
    return app


def dispose_app(app: Flask) -> None:
    """Stop an app's background work and close its database connections."""
    purger = app.extensions.get("haven.purger")
    if purger is not None:
        purger.stop()  # its database goes away with the test
    reader = app.extensions.get("haven.stream_reader")
    if reader is not None:
        reader.close()  # the connections its streams' reads keep, before the pool goes
    fanout = app.extensions.get("haven.fanout")
    if hasattr(fanout, "close"):
        fanout.close()  # its Redis listener and publisher threads and their connections
    database(app).engine.dispose()


@pytest.fixture
def make_app(
    tmp_path: Path, database_url: str, minio: MinioServer
) -> Iterator[Callable[..., Flask]]:
    """Return a callable that builds an app on the test database, a fresh bucket and keys."""
    apps: list[Flask] = []
    base = app_settings(database_url, tmp_path / "keys", minio, f"t-{secrets.token_hex(6)}")

    def _make_app(**overrides: str) -> Flask:
        app = build_app({**base, **overrides})
        apps.append(app)
        return app

    yield _make_app
    for app in apps:
        dispose_app(app)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with test settings."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> Any:
    """Flask's test client (in-process)."""
    return app.test_client()


class LiveServer:
    """The app served over real HTTP from a thread.

    Leaving waits (a few seconds at most) for requests still being answered, so a response
    that a closed browser left half-read gives its database connection back before the test
    disposes of the pool; otherwise the connection is dropped later, unclosed, in whichever
    test runs when it is collected.
    """

    DRAIN_SECONDS = 5.0

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._active = 0
        self._idle = threading.Condition()
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self._counted, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # The port is known only now; the browser's pages come from this origin.
        app.config["HAVEN_PUBLIC_URL"] = self.url
        app.config["HAVEN_PUBLIC_ORIGIN"] = self.url
        self.witnesses = witness_policy(app)
        # Shutting down waits for the serving loop's next look (half a second by default).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=self.DRAIN_SECONDS)
        self.server.server_close()

    def _counted(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._idle:
            self._active += 1
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return ClosingIterator(body, [self._done])

    def _done(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The test app on a real loopback HTTP port."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def invite(app: Flask) -> Callable[..., str]:
    """Return a callable that creates an invite token (admin-made, or by a given user id)."""

    def _invite(role: str = "counsel", created_by: str | None = None) -> str:
        with app.app_context():
            session = database(app).sessions()
            try:
                creator = session.get(accounts.User, created_by) if created_by else None
                _, token = accounts.create_invite(session, Role(role), creator, 24)
            finally:
                session.close()
        return b64encode(token)

    return _invite


@pytest.fixture
def create_account(
    live_server: LiveServer, invite: Callable[..., str]
) -> Callable[..., tuple[HavenClient, str]]:
    """Return a callable that registers an account over HTTP; gives (client, recovery key)."""
    counter = iter(range(1, 10_000))

    def _create(
        role: str = "counsel",
        *,
        username: str | None = None,
        passphrase: str = PASSPHRASE,
        invited_by: HavenClient | None = None,
    ) -> tuple[HavenClient, str]:
        client = HavenClient(live_server.url, witnesses=live_server.witnesses)
        link = invited_by.create_invite(role) if invited_by is not None else invite(role)
        name = username or f"{role}{next(counter)}"
        recovery = client.register(link, name, passphrase)
        return client, recovery

    return _create
