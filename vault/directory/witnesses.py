"""Getting key-log checkpoints cosigned by independent witnesses (C2SP tlog-witness, §15).

After a request that appended to the log, and on a client's request for the checkpoint
when the newest one is not yet cosigned, the server submits the newest checkpoint to each
configured witness with the size that witness last cosigned and a consistency proof, and
stores the cosignature lines it returns. A witness that is down or refuses leaves the head
uncosigned; publishing never waits for it.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import requests
from flask import Flask, Response, g
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vault.db import database, serialise_appends
from vault.directory import services
from vault.directory.models import Cosignature, TreeHeadRow
from vault.keyring import Keyring, keyring
from vault.protocol import checkpoint as cp

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 3


class WitnessError(RuntimeError):
    """A witness refused the checkpoint or could not be reached."""


@dataclass(frozen=True)
class Witness:
    """A configured witness: its cosigner verifier key and submission prefix URL."""

    key: cp.VerifierKey
    url: str

    @property
    def id(self) -> str:
        """The stored identity of the witness: its vkey string."""
        return self.key.encode()


def configured(app: Flask) -> list[Witness]:
    """The app's witnesses from HAVEN_WITNESSES."""
    return [Witness(key, url) for key, url in app.config["HAVEN_WITNESSES"]]


def checkpoint_note(ring: Keyring, origin: str, head: TreeHeadRow) -> cp.Note:
    """The log-signed checkpoint of a head, signed by every live log key, newest first."""
    seeds = [ring.get("logsign", v) for v in reversed(ring.versions("logsign"))]
    return cp.sign_checkpoint(cp.Checkpoint(origin, head.size, head.root), seeds)


def _last_cosigned(db: Session, witness: Witness) -> int:
    size = db.scalar(select(func.max(Cosignature.size)).where(Cosignature.witness == witness.id))
    return int(size or 0)


def _request_body(db: Session, old: int, note: cp.Note) -> bytes:
    """``old <size>``, the consistency proof lines, an empty line, then the checkpoint."""
    size = int(cp.parse_body(note.text).size)
    proof = services.consistency(db, old, size) if 0 < old < size else []
    lines = [f"old {old}\n"] + [base64.b64encode(p).decode("ascii") + "\n" for p in proof]
    return ("".join(lines) + "\n" + note.encode()).encode("utf-8")


def submit(db: Session, witness: Witness, note: cp.Note, old: int, timeout: float) -> cp.Signature:
    """POST add-checkpoint; follow a 409 to the witness's size; return the cosignature."""
    size = cp.parse_body(note.text).size
    for _ in range(MAX_CONFLICT_RETRIES):
        if old > size:
            raise WitnessError(f"witness {witness.key.name} has cosigned a larger tree ({old})")
        try:
            resp = requests.post(
                f"{witness.url}/add-checkpoint", data=_request_body(db, old, note), timeout=timeout
            )
        except requests.RequestException as exc:
            raise WitnessError(f"witness {witness.key.name} is unreachable") from exc
        if resp.status_code == 409:
            text = resp.text
            if not text.endswith("\n") or not text[:-1].isdigit() or len(text) > 20:
                raise WitnessError(f"witness {witness.key.name} sent a malformed 409")
            old = int(text[:-1])
            continue
        if resp.status_code != 200:
            raise WitnessError(f"witness {witness.key.name} answered {resp.status_code}")
        try:
            lines = cp.parse_signatures(resp.text)
            answered = cp.Note(note.text, lines)
            if not cp.cosigners(answered, [witness.key]):
                raise WitnessError(f"witness {witness.key.name} returned no cosignature of its key")
        except cp.CheckpointError as exc:
            raise WitnessError(f"witness {witness.key.name} returned a bad cosignature") from exc
        return next(s for s in lines if s.name == witness.key.name)
    raise WitnessError(f"witness {witness.key.name} kept answering 409")


