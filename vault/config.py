"""Typed settings, parsed once from the environment (or a mapping in tests).

Each loader reads the variables of one concern and fails loudly, naming the variable,
when a value is missing or malformed. Secrets may be given as ``NAME_FILE`` pointing at
a file (Docker/Compose secrets) instead of ``NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vault.protocol.messages import TIMERS


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """Read NAME, or the contents of the file named by NAME_FILE."""
    file_name = env.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from exc
    value = env.get(name)
    return default if value is None or value == "" else value


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name, default)
    assert value is not None
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _get(env, name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    value = _get(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: expected an integer, got {value!r}") from exc
    if number < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {number}")
    return number


def _timer(env: Mapping[str, str], name: str, default: int) -> int:
    """A disappearing-message timer: one of the protocol's allowed values (§9.7)."""
    number = _int(env, name, default)
    if number not in TIMERS:
        raise ConfigError(f"{name}: must be one of {', '.join(map(str, TIMERS))}, got {number}")
    return number


def origin_of(url: str) -> str:
    """The serialized origin (RFC 6454) of an http(s) URL: scheme://host[:port], lowercase."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname or parts.username is not None:
        raise ValueError("expected http(s)://host[:port]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port  # raises ValueError when malformed
    if port is None or port == {"http": 80, "https": 443}[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _public_url(env: Mapping[str, str]) -> dict[str, Any]:
    url = _str(env, "HAVEN_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        origin = origin_of(url)
    except ValueError as exc:
        raise ConfigError(f"HAVEN_PUBLIC_URL: {exc}, got {url!r}") from exc
    # The only origin whose pages may send state-changing requests (vault/security.py).
    return {"HAVEN_PUBLIC_URL": url, "HAVEN_PUBLIC_ORIGIN": origin}


def _load_flask(env: Mapping[str, str]) -> dict[str, Any]:
    secure = _bool(env, "HAVEN_SECURE_COOKIES", True)
    idle = _int(env, "HAVEN_SESSION_IDLE_MINUTES", 15, minimum=1)
    return {
        "HAVEN_SECURE_COOKIES": secure,
        "SESSION_COOKIE_NAME": "__Host-haven" if secure else "haven_session",
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "SESSION_COOKIE_PATH": "/",
        "SESSION_REFRESH_EACH_REQUEST": True,
        "PERMANENT_SESSION_LIFETIME": idle * 60,
        "HAVEN_SESSION_MAX_SECONDS": _int(env, "HAVEN_SESSION_MAX_HOURS", 12, minimum=1) * 3600,
        "HAVEN_RECENT_SIGN_IN_SECONDS": _int(env, "HAVEN_RECENT_SIGN_IN_MINUTES", 10, minimum=1)
        * 60,
        "REMEMBER_COOKIE_DURATION": 0,
        "MAX_CONTENT_LENGTH": _int(env, "HAVEN_MAX_JSON_BYTES", 256 * 1024, minimum=1024),
        "HAVEN_ROTATION_FREEZE_SECONDS": _int(
            env, "HAVEN_ROTATION_FREEZE_SECONDS", 600, minimum=10
        ),
        "HAVEN_ROTATION_MAX_BYTES": _int(
            env, "HAVEN_ROTATION_MAX_BYTES", 16 * 1024 * 1024, minimum=64 * 1024
        ),
        "HAVEN_PROXY_HOPS": _int(env, "HAVEN_PROXY_HOPS", 0),
        **_public_url(env),
        "HAVEN_INVITE_HOURS": _int(env, "HAVEN_INVITE_HOURS", 72, minimum=1),
        # Split recovery (§22): how long a recovery through shares waits for a cancel.
        "HAVEN_SHARE_RECOVERY_WAIT_SECONDS": _int(
            env, "HAVEN_SHARE_RECOVERY_WAIT_SECONDS", 72 * 3600
        ),
        "HAVEN_SERVER_HASH_OPSLIMIT": _int(env, "HAVEN_SERVER_HASH_OPSLIMIT", 2, minimum=1),
        "HAVEN_SERVER_HASH_MEMLIMIT": _int(
            env, "HAVEN_SERVER_HASH_MEMLIMIT", 64 * 1024 * 1024, minimum=8192
        ),
        "HAVEN_FACTOR_REQUIRE_STAFF": _bool(env, "HAVEN_FACTOR_REQUIRE_STAFF", True),
        "HAVEN_FACTOR_RECENT_SECONDS": _int(env, "HAVEN_FACTOR_RECENT_SECONDS", 600, minimum=30),
        "HAVEN_TOTP_ISSUER": _str(env, "HAVEN_TOTP_ISSUER", "Haven"),
        # Empty: the host name of HAVEN_PUBLIC_URL.
        "HAVEN_WEBAUTHN_RP_ID": _str(env, "HAVEN_WEBAUTHN_RP_ID", ""),
    }


def _load_database(env: Mapping[str, str]) -> dict[str, Any]:
    url = _str(env, "HAVEN_DATABASE_URL", "sqlite:///var/haven.db")
    scheme = urlsplit(url).scheme
    if scheme.startswith("postgresql"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    elif not scheme.startswith("sqlite"):
        raise ConfigError(f"HAVEN_DATABASE_URL: unsupported scheme {scheme!r}")
    return {
        "HAVEN_DATABASE_URL": url,
        # Per worker process: a request holds one connection, so the pool's steady size is
        # about the worker's threads; docs/deploy.md, "Connection pool sizing".
        "HAVEN_DB_POOL_SIZE": _int(env, "HAVEN_DB_POOL_SIZE", 10, minimum=1),
        "HAVEN_DB_MAX_OVERFLOW": _int(env, "HAVEN_DB_MAX_OVERFLOW", 20),
    }


def _load_object_store(env: Mapping[str, str]) -> dict[str, Any]:
    endpoint = _str(env, "HAVEN_S3_ENDPOINT", "127.0.0.1:9000")
    if "://" in endpoint or "/" in endpoint:
        raise ConfigError(f"HAVEN_S3_ENDPOINT: expected host:port, got {endpoint!r}")
    return {
        "HAVEN_S3_ENDPOINT": endpoint,
        "HAVEN_S3_ACCESS_KEY": _str(env, "HAVEN_S3_ACCESS_KEY", ""),
        "HAVEN_S3_SECRET_KEY": _str(env, "HAVEN_S3_SECRET_KEY", ""),
        "HAVEN_S3_BUCKET": _str(env, "HAVEN_S3_BUCKET", "haven"),
        "HAVEN_S3_SECURE": _bool(env, "HAVEN_S3_SECURE", False),
        "HAVEN_S3_REGION": _str(env, "HAVEN_S3_REGION", "us-east-1"),
    }


def _load_limiter(env: Mapping[str, str]) -> dict[str, Any]:
    redis_url = _get(env, "HAVEN_REDIS_URL")
    storage = _str(env, "HAVEN_LIMITER_STORAGE_URI", redis_url or "memory://")
    if not storage.startswith(("memory://", "redis://", "rediss://")):
        raise ConfigError(
            f"HAVEN_LIMITER_STORAGE_URI: expected memory:// or redis://, got {storage!r}"
        )
    return {
        "HAVEN_REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": storage,
        # Fail closed, and fast: a Redis that is down or hangs raises limits' StorageError
        # within two seconds, which errors.py turns into 503 limiter_unavailable.
        "RATELIMIT_STORAGE_OPTIONS": (
            {"wrap_exceptions": True, "socket_timeout": 2, "socket_connect_timeout": 2}
            if storage.startswith(("redis://", "rediss://"))
            else {}
        ),
        "RATELIMIT_SWALLOW_ERRORS": False,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": False,
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_ENABLED": _bool(env, "HAVEN_RATELIMIT_ENABLED", True),
        "HAVEN_LIMIT_PRELOGIN": _str(env, "HAVEN_LIMIT_PRELOGIN", "30/minute"),
        "HAVEN_LIMIT_LOGIN_IP": _str(env, "HAVEN_LIMIT_LOGIN_IP", "30/minute;200/hour"),
        "HAVEN_LIMIT_LOGIN_ACCOUNT": _str(env, "HAVEN_LIMIT_LOGIN_ACCOUNT", "10/minute;50/day"),
        "HAVEN_LIMIT_RECOVERY": _str(env, "HAVEN_LIMIT_RECOVERY", "5/minute;20/day"),
        "HAVEN_LIMIT_ROTATION_BEGIN": _str(env, "HAVEN_LIMIT_ROTATION_BEGIN", "10/minute;50/day"),
        "HAVEN_LIMIT_FACTOR": _str(env, "HAVEN_LIMIT_FACTOR", "5/minute;30/day"),
        "HAVEN_LIMIT_REDEEM": _str(env, "HAVEN_LIMIT_REDEEM", "10/minute;50/hour"),
        "HAVEN_LIMIT_MEMBER_REQUEST": _str(env, "HAVEN_LIMIT_MEMBER_REQUEST", "10/hour;30/day"),
        "HAVEN_LIMIT_LINK_IP": _str(env, "HAVEN_LIMIT_LINK_IP", "30/minute;300/day"),
        "HAVEN_LIMIT_LINK": _str(env, "HAVEN_LIMIT_LINK", "20/minute;100/day"),
    }


def _load_keys(env: Mapping[str, str]) -> dict[str, Any]:
    return {"HAVEN_KEYS_DIR": _str(env, "HAVEN_KEYS_DIR", "keys")}


def _load_witnesses(env: Mapping[str, str]) -> dict[str, Any]:
    """HAVEN_LOG_ORIGIN, HAVEN_WITNESSES (``<verifier key> <url>`` entries split by ';')."""
    from vault.protocol import checkpoint

    public = urlsplit(_str(env, "HAVEN_PUBLIC_URL", "http://127.0.0.1:8000"))
    origin = _str(env, "HAVEN_LOG_ORIGIN", f"{public.netloc}{public.path.rstrip('/')}/key-log")
    if not checkpoint.is_valid_name(origin):
        raise ConfigError(f"HAVEN_LOG_ORIGIN: no spaces or '+' allowed, got {origin!r}")
    witnesses: list[tuple[checkpoint.VerifierKey, str]] = []
    for item in (_get(env, "HAVEN_WITNESSES") or "").replace("\n", ";").split(";"):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 2:
            raise ConfigError(f"HAVEN_WITNESSES: expected '<verifier key> <url>', got {item!r}")
        try:
            key = checkpoint.parse_verifier_key(parts[0])
        except checkpoint.CheckpointError as exc:
            raise ConfigError(f"HAVEN_WITNESSES: {parts[0]!r}: {exc}") from exc
        if key.alg != checkpoint.ALG_COSIGNATURE_V1:
            raise ConfigError(f"HAVEN_WITNESSES: {parts[0]!r} is not a cosignature/v1 key")
        if urlsplit(parts[1]).scheme not in ("http", "https"):
            raise ConfigError(f"HAVEN_WITNESSES: {parts[1]!r} is not an http(s) URL")
        if len(parts[0]) > 255:
            raise ConfigError(f"HAVEN_WITNESSES: {parts[0]!r} is longer than 255 characters")
        if any(key == known for known, _ in witnesses):
            raise ConfigError(f"HAVEN_WITNESSES: {parts[0]!r} is listed twice")
        witnesses.append((key, parts[1].rstrip("/")))
    quorum = _int(env, "HAVEN_WITNESS_QUORUM", 1 if witnesses else 0)
    if quorum > len(witnesses):
        raise ConfigError(
            f"HAVEN_WITNESS_QUORUM: {quorum} is more than the {len(witnesses)} witnesses"
        )
    if witnesses and quorum < 1:
        raise ConfigError("HAVEN_WITNESS_QUORUM: must be at least 1 when witnesses are listed")
    return {
        "HAVEN_LOG_ORIGIN": origin,
        "HAVEN_WITNESSES": tuple(witnesses),
        "HAVEN_WITNESS_QUORUM": quorum,
        "HAVEN_WITNESS_TIMEOUT_SECONDS": _int(env, "HAVEN_WITNESS_TIMEOUT_SECONDS", 5, minimum=1),
        "HAVEN_WITNESS_RETRY_SECONDS": _int(env, "HAVEN_WITNESS_RETRY_SECONDS", 30),
    }


def _load_backup(env: Mapping[str, str]) -> dict[str, Any]:
    """HAVEN_BACKUP_PUBLIC_KEY: the operator's offline backup key (docs/protocol.md §27)."""
    from vault.backup.fileformat import BackupError, parse_public_key

    text = _get(env, "HAVEN_BACKUP_PUBLIC_KEY")
    try:
        key = parse_public_key(text) if text else None
    except BackupError as exc:
        raise ConfigError(f"HAVEN_BACKUP_PUBLIC_KEY: {exc}") from exc
    return {"HAVEN_BACKUP_PUBLIC_KEY": key}


