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

A cap bounds how many bodies one client may have in flight at once in a worker:
``HAVEN_MAX_PENDING_BODIES_PER_CLIENT`` (default half the worker's threads). A request with a
body beyond it is answered 429 ``too_many_pending_bodies`` with ``Retry-After`` at once,
without reading its body, so one address cannot hold every thread for a body deadline.
The client is the address the app trusts (``HAVEN_PROXY_HOPS`` through werkzeug's ProxyFix,
as the rate limiter sees it), not the proxy's.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import ClientDisconnected
from werkzeug.middleware.proxy_fix import ProxyFix

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


class PendingBodies:
    """How many request bodies each client has still being read (one per worker)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> bool:
        """Take a slot for ``client``; False when it already has ``cap`` bodies in flight."""
        with self._lock:
            count = self._counts.get(client, 0)
            if count >= self.cap:
                return False
            self._counts[client] = count + 1
            return True

    def release(self, client: str) -> None:
        """Give the slot back."""
        with self._lock:
            count = self._counts.get(client, 0) - 1
            if count > 0:
                self._counts[client] = count
            else:
                self._counts.pop(client, None)

    def pending(self, client: str) -> int:
        """Bodies in flight for ``client``."""
        with self._lock:
            return self._counts.get(client, 0)


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

    def __init__(
        self,
        stream: Any,
        sock: socket.socket,
        deadline: float,
        length: int | None = None,
        done: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._sock = sock
        self._deadline = deadline
        self._left = length  # None: chunked, finished when a read returns nothing
        self._done = done

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return self._expire()
        self._sock.settimeout(remaining)
        try:
            data = method(*args)
        except TimeoutError:
            return self._expire()
        finally:
            self._sock.settimeout(None)
        self._count(sum(map(len, data)) if isinstance(data, list) else len(data), args)
        return data

    def _count(self, got: int, args: tuple[Any, ...]) -> None:
        """Give the client's slot back once the whole body is in."""
        if self._left is not None:
            self._left -= got
        asked = args[0] if args else -1
        ended = got == 0 and asked != 0
        if self._done is not None and (ended or (self._left is not None and self._left <= 0)):
            self._done()
            self._done = None

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


def client_address(environ: dict[str, Any], hops: int) -> str:
    """The client's address as the app sees it: ProxyFix's, trusting ``hops`` proxies."""
    if hops <= 0:
        return str(environ.get("REMOTE_ADDR", ""))
    seen: dict[str, Any] = {}

    def capture(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.update(env)
        return []

    ProxyFix(capture, x_for=hops)(dict(environ), lambda *args: None)  # type: ignore[arg-type]
    return str(seen.get("REMOTE_ADDR", ""))


TOO_MANY = json.dumps(
    {
        "error": {
            "code": "too_many_pending_bodies",
            "message": "too many requests from this address are still sending; retry shortly",
        }
    }
).encode()


class BodyDeadline:
    """WSGI middleware: bodies within base + length / rate seconds, ``pending.cap`` per client."""

    def __init__(
        self,
        app: WsgiApp,
        base: float,
        min_rate: float,
        pending: PendingBodies | None = None,
        hops: int = 0,
    ) -> None:
        self.app = app
        self.base = base
        self.min_rate = min_rate
        self.pending = pending
        self.hops = hops

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Wrap ``wsgi.input`` when the server gave us its socket."""
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, socket.socket):
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        size = int(length) if length.isascii() and length.isdigit() else 0
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        deadline = time.monotonic() + self.base + size / self.min_rate
        if self.pending is None or not (size > 0 or chunked):
            environ["wsgi.input"] = _DeadlineInput(environ["wsgi.input"], sock, deadline)
            return self.app(environ, start_response)
        client = client_address(environ, self.hops)
        if not self.pending.acquire(client):
            return self._refuse(sock, start_response)
        pending = self.pending
        released = threading.Event()

        def done() -> None:
            if not released.is_set():
                released.set()
                pending.release(client)

        environ["wsgi.input"] = _DeadlineInput(
            environ["wsgi.input"], sock, deadline, None if chunked else size, done
        )
        try:
            result = self.app(environ, start_response)
        except BaseException:
            done()
            raise
        return _Closing(result, done)

    @staticmethod
    def _refuse(sock: socket.socket, start_response: Callable[..., Any]) -> list[bytes]:
        """429 at once, its body unread; the read side is shut so the connection closes."""
        _stop_reading(sock)
        start_response(
            "429 Too Many Requests",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(TOO_MANY))),
                ("Retry-After", "1"),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [TOO_MANY]


class _Closing:
    """A WSGI answer that gives the client's slot back when the server is done with it."""

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self._result = result
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        """Close the wrapped answer, then release."""
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


class HavenWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker with header and body read deadlines."""

    def init_process(self) -> None:
        """Read the settings and start the watchdog before serving."""
        self.header_seconds = _setting("HAVEN_HEADER_TIMEOUT_SECONDS", 10)
        body = _setting("HAVEN_BODY_TIMEOUT_SECONDS", 30)
        rate = _setting("HAVEN_BODY_MIN_BYTES_PER_SECOND", 16 * 1024)
        default_cap = max(1, int(self.cfg.threads) // 2)
        cap = _setting("HAVEN_MAX_PENDING_BODIES_PER_CLIENT", default_cap)
        if cap != int(cap):
            raise SystemExit("HAVEN_MAX_PENDING_BODIES_PER_CLIENT: expected a whole number")
        self.pending_bodies = PendingBodies(int(cap))
        self.watchdog = Watchdog()
        self.body_deadline = (body, rate)
        super().init_process()

    def load_wsgi(self) -> None:
        """Put the body deadline and the per-client cap around the app."""
        super().load_wsgi()
        config = getattr(self.wsgi, "config", {})
        hops = int(config.get("HAVEN_PROXY_HOPS", 0) or 0)
        self.wsgi: WsgiApp = BodyDeadline(
            self.wsgi, *self.body_deadline, pending=self.pending_bodies, hops=hops
        )

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
