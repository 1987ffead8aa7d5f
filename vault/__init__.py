"""Haven: end-to-end encrypted messaging and document vault."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from vault import api, db, errors, ops, security, sessions, storage
from vault.config import load_config
from vault.extensions import limiter
from vault.keyring import init_keyring, load_keyring
from vault.keyring import install as install_keyring
from vault.keyring import refresh as refresh_keyring


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from settings (the environment unless a mapping is given)."""
    app = Flask(__name__, static_folder=None)
    app.config.update(load_config(config))
    # Bounded JSON decoding and strict <int:...> segments for every route (vault/api.py).
    app.json = api.JsonProvider(app)
    app.url_map.converters["int"] = api.IntConverter
    app.url_rule_class = api.Rule  # URL builders compiled on first use, not at start
    # First hook: a cross-site request is refused before the limiter counts it or a key reloads.
    security.init_app(app)
    _load_keys(app)
    db.init_app(app)
    storage.init_app(app)
    limiter.init_app(app)
    sessions.init_app(app)
    errors.register_error_handlers(app)
    ops.init_app(app)
    _register_blueprints(app)
    if app.config["HAVEN_PROXY_HOPS"]:
        hops = app.config["HAVEN_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    return app


def _load_keys(app: Flask) -> None:
    path = Path(app.config["HAVEN_KEYS_DIR"])
    init_keyring(path)
    install_keyring(app, load_keyring(path))
    app.before_request(lambda: refresh_keyring(app))


def _register_blueprints(app: Flask) -> None:
    from vault import health, openapi
    from vault.accounts.duress_views import bp as duress_bp
    from vault.accounts.factors_views import bp as factors_bp
    from vault.accounts.passkeys_views import bp as passkeys_bp
    from vault.accounts.shares_views import bp as shares_bp
    from vault.accounts.views import bp as accounts_bp
    from vault.cases.views import bp as cases_bp

    blueprints = [
        health.bp,
        openapi.bp,
        accounts_bp,
        duress_bp,
        shares_bp,
        factors_bp,
        passkeys_bp,
        cases_bp,
    ]
    # -- feature blueprints --
    from vault.documents.views import bp as documents_bp

    blueprints.append(documents_bp)
    from vault import messages
    from vault.messages.views import bp as messages_bp

    blueprints.append(messages_bp)
    messages.init_app(app)
    from vault.admin.views import bp as admin_bp
    from vault.audit.views import bp as audit_bp
    from vault.directory import witnesses
    from vault.directory.views import bp as directory_bp

    blueprints.append(directory_bp)
    witnesses.init_app(app)
    blueprints.append(admin_bp)
    blueprints.append(audit_bp)
    from vault.contacts.views import bp as contacts_bp

    blueprints.append(contacts_bp)
    from vault.ops.views import bp as ops_bp

    blueprints.append(ops_bp)

    from vault.links.views import bp as links_bp

    blueprints.append(links_bp)

    from vault.intake.views import bp as intake_bp

    blueprints.append(intake_bp)
    from vault.figures.views import bp as figures_bp

    blueprints.append(figures_bp)
    from vault.webapp.views import bp as webapp_bp

    blueprints.append(webapp_bp)
    for bp in blueprints:
        app.register_blueprint(bp)
