"""Sessions: Flask-Login over signed cookies plus a server-side session version.

The cookie carries ``id:session_version``; bumping the version in the database ends
every session of that account. Idle expiry is the cookie's signed timestamp
(PERMANENT_SESSION_LIFETIME, refreshed on each request); the absolute lifetime is the
login time stored in the session. There is no remember-me cookie.
"""

from __future__ import annotations

from flask import Flask, current_app, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import login_user, logout_user
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from vault import clock, db
from vault.accounts import services
from vault.accounts.models import User
from vault.errors import Forbidden
from vault.extensions import login_manager

FUTURE_TOLERANCE_SECONDS = 60
# A sign-in waiting for its second factor (protocol §21.1) lapses after this long.
PENDING_SECONDS = 300


def start_session(user: User) -> None:
    """Sign an account in on this client, with a fresh session."""
    session.clear()
    session.permanent = True
    login_user(user, remember=False)
    session["iat"] = int(clock.time())


def mark_recent_sign_in() -> None:
    """Record that this session's owner just proved the passphrase again (protocol §25.1)."""
    session["reauth"] = int(clock.time())


def require_recent_sign_in(
    setting: str = "HAVEN_RECENT_SIGN_IN_SECONDS",
    *,
    full_sign_in_only: bool = False,
    message: str = "enter your passphrase again to do this",
) -> None:
    """Refuse a change unless the sign-in, or a passphrase proof, is recent (§25.1, §21.4)."""
    names = ("iat",) if full_sign_in_only else ("iat", "reauth")
    proofs = [v for v in (session.get(n) for n in names) if isinstance(v, int)]
    age = clock.time() - max(proofs, default=0)
    if age > current_app.config[setting] or age < -FUTURE_TOLERANCE_SECONDS:
        raise Forbidden(message, code="recent_sign_in_required")


def start_pending(user: User, factor_owner_id: str) -> None:
    """Hold a sign-in that proved the passphrase until its second factor is checked."""
    session.clear()
    session.permanent = True
    session["pending"] = [user.id, user.session_version, factor_owner_id, int(clock.time())]


def pending_sign_in() -> tuple[str, int, str] | None:
    """The account, session version and factor owner of a live pending sign-in, if any."""
    held = session.get("pending")
    if not isinstance(held, list) or len(held) != 4:
        return None
    user_id, version, owner_id, since = held
    if not 0 <= clock.time() - since <= PENDING_SECONDS:
        return None
    return str(user_id), int(version), str(owner_id)


def end_session() -> None:
    """Forget the session on this client."""
    logout_user()
    session.clear()


def _load_user(session_id: str) -> User | None:
    issued = session.get("iat")
    max_age = current_app.config["HAVEN_SESSION_MAX_SECONDS"]
    if not isinstance(issued, int):
        return None
    age = clock.time() - issued
    # Issued "in the future" means the clock went back: the session ends rather than
    # living longer than its lifetime by the size of the jump.
    if age > max_age or age < -FUTURE_TOLERANCE_SECONDS:
        return None
    return services.load_session_user(db.session(), session_id)


class _ClockedSigner(TimestampSigner):
    """The cookie's idle-expiry timestamp, read from the server's one clock."""

    def get_timestamp(self) -> int:
        """Now, in whole seconds, by vault.clock."""
        return int(clock.time())


class _ClockedSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, timed by vault.clock (a cookie signed in the
    future, after the clock went back, is refused by itsdangerous as expired)."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's serializer with the clocked signer."""
        serializer = super().get_signing_serializer(app)
        if serializer is not None:
            serializer.signer = _ClockedSigner
        return serializer


def init_app(app: Flask) -> None:
    """Configure Flask-Login for API use: no redirects, no remember cookie."""
    app.session_interface = _ClockedSessionInterface()
    login_manager.init_app(app)
    login_manager.session_protection = None
    login_manager.user_loader(_load_user)
