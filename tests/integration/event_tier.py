"""The event tier in a subprocess: gunicorn with its gevent worker on vault/gunicorn_events.py."""

from __future__ import annotations

import sys

from tests.integration.messages_fixtures import AppProcess


class EventTierProcess(AppProcess):
    """The same app under `gunicorn -c vault/gunicorn_events.py`, serving only the stream."""

    def argv(self) -> list[str]:
        """The event tier's command line, as deploy runs it, on a free loopback port."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "vault/gunicorn_events.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--graceful-timeout",
            "3",
            "--log-level",
            "warning",
            "--access-logfile",
            "/dev/null",
            "vault.wsgi:app",
        ]
