"""Extension singletons, initialised per app in create_app."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager

limiter = Limiter(key_func=get_remote_address)
login_manager = LoginManager()
