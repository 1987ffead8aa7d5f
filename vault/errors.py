"""One JSON error shape for every 4xx and 5xx: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from flask import Flask, Response, jsonify
from flask_limiter.errors import RateLimitExceeded
from limits.errors import StorageError as LimiterStorageError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from vault.extensions import limiter
from vault.ops import metrics

log = logging.getLogger(__name__)


class HavenError(Exception):
    """A domain error with an HTTP status and a stable machine-readable code."""

    status = 400
    code = "invalid_request"
    # Seconds a client should wait before trying again (sent as Retry-After), if any.
    retry_after: int | None = None

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(HavenError):
    """The request is malformed or breaks a rule."""


class Unauthorized(HavenError):
    """No valid session, or bad credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(HavenError):
    """Authenticated, but this role may not do this."""

    status = 403
    code = "forbidden"


class NotFound(HavenError):
    """The thing does not exist for this caller."""

    status = 404
    code = "not_found"


class Conflict(HavenError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"


class InsufficientStorage(HavenError):
    """The object store is out of space: nothing was stored."""

    status = 507
    code = "storage_full"


class Unavailable(HavenError):
    """A backing service (database, object store, limiter storage) is down."""

    status = 503
    code = "unavailable"


def error_response(status: int, code: str, message: str) -> Response:
    """Build the one error shape."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _limiter_unavailable() -> Response:
    response = error_response(
        503, "limiter_unavailable", "this action is paused: the rate limiter is unavailable"
    )
    response.headers["Retry-After"] = "5"
    return response


def _guard_limiter_hook(app: Flask, limiter: object) -> None:
    """Turn a limiter store failure after the view (a failure's deduction) into the 503."""
    # The limiter counts some failures (a wrong login) only once the answer is known, in an
    # after-request hook; an error raised there skips the error handlers and ends as a 500.
    # A failed answer whose failure could not be counted becomes `limiter_unavailable`
    # (fail closed, as before the view); a successful one stands without its limit headers.
    hooks = app.after_request_funcs.setdefault(None, [])
    for index, hook in enumerate(hooks):
        if isinstance(hook, partial) and hook.args[:1] == (limiter,):
            hooks[index] = _guarded(hook)


def _guarded(hook: Callable[[Response], Response]) -> Callable[[Response], Response]:
    def guarded(response: Response) -> Response:
        try:
            return hook(response)
        except LimiterStorageError as exc:
            log.error("limiter storage unavailable: %s", type(exc.storage_error).__name__)
            metrics.limiter_unavailable()
            if response.status_code < 400:
                return response
            return _limiter_unavailable()

    return guarded


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    """Route every error through the one shape."""
    _guard_limiter_hook(app, limiter)

    @app.errorhandler(HavenError)
    def _domain(exc: HavenError) -> Response:
        response = error_response(exc.status, exc.code, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        elif exc.status == 503:
            response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(RateLimitExceeded)
    def _limited(exc: RateLimitExceeded) -> Response:
        metrics.limiter_rejected()
        return error_response(429, "rate_limited", "too many attempts; wait and try again")

    @app.errorhandler(LimiterStorageError)
    def _limiter_down(exc: LimiterStorageError) -> Response:
        # Fail closed: a throttle that cannot count must not let guesses through uncounted.
        log.error("limiter storage unavailable: %s", type(exc.storage_error).__name__)
        metrics.limiter_unavailable()
        return _limiter_unavailable()

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = error_response(status, _http_code(exc), exc.description or exc.name)
        if exc.response is not None:
            for name in ("Allow", "Retry-After"):
                if name in exc.response.headers:
                    response.headers[name] = exc.response.headers[name]
        elif status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response:
        log.error("database unavailable: %s", type(exc.orig).__name__)
        metrics.database_error()
        response = error_response(503, "database_unavailable", "the database is unavailable")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
