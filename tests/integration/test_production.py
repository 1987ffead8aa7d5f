"""The production code path: gunicorn from vault/gunicorn_conf.py with the production
settings (PostgreSQL, MinIO, Redis, secure cookies, ProxyFix for exactly one hop), driven
through register -> upload -> share -> message; then a backup and restore drill.

TLS is terminated by the proxy in production. Here the test plays the proxy's part: it
sends the one X-Forwarded-Proto/For hop the app trusts, and its cookie jar accepts the
Secure cookie over the loopback connection, as a browser behind TLS would.
"""

from __future__ import annotations

import glob
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import FAST_SERVER_HASH, PASSPHRASE
from tests.integration.documents_fixtures import fast_documents, sha256_file, write_random_file
from tests.integration.messages_fixtures import AppProcess
from tests.services import MinioServer, PostgresServer, RedisServer
from vault.cli import main
from vault.client import HavenClient, WitnessPolicy
from vault.client.messages import Messenger
from vault.migrate import upgrade
from vault.storage import ObjectStore


class BehindTlsSession(requests.Session):
    """Sends the Secure session cookie on the loopback leg, as the browser does over TLS.

    (requests copies the jar into a default-policy jar per request, which would withhold
    Secure cookies from an http:// URL; the cookie is marked sendable just before.)
    """

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        for cookie in self.cookies:
            if cookie.secure:
                self.seen_secure = True
                cookie.secure = False
        return super().prepare_request(request)


def proxied_client(base: str) -> HavenClient:
    """A client whose requests arrive as they would from Caddy: one forwarded hop, HTTPS."""
    client = HavenClient(base, witnesses=WitnessPolicy.unwitnessed())
    client.http = BehindTlsSession()
    client.http.headers.update({"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"})
    return client


class Gunicorn(AppProcess):
    """`gunicorn -c vault/gunicorn_conf.py vault.wsgi:app`: the production config file."""

    def __init__(self, settings: dict[str, str], log: Path) -> None:
        super().__init__(settings, log=log)
        self.settings = {
            **settings,
            "HAVEN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "2",
            "HAVEN_THREADS": "4",
        }

    def argv(self) -> list[str]:
        """Every setting comes from the config file and the environment."""
        return [sys.executable, "-m", "gunicorn", "-c", "vault/gunicorn_conf.py", "vault.wsgi:app"]


@pytest.fixture
def production(
    postgres: PostgresServer, minio: MinioServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Gunicorn, dict[str, str], str]]:
    """Production settings on fresh PostgreSQL database, bucket and keyring, under gunicorn."""
    name = f"prod_{secrets.token_hex(5)}"
    postgres.execute(f"CREATE DATABASE {name}")
    bucket = f"prod-{secrets.token_hex(5)}"
    settings = {
        "HAVEN_DATABASE_URL": postgres.url(name),
        "HAVEN_REDIS_URL": redis_server.url,
        "HAVEN_SECURE_COOKIES": "true",
        "HAVEN_PROXY_HOPS": "1",
        "HAVEN_PUBLIC_URL": "https://haven.example",
        "HAVEN_KEYS_DIR": str(tmp_path / "keys"),
        **FAST_SERVER_HASH,
        **minio.settings(bucket),
    }
    runner = CliRunner()
    env = {**settings}
    assert runner.invoke(main, ["keys", "init"], env=env).exit_code == 0
    upgrade(settings["HAVEN_DATABASE_URL"])
    store = ObjectStore(
        minio.settings(bucket)["HAVEN_S3_ENDPOINT"], minio.access_key, minio.secret_key, bucket
    )
    store.ensure_bucket()
    server = Gunicorn(settings, tmp_path / "gunicorn.log")
    server.start()
    try:
        yield server, settings, name
    finally:
        server.stop()


def _admin_invite(settings: dict[str, str]) -> str:
    result = CliRunner().invoke(main, ["admin", "invite", "--role", "counsel"], env=settings)
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[0]
    assert link.startswith("https://haven.example/app/#invite=")
    return link


def _pg_bin(name: str) -> str:
    return sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1]


