"""Faults with the real processes: PostgreSQL restarted mid-write, Redis stopped, MinIO out
of disk, the clock jumping. docs/deploy.md ("Outages") says what each one looks like.

This module runs its own PostgreSQL (the `postgres` fixture is overridden here), so
restarting it disturbs no other test.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.authz import build_world
from tests.conftest import PASSPHRASE, LiveServer
from tests.factories import session_cookie_for
from tests.integration.documents_fixtures import fast_documents, pair, write_random_file
from tests.integration.messages_fixtures import envelope_body, make_envelope, open_conversation
from tests.integration.test_messages_events import Listener, http_client, sender
from tests.services import MinioServer, PostgresServer, RedisServer, wait_for
from vault import clock, migrate
from vault.audit.chain import ADVISORY_LOCK_ID
from vault.client import ApiError, HavenClient
from vault.client.documents import Documents, OpenedDocument
from vault.client.messages import Messenger
from vault.db import database
from vault.documents.models import Document
from vault.messages.models import Message
from vault.messages.purge import purge_now

__all__ = ["pair"]

Pair = tuple[HavenClient, HavenClient, str]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """This module's own PostgreSQL with a migrated template: the faults restart it."""
    server = PostgresServer()
    server.start()
    server.execute("CREATE DATABASE haven_template")
    migrate.upgrade(server.url("haven_template"))
    yield server
    server.remove()


def _dsn(server: PostgresServer, url: str) -> str:
    return f"host=127.0.0.1 port={server.port} user=postgres dbname={url.rsplit('/', 1)[1]}"


@contextmanager
def holding(server: PostgresServer, url: str, statement: str) -> Iterator[Callable[[], None]]:
    """Hold a lock in another session; yield a call that waits until the app blocks on it."""
    holder = psycopg.connect(_dsn(server, url))
    holder.execute(statement)  # type: ignore[arg-type]

    def blocked() -> None:
        deadline = time.monotonic() + 30
        with psycopg.connect(_dsn(server, url), autocommit=True) as watcher:
            while time.monotonic() < deadline:
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchone()
                if row is not None and row[0] > 0:
                    return
                time.sleep(0.05)
        raise AssertionError("the request never reached the lock")

    try:
        yield blocked
    finally:
        with suppress(psycopg.Error):
            holder.close()


