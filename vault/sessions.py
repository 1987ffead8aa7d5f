"""Sessions: Flask-Login over signed cookies plus a server-side session version.

The cookie carries ``id:session_version``; bumping the version in the database ends
every session of that account. Idle expiry is the cookie's signed timestamp
(PERMANENT_SESSION_LIFETIME, refreshed on each request); the absolute lifetime is the
login time stored in the session. There is no remember-me cookie.
"""

from __future__ import annotations

import time

from flask import Flask, current_app, session
from flask_login import login_user, logout_user

from vault import db
from vault.accounts import services
from vault.accounts.models import User
from vault.extensions import login_manager


def start_session(user: User) -> None:
    """Sign an account in on this client, with a fresh session."""
    session.clear()
    session.permanent = True
    login_user(user, remember=False)
    session["iat"] = int(time.time())


def end_session() -> None:
    """Forget the session on this client."""
    logout_user()
    session.clear()


def _load_user(session_id: str) -> User | None:
    issued = session.get("iat")
    max_age = current_app.config["HAVEN_SESSION_MAX_SECONDS"]
    if not isinstance(issued, int) or time.time() - issued > max_age:
        return None
    return services.load_session_user(db.session(), session_id)


def init_app(app: Flask) -> None:
    """Configure Flask-Login for API use: no redirects, no remember cookie."""
    login_manager.init_app(app)
    login_manager.session_protection = None
    login_manager.user_loader(_load_user)
