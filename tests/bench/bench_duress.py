"""Pre-login and login for the real passphrase, the duress passphrase, and the baselines.

One survivor with a duress passphrase, one account without, on PostgreSQL at the configured
server hashing cost, through the app's HTTP layer (Flask's test client). Each login
verifies both passphrases whichever matches (protocol §18.4); the lines let one compare the
real and the duress sign-in with each other and with an account that has no duress
passphrase and a wrong passphrase. Measured, never asserted.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from tests.bench.harness import Services, emit, log
from tests.factories import make_person
from vault import create_app, migrate
from vault.accounts import duress
from vault.accounts import services as accounts
from vault.accounts.models import Role, User
from vault.db import database
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64encode

ROUNDS = 7
REAL_KEY = bytes(range(32))
DURESS_KEY = bytes(range(32, 64))


def _median_ms(call: Callable[[], Any], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _set_up(app: Flask) -> None:
    """A survivor (real subkey REAL_KEY, duress DURESS_KEY) and a counsel without duress."""
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        cost = accounts.HashCost(
            app.config["HAVEN_SERVER_HASH_OPSLIMIT"], app.config["HAVEN_SERVER_HASH_MEMLIMIT"]
        )
        counsel = make_person(db, ring, Role.COUNSEL, "bench.plain")
        survivor = make_person(db, ring, Role.SURVIVOR, "bench.duress", invited_by=counsel.id)
        for person in (counsel, survivor):
            user = db.get(User, person.id)
            assert user is not None
            user.auth_hash = accounts.hash_auth_key(REAL_KEY, cost)
        db.commit()
        decoy = pkeys.KeyPairs.generate()
        duress.set_duress(
            db,
            ring,
            cost,
            survivor.id,
            duress.NewDuress(
                current_auth_key=REAL_KEY,
                auth_key=DURESS_KEY,
                wrapped_keys=pkeys.wrap_bundle(decoy, "bench.duress", os.urandom(32)),
                public_keys=decoy.public("bench.duress"),
                is_alerting=True,
            ),
        )
        db.close()


def run(services: Services) -> None:
    """Median prelogin and login times for each case, in the same run."""
    name = f"bench_duress_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url(name)
    migrate.upgrade(url)
    root = Path(tempfile.mkdtemp(prefix="haven-bench-duress-"))
    app = create_app(
        {
            "HAVEN_DATABASE_URL": url,
            "HAVEN_KEYS_DIR": str(root / "keys"),
            "HAVEN_MESSAGE_PURGE_SECONDS": "0",
            "HAVEN_LIMIT_PRELOGIN": "100000/minute",
            "HAVEN_LIMIT_LOGIN_IP": "100000/minute",
            "HAVEN_LIMIT_LOGIN_ACCOUNT": "100000/minute",
        }
    )
    _set_up(app)
    client = app.test_client()

    def prelogin(username: str) -> None:
        answer = client.post("/api/v1/auth/prelogin", json={"username": username})
        assert answer.status_code == 200

    def login(username: str, key: bytes, status: int = 200) -> Callable[[], None]:
        def call() -> None:
            body = {"username": username, "auth_key": b64encode(key)}
            answer = client.post("/api/v1/auth/login", json=body)
            assert answer.status_code == status, answer.get_data(as_text=True)

        return call

    log("duress: pre-login and login, real vs duress passphrase")
    prelogin("bench.duress")  # warm up
    login("bench.duress", REAL_KEY)()
    plain_pre = _median_ms(lambda: prelogin("bench.plain"))
    emit("prelogin_real_ms", _median_ms(lambda: prelogin("bench.duress")), "ms", plain_pre)
    # The same request as above: the duress passphrase is typed after pre-login answers.
    emit("prelogin_duress_ms", _median_ms(lambda: prelogin("bench.duress")), "ms", plain_pre)
    # Interleaved, round by round, so a busy machine slows every case alike.
    cases = {
        "no_duress": login("bench.plain", REAL_KEY),
        "real": login("bench.duress", REAL_KEY),
        "duress": login("bench.duress", DURESS_KEY),
        "wrong": login("bench.duress", os.urandom(32), 401),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(ROUNDS):
        for kind, call in cases.items():
            start = time.perf_counter()
            call()
            times[kind].append((time.perf_counter() - start) * 1000)
    ms = {k: statistics.median(v) for k, v in times.items()}
    same = "login with the real passphrase, same account"
    emit("login_no_duress_ms", ms["no_duress"], "ms")
    emit("login_real_ms", ms["real"], "ms", ms["no_duress"], baseline_is="account without duress")
    emit("login_duress_ms", ms["duress"], "ms", ms["real"], baseline_is=same, alert=True)
    emit("login_wrong_ms", ms["wrong"], "ms", ms["real"], baseline_is=same)
    database(app).engine.dispose()
