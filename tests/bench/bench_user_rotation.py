"""User key rotation (docs/protocol.md §14) for a busy account, on PostgreSQL.

A survivor owns DOCUMENTS documents and is a recipient of MESSAGES messages. Measured:
building the reseal set on the server, the client's re-sealing (open with the old key,
seal to the new one, for every item), the size of the one request, and the server's
rotation transaction. The baseline is the same rotation for an account with nothing to
re-seal, in the same run: the ratio is what the re-sealed items cost on top of the fixed
work (two Argon2id hashes, the log appends).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nacl.utils
from flask import Flask
from sqlalchemy import insert

from tests.bench.harness import Services, emit, log
from tests.factories import Person, make_person
from tests.integration.messages_fixtures import open_conversation
from vault import create_app, migrate
from vault.accounts import rotation
from vault.accounts import services as accounts
from vault.accounts.models import Role, User
from vault.cases import services as cases
from vault.client.api import reseal_file_key, reseal_message_key
from vault.db import database
from vault.documents.models import Document, DocumentState
from vault.messages.models import Message
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64encode
from vault.protocol.kdf import KdfParams

DOCUMENTS = 1_000
MESSAGES = 10_000
AUTH_KEY = bytes(range(32))


def _fill(app: Flask, survivor: Person, counsel: Person, case_id: str, cid: str) -> None:
    """Documents owned by the survivor and messages sealed to both, inserted in bulk."""
    now = datetime.now(UTC)
    docs = []
    for i in range(DOCUMENTS):
        raw = pdoc.generate_document_id()
        sealed = pdoc.seal_file_key(os.urandom(32), raw, survivor.public.x25519, 1)
        docs.append(
            {
                "id": b64encode(raw),
                "case_id": case_id,
                "owner_id": survivor.id,
                "owner_key_version": 1,
                "state": DocumentState.READY,
                "object_name": f"bench-{i}",
                "upload_id": None,
                "header": bytes(pdoc.CONTENT_HEADER_BYTES),
                "metadata_envelope": bytes(200),
                "signature": bytes(64),
                "owner_sealed_key": sealed,
                "ciphertext_size": 1024,
                "chunk_count": 1,
                "part_size": 1024,
                "part_count": 1,
                "created_at": now,
                "upload_expires_at": now + timedelta(days=1),
                "finalized_at": now,
            }
        )
    messages = []
    for seq in range(1, MESSAGES + 1):
        key = os.urandom(32)
        recipients = sorted(
            (
                {
                    "user_id": p.id,
                    "key_version": 1,
                    "sealed_key": b64encode(pmsg.seal_key(key, p.public.x25519)),
                }
                for p in (survivor, counsel)
            ),
            key=lambda r: str(r["user_id"]),
        )
        messages.append(
            {
                "id": b64encode(pmsg.new_message_id()),
                "conversation_id": cid,
                "seq": seq,
                "sender_id": counsel.id,
                "sender_key_version": 1,
                "sent_at": int(now.timestamp() * 1000),
                "ttl": 0,
                "recipients": recipients,
                "attachments": [],
                "body": bytes(pmsg.MIN_BODY_BYTES),
                "signature": bytes(64),
                "digest": nacl.utils.random(32),
                "received_at": now,
                "expires_at": None,
                "deleted_at": None,
            }
        )
    with app.app_context():
        db = database(app).sessions()
        db.execute(insert(Document), docs)
        for start in range(0, len(messages), 2000):
            db.execute(insert(Message), messages[start : start + 2000])
        db.commit()
        db.close()


def _rotate(app: Flask, person: Person) -> tuple[float, float, float, int]:
    """Reseal set, client re-sealing and the rotation; return their times and body size."""
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        cost = accounts.HashCost(
            app.config["HAVEN_SERVER_HASH_OPSLIMIT"],
            app.config["HAVEN_SERVER_HASH_MEMLIMIT"],
        )
        user = db.get(User, person.id)
        assert user is not None
        user.auth_hash = accounts.hash_auth_key(AUTH_KEY, cost)
        db.commit()
        t0 = time.perf_counter()
        found = rotation.begin(db, user.id, timedelta(minutes=10))
        t1 = time.perf_counter()
        new = pkeys.KeyPairs.generate(version=2)
        new_x = bytes(new.box_key.public_key)
        documents = {
            d: reseal_file_key({"id": d, "sealed_key": b64encode(s)}, person.keys, new)
            for d, s in found.documents.items()
        }
        messages = {
            m.id: reseal_message_key(
                {"key_version": m.key_version, "sealed_key": b64encode(m.sealed_key)},
                person.keys,
                new_x,
            )
            for m in found.messages
        }
        t2 = time.perf_counter()
        wrap = pkeys.wrap_bundle(new, person.username, os.urandom(32))
        body_bytes = len(
            json.dumps(
                {
                    "documents": [
                        {"id": k, "sealed_key": b64encode(v)} for k, v in documents.items()
                    ],
                    "messages": [
                        {"id": k, "sealed_key": b64encode(v)} for k, v in messages.items()
                    ],
                }
            )
        )
        request = rotation.Rotation(
            current_auth_key=AUTH_KEY,
            public_keys=new.public(person.username),
            passphrase=accounts.NewPassphrase(KdfParams(os.urandom(16)), os.urandom(32), wrap),
            recovery_auth_key=os.urandom(32),
            recovery_wrapped_keys=wrap,
            documents=documents,
            messages=messages,
        )
        t3 = time.perf_counter()
        rotation.rotate(db, ring, cost, person.id, request)
        t4 = time.perf_counter()
        db.close()
    return t1 - t0, t2 - t1, t4 - t3, body_bytes


def run(services: Services) -> None:
    """One busy account and one empty one, rotated in the same run."""
    name = f"bench_rotation_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url(name)
    migrate.upgrade(url)
    root = Path(tempfile.mkdtemp(prefix="haven-bench-rotation-"))
    app = create_app(
        {
            "HAVEN_DATABASE_URL": url,
            "HAVEN_KEYS_DIR": str(root / "keys"),
            "HAVEN_MESSAGE_PURGE_SECONDS": "0",
        }
    )
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        counsel = make_person(db, ring, Role.COUNSEL, "bench.counsel")
        survivor = make_person(db, ring, Role.SURVIVOR, "bench.survivor", invited_by=counsel.id)
        quiet = make_person(db, ring, Role.COUNSEL, "bench.quiet")
        user = db.get(User, survivor.id)
        assert user is not None
        case_id = cases.list_cases(db, user)[0].id
        db.close()
    cid = open_conversation(app, survivor, case_id, [counsel])
    log(f"filling {DOCUMENTS} documents and {MESSAGES} messages")
    _fill(app, survivor, counsel, case_id, cid)
    _, _, empty, _ = _rotate(app, quiet)
    reseal_set, client, server, body = _rotate(app, survivor)
    items = DOCUMENTS + MESSAGES
    emit("user_rotation_reseal_set_ms", reseal_set * 1000, "ms", items=items)
    emit(
        "user_rotation_client_reseal_ms",
        client * 1000,
        "ms",
        items=items,
        per_item_us=round(client / items * 1e6, 1),
    )
    emit("user_rotation_request_bytes", body, "bytes", items=items)
    emit(
        "user_rotation_server_seconds",
        server,
        "s",
        empty,
        baseline_is="the same rotation for an account with nothing to re-seal",
        items=items,
        database="postgresql",
    )
