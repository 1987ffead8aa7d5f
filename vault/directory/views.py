"""Key transparency routes: signed heads, proofs, log keys and one's own entries."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from pydantic import Field

from vault import db
from vault.api import ANY_ROLE, B64, MAX_INT, Out, Query, endpoint, me, ok, query_int
from vault.directory import services, witnesses
from vault.directory.models import LogEntry, TreeHeadRow
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64encode

bp = Blueprint("directory", __name__, url_prefix="/api/v1/directory")


class HeadOut(Out):
    """A signed tree head."""

    size: int = Field(ge=0)
    root: B64
    timestamp_ms: int
    key_version: int
    signature: B64


class HeadReply(Out):
    """One signed tree head."""

    head: HeadOut


class CheckpointReply(Out):
    """The newest witness-cosigned checkpoint (a C2SP signed note) and its tree size."""

    size: int = Field(ge=0)
    checkpoint: str


class ProofReply(Out):
    """A Merkle proof: the hashes, in order."""

    proof: list[B64]


class LogKeyOut(Out):
    """A log signing key version and the announcement the one before signed."""

    version: int
    public_key: B64
    announcement: B64 | None


class LogKeysReply(Out):
    """Every log signing key version."""

    log_keys: list[LogKeyOut]


class EntryOut(Out):
    """A log entry: its index and leaf bytes, with what those bytes say when they decode."""

    index: int = Field(ge=0)
    data: B64
    kind: str | None = None
    user_id: str | None = None
    key_version: int | None = None


class EntriesReply(Out):
    """Log entries."""

    entries: list[EntryOut]


class InclusionQuery(Query):
    """Which leaf, in which tree."""

    index: int = Field(ge=0, le=MAX_INT, description="the leaf index")
    size: int = Field(ge=1, le=MAX_INT, description="the tree size")


class ConsistencyQuery(Query):
    """Which two tree sizes."""

    from_: int = Field(alias="from", ge=1, le=MAX_INT, description="the older tree size")
    to: int = Field(ge=1, le=MAX_INT, description="the newer tree size")


def head_json(head: TreeHeadRow) -> dict[str, Any]:
    """A signed tree head as JSON."""
    return {
        "size": head.size,
        "root": b64encode(head.root),
        "timestamp_ms": head.timestamp_ms,
        "key_version": head.key_version,
        "signature": b64encode(head.signature),
    }


def entry_json(entry: LogEntry) -> dict[str, Any]:
    """A log entry as JSON: its index and the exact bytes its leaf hashes (§12.5).

    ``kind``, ``user_id`` and ``key_version`` are read from those bytes, never from the
    table's columns; clients decode ``data`` themselves and trust nothing else.
    """
    item: dict[str, Any] = {"index": entry.index, "data": b64encode(entry.data)}
    try:
        decoded = kt.KeyEntry.decode(entry.data)
    except kt.TransparencyError:
        return item
    return item | {"kind": decoded.kind, "user_id": decoded.user_id, "key_version": decoded.version}


@bp.get("/head")
@endpoint(
    "The newest signed tree head of the key transparency log", roles=ANY_ROLE, replies=ok(HeadReply)
)
def head() -> Response:
    """Return the newest signed head."""
    return jsonify({"head": head_json(services.latest_head(db.session()))})


@bp.get("/checkpoint")
@endpoint(
    "The newest witness-cosigned checkpoint of the key log (C2SP signed note)",
    replies=ok(CheckpointReply),
)
def checkpoint() -> Response:
    """Return the newest checkpoint with a quorum of cosignatures (§15)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    size, note = witnesses.newest_checkpoint(app, db.session())
    return jsonify({"size": size, "checkpoint": note})


@bp.get("/heads/<int:size>")
@endpoint("The signed tree head of a given size", roles=ANY_ROLE, replies=ok(HeadReply))
def head_of_size(size: int) -> Response:
    """Return an older signed head."""
    return jsonify({"head": head_json(services.head_at(db.session(), size))})


@bp.get("/proofs/inclusion")
@endpoint(
    "The inclusion proof of leaf index in a tree of size (?index=&size=)",
    roles=ANY_ROLE,
    replies=ok(ProofReply),
    query=InclusionQuery,
)
def inclusion() -> Response:
    """Prove that leaf ``index`` is in the tree of ``size`` leaves (no entry: §12.6)."""
    proof = services.inclusion(db.session(), query_int("index"), query_int("size", minimum=1))
    return jsonify({"proof": [b64encode(p) for p in proof]})


@bp.get("/proofs/consistency")
@endpoint(
    "Consistency proof between two tree sizes (?from=&to=)",
    roles=ANY_ROLE,
    replies=ok(ProofReply),
    query=ConsistencyQuery,
)
def consistency() -> Response:
    """Prove that the tree of size ``from`` is a prefix of the tree of size ``to``."""
    proof = services.consistency(
        db.session(), query_int("from", minimum=1), query_int("to", minimum=1)
    )
    return jsonify({"proof": [b64encode(p) for p in proof]})


@bp.get("/log-keys")
@endpoint(
    "Every log signing key version, each announced by the one before",
    roles=ANY_ROLE,
    replies=ok(LogKeysReply),
)
def log_keys() -> Response:
    """Return the chain of log public keys."""
    return jsonify({"log_keys": log_keys_json()})


def log_keys_json() -> list[dict[str, Any]]:
    """The chain of log public keys as JSON (also bundled by GET /intake/team)."""
    return [
        {
            "version": k.version,
            "public_key": b64encode(k.public_key),
            "announcement": b64encode(k.announcement) if k.announcement else None,
        }
        for k in services.log_keys(db.session())
    ]


@bp.get("/mine")
@endpoint(
    "Every log entry about the signed-in account, for self-monitoring",
    roles=ANY_ROLE,
    replies=ok(EntriesReply),
)
def mine() -> Response:
    """Return my own entries so my client can check nobody published keys in my name."""
    entries = services.entries_for(db.session(), me().id)
    return jsonify({"entries": [entry_json(e) for e in entries]})