def cosign_newest(
    db: Session, ring: Keyring, origin: str, witnesses: Sequence[Witness], timeout: float
) -> int:
    """Have every witness cosign the newest head, under the log's lock; return how many did."""
    try:
        serialise_appends(db, services.ADVISORY_LOCK_ID)
        size = services.tree_size(db)
        if size == 0:
            return 0
        head = services.head_at(db, size)
        note = checkpoint_note(ring, origin, head)
        done = 0
        for witness in witnesses:
            old = _last_cosigned(db, witness)
            if old == size:
                done += 1
                continue
            try:
                sig = submit(db, witness, note, old, timeout)
            except WitnessError as exc:
                log.warning("checkpoint %d not cosigned: %s", size, exc)
                continue
            timestamp = int.from_bytes(sig.signature[:8], "big")
            db.add(Cosignature(size=size, witness=witness.id, line=sig.line(), timestamp=timestamp))
            db.flush()
            done += 1
        db.commit()
        return done
    finally:
        db.rollback()


def served_checkpoint(
    db: Session, ring: Keyring, origin: str, witnesses: Sequence[Witness], quorum: int
) -> tuple[int, str]:
    """The newest checkpoint carrying ``quorum`` cosignatures (else the newest head, bare)."""
    ids = [w.id for w in witnesses]
    size = None
    if quorum and ids:
        size = db.scalar(
            select(Cosignature.size)
            .where(Cosignature.witness.in_(ids))
            .group_by(Cosignature.size)
            .having(func.count() >= quorum)
            .order_by(Cosignature.size.desc())
            .limit(1)
        )
    head = services.head_at(db, size) if size else services.latest_head(db)
    note = checkpoint_note(ring, origin, head)
    rows = db.scalars(
        select(Cosignature)
        .where(Cosignature.size == head.size, Cosignature.witness.in_(ids))
        .order_by(Cosignature.witness)
    )
    cosigned = "".join(row.line for row in rows)
    return head.size, note.encode() + cosigned


def is_newest_cosigned(db: Session, witnesses: Sequence[Witness], quorum: int) -> bool:
    """Whether the newest head already carries ``quorum`` cosignatures."""
    size = services.tree_size(db)
    count = db.scalar(
        select(func.count())
        .select_from(Cosignature)
        .where(Cosignature.size == size, Cosignature.witness.in_([w.id for w in witnesses]))
    )
    return size == 0 or int(count or 0) >= quorum


def cosign_for_app(app: Flask) -> int:
    """Run cosign_newest in a fresh session with the app's settings; note the attempt time."""
    witnesses = configured(app)
    if not witnesses:
        return 0
    app.extensions["haven.witness.tried"] = time.monotonic()
    session = database(app).sessions()
    try:
        return cosign_newest(
            session,
            keyring(),
            app.config["HAVEN_LOG_ORIGIN"],
            witnesses,
            float(app.config["HAVEN_WITNESS_TIMEOUT_SECONDS"]),
        )
    finally:
        session.close()


def retry_if_due(app: Flask, db: Session) -> None:
    """On a client's request: retry cosigning an uncosigned newest head, at most so often."""
    witnesses = configured(app)
    quorum = app.config["HAVEN_WITNESS_QUORUM"]
    if not witnesses or is_newest_cosigned(db, witnesses, quorum):
        return
    last = app.extensions.get("haven.witness.tried")
    if last is not None and time.monotonic() - last < app.config["HAVEN_WITNESS_RETRY_SECONDS"]:
        return
    db.rollback()  # end the read transaction before another session takes the log's lock
    cosign_for_app(app)


def newest_checkpoint(app: Flask, db: Session) -> tuple[int, str]:
    """What GET /directory/checkpoint serves, after a retry of the witnesses if one is due."""
    retry_if_due(app, db)
    return served_checkpoint(
        db,
        keyring(),
        app.config["HAVEN_LOG_ORIGIN"],
        configured(app),
        app.config["HAVEN_WITNESS_QUORUM"],
    )


def _after_request(app: Flask) -> None:
    def hook(response: Response) -> Response:
        session: Session | None = g.get("db_session")
        if session is not None and session.info.pop(services.APPENDED, False):
            try:
                cosign_for_app(app)
            except Exception:  # the append is committed; a later retry cosigns it
                log.exception("asking the witnesses to cosign failed")
        return response

    app.after_request(hook)


def init_app(app: Flask) -> None:
    """Ask witnesses to cosign after every request that appended to the key log."""
    _after_request(app)
