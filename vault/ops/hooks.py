"""gunicorn server hooks of the app tier (vault/gunicorn_conf.py, `haven serve`)."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any


def clear_metrics() -> None:
    """Remove samples an earlier run left in PROMETHEUS_MULTIPROC_DIR."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        for path in Path(folder).glob("*.db"):
            path.unlink(missing_ok=True)


def worker_ready(worker: Any) -> None:
    """In a freshly booted worker: JSON app logs, and the job scheduler (threads do not
    survive a fork, so it starts here rather than when the app is built)."""
    from vault.ops.jobs import start_scheduler
    from vault.ops.logs import configure_app_logging

    configure_app_logging()
    app = worker.app.wsgi()
    # The loaded app (modules, mappers, compiled statements) lives as long as the worker:
    # never garbage, so collections need not walk it, nor the last one as the worker exits.
    gc.freeze()
    start_scheduler(app)


def worker_exited(worker: Any) -> None:
    """Tell the multiprocess collector a worker is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
