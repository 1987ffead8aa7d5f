"""Extension singletons, initialised per app in create_app."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Response, current_app, has_request_context, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from limits import RateLimitItem, WindowStats
from limits.errors import StorageError
from limits.storage import RedisStorage, StorageTypes
from limits.strategies import STRATEGIES, FixedWindowRateLimiter

STRATEGY = "haven-fixed-window"
# limits' incr_expire.lua, also answering the key's time to live.
_INCR_EXPIRE_TTL = """
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if tonumber(current) == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""
_WINDOWS = "haven.limit_windows"


class OneTripFixedWindow(FixedWindowRateLimiter):
    """limits' fixed window whose Redis hit also reads the window's expiry, so the limit
    headers of the same response need no further round trips (two fewer per counted call)."""

    def __init__(self, storage: StorageTypes) -> None:
        """Register the script on Redis storage; other storage keeps the plain strategy."""
        super().__init__(storage)
        self._redis = storage if isinstance(storage, RedisStorage) else None
        self._script = (
            None
            if self._redis is None
            else self._redis.get_connection().register_script(_INCR_EXPIRE_TTL.encode())
        )

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Count a call, keeping the window it leaves for this request's headers."""
        if self._redis is None or self._script is None:
            return super().hit(item, *identifiers, cost=cost)
        key = item.key_for(*identifiers)
        try:
            count, ttl = self._script([self._redis.prefixed_key(key)], [item.get_expiry(), cost])
        except self._redis.base_exceptions as exc:
            if self._redis.wrap_exceptions:
                raise StorageError(exc) from exc
            raise
        if has_request_context():
            left = max(0, item.amount - int(count))
            windows = request.environ.setdefault(_WINDOWS, {})
            windows[key] = WindowStats(max(int(ttl), 0) + time.time(), left)
        return int(count) <= item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """The window this request's hit left, else read from storage."""
        if has_request_context():
            windows: dict[str, WindowStats] = request.environ.get(_WINDOWS, {})
            found = windows.get(item.key_for(*identifiers))
            if found is not None:
                return found
        return super().get_window_stats(item, *identifiers)


STRATEGIES[STRATEGY] = OneTripFixedWindow
limiter = Limiter(key_func=get_remote_address, strategy=STRATEGY)
login_manager = LoginManager()


def setting_limit(setting: str) -> Callable[[], str]:
    """A limit read from settings at request time, so a test or an operator can change it."""
    return lambda: str(current_app.config[setting])


def failed(response: Response) -> bool:
    """Count only refused attempts against a limit (``deduct_when``)."""
    return response.status_code >= 400


@limiter.request_filter
def _anonymous_on_signed_in_route() -> bool:
    """No limit counts an anonymous call to a signed-in route: it gets its 401, never a 429."""
    from flask import request
    from flask_login import current_user

    view = current_app.view_functions.get(request.endpoint or "")
    spec = getattr(view, "haven_endpoint", None)
    if spec is None or spec.roles == "anonymous":
        return False
    return not current_user.is_authenticated
