"""Operations: scheduled maintenance jobs, Prometheus metrics and JSON logs, none of them
carrying a username, an id of a person, an address, a token or any content."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Install the request hooks that give each request an id, a route label and metrics."""
    from vault.ops import logs, metrics

    logs.init_app(app)
    metrics.init_app(app)