def in_thread(call: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``call`` in a thread; return a join that gives its result or raises its error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(timeout=60)
        assert not thread.is_alive(), "the client never finished"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return join


def _count(app: Flask, statement: Any) -> int:
    with app.app_context():
        session = database(app).sessions()
        try:
            return int(session.execute(statement).scalar_one())
        finally:
            session.close()


# -- PostgreSQL restarted ------------------------------------------------------------------


def test_database_down_is_a_503_in_the_one_error_shape(
    postgres: PostgresServer, live_server: Any, pair: Pair
) -> None:
    survivor, _, case_id = pair
    postgres.stop_fast()
    try:
        response = survivor.http.get(f"{survivor.base_url}/api/v1/cases/{case_id}/documents")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json() == {
            "error": {"code": "database_unavailable", "message": "the database is unavailable"}
        }
    finally:
        postgres.start()
    # pool_pre_ping: the connections the restart cut are replaced, not handed out dead.
    assert survivor.get(f"/cases/{case_id}/documents")["documents"] == []


def test_postgres_restart_during_finalize(
    postgres: PostgresServer, app: Flask, database_url: str, pair: Pair, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "passport.pdf"
    digest = write_random_file(source, 200 * 1024, seed=b"finalize")
    docs = Documents(survivor, retries=6, backoff=0.25)
    # Finalize completes the object, marks the row ready and then appends to the audit
    # chain: holding the chain's lock stops it there, its transaction open, and the restart
    # rolls that transaction back after the object store already joined the parts.
    with holding(postgres, database_url, f"SELECT pg_advisory_lock({ADVISORY_LOCK_ID})") as blocked:
        gate = threading.Event()
        join = in_thread(
            lambda: docs.upload(
                case_id, source, doc_type="passport", on_part=lambda _n: gate.wait(30)
            )
        )
        gate.set()
        blocked()
        # Nothing half-visible: the uncommitted document is not in the case.
        assert Documents(survivor).case_documents(case_id).documents == []
        postgres.restart()
    uploaded: OpenedDocument = join()

    assert _count(app, select(func.count()).select_from(Document)) == 1
    listing = Documents(survivor).case_documents(case_id)
    assert [d.id for d in listing.documents] == [uploaded.id]
    got = Documents(survivor).download(uploaded.id, tmp_path / "copy.pdf")
    assert got.document.info.sha256 == digest
    assert (tmp_path / "copy.pdf").read_bytes() == source.read_bytes()


def test_postgres_restart_during_message_send(
    postgres: PostgresServer, app: Flask, database_url: str, pair: Pair
) -> None:
    survivor, counsel, case_id = pair
    sender = Messenger(survivor, retries=6, backoff=0.25)
    conversation = sender.create_conversation(case_id, [counsel.account.id])  # type: ignore[union-attr]
    # Sending numbers the message under the conversation's row lock: held elsewhere, the
    # send waits there with its insert not yet committed, and the restart cuts it off.
    with holding(
        postgres,
        database_url,
        f"SELECT id FROM conversations WHERE id = '{conversation.id}' FOR UPDATE",
    ) as blocked:
        join = in_thread(lambda: sender.send(conversation.id, "meet at the clinic at 3"))
        blocked()
        postgres.restart()
    sent = join()

    assert sent["seq"] == 1
    assert _count(app, select(func.count()).select_from(Message)) == 1
    read = Messenger(counsel).read(conversation.id)
    assert [(m.seq, m.text) for m in read] == [(1, "meet at the clinic at 3")]


# -- Redis stopped -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This module's own Redis: the faults stop it."""
    server = RedisServer(tmp_path_factory.mktemp("faults-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_live(make_app: Callable[..., Flask], own_redis: RedisServer) -> Iterator[LiveServer]:
    """An app as in production: limiter counts and live-delivery wake-ups in Redis."""
    app = make_app(HAVEN_LIMITER_STORAGE_URI=own_redis.url, HAVEN_REDIS_URL=own_redis.url)
    try:
        with LiveServer(app) as server:
            yield server
    finally:
        app.extensions["haven.fanout"].close()
        if own_redis.proc is None:
            own_redis.start()


def test_redis_down_closes_sign_in_and_keeps_reading(
    invite: Callable[..., str], redis_live: LiveServer, own_redis: RedisServer
) -> None:
    # `invite` first: the limiter is one object per process, bound to the last app built.
    counsel = HavenClient(redis_live.url, witnesses=redis_live.witnesses)
    counsel.register(invite("counsel"), "counsel.redis", PASSPHRASE)
    own_redis.stop()

    # Sign-in is throttled through Redis: with Redis gone it is refused, never let through
    # uncounted (fail closed).
    raw = counsel.http.post(
        f"{redis_live.url}/api/v1/auth/prelogin", json={"username": "counsel.redis"}
    )
    assert raw.status_code == 503
    assert raw.headers["Retry-After"]
    assert raw.json()["error"]["code"] == "limiter_unavailable"
    for _ in range(3):
        with pytest.raises(ApiError) as err:
            HavenClient(redis_live.url, witnesses=redis_live.witnesses).login(
                "counsel.redis", "a wrong guess at the passphrase"
            )
        assert (err.value.status, err.value.code) == (503, "limiter_unavailable")
    # A signed-in user keeps reading: routes without a limit do not touch Redis.
    assert len(counsel.cases()) == 0

    own_redis.start()
    again = HavenClient(redis_live.url, witnesses=redis_live.witnesses)
    assert again.login("counsel.redis", PASSPHRASE).username == "counsel.redis"


def test_redis_down_refuses_sends_and_still_delivers_live_events(
    redis_live: LiveServer, own_redis: RedisServer
) -> None:
    app = redis_live.app
    world = build_world(app)
    p = world.people
    world.extra["cid"] = cid = open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])
    listener = Listener(http_client(app, redis_live.url, p["counsel"].id))
    assert listener.next().kind in {"ready", "resync"}
    send = sender(app, world, "survivor")
    first = send("before the outage")
    assert listener.until("message").data["message_id"] == first

    own_redis.stop()
    survivor = app.test_client()
    session_cookie_for(app, survivor, p["survivor"].id)
    envelope = make_envelope(p["survivor"], cid, [p["survivor"], p["counsel"]], "during")
    refused = survivor.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope))
    # Sending is rate-limited, so it fails closed too; nothing was stored or acknowledged.
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "limiter_unavailable"
    assert _count(app, select(func.count()).select_from(Message)) == 1
    # Deleting is not limited: it commits, and the open stream still hears of it (the
    # wake-up cannot cross Redis, so it is delivered in-process and by the heartbeat).
    deleted = survivor.delete(
        f"/api/v1/conversations/{cid}/messages/{first}",
        headers={"Content-Type": "application/json"},
    )
    assert deleted.status_code == 204
    assert listener.until("deleted").data["message_id"] == first

    own_redis.start()
    # The same envelope, sent again once Redis is back, is stored once.
    accepted = survivor.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope))
    assert accepted.status_code == 201
    assert listener.until("message").data["message_id"] == accepted.get_json()["message"]["id"]
    assert _count(app, select(func.count()).select_from(Message)) == 2
    listener.close()


