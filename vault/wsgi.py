"""WSGI entry point for gunicorn: `gunicorn -c vault/gunicorn_conf.py vault.wsgi:app`."""

from vault import create_app

app = create_app()
