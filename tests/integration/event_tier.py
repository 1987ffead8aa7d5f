"""The event tier in a subprocess: gunicorn with its gevent worker on vault/gunicorn_events.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def run_python(code: str, *args: str) -> list[str]:
    """Run a Python snippet in a fresh interpreter (for gevent's patching, or the worker's
    settings) from the repository's root; the words it printed."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()
