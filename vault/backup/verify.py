"""The restore drill as a tool: restore into scratch, then check what was restored.

Without users' keys the operator cannot open a document or a message, but can check
everything their authors vouch for: each document record's Ed25519 signature and its
object's size, each message envelope's shape, digest and signature, the audit chain and
the key-transparency log (the same protocol code the server and the clients use).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.accounts.models import UserKey
from vault.audit import chain
from vault.directory.services import verify_log
from vault.documents.models import Document, DocumentState
from vault.messages.models import Message
from vault.protocol import documents as pdoc
from vault.protocol import messages as pmsg
from vault.protocol.audit import ChainError
from vault.protocol.encoding import EncodingError, b64decode
from vault.protocol.keys import ProtocolError, PublicKeys
from vault.protocol.transparency import TransparencyError
from vault.storage import ObjectStore

MAX_PROBLEMS = 50


@dataclass
class Report:
    """What the drill checked, and every problem found (up to MAX_PROBLEMS)."""

    documents: int = 0
    messages: int = 0
    audit_entries: int = 0
    log_entries: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Note one problem."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def check_restored(db: Session, store: ObjectStore) -> Report:
    """Check every document, message, the audit chain and the key log of a restored copy."""
    report = Report()
    keys = {(k.user_id, k.version): k for k in db.scalars(select(UserKey))}
    _check_documents(db, store, keys, report)
    _check_messages(db, keys, report)
    try:
        report.audit_entries = chain.verify(db)
    except ChainError as exc:
        report.problem(f"audit chain: {exc}")
    rows = [
        (k.user_id, k.version, k.x25519, k.ed25519, k.signature, k.log_index) for k in keys.values()
    ]
    try:
        report.log_entries = verify_log(db, rows)
    except TransparencyError as exc:
        report.problem(f"key log: {exc}")
    return report


def _check_documents(
    db: Session, store: ObjectStore, keys: dict[tuple[str, int], UserKey], report: Report
) -> None:
    ready = select(Document).where(Document.state == DocumentState.READY).order_by(Document.id)
    for doc in db.scalars(ready).yield_per(500):
        report.documents += 1
        key = keys.get((doc.owner_id, doc.owner_key_version))
        try:
            if key is None:
                raise ProtocolError("its uploader's key version is not in the database")
            record = pdoc.SignedDocument(
                document_id=b64decode(doc.id),
                case_id=doc.case_id,
                uploader_id=doc.owner_id,
                key_version=doc.owner_key_version,
                header=doc.header,
                ciphertext_size=doc.ciphertext_size,
                metadata=doc.metadata_envelope,
            )
            record.verify(key.ed25519, doc.signature)
        except (ProtocolError, EncodingError) as exc:
            report.problem(f"document {doc.id}: {exc}")
            continue
        size = store.size(doc.object_name)
        if size != doc.ciphertext_size:
            found = "missing" if size is None else f"{size} bytes"
            report.problem(
                f"document {doc.id}: its object is {found}, the signed record says"
                f" {doc.ciphertext_size}"
            )


def _check_messages(db: Session, keys: dict[tuple[str, int], UserKey], report: Report) -> None:
    live = select(Message).where(Message.deleted_at.is_(None)).order_by(Message.id)
    for message in db.scalars(live).yield_per(500):
        report.messages += 1
        key = keys.get((message.sender_id, message.sender_key_version))
        try:
            if key is None or message.body is None or message.signature is None:
                raise ProtocolError("its sender's key, body or signature is gone")
            recipients = message.recipients or []
            header = pmsg.Header(
                conversation_id=message.conversation_id,
                message_id=b64decode(message.id),
                sender_id=message.sender_id,
                sender_key_version=message.sender_key_version,
                sent_at=message.sent_at,
                ttl=message.ttl,
                recipients=tuple(
                    pmsg.Recipient(r["user_id"], r["key_version"]) for r in recipients
                ),
                attachments=tuple(message.attachments or ()),
            )
            sealed = tuple(b64decode(r["sealed_key"]) for r in recipients)
            envelope = pmsg.Envelope(header, message.body, sealed, message.signature)
            envelope.check()
            envelope.verify(PublicKeys(key.version, key.x25519, key.ed25519, key.signature))
            if envelope.digest() != message.digest:
                raise ProtocolError("its digest does not match the envelope")
        except (ProtocolError, EncodingError, KeyError, TypeError) as exc:
            report.problem(f"message {message.id}: {exc}")
