"""The app's side of the JSON logs: request ids, route labels, and the app's log handler.

Lines are written by vault/ops/jsonlog.py. Inside a request, every app log line gets the
request's id and route template; the access line gets them through the WSGI environ. The
client's address goes into the access line only when HAVEN_LOG_CLIENT_IP is on and the
route is not an intake route.
"""

from __future__ import annotations

import logging
import secrets
import sys

from flask import Flask, Response, g, has_request_context, request

from vault.ops.jsonlog import JsonFormatter
from vault.ops.metrics import route_label

# Routes whose callers' addresses are never logged, whatever the setting says.
PRIVATE_PREFIXES = ("/api/v1/intake",)
REQUEST_ID_HEADER = "X-Request-ID"


class RequestFields(logging.Filter):
    """Add the current request's id and route template to a record made inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate; never drop."""
        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = g.get("request_id")
            record.route = route_label()
        return True


def may_log_address(route: str, enabled: bool) -> bool:
    """Whether a request's client address goes into its access line."""
    return enabled and not route.startswith(PRIVATE_PREFIXES)


def _begin() -> None:
    """Give the request an id and hand it to the access line (through the WSGI environ)."""
    g.request_id = secrets.token_hex(8)
    request.environ["haven.request_id"] = g.request_id


def _end(response: Response) -> Response:
    environ = request.environ
    route = route_label()
    environ["haven.route"] = route
    if "request_id" not in g:
        _begin()
    response.headers[REQUEST_ID_HEADER] = g.request_id
    if may_log_address(route, bool(environ.get("haven.log_client_ip"))):
        environ["haven.client_ip"] = request.remote_addr
    return response


def init_app(app: Flask) -> None:
    """Give every request an id (answered in X-Request-ID) and label its access line."""
    enabled = bool(app.config["HAVEN_LOG_CLIENT_IP"])

    def begin() -> None:
        _begin()
        request.environ["haven.log_client_ip"] = enabled

    app.before_request_funcs.setdefault(None, []).insert(0, begin)
    app.after_request(_end)


def configure_app_logging(level: int = logging.INFO) -> None:
    """Send the app's own loggers (``vault.*``) to standard error as JSON lines."""
    logger = logging.getLogger("vault")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestFields())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
