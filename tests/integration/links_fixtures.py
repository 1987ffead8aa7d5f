"""Helpers for the link tests: a link made through the HTTP API of a Flask test client.

Import explicitly: ``from tests.integration.links_fixtures import ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask

from tests.factories import Person
from tests.integration.documents_fixtures import DocHandle, signed_in
from vault import clock
from vault.protocol import links as plink
from vault.protocol.encoding import b64encode


@dataclass(frozen=True)
class LinkHandle:
    """A link made in a test and its secrets."""

    id: str
    state: str
    secret: bytes
    lookup: str
    token: bytes


def link_body(
    creator: Person,
    case_id: str,
    docs: list[DocHandle],
    *,
    survivor: Person | None = None,
    max_opens: int = 2,
    expires_in: timedelta = timedelta(days=7),
) -> tuple[dict[str, Any], bytes]:
    """A valid create body (no passphrase) and its link secret."""
    secret = plink.generate_secret()
    lookup = plink.lookup_id(secret)
    keys = plink.link_keys(secret, None, None)
    contents = plink.Contents(case_id, tuple((d.raw_id, d.file_key) for d in docs))
    body: dict[str, Any] = {
        "lookup_id": b64encode(lookup),
        "token_hash": b64encode(keys.token_hash),
        "envelope": b64encode(plink.seal_envelope(contents, keys, lookup)),
        "document_ids": [d.id for d in docs],
        "label": b64encode(
            plink.seal_label("Victim-witness unit", creator.public.x25519, creator.keys.version)
        ),
        "expires_at": (clock.now() + expires_in).isoformat(),
        "max_opens": max_opens,
    }
    if survivor is not None:
        body["survivor_label"] = b64encode(
            plink.seal_label("Victim-witness unit", survivor.public.x25519, survivor.keys.version)
        )
    return body, secret


def make_link(
    app: Flask,
    creator: Person,
    case_id: str,
    docs: list[DocHandle],
    *,
    survivor: Person | None = None,
    max_opens: int = 2,
) -> LinkHandle:
    """Create a link through the API (pending when counsel links the survivor's document)."""
    body, secret = link_body(creator, case_id, docs, survivor=survivor, max_opens=max_opens)
    made = signed_in(app, creator).post(f"/api/v1/cases/{case_id}/links", json=body)
    assert made.status_code == 201, made.get_data(as_text=True)
    link = made.get_json()["link"]
    token = plink.link_keys(secret, None, None).token
    return LinkHandle(link["id"], link["state"], secret, body["lookup_id"], token)
