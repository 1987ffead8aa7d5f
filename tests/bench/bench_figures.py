"""Private figures (protocol §28): one release over 5,000 reporting cases on PostgreSQL.

The release counts the period's events, adds OpenDP noise to six counts and estimates 27
outcome categories from the randomized answers (drawn by the Python client's own
randomized response). Baseline, in the same run on the same rows: the plain SQL counts
alone (the release's queries with no noise, no estimates, nothing stored).
HAVEN_BENCH_FIGURES_CASES scales the population (default 5000). Measured, never asserted.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import tempfile
from pathlib import Path

from sqlalchemy import func, insert, select

from tests.bench.bench_keys import _fill_users
from tests.bench.harness import Services, emit, log, timer
from vault import migrate
from vault.accounts.models import User
from vault.cases.models import Case
from vault.client.figures import randomize
from vault.db import Database, new_id, utcnow
from vault.figures import services
from vault.figures.models import Outcome
from vault.keyring import init_keyring
from vault.protocol import figures as pfig

RUNS = 3  # releases measured (the default budget allows five a period)


def _fill(db: Database, cases: int) -> str:
    """One survivor, ``cases`` cases opened now, each with a randomized report."""
    keys = Path(tempfile.mkdtemp(prefix="haven-bench-keys-"))
    init_keyring(keys)
    _fill_users(db, keys, 1)
    session = db.sessions()
    survivor = session.scalars(select(User.id)).one()
    rng = random.Random(19)
    period, now = pfig.period_of(utcnow()), utcnow()
    case_rows, outcome_rows = [], []
    for _ in range(cases):
        case_id = new_id()
        truth = {name: rng.choice(values) for name, values in pfig.FIELDS.items()}
        case_rows.append({"id": case_id, "survivor_id": survivor, "created_at": now})
        outcome_rows.append(
            {
                "id": new_id(),
                "case_id": case_id,
                "period": period,
                "epsilon": 1.0,
                "answers": randomize(truth, 1.0),
                "record": os.urandom(600),
                "submitted_by": None,
                "submitted_at": now,
            }
        )
    session.execute(insert(Case), case_rows)
    session.execute(insert(Outcome), outcome_rows)
    session.commit()
    session.close()
    return survivor


def run(bench: Services) -> None:
    """Release time beside the plain counts."""
    cases = int(os.environ.get("HAVEN_BENCH_FIGURES_CASES", "5000"))
    pg = bench.postgres
    name = f"bench_{secrets.token_hex(4)}"
    pg.execute(f"CREATE DATABASE {name}")
    url = pg.url(name)
    migrate.upgrade(url)
    db = Database(url)
    log(f"filling {cases} cases with randomized reports")
    actor = _fill(db, cases)
    settings = services.Settings(budget=3.0, epsilon=0.1, local_epsilon=1.0, suppress_below=10)
    period = pfig.period_of(utcnow())
    start, end = pfig.period_bounds(period)
    releases, plain = [], []
    for _ in range(RUNS):
        session = db.sessions()
        with timer() as elapsed:
            services.release(session, period, settings, actor)
        releases.append(elapsed())
        session.close()
        session = db.sessions()
        with timer() as elapsed:
            services.true_counts(session, start, end)
            session.scalar(
                select(func.count()).select_from(Outcome).where(Outcome.period == period)
            )
        plain.append(elapsed())
        session.close()
    emit(
        "figures_release_seconds",
        statistics.median(releases),
        "s",
        statistics.median(plain),
        baseline_is="the same counts in plain SQL, no noise or estimates",
        cases=cases,
        runs=RUNS,
        database="postgresql",
    )
    db.engine.dispose()
