"""The authorization world shared by the requests that must change nothing.

Building the authorization world (five accounts, two cases and every feature's resources)
takes most of an authorization or cross-site test's time. Requests by safe methods, and
writes a test expects to be refused without effect, run against one world per worker
instead: each test gets a fresh app (its own rate-limit counters) on that world's database,
bucket and keys. Writes that may act keep a world of their own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask

from tests.authz import World, build_full_world, copy_of
from tests.conftest import app_settings, build_app, dispose_app
from tests.services import MinioServer, PostgresServer


@dataclass(frozen=True)
class SharedWorld:
    """A built authorization world and the settings an app needs to serve it."""

    settings: dict[str, str]
    world: World


@pytest.fixture(scope="session")
def shared_world(
    postgres: PostgresServer, minio: MinioServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedWorld]:
    """The authorization world, built once per worker on its own database and bucket."""
    name = f"w_{secrets.token_hex(6)}"
    postgres.execute(f"CREATE DATABASE {name} TEMPLATE haven_template")
    keys = tmp_path_factory.mktemp("shared-world") / "keys"
    settings = app_settings(postgres.url(name), keys, minio, f"w-{secrets.token_hex(6)}")
    app = build_app(settings)
    try:
        world = build_full_world(app)
    finally:
        dispose_app(app)
    yield SharedWorld(settings, world)
    postgres.drop_database(name)


@pytest.fixture
def app_and_world(request: pytest.FixtureRequest) -> Iterator[Callable[..., tuple[Flask, World]]]:
    """Return a callable giving an app and its world: the shared one, or a fresh one.

    ``shared=True`` is for tests whose requests change nothing (a safe method, or a write
    the test expects refused and checks changed nothing); anything else builds its own.
    """
    apps: list[Flask] = []

    def _get(*, shared: bool, **overrides: str) -> tuple[Flask, World]:
        if not shared:
            app = request.getfixturevalue("make_app")(**overrides)
            return app, build_full_world(app)
        base: SharedWorld = request.getfixturevalue("shared_world")
        app = build_app({**base.settings, **overrides})
        app.config.update(base.world.config)
        apps.append(app)
        return app, copy_of(base.world)

    yield _get
    for app in apps:
        dispose_app(app)
