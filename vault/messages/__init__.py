"""End-to-end encrypted messaging: conversations in a case, signed envelopes, live delivery."""

from __future__ import annotations

from flask import Flask, request

from vault.errors import NotFound

EVENT_TIER_ENDPOINTS = frozenset(
    {"messages.events", "health.healthz", "health.readyz", "ops.scrape"}
)


def _events_tier_only() -> None:
    """404 for every route but the stream on an event-tier process."""
    if request.endpoint not in EVENT_TIER_ENDPOINTS:
        raise NotFound("not served by the event tier")


def init_app(app: Flask) -> None:
    """Fan-out, stream slots, the start-up and periodic purge, and the bench route if enabled."""
    from vault.db import database
    from vault.messages.fanout import make_fanout
    from vault.messages.purge import purge_at_start, start_purger
    from vault.messages.reads import StreamReader
    from vault.messages.stream import StreamSlots
    from vault.messages.views import register_bench

    app.extensions["haven.fanout"] = make_fanout(app.config["HAVEN_REDIS_URL"])
    slots = app.extensions["haven.stream_slots"] = StreamSlots(
        app.config["HAVEN_SSE_MAX_STREAMS"], app.config["HAVEN_SSE_DB_READERS"]
    )
    app.extensions["haven.stream_reader"] = StreamReader(database(app).engine, slots.reads)
    if app.config["HAVEN_TIER"] == "events":
        # The event tier serves the stream and health checks only; the app tier the rest.
        app.before_request(_events_tier_only)
        return
    register_bench(app)
    purge_at_start(app)
    # With scheduled jobs on, the purge is one of them (vault/ops/jobs.py), run once a period.
    jobs_on = app.config["HAVEN_JOBS_ENABLED"]
    app.extensions["haven.purger"] = None if jobs_on else start_purger(app)
