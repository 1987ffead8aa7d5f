"""A download says why it fetches (view or save): the owner's history tells them apart (§8.10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.documents_fixtures import fast_documents, pair
from vault.client import ApiError, HavenClient

__all__ = ["pair"]

Pair = tuple[HavenClient, HavenClient, str]


def _shared_document(pair: Pair, tmp_path: Path) -> str:
    """The survivor's passport scan, shared with their counsel; its id."""
    survivor, counsel, case_id = pair
    source = tmp_path / "passport.png"
    source.write_bytes(os.urandom(70_000))
    doc = fast_documents(survivor).upload(case_id, source, doc_type="passport")
    assert counsel.account is not None
    fast_documents(survivor).grant(doc.id, counsel.account.id)
    return doc.id


def _downloads(client: HavenClient, case_id: str) -> list[dict[str, object]]:
    return [e for e in fast_documents(client).events(case_id) if e["kind"] == "download"]


def test_the_survivor_sees_counsel_viewing_apart_from_saving_a_copy(
    pair: Pair, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    doc_id = _shared_document(pair, tmp_path)
    assert counsel.account is not None and survivor.account is not None
    viewed = counsel.request("GET", f"/documents/{doc_id}/content", params={"purpose": "view"})
    assert viewed.status_code == 200 and len(viewed.content) > 70_000
    saved = fast_documents(counsel).download(doc_id, tmp_path / "copy.png")
    assert saved.path.read_bytes() == (tmp_path / "passport.png").read_bytes()

    history = _downloads(survivor, case_id)  # newest first
    assert [(e["actor_id"], e["purpose"]) for e in history] == [
        (counsel.account.id, "save"),
        (counsel.account.id, "view"),
    ]
    assert all(e["owner_id"] == survivor.account.id for e in history)
    # Counsel sees their own downloads the same way.
    assert [e["purpose"] for e in _downloads(counsel, case_id)] == ["save", "view"]
    # The purpose is part of the tamper-evident chain too (§13).
    chain = [
        e["detail"]
        for e in survivor.get("/audit/mine")["entries"]
        if e["kind"] == "download" and e["document_id"] == doc_id
    ]
    assert chain == [{"purpose": "save"}, {"purpose": "view"}]


def test_an_undeclared_purpose_is_recorded_as_a_saved_copy(pair: Pair, tmp_path: Path) -> None:
    survivor, counsel, case_id = pair
    doc_id = _shared_document(pair, tmp_path)
    response = counsel.request("GET", f"/documents/{doc_id}/content")
    assert response.status_code == 200
    ranged = counsel.request(
        "GET",
        f"/documents/{doc_id}/content",
        params={"purpose": "view"},
        headers={"Range": "bytes=65553-"},
    )
    assert ranged.status_code == 206
    newest, first = _downloads(survivor, case_id)
    assert newest["purpose"] == "view" and newest["range"] == [65553, 70_000 + 2 * 17 - 1]
    assert first["purpose"] == "save" and "range" not in first


@pytest.mark.parametrize(
    "bad", ["VIEW", "print", "", "view ", "save;view", "ѵiew", ["view", "save"], ["view", "view"]]
)
def test_a_bad_purpose_is_refused_and_records_nothing(
    pair: Pair, tmp_path: Path, bad: str | list[str]
) -> None:
    survivor, counsel, case_id = pair
    doc_id = _shared_document(pair, tmp_path)
    before = fast_documents(survivor).events(case_id)
    with pytest.raises(ApiError) as err:
        counsel.request("GET", f"/documents/{doc_id}/content", params={"purpose": bad})
    assert (err.value.status, err.value.code) == (400, "invalid_field")
    assert "purpose" in err.value.message
    assert fast_documents(survivor).events(case_id) == before