def test_redis_dying_before_a_failed_login_is_counted_answers_503(
    invite: Callable[..., str], redis_live: LiveServer, own_redis: RedisServer
) -> None:
    # `invite` first: the limiter is one object per process, bound to the last app built.
    counsel = HavenClient(redis_live.url, witnesses=redis_live.witnesses)
    counsel.register(invite("counsel"), "counsel.deduct", PASSPHRASE)
    app = redis_live.app
    armed = threading.Event()

    def stop_redis_after_the_view(response: Any) -> Any:
        """Runs after the login view and before the limiter counts its failure."""
        if armed.is_set() and response.status_code == 401:
            armed.clear()
            own_redis.stop()
        return response

    # Added last, so it runs first of the after-request hooks: before the limiter's.
    app.after_request_funcs.setdefault(None, []).append(stop_redis_after_the_view)
    armed.set()
    with pytest.raises(ApiError) as err:
        HavenClient(redis_live.url, witnesses=redis_live.witnesses).login(
            "counsel.deduct", "a wrong guess at the passphrase"
        )
    assert own_redis.proc is None  # the stop really happened between the check and the count
    assert (err.value.status, err.value.code) == (503, "limiter_unavailable")
    raw = counsel.http.post(f"{redis_live.url}/api/v1/auth/prelogin", json={"username": "x"})
    assert raw.status_code == 503
    own_redis.start()
    again = HavenClient(redis_live.url, witnesses=redis_live.witnesses)
    assert again.login("counsel.deduct", PASSPHRASE).username == "counsel.deduct"


# -- MinIO out of disk space ---------------------------------------------------------------

DISK_MIB = 40


@pytest.fixture(scope="module")
def small_minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """This module's own MinIO on a 40 MiB tmpfs: a disk that really fills up."""
    root = tmp_path_factory.mktemp("faults-minio")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m,mode=0700", "tmpfs", str(root)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {mounted.stderr.decode()}")
    server = MinioServer(root)
    try:
        server.start()
        yield server
    finally:
        server.close()
        subprocess.run(["umount", "-l", str(root)], check=False)


def _fill(path: Path, leave_mib: int) -> None:
    """Write zeros into ``path`` until about ``leave_mib`` MiB are free, or none are."""
    stat = os.statvfs(path.parent)
    todo = stat.f_bavail * stat.f_frsize - leave_mib * 1024 * 1024
    block = bytes(1024 * 1024)
    with path.open("wb") as out:
        try:
            while todo > 0:
                out.write(block[: min(len(block), todo)])
                out.flush()
                todo -= len(block)
        except OSError:
            pass  # ENOSPC: the disk is full


@pytest.mark.parametrize("leave_mib", [0, 3], ids=["disk-full", "part-does-not-fit"])
def test_minio_out_of_disk_is_a_507_and_nothing_unstored_is_acknowledged(
    make_app: Callable[..., Flask],
    small_minio: MinioServer,
    invite: Callable[..., str],
    tmp_path: Path,
    leave_mib: int,
) -> None:
    # Full, MinIO refuses even to start an upload (500 naming ENOSPC); nearly full, it
    # starts one and refuses the 5 MiB part that would not fit (507 XMinioStorageFull).
    app = make_app(**small_minio.settings(f"full-{leave_mib}"))
    with LiveServer(app) as live:
        counsel = HavenClient(live.url, witnesses=live.witnesses)
        counsel.register(invite("counsel"), "counsel.disk", PASSPHRASE)
        survivor = HavenClient(live.url, witnesses=live.witnesses)
        survivor.register(counsel.create_invite("survivor"), "survivor.disk", PASSPHRASE)
        case_id = survivor.cases()[0]["id"]
        docs = fast_documents(survivor)
        kept_file = tmp_path / "birth-certificate.pdf"
        write_random_file(kept_file, 6 * 1024 * 1024, seed=b"kept")
        kept = docs.upload(case_id, kept_file, doc_type="birth_certificate")

        filler = small_minio.root / "filler"
        _fill(filler, leave_mib)
        try:
            refused_file = tmp_path / "visa.pdf"
            write_random_file(refused_file, 6 * 1024 * 1024, seed=b"refused")
            with pytest.raises(ApiError) as err:
                docs.upload(case_id, refused_file, doc_type="passport")
            assert (err.value.status, err.value.code) == (507, "storage_full")
            # Nothing half-visible, nothing lost: the case lists the stored document only,
            # and it still downloads whole.
            listing = docs.case_documents(case_id)
            assert [d.id for d in listing.documents] == [kept.id]
            got = docs.download(kept.id, tmp_path / "copy.pdf")
            assert got.document.info.sha256 == kept.info.sha256
        finally:
            os.unlink(filler)

        # Once space is freed (MinIO notices within seconds) the same file goes in.
        stored: list[OpenedDocument] = []

        def upload_again() -> bool:
            try:
                stored.append(docs.upload(case_id, refused_file, doc_type="passport"))
            except ApiError as exc:
                if exc.status != 507:
                    raise
                return False
            return True

        wait_for(upload_again, "MinIO to take writes again", timeout=30)
        listing = docs.case_documents(case_id)
        assert {d.id for d in listing.documents} == {kept.id, stored[0].id}


