"""Authorization cases of the operations routes: job runs for admins; metrics need the
metrics token, which no session cookie replaces."""

from __future__ import annotations

from flask import Flask

from tests.authz import Route, World, configure, everyone, signed_in


def build(app: Flask, world: World) -> None:
    """Turn metrics on: a caller without the token then gets 401 whatever its session."""
    configure(app, world, HAVEN_METRICS_TOKEN="authz-metrics-token-0123456789")


ROUTES = [
    Route("GET", "/api/v1/admin/jobs", signed_in(403, admin=200)),
    Route("GET", "/metrics", everyone(401)),
]
