"""The access log writes no address, user agent or referrer for intake requests (§20.7)."""

from __future__ import annotations

import datetime
from typing import Any

from gunicorn.config import Config

from vault.accesslog import HavenLogger

FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(a)s %(f)s'


class _Response:
    status = "201 Created"
    sent = 10
    response_length = 10
    headers: tuple[tuple[str, str], ...] = ()


class _Request:
    headers = (("USER-AGENT", "Mozilla/5.0 Pixel"), ("X-FORWARDED-FOR", "203.0.113.9"))


def _line(path: str) -> str:
    config = Config()
    config.set("accesslog", "-")
    logger = HavenLogger(config)
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "RAW_URI": path,
        "REMOTE_ADDR": "203.0.113.9",
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "Mozilla/5.0 Pixel",
        "HTTP_REFERER": "https://haven.example/intake",
    }
    atoms = logger.atoms(_Response(), _Request(), environ, datetime.timedelta(seconds=0.01))
    return FORMAT % atoms


def test_intake_lines_carry_no_address_agent_or_referrer() -> None:
    for path in ("/api/v1/intake/reports", "/api/v1/intake/session", "/intake"):
        line = _line(path)
        assert line == f'- "POST {path}" 201 - -'


def test_other_lines_are_unchanged() -> None:
    line = _line("/api/v1/cases")
    assert line.startswith("203.0.113.9 ") and "Pixel" in line
