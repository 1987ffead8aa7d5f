"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from vault import db
from vault.api import ANONYMOUS, Out, endpoint, ok
from vault.extensions import limiter
from vault.storage import store

bp = Blueprint("health", __name__)


class LiveReply(Out):
    """The process runs."""

    status: Literal["ok"]


class ReadyReply(Out):
    """Every dependency answers ("off": the limiter is switched off, so not a dependency)."""

    status: Literal["ok"]
    checks: dict[str, Literal["ok", "off"]]


@bp.get("/healthz")
@limiter.exempt
@endpoint("The process is up", roles=ANONYMOUS, replies=ok(LiveReply))
def healthz() -> Response:
    """Answer while the process runs, whatever its dependencies do."""
    return jsonify({"status": "ok"})


def _check_database() -> None:
    with db.database().engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_limiter() -> None:
    storage = limiter.storage
    if storage is None or not storage.check():
        raise RuntimeError("limiter storage unavailable")


@bp.get("/readyz")
@limiter.exempt
@endpoint(
    "Database, object store and limiter storage all answer", roles=ANONYMOUS, replies=ok(ReadyReply)
)
def readyz() -> tuple[Response, int]:
    """Check each dependency; 503 naming the ones that fail."""
    checks = {"database": _check_database, "object_store": store().ping, "limiter": _check_limiter}
    results: dict[str, str] = {}
    if not current_app.config["RATELIMIT_ENABLED"]:
        # Switched off, the limiter never touches its store: not a dependency to wait for.
        del checks["limiter"]
        results["limiter"] = "off"
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception:  # any failure of a check means "unavailable"
            results[name] = "unavailable"
    is_ready = all(v != "unavailable" for v in results.values())
    if not is_ready:
        failing = ", ".join(k for k, v in results.items() if v == "unavailable")
        body = {
            "error": {"code": "not_ready", "message": f"unavailable: {failing}"},
            "checks": results,
        }
        return jsonify(body), 503
    return jsonify({"status": "ok", "checks": results}), 200
