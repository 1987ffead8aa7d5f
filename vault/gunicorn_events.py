"""gunicorn settings for the event tier: the same app, only the event stream, under gevent.

`gunicorn -c vault/gunicorn_events.py vault.wsgi:app` (docs/deploy.md, "Event tier"). The
gevent worker monkey-patches sockets, threading and time before it loads the app, so each
open stream is a greenlet waiting on its socket and its wake-up flag, not a thread;
psycopg 3 and redis-py wait cooperatively under that patching.
"""

import os

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
# JSON lines as in the app tier; this tier's own metrics folder (its /metrics sums its workers).
logger_class = "vault.ops.logs.GunicornLogger"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="haven-event-metrics-")


def on_starting(server: object) -> None:
    """Start with no samples left from an earlier run in the metrics folder."""
    from vault.ops.hooks import clear_metrics

    clear_metrics()


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's open-stream gauge from the sums."""
    from vault.ops.hooks import worker_exited

    worker_exited(worker)
