"""Helpers for the messaging tests: conversations, envelopes, key rotation, app processes."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from tests.authz import World, build_world
from tests.conftest import app_settings
from tests.factories import Person
from tests.services import MinioServer, RedisServer, free_port, wait_for
from vault.accounts.models import KeyStatus, Role, User, UserKey
from vault.cases.models import CaseMember
from vault.client.api import Account
from vault.client.messages import envelope_json
from vault.db import database
from vault.messages import services as messages
from vault.messages.models import Conversation
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg

ROOT = Path(__file__).resolve().parents[2]


def open_conversation(app: Flask, creator: Person, case_id: str, others: Iterable[Person]) -> str:
    """Create a conversation through the service; return its id."""
    with app.app_context():
        db = database(app).sessions()
        try:
            user = db.get(User, creator.id)
            assert user is not None
            conversation = messages.create_conversation(
                db, app.extensions["haven.fanout"], user, case_id, [p.id for p in others]
            )
            return conversation.id
        finally:
            db.close()


def add_to_case(app: Flask, case_id: str, person: Person, role: Role = Role.COUNSEL) -> None:
    """Add an account to a case (there is no route for this yet)."""
    with app.app_context():
        db = database(app).sessions()
        try:
            db.add(CaseMember(case_id=case_id, user_id=person.id, role=role))
            db.commit()
        finally:
            db.close()


def rotate_keys(app: Flask, person: Person) -> Person:
    """Publish a new key version for an account, as a key rotation would."""
    version = person.keys.version + 1
    keys = pkeys.KeyPairs.generate(version=version)
    public = keys.public(person.username)
    with app.app_context():
        db = database(app).sessions()
        try:
            user = db.get(User, person.id)
            assert user is not None
            for key in user.keys:
                key.status = KeyStatus.SUPERSEDED
            user.keys.append(
                UserKey(
                    version=version,
                    x25519=public.x25519,
                    ed25519=public.ed25519,
                    signature=public.signature,
                    status=KeyStatus.CURRENT,
                )
            )
            user.key_version = version
            db.commit()
        finally:
            db.close()
    return Person(person.id, person.username, person.role, keys, public)


def conversation_ttl(app: Flask, conversation_id: str) -> int:
    """The conversation's current timer."""
    with app.app_context():
        db = database(app).sessions()
        try:
            conversation = db.get(Conversation, conversation_id)
            assert conversation is not None
            return conversation.ttl
        finally:
            db.close()


def make_envelope(
    sender: Person,
    conversation_id: str,
    members: Iterable[Person],
    text: str = "hello",
    *,
    ttl: int = 0,
    sent_at: int | None = None,
    message_id: bytes | None = None,
) -> pmsg.Envelope:
    """A valid envelope from ``sender`` to ``members`` (the sender among them)."""
    people = {p.id: p for p in members}
    people[sender.id] = sender
    recipients = tuple(
        sorted(
            (pmsg.Recipient(p.id, p.keys.version) for p in people.values()),
            key=lambda r: r.user_id.encode(),
        )
    )
    header = pmsg.Header(
        conversation_id=conversation_id,
        message_id=message_id or pmsg.new_message_id(),
        sender_id=sender.id,
        sender_key_version=sender.keys.version,
        sent_at=sent_at if sent_at is not None else time.time_ns() // 1_000_000,
        ttl=ttl,
        recipients=recipients,
    )
    x25519 = {p.id: p.public.x25519 for p in people.values()}
    return pmsg.compose(header, text, sender.keys, x25519)


def client_account(person: Person) -> Account:
    """The Python client's view of a factory-made account, private keys included."""
    return Account(person.id, person.role, person.username, person.keys, person.public)


def envelope_body(envelope: pmsg.Envelope) -> dict[str, Any]:
    """The JSON that sends an envelope."""
    return envelope_json(envelope)


class AppProcess:
    """The app under gunicorn in a subprocess, configured by environment variables."""

    def __init__(
        self,
        settings: dict[str, str],
        *,
        workers: int = 2,
        threads: int = 8,
        log: Path | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.threads = threads
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> None:
        """Start gunicorn (and by default wait until /healthz answers)."""
        env = {**os.environ, **self.settings}
        log = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv(),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        if self.log:
            log.close()  # type: ignore[union-attr]
        if wait:
            self.wait()

    def argv(self) -> list[str]:
        """The gunicorn command line."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(self.threads),
            "--graceful-timeout",
            "3",
            "--log-level",
            "warning",
            "vault.wsgi:app",
        ]

    def wait(self) -> None:
        """Wait until /healthz answers."""
        wait_for(self._healthy, f"gunicorn on {self.port}")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.proc.returncode}")
        return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def stop(self) -> None:
        """Stop gunicorn and its workers at once (SIGINT: no graceful wait on open streams)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self.proc = None


@contextmanager
def app_processes(
    settings: dict[str, str], count: int = 2, **kwargs: Any
) -> Iterator[list[AppProcess]]:
    """Run ``count`` gunicorn instances of the app on the same settings."""
    procs = [AppProcess(settings, **kwargs) for _ in range(count)]
    try:
        for proc in procs:
            proc.start(wait=False)
        for proc in procs:
            proc.wait()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture
def shared(
    database_url: str, tmp_path: Path, minio: MinioServer, redis_server: RedisServer
) -> dict[str, str]:
    """Settings every process of a multi-process test shares: database, keys, bucket, Redis."""
    bucket = f"t-{secrets.token_hex(6)}"
    settings = app_settings(database_url, tmp_path / "keys", minio, bucket)
    return {**settings, "HAVEN_REDIS_URL": redis_server.url}


@pytest.fixture
def world(make_app: Callable[..., Flask], shared: dict[str, str]) -> World:
    """Accounts and a survivor-counsel conversation, made by an app on the shared settings."""
    app = make_app(**shared)
    built = build_world(app)
    p = built.people
    built.extra["app"] = app
    built.extra["cid"] = open_conversation(app, p["survivor"], built.case_id, [p["counsel"]])
    return built
