"""Load test: Locust drives a realistic mix through Caddy into 1, 2 and 4 app processes.

Locust (PyPI `locust`) runs headless as its own process with tests/bench/locustfile.py:
sign-ins, uploads in resumable parts, downloads and messages through the real protocol and
the Python client's crypto, on loopback only. Each app process is one gunicorn worker (the
production config, vault/gunicorn_conf.py, 8 threads) on one PostgreSQL, one Redis and one
MinIO; Caddy balances between them round robin, as deploy/Caddyfile does between replicas.

The run is bounded in time (HAVEN_LOAD_WARMUP_SECONDS, default 15, then HAVEN_LOAD_SECONDS,
default 30, per configuration and round) and in count (HAVEN_LOAD_MAX_TASKS operations per
user). The process counts take turns for HAVEN_LOAD_ROUNDS rounds (default 2) and each
reports its best round, the least disturbed on a shared machine. Rate limits are raised: a
handful of tireless clients behind one proxy address would otherwise meet the per-address
limits meant for people. Reported, per process count: the sustained request rate (requests
per second after the warm-up) with the failures of every round (target 0), the ratio to
one process, and the most connections the app database saw in pg_stat_activity (for pool
sizing, docs/deploy.md).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from click.testing import CliRunner

from tests.bench.harness import Services, emit, log
from tests.integration.test_production import Gunicorn
from tests.services import CaddyProxy
from vault import migrate
from vault.cli import main as haven_cli
from vault.client import HavenClient, WitnessPolicy
from vault.client.messages import Messenger
from vault.storage import ObjectStore

PASSPHRASE = "correct horse battery staple"
PAIRS = 4  # a counsel and their survivor each: 8 users
PROCESS_COUNTS = (1, 2, 4)
THREADS = 8
# Every Locust user comes from one address (Caddy's, on loopback), where people would come
# from their own: the per-address cap on bodies in flight (default half a worker's threads,
# vault/deadlines.py) refused a fifth user's upload with 429 too_many_pending_bodies, or,
# refused while Caddy still sent its body, 502 — 28 to 52 failures a run with one process.
RAISED_LIMITS = {
    **{
        name: "100000/minute"
        for name in (
            "HAVEN_LIMIT_PRELOGIN",
            "HAVEN_LIMIT_LOGIN_IP",
            "HAVEN_LIMIT_LOGIN_ACCOUNT",
            "HAVEN_LIMIT_MESSAGE_SEND",
            "HAVEN_LIMIT_REDEEM",
        )
    },
    "HAVEN_MAX_PENDING_BODIES_PER_CLIENT": str(2 * PAIRS),
}
ROOT = Path(__file__).resolve().parents[2]


def _settings(services: Services, root: Path) -> tuple[dict[str, str], str]:
    name = f"bench_load_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    bucket = "bench-load"
    settings = {
        "HAVEN_DATABASE_URL": services.postgres.url(name),
        "HAVEN_REDIS_URL": services.redis.url,
        "HAVEN_SECURE_COOKIES": "false",  # loopback HTTP through Caddy
        "HAVEN_PROXY_HOPS": "1",
        "HAVEN_KEYS_DIR": str(root / "keys"),
        **RAISED_LIMITS,
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


class Farm:
    """N single-worker gunicorn instances behind Caddy."""

    def __init__(self, settings: dict[str, str], count: int, root: Path) -> None:
        self.servers = [
            Gunicorn(settings, root / f"gunicorn-{count}-{i}.log") for i in range(count)
        ]
        for server in self.servers:
            server.settings.update({"WEB_CONCURRENCY": "1", "HAVEN_THREADS": str(THREADS)})
        upstreams = [f"127.0.0.1:{s.port}" for s in self.servers]
        self.proxy = CaddyProxy(root / f"caddy-{count}", upstreams)
        for server in self.servers:
            server.settings["HAVEN_PUBLIC_URL"] = self.proxy.url

    def __enter__(self) -> Farm:
        # One at a time: on a busy machine several starting at once miss the health deadline.
        try:
            for server in self.servers:
                server.start()
            self.proxy.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proxy.stop()
        for server in self.servers:
            server.stop()


def _enroll(url: str, settings: dict[str, str]) -> list[dict[str, str]]:
    """Register PAIRS counsel and the survivor each invites; open their conversations."""
    accounts: list[dict[str, str]] = []
    for index in range(PAIRS):
        result = CliRunner().invoke(
            haven_cli, ["admin", "invite", "--role", "counsel"], env=settings
        )
        if result.exit_code != 0:
            raise RuntimeError(f"admin invite failed: {result.output}")
        invite = result.output.strip().splitlines()[0]
        counsel = HavenClient(url, witnesses=WitnessPolicy.unwitnessed())
        survivor = HavenClient(url, witnesses=WitnessPolicy.unwitnessed())
        counsel.register(invite, f"load-counsel-{index}", PASSPHRASE)
        survivor.register(counsel.create_invite("survivor"), f"load-survivor-{index}", PASSPHRASE)
        assert counsel.account is not None and survivor.account is not None
        [case] = survivor.cases()
        conversation = Messenger(survivor).create_conversation(case["id"], [counsel.account.id])
        for me, peer, role in ((counsel, survivor, "counsel"), (survivor, counsel, "survivor")):
            assert me.account is not None and peer.account is not None
            accounts.append(
                {
                    "username": me.account.username,
                    "role": role,
                    "case_id": case["id"],
                    "conversation_id": conversation.id,
                    "peer_id": peer.account.id,
                }
            )
    return accounts


class ConnectionWatch:
    """The most connections the app database had at once, sampled while the load runs."""

    def __init__(self, port: int, database: str) -> None:
        self.dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        self.database = database
        self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while self.running:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                time.sleep(0.25)

    def stop(self) -> int:
        """Stop sampling; return the peak."""
        self.running = False
        self.thread.join(timeout=10)
        return self.peak


def _locust(url: str, accounts: Path, warmup: int, seconds: int, prefix: Path) -> dict[str, float]:
    """Run Locust headless; return the failures of the whole run, and the request rate
    after the warm-up (every user has signed in and the caches are warm)."""
    users = 2 * PAIRS
    env = dict(os.environ, HAVEN_LOAD_ACCOUNTS=str(accounts), PYTHONPATH=str(ROOT))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "tests" / "bench" / "locustfile.py"),
            "--headless",
            "--host",
            url,
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{warmup + seconds}s",
            "--stop-timeout",
            "30",
            "--csv",
            str(prefix),
            "--csv-full-history",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
        ],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with Path(f"{prefix}_stats.csv").open(encoding="utf-8") as handle:
        total = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    with Path(f"{prefix}_stats_history.csv").open(encoding="utf-8") as handle:
        history = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    start = int(history[0]["Timestamp"]) + warmup
    window = [r for r in history if int(r["Timestamp"]) >= start]
    if len(window) < 2:
        raise RuntimeError("the load run recorded too little history after its warm-up")
    first, last = window[0], window[-1]
    elapsed = int(last["Timestamp"]) - int(first["Timestamp"])
    done = int(last["Total Request Count"]) - int(first["Total Request Count"])
    return {
        "requests": float(done),
        "failures": float(total["Failure Count"]),
        "rate": done / elapsed if elapsed else 0.0,
        "window": float(elapsed),
    }


def run(services: Services) -> None:
    """Enrol the accounts once, then load 1, 2 and 4 processes in turn, for several rounds;
    report each process count's best round (the least disturbed on a shared machine)."""
    seconds = int(os.environ.get("HAVEN_LOAD_SECONDS", "30"))
    warmup = int(os.environ.get("HAVEN_LOAD_WARMUP_SECONDS", "15"))
    rounds = int(os.environ.get("HAVEN_LOAD_ROUNDS", "2"))
    root = services.root / "load"
    root.mkdir()
    settings, database = _settings(services, root)
    with Farm(settings, 1, root) as farm:
        accounts = _enroll(farm.proxy.url, settings)
    accounts_file = root / "accounts.json"
    accounts_file.write_text(json.dumps(accounts), encoding="utf-8")
    results: dict[int, list[tuple[dict[str, float], int]]] = {n: [] for n in PROCESS_COUNTS}
    for number in range(rounds):
        for count in PROCESS_COUNTS:
            log(f"bench: load round {number + 1}: {count} app process(es) for {seconds} s")
            with Farm(settings, count, root) as farm:
                watch = ConnectionWatch(services.postgres.port, database)
                prefix = root / f"locust-{count}-{number}"
                figures = _locust(farm.proxy.url, accounts_file, warmup, seconds, prefix)
                results[count].append((figures, watch.stop()))
    baseline = max(f["rate"] for f, _ in results[PROCESS_COUNTS[0]])
    for count in PROCESS_COUNTS:
        best, _ = max(results[count], key=lambda r: r[0]["rate"])
        emit(
            f"load_requests_per_second_{count}_process",
            best["rate"],
            "req/s",
            baseline,
            failures=sum(int(f["failures"]) for f, _ in results[count]),
            requests=int(best["requests"]),
            seconds=int(best["window"]),
            warmup_seconds=warmup,
            rounds=rounds,
            all_rounds=[round(f["rate"], 2) for f, _ in results[count]],
            users=2 * PAIRS,
            db_connections_peak=max(p for _, p in results[count]),
            db_pool_bound=count * (10 + 20),
            note="measured on a 2-core machine; the load generator shares its cores",
        )