TIERS = ("all", "app", "events")


def _load_messages(env: Mapping[str, str]) -> dict[str, Any]:
    tier = _str(env, "HAVEN_TIER", "all")
    if tier not in TIERS:
        raise ConfigError(f"HAVEN_TIER: expected one of {', '.join(TIERS)}, got {tier!r}")
    heartbeat = _int(env, "HAVEN_SSE_HEARTBEAT_SECONDS", 15, minimum=1)
    return {
        "HAVEN_MESSAGE_MAX_BYTES": _int(env, "HAVEN_MESSAGE_MAX_BYTES", 64 * 1024, minimum=1024),
        "HAVEN_MESSAGE_CLOCK_SKEW_SECONDS": _int(env, "HAVEN_MESSAGE_CLOCK_SKEW_SECONDS", 3600),
        "HAVEN_MESSAGE_MAX_AGE_SECONDS": _int(env, "HAVEN_MESSAGE_MAX_AGE_SECONDS", 7 * 86400),
        "HAVEN_LIMIT_MESSAGE_SEND": _str(env, "HAVEN_LIMIT_MESSAGE_SEND", "60/minute;1000/hour"),
        "HAVEN_LIMIT_CONVERSATION_CREATE": _str(env, "HAVEN_LIMIT_CONVERSATION_CREATE", "30/hour"),
        "HAVEN_MESSAGE_PURGE_SECONDS": _int(env, "HAVEN_MESSAGE_PURGE_SECONDS", 60),
        # New conversations' timer (§9.12): one week unless the organisation chooses.
        "HAVEN_MESSAGE_DEFAULT_TIMER": _timer(env, "HAVEN_MESSAGE_DEFAULT_TIMER", 7 * 86400),
        "HAVEN_EVENT_RETENTION_DAYS": _int(env, "HAVEN_EVENT_RETENTION_DAYS", 14, minimum=1),
        "HAVEN_SSE_HEARTBEAT_SECONDS": heartbeat,
        "HAVEN_SSE_MAX_SECONDS": _int(env, "HAVEN_SSE_MAX_SECONDS", 300, minimum=5),
        # gthread: each open stream holds a worker thread, so keep half of them for requests.
        # The event tier (gevent) holds a stream in a greenlet: thousands per process.
        "HAVEN_SSE_MAX_STREAMS": _int(
            env,
            "HAVEN_SSE_MAX_STREAMS",
            10000 if tier == "events" else max(1, _int(env, "HAVEN_THREADS", 8) // 2),
            minimum=1,
        ),
        # A stream re-reads the database when woken, and otherwise at most this often: a
        # lost wake-up costs this much latency, and thousands of idle streams stay cheap.
        "HAVEN_SSE_RECHECK_SECONDS": _int(
            env, "HAVEN_SSE_RECHECK_SECONDS", 60 if tier == "events" else heartbeat, minimum=1
        ),
        # Streams reading the database at once per process (the pool holds 10 + 20).
        "HAVEN_SSE_DB_READERS": _int(env, "HAVEN_SSE_DB_READERS", 8, minimum=1),
        "HAVEN_TIER": tier,
        "HAVEN_BENCH": _bool(env, "HAVEN_BENCH", False),
    }


def _load_documents(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "HAVEN_DOCUMENT_MAX_BYTES": _int(
            env, "HAVEN_DOCUMENT_MAX_BYTES", 512 * 1024 * 1024, minimum=1
        ),
        "HAVEN_DOCUMENT_QUOTA_BYTES": _int(
            env, "HAVEN_DOCUMENT_QUOTA_BYTES", 2 * 1024 * 1024 * 1024, minimum=1
        ),
        "HAVEN_UPLOAD_TTL_HOURS": _int(env, "HAVEN_UPLOAD_TTL_HOURS", 24, minimum=1),
    }


def _load_ops(env: Mapping[str, str]) -> dict[str, Any]:
    """Scheduled jobs (periods in seconds, 0: off), metrics and logs (docs/deploy.md)."""
    token = _get(env, "HAVEN_METRICS_TOKEN")
    if token is not None and len(token) < 16:
        raise ConfigError("HAVEN_METRICS_TOKEN: use at least 16 characters")
    return {
        # Off in tests unless a test turns it on; on in every app process otherwise.
        "HAVEN_JOBS_ENABLED": _bool(env, "HAVEN_JOBS_ENABLED", True),
        "HAVEN_JOB_UPLOADS_SECONDS": _int(env, "HAVEN_JOB_UPLOADS_SECONDS", 900),
        "HAVEN_JOB_GRANTS_SECONDS": _int(env, "HAVEN_JOB_GRANTS_SECONDS", 60),
        "HAVEN_JOB_AUDIT_SECONDS": _int(env, "HAVEN_JOB_AUDIT_SECONDS", 3600),
        "HAVEN_JOB_PRUNE_SECONDS": _int(env, "HAVEN_JOB_PRUNE_SECONDS", 86400),
        "HAVEN_JOB_INTAKE_SECONDS": _int(env, "HAVEN_JOB_INTAKE_SECONDS", 3600),
        "HAVEN_JOB_RUNS_KEEP_DAYS": _int(env, "HAVEN_JOB_RUNS_KEEP_DAYS", 14, minimum=1),
        # GET /metrics needs "Authorization: Bearer <this>"; unset, the route answers 404.
        "HAVEN_METRICS_TOKEN": token,
        "HAVEN_LOG_CLIENT_IP": _bool(env, "HAVEN_LOG_CLIENT_IP", False),
    }


def _load_intake(env: Mapping[str, str]) -> dict[str, Any]:
    """Anonymous intake (protocol §20): proof of work, quota, limits, retention."""
    bits = _int(env, "HAVEN_INTAKE_POW_BITS", 18)
    if bits > 32:
        raise ConfigError(f"HAVEN_INTAKE_POW_BITS: at most 32, got {bits}")
    return {
        "HAVEN_INTAKE_POW_BITS": bits,
        "HAVEN_INTAKE_CHALLENGE_SECONDS": _int(
            env, "HAVEN_INTAKE_CHALLENGE_SECONDS", 600, minimum=10
        ),
        "HAVEN_INTAKE_DAILY_QUOTA": _int(env, "HAVEN_INTAKE_DAILY_QUOTA", 500, minimum=1),
        "HAVEN_INTAKE_MAX_ENTRIES": _int(env, "HAVEN_INTAKE_MAX_ENTRIES", 500, minimum=1),
        "HAVEN_INTAKE_REPORT_QUOTA_BYTES": _int(
            env, "HAVEN_INTAKE_REPORT_QUOTA_BYTES", 1024 * 1024 * 1024, minimum=1
        ),
        "HAVEN_INTAKE_RETENTION_DAYS": _int(env, "HAVEN_INTAKE_RETENTION_DAYS", 90, minimum=1),
        "HAVEN_INTAKE_SESSION_SECONDS": _int(env, "HAVEN_INTAKE_SESSION_SECONDS", 3600, minimum=60),
        "HAVEN_LIMIT_INTAKE_IP": _str(env, "HAVEN_LIMIT_INTAKE_IP", "20/minute;200/day"),
        "HAVEN_LIMIT_INTAKE_GLOBAL": _str(env, "HAVEN_LIMIT_INTAKE_GLOBAL", "600/minute"),
    }


def _epsilon(env: Mapping[str, str], name: str, default: float) -> float:
    """A privacy-loss parameter: a finite number above 0 and at most 10."""
    value = _get(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: expected a number, got {value!r}") from exc
    if not 0 < number <= 10:
        raise ConfigError(f"{name}: must be above 0 and at most 10, got {value!r}")
    return number


def _load_figures(env: Mapping[str, str]) -> dict[str, Any]:
    """Private figures (protocol §28): epsilons, the budget per period, suppression."""
    return {
        "HAVEN_FIGURES_BUDGET": _epsilon(env, "HAVEN_FIGURES_BUDGET", 4.0),
        "HAVEN_FIGURES_EPSILON": _epsilon(env, "HAVEN_FIGURES_EPSILON", 0.1),
        "HAVEN_FIGURES_LOCAL_EPSILON": _epsilon(env, "HAVEN_FIGURES_LOCAL_EPSILON", 1.0),
        "HAVEN_FIGURES_SUPPRESS_BELOW": _int(env, "HAVEN_FIGURES_SUPPRESS_BELOW", 10, minimum=1),
    }


LOADERS: tuple[Callable[[Mapping[str, str]], dict[str, Any]], ...] = (
    _load_flask,
    _load_database,
    _load_object_store,
    _load_limiter,
    _load_keys,
    _load_witnesses,
    _load_documents,
    _load_messages,
    _load_backup,
    _load_ops,
    _load_intake,
    _load_figures,
)


def load_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse every setting once; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    config: dict[str, Any] = {"TESTING": _bool(env, "HAVEN_TESTING", False)}
    for load in LOADERS:
        config |= load(env)
    return config
