"""gunicorn settings for production; every value can be set from the environment."""

import os

bind = os.environ.get("HAVEN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread with header and body read deadlines (vault/deadlines.py, docs/deploy.md).
worker_class = "vault.deadlines.HavenWorker"
threads = int(os.environ.get("HAVEN_THREADS", "8"))
timeout = int(os.environ.get("HAVEN_WORKER_TIMEOUT", "120"))
# Idle keep-alive connections (and connections that sent nothing yet) wait in the worker's
# poller, not in a thread, and are closed after this many seconds.
keepalive = int(os.environ.get("HAVEN_KEEPALIVE_SECONDS", "5"))
graceful_timeout = 30
worker_tmp_dir = os.environ.get("HAVEN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 - RAM, not disk
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# One JSON line a request (vault/ops/logs.py): route template, never the path or query.
errorlog = "-"

# -- operations (vault/ops): JSON logs, multiprocess metrics, scheduled jobs --
# JSON lines for gunicorn's error and access logs and the app's log (route templates only).
logger_class = "vault.ops.jsonlog.GunicornLogger"
accesslog = os.environ.get("HAVEN_ACCESS_LOG", "-")
# Every worker writes its metric samples here; a scrape of any worker sums them all. Set
# before a worker imports prometheus_client (workers load the app after the fork).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "")
_own_metrics_dir = not os.environ["PROMETHEUS_MULTIPROC_DIR"]
if _own_metrics_dir:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="haven-metrics-")


def on_starting(server: object) -> None:
    """Start with no samples left from an earlier run in the metrics folder."""
    from vault.ops.hooks import clear_metrics

    clear_metrics()


def post_worker_init(worker: object) -> None:
    """JSON app logs, and this worker's job scheduler (one process runs each job a period)."""
    from vault.ops.hooks import worker_ready

    worker_ready(worker)


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges (open streams) from the sums."""
    from vault.ops.hooks import worker_exited

    worker_exited(worker)


def on_exit(server: object) -> None:
    """Remove the metrics folder made for this run."""
    if _own_metrics_dir:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
