"""Run the app under gunicorn from Python (used by `haven serve`)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


class HavenServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application around an already-built Flask app."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Copy our options into gunicorn's settings."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Hand gunicorn the app."""
        return self.application


def serve(app: Flask, host: str, port: int, threads: int = 16) -> None:
    """Serve one process with threads: the embedded limiter and fan-out are in-process."""
    HavenServer(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "vault.deadlines.HavenWorker",
            "threads": threads,
            "timeout": 120,
            "accesslog": "-",
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
            "logger_class": "vault.accesslog.HavenLogger",
        },
    ).run()
