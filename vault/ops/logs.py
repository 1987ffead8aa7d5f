"""JSON log lines for the app log and gunicorn's access log, with no personal data.

Each line is one JSON object: time, level, logger, message, and, inside a request, its
request id and route template. Only fields named in ``FIELDS`` are copied from a record's
extras; exception messages are left out (a database error quotes the row it refused), only
the exception's class and stack are written. The access line gives the route template,
never the path or query, and the client's address only when HAVEN_LOG_CLIENT_IP is on and
the route is not an intake route.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from gunicorn.glogging import Logger

from vault.ops.metrics import route_label

# Extras a log call may attach; anything else on a record is dropped.
FIELDS = (
    "request_id",
    "route",
    "method",
    "status",
    "duration_ms",
    "bytes",
    "client_ip",
    "job",
    "period",
    "outcome",
    "counts",
    "error",
)
# Routes whose callers' addresses are never logged, whatever the setting says.
PRIVATE_PREFIXES = ("/api/v1/intake",)
REQUEST_ID_HEADER = "X-Request-ID"


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with only the whitelisted extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if "request_id" not in line and has_request_context():
            line["request_id"] = g.get("request_id")
            line["route"] = route_label()
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
            line["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(line, separators=(",", ":"), default=str)


def may_log_address(route: str, enabled: bool) -> bool:
    """Whether a request's client address goes into its access line."""
    return enabled and not route.startswith(PRIVATE_PREFIXES)


def _begin() -> None:
    """Give the request an id and tell the access log its route (through the WSGI environ)."""
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


def json_handler(stream: Any = None) -> logging.Handler:
    """A stream handler (standard error unless given) writing JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def configure_app_logging(level: int = logging.INFO) -> None:
    """Send the app's own loggers (``vault.*``) to standard error as JSON lines."""
    logger = logging.getLogger("vault")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        logger.addHandler(json_handler())
    logger.setLevel(level)
    logger.propagate = False


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with JSON lines for its error and access logs, and the app's."""

    def setup(self, cfg: Any) -> None:
        """Set up as gunicorn does, then make every handler write JSON."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
        configure_app_logging()

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One JSON line a request: route template, status, size, duration, request id."""
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        fields: dict[str, Any] = {
            "request_id": environ.get("haven.request_id"),
            "route": environ.get("haven.route", "unmatched"),
            "method": environ.get("REQUEST_METHOD") if req.method in _METHODS else "OTHER",
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
        }
        if environ.get("haven.client_ip"):
            fields["client_ip"] = environ["haven.client_ip"]
        try:
            self.access_log.info("request", extra=fields)
        except Exception:
            self.error("could not write an access line")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
