"""Prometheus metrics: aggregate series only, labelled by route template, never by person.

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR (set by
vault/gunicorn_conf.py before a worker imports this module) and a scrape of any worker
sums them all; in a single process (`haven serve`, tests) the default registry answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "haven_http_requests_total",
    "Requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "haven_http_request_duration_seconds",
    "Time from the request's first hook to its answer, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
STREAMS = Gauge(
    "haven_live_streams", "Event streams open now, all processes.", multiprocess_mode="livesum"
)
UPLOAD_PARTS = Counter("haven_upload_parts_total", "Upload parts stored, all accounts together.")
UPLOAD_BYTES = Counter(
    "haven_upload_bytes_total", "Ciphertext bytes stored in upload parts, all accounts together."
)
STORE_ERRORS = Counter(
    "haven_object_store_errors_total",
    "Object store calls that failed: unavailable (no answer, 5xx), full, or s3_error (4xx).",
    ["kind"],
)
DB_ERRORS = Counter(
    "haven_database_errors_total", "Requests or jobs that found the database unavailable."
)
LIMITER_REJECTIONS = Counter(
    "haven_limiter_rejections_total", "Requests refused by a rate limit (429).", ["route"]
)
LIMITER_DOWN = Counter(
    "haven_limiter_unavailable_total", "Requests refused because the limiter store was down."
)
for _kind in ("unavailable", "full", "s3_error"):
    STORE_ERRORS.labels(_kind)  # every kind is listed from the start, at 0
JOB_RUNS = Counter("haven_job_runs_total", "Scheduled job runs, by outcome.", ["job", "outcome"])
JOB_SECONDS = Histogram(
    "haven_job_duration_seconds",
    "How long scheduled job runs took.",
    ["job"],
    buckets=(0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0),
)
JOB_ITEMS = Counter(
    "haven_job_items_total", "Things scheduled jobs handled, by kind.", ["job", "item"]
)
JOB_LAST_OK = Gauge(
    "haven_job_last_success_timestamp_seconds",
    "When each job last finished without error (Unix time).",
    ["job"],
    multiprocess_mode="max",
)


def route_label() -> str:
    """The matched route's template (``/api/v1/documents/<document_id>``), never the path."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _method() -> str:
    return request.method if request.method in METHODS else "OTHER"


def _start() -> None:
    g.haven_started = time.perf_counter()


def _observe(response: Response) -> Response:
    route, method = route_label(), _method()
    REQUESTS.labels(route, method, str(response.status_code)).inc()
    started = g.get("haven_started")
    if started is not None:
        LATENCY.labels(route, method).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Time every request from its first hook; count it when it answers."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_observe)


def stream_opened() -> None:
    """An event stream took a slot."""
    STREAMS.inc()


def stream_closed() -> None:
    """An event stream gave its slot back."""
    STREAMS.dec()


def part_stored(size: int) -> None:
    """An upload part was stored (counted into the totals only)."""
    UPLOAD_PARTS.inc()
    UPLOAD_BYTES.inc(size)


def store_error(kind: str) -> None:
    """An object store call failed."""
    STORE_ERRORS.labels(kind).inc()


def database_error() -> None:
    """The database could not be reached."""
    DB_ERRORS.inc()


def limiter_rejected() -> None:
    """A rate limit refused a request."""
    LIMITER_REJECTIONS.labels(route_label()).inc()


def limiter_unavailable() -> None:
    """The limiter store was down."""
    LIMITER_DOWN.inc()


def job_finished(job: str, outcome: str, seconds: float, counts: Mapping[str, int]) -> None:
    """A scheduled job run ended."""
    JOB_RUNS.labels(job, outcome).inc()
    JOB_SECONDS.labels(job).observe(seconds)
    for item, count in counts.items():
        JOB_ITEMS.labels(job, item).inc(count)
    if outcome == "ok":
        JOB_LAST_OK.labels(job).set(time.time())


class KeyAges(Collector):
    """Age of each server key's current version, and how many versions are live."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """Read the keyring's files at scrape time."""
        from vault.keyring import PURPOSES, created_at

        ring = self.app.extensions["haven.keyring"]
        path = Path(self.app.config["HAVEN_KEYS_DIR"])
        age = GaugeMetricFamily(
            "haven_server_key_age_seconds",
            "Seconds since each server key's current version was made.",
            labels=["purpose"],
        )
        live = GaugeMetricFamily(
            "haven_server_key_versions", "Live versions of each server key.", labels=["purpose"]
        )
        now = time.time()
        for purpose in PURPOSES:
            current = ring.current_version(purpose)
            age.add_metric([purpose], now - created_at(path, purpose, current))
            live.add_metric([purpose], len(ring.versions(purpose)))
        yield age
        yield live


def exposition() -> bytes:
    """Every series in the text format: all processes' samples, then the key ages."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shared = CollectorRegistry()
        MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
        text = generate_latest(shared)
    else:
        text = generate_latest(REGISTRY)
    keys = CollectorRegistry()
    keys.register(KeyAges(app))
    return text + generate_latest(keys)


MEDIA_TYPE = CONTENT_TYPE_LATEST
