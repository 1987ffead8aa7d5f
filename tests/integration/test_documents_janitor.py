"""The janitor: abandoned uploads, orphans in the bucket, expired grants; upload deadlines."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import update

from tests.factories import Person, make_person
from tests.integration.documents_fixtures import OCTET, make_document, signed_in
from vault.accounts.models import Role, User
from vault.audit.models import Event, EventKind
from vault.cases import services as cases
from vault.cli import main
from vault.db import database, utcnow
from vault.documents import services
from vault.documents.models import Document, Grant
from vault.storage import store

TTL = timedelta(hours=24)


@pytest.fixture
def people(app: Flask) -> tuple[Person, Person, str]:
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        counsel = make_person(db, ring, Role.COUNSEL, "counsel.j")
        survivor = make_person(db, ring, Role.SURVIVOR, "survivor.j", invited_by=counsel.id)
        user = db.get(User, survivor.id)
        assert user is not None
        case_id = cases.list_cases(db, user)[0].id
        db.close()
    return survivor, counsel, case_id


def _sweep(app: Flask, later: timedelta) -> services.SweepReport:
    db = database(app).sessions()
    try:
        return services.sweep(db, store(app), TTL, now=utcnow() + later)
    finally:
        db.close()


def _count(app: Flask, model: type) -> int:
    db = database(app).sessions()
    try:
        return db.query(model).count()
    finally:
        db.close()


def test_abandoned_upload_is_aborted_and_its_row_removed(
    app: Flask, people: tuple[Person, Person, str]
) -> None:
    survivor, _, case_id = people
    ready = make_document(app, survivor, case_id, os.urandom(1000))
    pending = make_document(app, survivor, case_id, os.urandom(3000), is_finalized=False)
    client = signed_in(app, survivor)
    sent = client.put(
        f"/api/v1/documents/{pending.id}/parts/1", data=pending.ciphertext, content_type=OCTET
    )
    assert sent.status_code == 200
    objects = store(app)
    assert len(list(objects.list_uploads("doc/"))) == 1

    assert _sweep(app, timedelta(hours=1)).abandoned_uploads == 0  # not yet stale
    report = _sweep(app, TTL + timedelta(minutes=1))
    assert report.abandoned_uploads == 1
    assert report.errors == []
    assert list(objects.list_uploads("doc/")) == []
    assert client.get(f"/api/v1/documents/{pending.id}/upload").status_code == 404
    assert client.get(f"/api/v1/documents/{ready.id}/content").status_code == 200
    assert _count(app, Document) == 1


def test_orphan_uploads_and_objects_are_removed_once_old(app: Flask) -> None:
    objects = store(app)
    objects.create_upload("doc/orphan-upload")
    objects.client.put_object(objects.bucket, "doc/orphan-object", io.BytesIO(b"x"), 1)
    objects.client.put_object(objects.bucket, "other/not-ours", io.BytesIO(b"x"), 1)
    assert _sweep(app, timedelta(hours=1)).orphan_uploads == 0
    report = _sweep(app, TTL + timedelta(hours=1))
    assert (report.orphan_uploads, report.orphan_objects) == (1, 1)
    assert list(objects.list_uploads("doc/")) == []
    assert [name for name, _ in objects.list_objects("")] == ["other/not-ours"]


def test_an_expired_grant_serves_nothing_and_the_janitor_records_the_expiry(
    app: Flask, people: tuple[Person, Person, str]
) -> None:
    survivor, counsel, case_id = people
    doc = make_document(app, survivor, case_id, os.urandom(500), readers=(counsel,))
    reader = signed_in(app, counsel)
    assert reader.get(f"/api/v1/documents/{doc.id}/content").status_code == 200
    with database(app).engine.begin() as conn:
        conn.execute(update(Grant).values(expires_at=utcnow() - timedelta(seconds=1)))
    for path in (f"/api/v1/documents/{doc.id}", f"/api/v1/documents/{doc.id}/content"):
        assert reader.get(path).status_code == 404
    assert reader.get(f"/api/v1/cases/{case_id}/documents").get_json()["documents"] == []
    owner_view = signed_in(app, survivor).get(f"/api/v1/documents/{doc.id}").get_json()
    assert owner_view["document"]["grants"] == []

    assert _sweep(app, timedelta(0)).expired_grants == 1
    assert _count(app, Grant) == 0
    db = database(app).sessions()
    try:
        expiry = db.query(Event).filter(Event.kind == EventKind.EXPIRY).one()
        assert (expiry.document_id, expiry.subject_id) == (doc.id, counsel.id)
    finally:
        db.close()


def test_a_grant_with_an_expiry_is_live_until_then(
    app: Flask, people: tuple[Person, Person, str]
) -> None:
    from vault.protocol import documents as pdoc
    from vault.protocol.encoding import b64encode

    survivor, counsel, case_id = people
    doc = make_document(app, survivor, case_id, os.urandom(500))
    sealed = pdoc.seal_file_key(
        doc.file_key, doc.raw_id, counsel.public.x25519, counsel.keys.version
    )
    until = (utcnow() + timedelta(days=7)).isoformat()
    answer = signed_in(app, survivor).post(
        f"/api/v1/documents/{doc.id}/grants",
        json={"user_id": counsel.id, "sealed_key": b64encode(sealed), "expires_at": until},
    )
    assert answer.status_code == 201
    assert answer.get_json()["grant"]["expires_at"] is not None
    reader = signed_in(app, counsel)
    seen = reader.get(f"/api/v1/documents/{doc.id}").get_json()["document"]
    assert seen["access"]["role"] == "reader"
    assert seen["access"]["expires_at"] is not None
    assert _sweep(app, timedelta(days=1)).expired_grants == 0
    assert _sweep(app, timedelta(days=8)).expired_grants == 1


def test_an_upload_past_its_deadline_takes_no_more_parts(
    app: Flask, people: tuple[Person, Person, str]
) -> None:
    survivor, _, case_id = people
    pending = make_document(app, survivor, case_id, os.urandom(3000), is_finalized=False)
    with database(app).engine.begin() as conn:
        conn.execute(update(Document).values(upload_expires_at=utcnow() - timedelta(seconds=1)))
    client = signed_in(app, survivor)
    part = client.put(
        f"/api/v1/documents/{pending.id}/parts/1", data=pending.ciphertext, content_type=OCTET
    )
    assert part.status_code == 409
    assert part.get_json()["error"]["code"] == "upload_gone"
    finalized = client.post(
        f"/api/v1/documents/{pending.id}/finalize", content_type="application/json"
    )
    assert finalized.status_code == 409


def test_janitor_command(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = app.config
    env = {
        "HAVEN_DATABASE_URL": cfg["HAVEN_DATABASE_URL"],
        "HAVEN_KEYS_DIR": cfg["HAVEN_KEYS_DIR"],
        "HAVEN_S3_ENDPOINT": cfg["HAVEN_S3_ENDPOINT"],
        "HAVEN_S3_ACCESS_KEY": cfg["HAVEN_S3_ACCESS_KEY"],
        "HAVEN_S3_SECRET_KEY": cfg["HAVEN_S3_SECRET_KEY"],
        "HAVEN_S3_BUCKET": cfg["HAVEN_S3_BUCKET"],
        "HAVEN_UPLOAD_TTL_HOURS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["docs", "janitor"])
    assert result.exit_code == 0, result.output
    assert "abandoned uploads 0" in result.output
