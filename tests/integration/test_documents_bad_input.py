"""Bad input to the document routes: a 4xx in the one error shape, and nothing changes."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from tests.factories import Person, make_person, row_counts
from tests.integration.documents_fixtures import (
    OCTET,
    DocHandle,
    create_body,
    make_document,
    signed_in,
)
from vault.accounts.models import Role, User
from vault.cases import services as cases
from vault.db import database
from vault.documents.models import Document
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64encode
from vault.storage import store

B = b64encode


@dataclass
class Scene:
    """A case with a survivor and their counsel, an outside counsel, and two documents."""

    app: Flask
    survivor: Person
    counsel: Person
    outsider: Person
    case_id: str
    doc: DocHandle
    pending: DocHandle


@pytest.fixture
def scene(app: Flask) -> Scene:
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        counsel = make_person(db, ring, Role.COUNSEL, "counsel.c")
        survivor = make_person(db, ring, Role.SURVIVOR, "survivor.c", invited_by=counsel.id)
        outsider = make_person(db, ring, Role.COUNSEL, "counsel.d")
        user = db.get(User, survivor.id)
        assert user is not None
        case_id = cases.list_cases(db, user)[0].id
        db.close()
    doc = make_document(app, survivor, case_id, os.urandom(2 * pdoc.CHUNK_PLAINTEXT_BYTES + 9))
    pending = make_document(app, survivor, case_id, os.urandom(5000), is_finalized=False)
    return Scene(app, survivor, counsel, outsider, case_id, doc, pending)


def _uploads_in_store(app: Flask) -> int:
    return len(list(store(app).list_uploads("doc/")))


def _refused(scene: Scene, send: Callable[[Any], Any], status: int, code: str | None) -> None:
    before = row_counts(scene.app)
    uploads = _uploads_in_store(scene.app)
    response = send(signed_in(scene.app, scene.survivor))
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message"}
    if code is not None:
        assert error["code"] == code, error
    assert row_counts(scene.app) == before
    assert _uploads_in_store(scene.app) == uploads


Body = dict[str, Any]
HEADER = pdoc.CONTENT_HEADER_BYTES


def _sealed_v2(scene: Scene) -> str:
    return B(pdoc.seal_file_key(os.urandom(32), os.urandom(16), scene.survivor.public.x25519, 2))


def _stranger_signature(_: Scene) -> str:
    return B(pkeys.KeyPairs.generate().signing_key.sign(b"x").signature)


CREATE_MUTATIONS: dict[str, tuple[Callable[[Body, Scene], Body], int, str]] = {
    "unknown field": (lambda b, s: {**b, "extra": 1}, 400, "invalid_field"),
    "missing field": (
        lambda b, s: {k: v for k, v in b.items() if k != "signature"},
        400,
        "invalid_field",
    ),
    "padded id": (lambda b, s: {**b, "id": b["id"] + "=="}, 400, "invalid_field"),
    "short id": (lambda b, s: {**b, "id": B(os.urandom(15))}, 400, "invalid_field"),
    "bad base64": (lambda b, s: {**b, "metadata": "***"}, 400, "invalid_field"),
    "short header": (
        lambda b, s: {**b, "header": B(os.urandom(HEADER - 1))},
        400,
        "invalid_field",
    ),
    "header format 2": (
        lambda b, s: {**b, "header": B(b"\x02" + os.urandom(HEADER - 1))},
        400,
        "invalid_request",
    ),
    "metadata not padded": (
        lambda b, s: {**b, "metadata": B(b"\x01" + os.urandom(300))},
        400,
        "invalid_request",
    ),
    "metadata too long": (
        lambda b, s: {**b, "metadata": B(b"\x01" + os.urandom(2000))},
        400,
        "invalid_field",
    ),
    "random signature": (
        lambda b, s: {**b, "signature": B(os.urandom(64))},
        400,
        "bad_signature",
    ),
    "a stranger's signature": (
        lambda b, s: {**b, "signature": _stranger_signature(s)},
        400,
        "bad_signature",
    ),
    "sealed to key version 2": (
        lambda b, s: {**b, "sealed_key": _sealed_v2(s)},
        400,
        "stale_key_version",
    ),
    "signed with key version 2": (lambda b, s: {**b, "key_version": 2}, 400, "stale_key_version"),
    "impossible size": (
        lambda b, s: {**b, "ciphertext_size": pdoc.CHUNK_CIPHERTEXT_BYTES + 1},
        400,
        "invalid_size",
    ),
    "size 65570: an empty chunk after a full one": (
        lambda b, s: {**b, "ciphertext_size": 65570},
        400,
        "invalid_size",
    ),
    "size 16, below one chunk": (lambda b, s: {**b, "ciphertext_size": 16}, 400, "invalid_field"),
    "chunk count off": (lambda b, s: {**b, "chunk_count": 2}, 400, "invalid_size"),
    "size as text": (lambda b, s: {**b, "ciphertext_size": "29"}, 400, "invalid_field"),
    "negative size": (lambda b, s: {**b, "ciphertext_size": -5}, 400, "invalid_field"),
    "size 2**60": (lambda b, s: {**b, "ciphertext_size": 2**60}, 400, "invalid_field"),
    "part size off the chunk grid": (
        lambda b, s: {**b, "part_size": 5 * 1024 * 1024},
        400,
        "invalid_size",
    ),
    "part size under 5 MiB": (
        lambda b, s: {**b, "part_size": 79 * pdoc.CHUNK_CIPHERTEXT_BYTES},
        400,
        "invalid_size",
    ),
    "part size over 2048 chunks": (
        lambda b, s: {**b, "part_size": pdoc.MAX_PART_BYTES + pdoc.CHUNK_CIPHERTEXT_BYTES},
        400,
        "invalid_size",
    ),
    "part size 0": (lambda b, s: {**b, "part_size": 0}, 400, "invalid_field"),
    "part size 80 chunks minus one byte": (
        lambda b, s: {**b, "part_size": 5_244_239},
        400,
        "invalid_size",
    ),
    "size changed after signing": (
        lambda b, s: {**b, "ciphertext_size": b["ciphertext_size"] + 1},
        400,
        "bad_signature",
    ),
}


@pytest.mark.parametrize("case", sorted(CREATE_MUTATIONS))
def test_create_refuses_bad_bodies(scene: Scene, case: str) -> None:
    mutate, status, code = CREATE_MUTATIONS[case]
    body, _ = create_body(scene.survivor, scene.case_id, b"a small file")
    bad = mutate(body, scene)
    _refused(
        scene,
        lambda c: c.post(f"/api/v1/cases/{scene.case_id}/documents", json=bad),
        status,
        code,
    )


@pytest.mark.parametrize(
    ("label", "kwargs", "status", "code"),
    [
        ("not json", {"data": "id=1", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ("broken json", {"data": "{", "content_type": "application/json"}, 400, "malformed_json"),
        ("a list", {"json": []}, 400, "invalid_field"),
    ],
)
def test_create_refuses_non_objects(
    scene: Scene, label: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    _refused(
        scene,
        lambda c: c.post(f"/api/v1/cases/{scene.case_id}/documents", **kwargs),
        status,
        code,
    )


def test_create_in_someone_elses_case_or_twice_is_refused(scene: Scene) -> None:
    body, _ = create_body(scene.survivor, scene.case_id, b"x")
    _refused(
        scene, lambda c: c.post("/api/v1/cases/nosuchcase/documents", json=body), 404, "not_found"
    )
    first = signed_in(scene.app, scene.survivor).post(
        f"/api/v1/cases/{scene.case_id}/documents", json=body
    )
    assert first.status_code == 201
    _refused(
        scene,
        lambda c: c.post(f"/api/v1/cases/{scene.case_id}/documents", json=body),
        409,
        "document_exists",
    )


def test_size_limit_and_quota(make_app: Callable[..., Flask]) -> None:
    app = make_app(HAVEN_DOCUMENT_MAX_BYTES="100000", HAVEN_DOCUMENT_QUOTA_BYTES="150000")
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        counsel = make_person(db, ring, Role.COUNSEL, "counsel.q")
        survivor = make_person(db, ring, Role.SURVIVOR, "survivor.q", invited_by=counsel.id)
        user = db.get(User, survivor.id)
        assert user is not None
        case_id = cases.list_cases(db, user)[0].id
        db.close()
    client = signed_in(app, survivor)
    big, _ = create_body(survivor, case_id, os.urandom(100_001))
    answer = client.post(f"/api/v1/cases/{case_id}/documents", json=big)
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "document_too_large"
    make_document(app, survivor, case_id, os.urandom(90_000))
    before = row_counts(app)
    second, _ = create_body(survivor, case_id, os.urandom(90_000))
    answer = client.post(f"/api/v1/cases/{case_id}/documents", json=second)
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "quota_exceeded"
    assert row_counts(app) == before
    # Deleting frees the quota.
    first_id = client.get(f"/api/v1/cases/{case_id}/documents").get_json()["documents"][0]["id"]
    assert (
        client.delete(f"/api/v1/documents/{first_id}", content_type="application/json").status_code
        == 204
    )
    assert client.post(f"/api/v1/cases/{case_id}/documents", json=second).status_code == 201


def _part(scene: Scene, number: int = 1) -> str:
    return f"/api/v1/documents/{scene.pending.id}/parts/{number}"


def test_part_uploads_refuse_bad_requests(scene: Scene) -> None:
    data = scene.pending.ciphertext
    cases_: list[tuple[Callable[[Any], Any], int, str]] = [
        (
            lambda c: c.put(_part(scene), data=data, content_type="text/plain"),
            415,
            "unsupported_media_type",
        ),
        (lambda c: c.put(_part(scene), json={}), 415, "unsupported_media_type"),
        (
            lambda c: c.put(
                _part(scene),
                input_stream=io.BytesIO(data),
                content_type=OCTET,
                headers={"Transfer-Encoding": "chunked"},
            ),
            411,
            "length_required",
        ),
        (lambda c: c.put(_part(scene), data=data[:-1], content_type=OCTET), 400, "wrong_part_size"),
        (
            lambda c: c.put(_part(scene), data=data + b"x", content_type=OCTET),
            400,
            "wrong_part_size",
        ),
        (lambda c: c.put(_part(scene, 2), data=data, content_type=OCTET), 400, "invalid_part"),
        (lambda c: c.put(_part(scene, 0), data=data, content_type=OCTET), 400, "invalid_part"),
        (
            lambda c: c.put(
                f"/api/v1/documents/{scene.pending.id}/parts/-1", data=data, content_type=OCTET
            ),
            404,
            "not_found",
        ),
        (
            lambda c: c.put(
                f"/api/v1/documents/{scene.doc.id}/parts/1", data=data, content_type=OCTET
            ),
            409,
            "already_finalized",
        ),
        (
            lambda c: c.put("/api/v1/documents/nope/parts/1", data=data, content_type=OCTET),
            404,
            "not_found",
        ),
    ]
    for send, status, code in cases_:
        _refused(scene, send, status, code)


def test_a_body_shorter_than_its_length_stores_nothing(scene: Scene) -> None:
    data = scene.pending.ciphertext
    _refused(
        scene,
        lambda c: c.put(
            _part(scene),
            input_stream=io.BytesIO(data[:100]),
            content_type=OCTET,
            environ_overrides={"CONTENT_LENGTH": str(len(data))},
        ),
        400,
        "incomplete_body",
    )
    status = signed_in(scene.app, scene.survivor).get(
        f"/api/v1/documents/{scene.pending.id}/upload"
    )
    assert status.get_json()["upload"]["parts"] == []
    # The object store kept nothing of the cut-off part either.
    with scene.app.app_context():
        db = database(scene.app).sessions()
        doc = db.get(Document, scene.pending.id)
        assert doc is not None and doc.upload_id is not None
        objects = store(scene.app)
        parts = objects.client._list_parts(objects.bucket, doc.object_name, doc.upload_id)
        db.close()
    assert parts.parts == []


def test_finalize_refuses_missing_parts_and_unknown_documents(scene: Scene) -> None:
    _refused(
        scene,
        lambda c: c.post(
            f"/api/v1/documents/{scene.pending.id}/finalize", content_type="application/json"
        ),
        409,
        "upload_incomplete",
    )
    _refused(
        scene,
        lambda c: c.post("/api/v1/documents/nope/finalize", content_type="application/json"),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/documents/nope",
        "/api/v1/documents/nope/content",
        "/api/v1/documents/nope/upload",
        "/api/v1/cases/nope/documents",
        "/api/v1/cases/nope/events",
    ],
)
def test_unknown_ids_are_404(scene: Scene, path: str) -> None:
    _refused(scene, lambda c: c.get(path), 404, None)


def test_pending_documents_do_not_exist_for_reading(scene: Scene) -> None:
    for path in (
        f"/api/v1/documents/{scene.pending.id}",
        f"/api/v1/documents/{scene.pending.id}/content",
    ):
        _refused(scene, lambda c, p=path: c.get(p), 404, "not_found")


@pytest.mark.parametrize(
    "value", ["bytes=1-2", "bytes=0-0", "items=0-1", "bytes=-1", "bytes=0-1,3-4", "nonsense"]
)
def test_unaligned_or_odd_ranges_are_416_and_record_nothing(scene: Scene, value: str) -> None:
    _refused(
        scene,
        lambda c: c.get(f"/api/v1/documents/{scene.doc.id}/content", headers={"Range": value}),
        416,
        "range_not_satisfiable",
    )


def _grant_mutations(scene: Scene) -> list[tuple[dict[str, Any], int, str]]:
    counsel = scene.counsel
    good = pdoc.seal_file_key(
        scene.doc.file_key, scene.doc.raw_id, counsel.public.x25519, counsel.keys.version
    )
    v2 = pdoc.seal_file_key(scene.doc.file_key, scene.doc.raw_id, counsel.public.x25519, 2)
    base = {"user_id": counsel.id, "sealed_key": B(good)}
    return [
        ({}, 400, "invalid_field"),
        ({**base, "extra": True}, 400, "invalid_field"),
        ({**base, "user_id": scene.outsider.id}, 400, "not_a_case_member"),
        ({**base, "user_id": scene.survivor.id}, 400, "not_a_case_member"),
        ({**base, "user_id": "x" * 33}, 400, "invalid_field"),
        ({**base, "sealed_key": B(v2)}, 400, "stale_key_version"),
        ({**base, "sealed_key": B(b"\x02" + good[1:])}, 400, "invalid_request"),
        ({**base, "sealed_key": B(good[:-1])}, 400, "invalid_field"),
        ({**base, "expires_at": "2001-01-01T00:00:00Z"}, 400, "invalid_expiry"),
        ({**base, "expires_at": "2099-01-01T00:00:00"}, 400, "invalid_field"),
        ({**base, "expires_at": "next week"}, 400, "invalid_field"),
        ({**base, "expires_at": 1893456000}, 400, "invalid_field"),
    ]


def test_grants_refuse_bad_bodies(scene: Scene) -> None:
    for body, status, code in _grant_mutations(scene):
        _refused(
            scene,
            lambda c, b=body: c.post(f"/api/v1/documents/{scene.doc.id}/grants", json=b),
            status,
            code,
        )


def test_a_second_live_grant_is_a_conflict(scene: Scene) -> None:
    counsel = scene.counsel
    sealed = pdoc.seal_file_key(
        scene.doc.file_key, scene.doc.raw_id, counsel.public.x25519, counsel.keys.version
    )
    body = {"user_id": counsel.id, "sealed_key": B(sealed)}
    client = signed_in(scene.app, scene.survivor)
    assert client.post(f"/api/v1/documents/{scene.doc.id}/grants", json=body).status_code == 201
    _refused(
        scene,
        lambda c: c.post(f"/api/v1/documents/{scene.doc.id}/grants", json=body),
        409,
        "already_granted",
    )


def test_revoking_or_deleting_what_is_not_there_is_404(scene: Scene) -> None:
    _refused(
        scene,
        lambda c: c.delete(
            f"/api/v1/documents/{scene.doc.id}/grants/{scene.counsel.id}",
            content_type="application/json",
        ),
        404,
        "not_found",
    )
    _refused(
        scene,
        lambda c: c.delete("/api/v1/documents/nope", content_type="application/json"),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    "query", ["before=abc", "before=0", "limit=0", "limit=501", "limit=-1", "before=1e5"]
)
def test_event_paging_refuses_bad_numbers(scene: Scene, query: str) -> None:
    _refused(
        scene,
        lambda c: c.get(f"/api/v1/cases/{scene.case_id}/events?{query}"),
        400,
        "invalid_field",
    )


def test_adding_counsel_refuses_bad_requests(scene: Scene) -> None:
    path = f"/api/v1/cases/{scene.case_id}/members"
    cases_: list[tuple[dict[str, Any], int, str]] = [
        ({}, 400, "invalid_field"),
        ({"username": "x" * 65}, 400, "invalid_field"),
        ({"username": 5}, 400, "invalid_field"),
        ({"username": "counsel.z", "role": "counsel"}, 400, "invalid_field"),
    ]
    for body, status, code in cases_:
        before = row_counts(scene.app)
        answer = signed_in(scene.app, scene.counsel).post(path, json=body)
        assert answer.status_code == status, answer.get_data(as_text=True)
        assert answer.get_json()["error"]["code"] == code
        assert row_counts(scene.app) == before


@pytest.mark.parametrize(
    ("segment", "status", "code"),
    [
        ("%D9%A1", 404, "not_found"),  # ARABIC-INDIC DIGIT ONE was taken as part 1 (issue 12)
        ("%C2%B9", 404, "not_found"),  # SUPERSCRIPT ONE
        ("%EF%BC%91", 404, "not_found"),  # FULLWIDTH DIGIT ONE
        ("9223372036854775808", 400, "invalid_request"),  # 2^63
        ("9007199254740992", 400, "invalid_request"),  # 2^53, one past the bound
        ("1" * 400, 400, "invalid_request"),
    ],
)
def test_part_number_is_ascii_digits_in_range(
    scene: Scene, segment: str, status: int, code: str
) -> None:
    data = scene.pending.ciphertext
    _refused(
        scene,
        lambda c: c.put(
            f"/api/v1/documents/{scene.pending.id}/parts/{segment}", data=data, content_type=OCTET
        ),
        status,
        code,
    )
