"""The server's one wall clock: every expiry, timer and timestamp the server decides reads it.

Reading time in one place lets a test move the clock of the running server forward or back
(`jump`) the way an NTP step or a mis-set host clock would, and see sessions, grants, timers
and disappearing messages behave as docs/deploy.md ("Outages") says. Intervals measured
within one process (heartbeats, retries) use `time.monotonic`, which no jump affects.
"""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime

_offset_seconds = 0.0


def time() -> float:
    """Seconds since 1970-01-01 UTC, as the server's clock reads them."""
    return _time.time() + _offset_seconds


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.fromtimestamp(time(), UTC)


def jump(seconds: float) -> None:
    """Move this process's clock by ``seconds`` (negative: back); for fault tests only."""
    global _offset_seconds
    _offset_seconds += seconds


def reset() -> None:
    """Put the clock back to the host's."""
    global _offset_seconds
    _offset_seconds = 0.0
