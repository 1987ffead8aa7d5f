"""gunicorn settings for the event tier: the same app, only the event stream, under gevent.

`gunicorn -c vault/gunicorn_events.py vault.wsgi:app` (docs/deploy.md, "Event tier"). The
gevent worker monkey-patches sockets, threading and time before it loads the app, so each
open stream is a greenlet waiting on its socket and its wake-up flag, not a thread;
psycopg 3 and redis-py wait cooperatively under that patching.
"""

import importlib.util
import os
import tempfile
from pathlib import Path

# Set before the worker loads the app: vault/config.py reads it (stream route only,
# a high stream cap, coarse database re-reads).
os.environ.setdefault("HAVEN_TIER", "events")

bind = os.environ.get("HAVEN_BIND", "0.0.0.0:8001")
workers = int(os.environ.get("HAVEN_EVENT_WORKERS", "1"))
worker_class = "gevent"
# Open connections per worker; each stream is one. Mind the process's open-file limit.
worker_connections = int(os.environ.get("HAVEN_EVENT_CONNECTIONS", "12000"))
timeout = int(os.environ.get("HAVEN_WORKER_TIMEOUT", "120"))
keepalive = int(os.environ.get("HAVEN_KEEPALIVE_SECONDS", "5"))
# Streams end on their own within HAVEN_SSE_MAX_SECONDS; clients resume with Last-Event-ID.
graceful_timeout = 30
worker_tmp_dir = os.environ.get("HAVEN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 - RAM, not disk
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# One line per stream when it ends; path only, as in the app tier.
accesslog = os.environ.get("HAVEN_EVENT_ACCESS_LOG", "-") or None
errorlog = "-"
# JSON lines as in the app tier. The logger's file is loaded by path: importing the vault
# package here, in the master, would import ssl before the gevent workers patch it.
_spec = importlib.util.spec_from_file_location(
    "haven_jsonlog", Path(__file__).with_name("ops") / "jsonlog.py"
)
assert _spec is not None and _spec.loader is not None
_jsonlog = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_jsonlog)
logger_class = _jsonlog.GunicornLogger
# This tier's own metrics folder: its /metrics sums its workers' open streams.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="haven-event-metrics-")


def on_starting(server: object) -> None:
    """Start with no samples left from an earlier run in the metrics folder."""
    for path in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        path.unlink(missing_ok=True)


# Python's cyclic garbage collector, tuned for thousands of streams: young objects are
# collected every GC_YOUNG allocations (700 by default). With that default, a message's
# short-lived rows and frames, alive across the greenlet switches of its fan-out, were
# promoted to the old generation and its full collections, each a pause of every stream
# over the whole heap, took about a fifth of the worker's time at 5,000 streams (py-spy).
GC_YOUNG = 50_000


def post_worker_init(worker: object) -> None:
    """JSON lines for the app's own log too (the worker has patched by now); the app as
    loaded frozen out of garbage collection, and young objects collected less often."""
    import gc

    from vault.ops.logs import configure_app_logging

    configure_app_logging()
    # The loaded app (modules, mappers, compiled statements) lives as long as the worker:
    # never garbage, so full collections need not walk it.
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, middle, old)


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's open-stream gauge, as prometheus_client's mark_process_dead
    does (not imported here, for the same reason as the logger)."""
    pid = getattr(worker, "pid", None)
    for path in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob(f"gauge_live*_{pid}.db"):
        path.unlink(missing_ok=True)
