"""The authorization world, built once per worker and shared or copied by each test.

Building the authorization world (five accounts, two cases and every feature's resources:
about 390 statements and a dozen requests) took most of an authorization or cross-site
test's time. It is now built once per worker:

- requests by safe methods, and writes a test expects refused without effect (the test
  then checks a snapshot of the world is unchanged), run against that world itself, through
  one app per worker on the world's database, bucket and keys, its rate-limit counters
  cleared for each test;
- writes that may act run against a copy: a database made from a pristine copy of the
  world's, taken right after it was built and never served; the world's objects copied
  into a bucket of the copy's own; its keys folder copied; and each upload the world left
  in progress (it has no part yet) restarted in the new bucket, its id written into the
  copy's row. The copy is as good as a fresh build and costs one ``CREATE DATABASE``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from minio import Minio
from minio.commonconfig import CopySource

from tests.authz import World, build_full_world, copy_of
from tests.conftest import app_settings, build_app, dispose_app
from tests.integration.documents_fixtures import minio_client
from tests.services import MinioServer, PostgresServer
from vault.extensions import limiter


@dataclass(frozen=True)
class SharedWorld:
    """A built authorization world, the settings an app needs to serve it, and its copy."""

    settings: dict[str, str]
    world: World
    # A copy of the world's database taken before any test ran; copies are made from it.
    pristine: str


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
    pristine = f"{name}_pristine"
    postgres.execute(f"CREATE DATABASE {pristine} TEMPLATE {name}")
    # Copies restart the world's uploads in progress empty: that is only faithful while
    # none has a part. Checked here, once, on the world as built: a test that wrongly acts
    # on the shared world cannot then fail every later copy in its stead.
    client = minio_client(minio)
    for _table, object_name, upload_id in _uploads(postgres, pristine):
        parts = client._list_parts(settings["HAVEN_S3_BUCKET"], object_name, upload_id)
        assert not parts.parts, f"{object_name} has parts in progress"
    yield SharedWorld(settings, world, pristine)
    postgres.drop_database(pristine)
    postgres.drop_database(name)


def _copy_objects(minio: MinioServer, source: str, target: str) -> Minio:
    """Make ``target`` and copy every object of ``source`` into it, server side."""
    client = minio_client(minio)
    client.make_bucket(target)
    for item in client.list_objects(source, recursive=True):
        name = str(item.object_name)
        client.copy_object(target, name, CopySource(source, name))
    return client


def _uploads(postgres: PostgresServer, database: str) -> list[tuple[str, str, str]]:
    """(table, object name, upload id) of every upload in progress in ``database``."""
    with postgres.connect(database) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE column_name ="
                " 'upload_id' AND table_schema = 'public'"
            )
        ]
        return [
            (table, object_name, upload_id)
            for table in tables
            for object_name, upload_id in conn.execute(
                f"SELECT object_name, upload_id FROM {table} WHERE upload_id IS NOT NULL"
            ).fetchall()
        ]


def _restart_uploads(client: Minio, target: str, postgres: PostgresServer, database: str) -> None:
    """Start each of the copy's uploads in progress afresh in ``target`` and record its id
    (the world's have no part: ``shared_world`` checks)."""
    uploads = _uploads(postgres, database)
    with postgres.connect(database) as conn:
        for table, object_name, upload_id in uploads:
            fresh = client._create_multipart_upload(
                target, object_name, {"Content-Type": "application/octet-stream"}
            )
            conn.execute(
                f"UPDATE {table} SET upload_id = %s WHERE upload_id = %s", (fresh, upload_id)
            )


@pytest.fixture(scope="session")
def shared_apps() -> Iterator[dict[tuple[tuple[str, str], ...], Flask]]:
    """Apps on the shared world, one per set of setting overrides, built once per worker."""
    apps: dict[tuple[tuple[str, str], ...], Flask] = {}
    yield apps
    for app in apps.values():
        dispose_app(app)


@pytest.fixture
def app_and_world(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., tuple[Flask, World]]]:
    """Return a callable giving an app and its world: the shared one, or a copy of it.

    ``shared=True`` is for tests whose requests change nothing (a safe method, or a write
    the test expects refused and checks changed nothing); anything else gets a copy. The
    shared world's app is built once per worker and its rate-limit counters cleared for
    each test; a copy gets an app of its own.
    """
    apps: list[Flask] = []
    copies: list[str] = []
    postgres: PostgresServer = request.getfixturevalue("postgres")

    def _get(*, shared: bool, **overrides: str) -> tuple[Flask, World]:
        base: SharedWorld = request.getfixturevalue("shared_world")
        settings = base.settings
        if shared:
            cache = request.getfixturevalue("shared_apps")
            key = tuple(sorted(overrides.items()))
            if key not in cache:
                cache[key] = build_app({**settings, **overrides})
                cache[key].config.update(base.world.config)
            # One limiter serves every app of a process (Flask-Limiter keeps one storage).
            limiter.reset()
            return cache[key], copy_of(base.world)
        minio: MinioServer = request.getfixturevalue("minio")
        token = secrets.token_hex(6)
        name, bucket, keys = f"t_{token}", f"t-{token}", tmp_path / f"keys-{token}"
        postgres.execute(f"CREATE DATABASE {name} TEMPLATE {base.pristine}")
        copies.append(name)
        shutil.copytree(settings["HAVEN_KEYS_DIR"], keys)
        client = _copy_objects(minio, settings["HAVEN_S3_BUCKET"], bucket)
        _restart_uploads(client, bucket, postgres, name)
        settings = app_settings(postgres.url(name), keys, minio, bucket)
        app = build_app({**settings, **overrides})
        app.config.update(base.world.config)
        apps.append(app)
        return app, copy_of(base.world)

    yield _get
    for app in apps:
        dispose_app(app)
    for name in copies:
        postgres.drop_database(name)
