"""Extension singletons, initialised per app in create_app."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager

limiter = Limiter(key_func=get_remote_address)
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
