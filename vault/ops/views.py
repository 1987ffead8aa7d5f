"""Operations routes: scheduled jobs' outcomes for admins, and the Prometheus scrape."""

from __future__ import annotations

import hmac
import json
from typing import Literal

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import Field

from vault import db
from vault.accounts.models import Role
from vault.api import ANONYMOUS, Header, Out, Query, Reply, Timestamp, endpoint, ok, query_int
from vault.errors import NotFound, Unauthorized
from vault.ops import jobs, metrics, services
from vault.ops.models import JobRun

bp = Blueprint("ops", __name__)

MAX_RUNS = 500


class RunOut(Out):
    """One run of a scheduled job: when, how it ended, and what it counted."""

    job: str
    period: int
    period_seconds: int
    started_at: Timestamp
    finished_at: Timestamp | None
    outcome: Literal["running", "ok", "failed"]
    counts: dict[str, int]
    error: str | None


class JobOut(Out):
    """A registered job, its period in this process (0: off) and its newest run."""

    job: str
    period_seconds: int
    last_run: RunOut | None


class JobsReply(Out):
    """Every registered job and the newest runs of all of them, newest first."""

    is_enabled: bool
    jobs: list[JobOut]
    runs: list[RunOut]


class RunsQuery(Query):
    """How many runs to list."""

    limit: int = Field(50, ge=1, le=MAX_RUNS, description="newest runs to list")


def run_json(row: JobRun) -> dict[str, object]:
    """A run as the API shows it."""
    return {
        "job": row.job,
        "period": row.period,
        "period_seconds": row.period_seconds,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "outcome": row.outcome,
        "counts": json.loads(row.counts),
        "error": row.error,
    }


@bp.get("/api/v1/admin/jobs")
@endpoint(
    "Scheduled maintenance jobs and their newest runs (?limit=)",
    roles={Role.ADMIN},
    replies=ok(JobsReply),
    query=RunsQuery,
)
def list_jobs() -> Response:
    """Each job's period and newest run, then the newest runs of all jobs."""
    limit = query_int("limit", minimum=1, maximum=MAX_RUNS, default=50)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    registered = list(jobs.REGISTRY.values())
    session = db.session()
    last = services.last_runs(session, [j.name for j in registered])
    return jsonify(
        {
            "is_enabled": bool(app.config["HAVEN_JOBS_ENABLED"]),
            "jobs": [
                {
                    "job": j.name,
                    "period_seconds": jobs.period_of(app, j),
                    "last_run": run_json(last[j.name]) if j.name in last else None,
                }
                for j in registered
            ],
            "runs": [run_json(r) for r in services.recent_runs(session, limit)],
        }
    )


BEARER = Header(
    "Authorization",
    "Bearer <HAVEN_METRICS_TOKEN>",
    {"type": "string", "pattern": "^Bearer [!-~]+$"},
)


@bp.get("/metrics")
@endpoint(
    "Prometheus metrics, aggregate only (Authorization: Bearer <HAVEN_METRICS_TOKEN>)",
    roles=ANONYMOUS,
    replies=Reply(200, None, "text/plain", "Prometheus text exposition format"),
    headers=(BEARER,),
)
def scrape() -> Response:
    """Every series, for a scraper holding the metrics token; 404 when metrics are off."""
    token = current_app.config["HAVEN_METRICS_TOKEN"]
    if not token:
        raise NotFound("metrics are off: set HAVEN_METRICS_TOKEN")
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("send Authorization: Bearer <metrics token>")
    return Response(metrics.exposition(), mimetype=None, content_type=metrics.MEDIA_TYPE)
