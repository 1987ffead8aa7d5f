"""Read deadlines for gunicorn's gthread worker: a slow client cannot hold a thread for long.

gthread hands a connection to a thread once its first byte arrives, and the thread then
reads the headers and the body with blocking socket calls that have no timeout of their
own (gunicorn's ``timeout`` only restarts a worker whose main loop stops). Two deadlines
bound those reads, both counted from the start, so a client that sends a byte now and
then cannot stretch them:

- headers: ``HAVEN_HEADER_TIMEOUT_SECONDS`` after a thread takes the connection, a watchdog
  shuts the socket's read side; the parser sees end-of-file and the connection closes.
- body: ``HAVEN_BODY_TIMEOUT_SECONDS`` plus ``Content-Length`` at
  ``HAVEN_BODY_MIN_BYTES_PER_SECOND``; every read of ``wsgi.input`` waits at most until
  then (a socket timeout), after which the app answers 408 ``request_timeout`` and the
  read side is shut so the connection closes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import ClientDisconnected

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _setting(name: str, default: float) -> float:
    """A positive number from the environment, or a start that names the bad setting."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name}: must be positive, got {raw!r}")
    return value


class Watchdog:
    """Shuts the read side of sockets whose deadline passed (one thread per worker)."""

    def __init__(self, tick: float = 0.25) -> None:
        self._due: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._tick = tick
        self._thread = threading.Thread(target=self._run, name="haven-read-deadline", daemon=True)
        self._thread.start()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        """Cut ``sock``'s reads ``seconds`` from now unless disarmed first."""
        with self._lock:
            self._due[sock] = time.monotonic() + seconds

    def disarm(self, sock: socket.socket) -> None:
        """Forget ``sock``."""
        with self._lock:
            self._due.pop(sock, None)

    def _run(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:
                late = [sock for sock, due in self._due.items() if due <= now]
                for sock in late:
                    del self._due[sock]
            for sock in late:
                _stop_reading(sock)


class BodyTimeout(ClientDisconnected):
    """408 ``request_timeout``; a ClientDisconnected, so a streaming reader treats it as one."""

    code = 408
    name = "Request Timeout"
    description = "the request body did not arrive in time"


def _stop_reading(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client or the worker
        sock.shutdown(socket.SHUT_RD)


class _DeadlineInput:
    """``wsgi.input`` whose reads give up at a fixed deadline."""

    def __init__(self, stream: Any, sock: socket.socket, deadline: float) -> None:
        self._stream = stream
        self._sock = sock
        self._deadline = deadline

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return self._expire()
        self._sock.settimeout(remaining)
        try:
            return method(*args)
        except TimeoutError:
            return self._expire()
        finally:
            self._sock.settimeout(None)

    def _expire(self) -> Any:
        _stop_reading(self._sock)  # the connection closes after the answer; no drain
        raise BodyTimeout()

    def read(self, size: int | None = -1) -> bytes:
        """Read like the wrapped stream, within the deadline."""
        data: bytes = self._call(self._stream.read, size)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read a line, within the deadline."""
        data: bytes = self._call(self._stream.readline, size)
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines, within the deadline."""
        lines: list[bytes] = self._call(self._stream.readlines, hint)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class BodyDeadline:
    """WSGI middleware: the body must arrive within base + length / rate seconds."""

    def __init__(self, app: WsgiApp, base: float, min_rate: float) -> None:
        self.app = app
        self.base = base
        self.min_rate = min_rate

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Wrap ``wsgi.input`` when the server gave us its socket."""
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, socket.socket):
            length = environ.get("CONTENT_LENGTH") or "0"
            size = int(length) if length.isascii() and length.isdigit() else 0
            deadline = time.monotonic() + self.base + size / self.min_rate
            environ["wsgi.input"] = _DeadlineInput(environ["wsgi.input"], sock, deadline)
        return self.app(environ, start_response)


class HavenWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker with header and body read deadlines."""

    def init_process(self) -> None:
        """Read the settings and start the watchdog before serving."""
        self.header_seconds = _setting("HAVEN_HEADER_TIMEOUT_SECONDS", 10)
        body = _setting("HAVEN_BODY_TIMEOUT_SECONDS", 30)
        rate = _setting("HAVEN_BODY_MIN_BYTES_PER_SECOND", 16 * 1024)
        self.watchdog = Watchdog()
        self.body_deadline = (body, rate)
        super().init_process()

    def load_wsgi(self) -> None:
        """Put the body deadline around the app."""
        super().load_wsgi()
        self.wsgi: WsgiApp = BodyDeadline(self.wsgi, *self.body_deadline)

    def handle(self, conn: Any) -> Any:
        """Serve a connection; its headers must be complete within the header deadline."""
        sock = conn.sock
        self.watchdog.arm(sock, self.header_seconds)
        try:
            return super().handle(conn)
        finally:
            self.watchdog.disarm(sock)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """The headers are in: from here on the body deadline applies."""
        self.watchdog.disarm(conn.sock)
        return super().handle_request(req, conn)
