"""Shared pieces of the benchmarks: real services started once, and the JSON line format."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.services import MinioServer, PostgresServer, RedisServer


def emit(bench: str, value: float, unit: str, baseline: float | None = None, **extra: Any) -> None:
    """Print one result line: value, unit and, when there is one, the baseline and ratio."""
    line: dict[str, Any] = {"bench": bench, "value": round(value, 4), "unit": unit}
    if baseline is not None:
        line["baseline"] = round(baseline, 4)
        line["ratio"] = round(value / baseline, 4) if baseline else None
    line.update(extra)
    print(json.dumps(line), flush=True)


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """Measure wall time of a block: ``with timer() as t: ...; t()`` gives seconds."""
    start = time.perf_counter()
    end: list[float] = []
    try:
        yield lambda: (end[0] if end else time.perf_counter()) - start
    finally:
        end.append(time.perf_counter())


def tree_cpu(master: int) -> float:
    """CPU seconds used so far by a server process, its live children, and the children
    that have exited (gunicorn's workers, PostgreSQL's backends)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == master:
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif int(fields[1]) == master:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Services:
    """PostgreSQL, Redis and MinIO for the benchmarks, started on first use."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="haven-bench-"))
        self._postgres: PostgresServer | None = None
        self._redis: RedisServer | None = None
        self._minio: MinioServer | None = None

    @property
    def postgres(self) -> PostgresServer:
        """A running PostgreSQL."""
        if self._postgres is None:
            self._postgres = PostgresServer()
            self._postgres.start()
        return self._postgres

    @property
    def redis(self) -> RedisServer:
        """A running Redis."""
        if self._redis is None:
            self._redis = RedisServer(self.root / "redis")
            self._redis.start()
        return self._redis

    @property
    def minio(self) -> MinioServer:
        """A running MinIO."""
        if self._minio is None:
            self._minio = MinioServer(self.root / "minio")
            self._minio.start()
        return self._minio

    def close(self) -> None:
        """Stop everything that was started."""
        if self._postgres is not None:
            self._postgres.remove()
        if self._redis is not None:
            self._redis.stop()
        if self._minio is not None:
            self._minio.close()
        shutil.rmtree(self.root, ignore_errors=True)


def log(message: str) -> None:
    """Progress on stderr, so stdout stays pure JSON lines."""
    print(message, file=sys.stderr, flush=True)