def test_production_settings_register_upload_share_message_then_restore(
    production: tuple[Gunicorn, dict[str, str], str],
    postgres: PostgresServer,
    minio: MinioServer,
    tmp_path: Path,
) -> None:
    server, settings, database = production
    counsel = proxied_client(server.url)
    counsel.register(_admin_invite(settings), "prod-counsel", PASSPHRASE)

    survivor = proxied_client(server.url)
    survivor.register(counsel.create_invite("survivor"), "prod-survivor", PASSPHRASE)
    assert counsel.account is not None and survivor.account is not None

    # Secure cookie policy, as the browser sees it behind the proxy.
    raw = requests.post(
        f"{server.url}/api/v1/auth/prelogin",
        json={"username": "prod-survivor"},
        headers={"X-Forwarded-Proto": "https"},
        timeout=10,
    )
    assert raw.headers["Strict-Transport-Security"].startswith("max-age=")
    assert getattr(survivor.http, "seen_secure", False)  # the server set it Secure
    cookie = next(c for c in survivor.http.cookies if c.name == "__Host-haven")
    assert cookie.path == "/" and cookie.has_nonstandard_attr("HttpOnly")

    # Writes from a page: the origin is the configured public URL, whatever Host the hop says.
    def browser_write(origin: str, forwarded_host: str) -> requests.Response:
        return requests.post(
            f"{server.url}/api/v1/auth/prelogin",
            json={"username": "prod-survivor"},
            headers={
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": forwarded_host,
                "Origin": origin,
                "Sec-Fetch-Site": "same-origin",
            },
            timeout=10,
        )

    assert browser_write("https://haven.example", "haven.example").status_code == 200
    assert browser_write("https://haven.example", "other.example").status_code == 200
    refused = browser_write("https://other.example", "other.example")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "cross_site_request"
    assert browser_write(server.url, "haven.example").status_code == 403

    [case] = survivor.cases()
    source = tmp_path / "passport.jpg"
    digest = write_random_file(source, 3 * 1024 * 1024, seed=b"prod")
    doc = fast_documents(survivor).upload(case["id"], source, doc_type="passport")
    fast_documents(survivor).grant(doc.id, counsel.account.id)
    first = tmp_path / "first"
    first.mkdir()
    assert fast_documents(counsel).download(doc.id, first / "p.jpg").sha256 == digest

    survivor_chat = Messenger(survivor)
    conversation = survivor_chat.create_conversation(case["id"], [counsel.account.id])
    survivor_chat.send(conversation.id, "I uploaded my passport.")
    counsel_chat = Messenger(counsel)
    counsel_chat.send(conversation.id, "Received, thank you.")
    assert [m.text for m in survivor_chat.read(conversation.id)] == [
        "Received, thank you.",
        "I uploaded my passport.",
    ]

    # -- restore drill: dump PostgreSQL, mirror the bucket, wipe both, restore, re-read --
    server.stop()
    dump = tmp_path / "haven.sql"
    subprocess.run(
        [
            _pg_bin("pg_dump"),
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres.port),
            "-U",
            "postgres",
            "--no-owner",
            "-f",
            str(dump),
            database,
        ],
        check=True,
    )
    bucket = settings["HAVEN_S3_BUCKET"]
    store = ObjectStore(settings["HAVEN_S3_ENDPOINT"], minio.access_key, minio.secret_key, bucket)
    mirror = tmp_path / "mirror"
    names = [o.object_name for o in store.client.list_objects(bucket, recursive=True)]
    assert names
    for name in names:
        store.client.fget_object(bucket, name, str(mirror / name))
    for name in names:
        store.client.remove_object(bucket, name)
    store.client.remove_bucket(bucket)
    postgres.execute(f"DROP DATABASE {database} WITH (FORCE)")
    assert not store.client.bucket_exists(bucket)

    postgres.execute(f"CREATE DATABASE {database}")
    subprocess.run(
        [
            _pg_bin("psql"),
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-f",
            str(dump),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    store.ensure_bucket()
    for name in names:
        store.client.fput_object(bucket, name, str(mirror / name))
    shutil.rmtree(mirror)
    server.start()

    # New devices for both people: every document and message still decrypts for its readers.
    counsel2 = proxied_client(server.url)
    counsel2.login("prod-counsel", PASSPHRASE)
    survivor2 = proxied_client(server.url)
    survivor2.login("prod-survivor", PASSPHRASE)
    again = tmp_path / "again"
    again.mkdir()
    restored = fast_documents(counsel2).download(doc.id, again / "p.jpg")
    assert restored.sha256 == digest and sha256_file(restored.path) == digest
    assert (again / "p.jpg").read_bytes() == source.read_bytes()
    for reader in (counsel2, survivor2):
        texts = [m.text for m in Messenger(reader).read(conversation.id)]
        assert texts == ["Received, thank you.", "I uploaded my passport."]
    counsel2.cases()  # key-log inclusion and consistency still verify after the restore