# -- The server's clock jumping ------------------------------------------------------------

HOUR = 3600


@pytest.fixture
def jump() -> Iterator[Callable[[float], None]]:
    """Step the running server's clock (vault.clock) forward or back; restore it after."""
    yield clock.jump
    clock.reset()


def _sign_in_again(client: HavenClient) -> None:
    assert client.account is not None
    client.login(client.account.username, PASSPHRASE)


def test_clock_jumps_end_sessions_and_never_extend_them(pair: Pair, jump: Any) -> None:
    survivor, counsel, _ = pair
    # Back two hours: the session cookie now looks signed in the future, and is refused
    # rather than given two more hours of life.
    jump(-2 * HOUR)
    with pytest.raises(ApiError) as err:
        survivor.cases()
    assert err.value.status == 401
    _sign_in_again(survivor)
    assert survivor.cases()
    # Forward past the idle timeout and the 12-hour lifetime: signed out.
    jump(2 * HOUR + 13 * HOUR)
    for client in (survivor, counsel):
        with pytest.raises(ApiError) as err:
            client.cases()
        assert err.value.status == 401
    _sign_in_again(counsel)
    assert counsel.cases()


def test_disappearing_messages_follow_the_server_clock_and_stay_gone(
    app: Flask, pair: Pair, jump: Any
) -> None:
    survivor, counsel, case_id = pair
    me, them = Messenger(survivor), Messenger(counsel)
    conversation = me.create_conversation(case_id, [counsel.account.id])  # type: ignore[union-attr]
    me.set_timer(conversation.id, HOUR)
    me.send(conversation.id, "the shelter moved")
    jump(HOUR - 60)  # just before it expires (and past the 15-minute idle timeout)
    _sign_in_again(counsel)
    assert [m.text for m in them.read(conversation.id)] == ["the shelter moved"]
    jump(120)  # just after: never listed again, and the purge deletes it
    assert them.read(conversation.id) == []
    assert purge_now(app).messages == 1
    # The clock going back does not bring it back.
    jump(-(HOUR + 60))
    _sign_in_again(counsel)
    assert them.read(conversation.id) == []
    assert _count(app, select(func.count()).select_from(Message)) == 0


def test_sends_are_judged_by_the_server_clock(pair: Pair, jump: Any) -> None:
    survivor, counsel, case_id = pair
    me = Messenger(survivor)
    conversation = me.create_conversation(case_id, [counsel.account.id])  # type: ignore[union-attr]
    # Server two hours ahead of the phone: the message is two hours old, within the
    # 7 days allowed, and stored.
    jump(2 * HOUR)
    _sign_in_again(survivor)
    assert me.send(conversation.id, "ahead")["seq"] == 1
    # Server two hours behind: the phone's sent_at is more than the hour of skew ahead,
    # and the send is refused as documented (protocol §9.5), nothing stored.
    jump(-4 * HOUR)
    _sign_in_again(survivor)
    with pytest.raises(ApiError) as err:
        Messenger(survivor).send(conversation.id, "behind")
    assert (err.value.status, err.value.code) == (400, "clock_skew")
    jump(2 * HOUR)
    _sign_in_again(counsel)
    assert [m.text for m in Messenger(counsel).read(conversation.id)] == ["ahead"]
