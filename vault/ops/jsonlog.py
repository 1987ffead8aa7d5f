"""JSON log lines: the formatter and gunicorn's logger class.

Standard library and gunicorn only, and no import of the ``vault`` package: the event
tier's master loads this file by path (vault/gunicorn_events.py) before its gevent workers
monkey-patch ssl and sockets, which importing the app would spoil.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger

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
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with only the whitelisted extras and no exception message."""

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
        if record.exc_info and record.exc_info[0] is not None:
            # The class and the stack, not the message: a database error quotes the row.
            line["exception"] = record.exc_info[0].__name__
            line["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(line, separators=(",", ":"), default=str)


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger writing JSON lines; one access line a request, route template only."""

    def setup(self, cfg: Any) -> None:
        """Set up as gunicorn does, then make its error and access handlers write JSON."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Route template (set by the app in the WSGI environ), status, size, time, id."""
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        method = environ.get("REQUEST_METHOD", "")
        fields: dict[str, Any] = {
            "request_id": environ.get("haven.request_id"),
            "route": environ.get("haven.route", "unmatched"),
            "method": method if method in METHODS else "OTHER",
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
