"""Several app processes behind Caddy on one PostgreSQL and one Redis (docs/deploy.md,
"Several app processes").

Two gunicorn instances run the production config (vault/gunicorn_conf.py, two workers
each); Caddy balances between them round robin. A session made on one is honoured and
ended on both; a rate limit counts requests to both against one budget; a message sent
through one process wakes the event streams held by the other; every connection the
processes open to PostgreSQL stays within the pool the settings give them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import requests
from flask import Flask

from tests.authz import World, build_world
from tests.conftest import FAST_SERVER_HASH
from tests.integration.messages_fixtures import client_account, open_conversation
from tests.integration.test_messages_events import Listener, http_client
from tests.integration.test_production import Gunicorn
from tests.services import CaddyProxy, MinioServer, PostgresServer, RedisServer
from vault import create_app
from vault.client import HavenClient, WitnessPolicy
from vault.client.messages import Messenger
from vault.db import database as database_of
from vault.storage import store

PRELOGIN_LIMIT = 6
POOL_SIZE = 3
MAX_OVERFLOW = 1
WORKERS = 2


@dataclass
class Farm:
    """Two app processes, the proxy in front, and accounts made on the shared database."""

    a: Gunicorn
    b: Gunicorn
    proxy: CaddyProxy
    app: Flask
    world: World
    database: str


@pytest.fixture(scope="module")
def farm(
    postgres: PostgresServer,
    redis_server: RedisServer,
    minio: MinioServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Farm]:
    """Two production gunicorn instances on shared settings, behind Caddy, for the module
    (starting them is the slow part; each test leaves the accounts usable)."""
    root = tmp_path_factory.mktemp("farm")
    database = f"farm_{secrets.token_hex(5)}"
    postgres.execute(f"CREATE DATABASE {database} TEMPLATE haven_template")
    settings = {
        "HAVEN_DATABASE_URL": postgres.url(database),
        "HAVEN_REDIS_URL": redis_server.url,
        "HAVEN_KEYS_DIR": str(root / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_PROXY_HOPS": "1",
        "HAVEN_LIMIT_PRELOGIN": f"{PRELOGIN_LIMIT}/minute",
        "HAVEN_DB_POOL_SIZE": str(POOL_SIZE),
        "HAVEN_DB_MAX_OVERFLOW": str(MAX_OVERFLOW),
        **FAST_SERVER_HASH,
        **minio.settings(f"farm-{secrets.token_hex(5)}"),
    }
    # An in-process app makes the keyring, the bucket and the accounts for everyone.
    app = create_app({"HAVEN_TESTING": "true", **settings})
    store(app).ensure_bucket()
    world = build_world(app)
    world.extra["cid"] = open_conversation(
        app, world.people["survivor"], world.case_id, [world.people["counsel"]]
    )
    a = Gunicorn(settings, root / "a.log")
    b = Gunicorn(settings, root / "b.log")
    proxy = CaddyProxy(root / "caddy", [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
    for server in (a, b):
        server.settings["HAVEN_PUBLIC_URL"] = proxy.url
    try:
        a.start()
        b.start()
        proxy.start()
        yield Farm(a, b, proxy, app, world, database)
    finally:
        proxy.stop()
        a.stop()
        b.stop()
        purger = app.extensions.get("haven.purger")
        if purger is not None:
            purger.stop()
        database_of(app).engine.dispose()


def cookie_copy(source: HavenClient, base_url: str) -> HavenClient:
    """Another client on ``base_url`` holding the same session cookie."""
    client = HavenClient(base_url, witnesses=WitnessPolicy.unwitnessed())
    client.http.cookies.update(source.http.cookies)
    return client


def test_a_session_made_through_the_proxy_holds_on_both_processes_and_ends_on_both(
    farm: Farm,
) -> None:
    survivor = http_client(farm.app, farm.proxy.url, farm.world.people["survivor"].id)
    # Round robin: consecutive requests through Caddy land on each process in turn.
    for _ in range(4):
        assert [c["id"] for c in survivor.cases()] == [farm.world.case_id]
    on_a = cookie_copy(survivor, farm.a.url)
    on_b = cookie_copy(survivor, farm.b.url)
    assert on_a.cases()[0]["id"] == farm.world.case_id
    assert on_b.cases()[0]["id"] == farm.world.case_id

    # Signing out on A ends the session on B at once (the session version is in PostgreSQL).
    on_a.post("/auth/logout")
    after = on_b.http.get(f"{farm.b.url}/api/v1/cases", timeout=30)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "unauthorized"


def test_a_rate_limit_counts_requests_to_both_processes(farm: Farm) -> None:
    # Each process sees half the budget; Redis holds one count for the client's address.
    # The proxy is the one trusted hop: these direct requests say what Caddy would say.
    hop = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http"}
    body = {"username": "survivor.a"}
    answers = []
    for number in range(PRELOGIN_LIMIT):
        base = farm.a.url if number % 2 == 0 else farm.b.url
        answers.append(
            requests.post(f"{base}/api/v1/auth/prelogin", json=body, headers=hop, timeout=30)
        )
    assert [r.status_code for r in answers] == [200] * PRELOGIN_LIMIT
    for _ in range(2):  # whichever process Caddy picks, the budget is spent
        refused = requests.post(f"{farm.proxy.url}/api/v1/auth/prelogin", json=body, timeout=30)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"


def test_a_message_through_one_process_wakes_streams_on_the_other(farm: Farm) -> None:
    p = farm.world.people
    cid = farm.world.extra["cid"]
    on_a = Listener(http_client(farm.app, farm.a.url, p["counsel"].id))
    on_b = Listener(http_client(farm.app, farm.b.url, p["counsel"].id))
    via_proxy = Listener(http_client(farm.app, farm.proxy.url, p["counsel"].id))
    listeners = [on_a, on_b, via_proxy]
    for listener in listeners:
        assert listener.next().kind == "ready"

    for base, text in ((farm.a.url, "sent to A"), (farm.b.url, "sent to B")):
        sender = Messenger(http_client(farm.app, base, p["survivor"].id))
        sender.client.account = client_account(p["survivor"])
        sent = sender.send(cid, text)
        for listener in listeners:
            assert listener.until("message").data["message_id"] == sent["id"]
    for listener in listeners:
        listener.close()

    reader = Messenger(http_client(farm.app, farm.proxy.url, p["counsel"].id))
    reader.client.account = client_account(p["counsel"])
    assert [m.text for m in reader.read(cid)] == ["sent to B", "sent to A"]


def test_connections_to_postgresql_stay_within_the_configured_pools(
    farm: Farm, postgres: PostgresServer
) -> None:
    # Many requests at once through the proxy: each worker's pool may open at most
    # HAVEN_DB_POOL_SIZE + HAVEN_DB_MAX_OVERFLOW connections, whatever the load.
    from concurrent.futures import ThreadPoolExecutor

    survivor = http_client(farm.app, farm.proxy.url, farm.world.people["survivor"].id)

    def burst(_: int) -> int:
        return survivor.http.get(f"{farm.proxy.url}/api/v1/cases", timeout=60).status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(burst, range(120)))
    assert set(statuses) == {200}
    with psycopg.connect(
        f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (farm.database,)
        ).fetchone()
    assert row is not None
    # Two instances of WORKERS processes each, and the test's own in-process app.
    bound = (2 * WORKERS + 1) * (POOL_SIZE + MAX_OVERFLOW)
    assert 0 < row[0] <= bound
