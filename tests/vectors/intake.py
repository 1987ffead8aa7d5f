"""Vectors of the anonymous intake (protocol §20): receipt words and what they derive, a
report entry and its signature, a sealed report key, a session signature, a proof of work."""

from __future__ import annotations

import hashlib
from typing import Any

import nacl.signing
from mnemonic import Mnemonic

from vault.protocol import documents as pdoc
from vault.protocol import intake as pin
from vault.protocol.encoding import b64encode


def _bytes(label: str, n: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(n)


def intake_vectors() -> dict[str, Any]:
    """Everything a client computes for one report, from fixed inputs."""
    entropy = _bytes("intake-receipt", 16)
    receipt = str(Mnemonic("english").to_mnemonic(entropy))
    keys = pin.receipt_keys(receipt)
    report_id, entry_id = _bytes("intake-report-id", 16), _bytes("intake-entry-id", 16)
    report_key, nonce = _bytes("intake-report-key", 32), _bytes("intake-nonce", 24)
    report = pin.Report("I need help with my papers", "es", "text", "evenings", "yes")
    plaintext = pin.report_plaintext(report)
    blob = pin.seal_entry(report_key, report_id, entry_id, pin.REPORTER, plaintext, nonce)
    signed = pin.entry_signed(report_id, entry_id, pin.REPORTER, 0, blob)
    reply_nonce = _bytes("intake-reply-nonce", 24)
    reply_id = _bytes("intake-reply-id", 16)
    reply = pin.seal_entry(
        report_key, report_id, reply_id, "u1", pin.message_plaintext("We can help."), reply_nonce
    )
    file_key, attachment_id = _bytes("intake-file-key", 32), _bytes("intake-attachment-id", 16)
    photo = b"a small photo"
    stream_header = pin.attachment_stream_header(file_key, attachment_id)
    header, content = pdoc.encrypt_content(file_key, photo, stream_header)
    attachment = pin.Attachment(
        attachment_id,
        file_key,
        header,
        "photo.jpg",
        "image/jpeg",
        len(photo),
        hashlib.sha256(photo).digest(),
    )
    attachment_entry_id = _bytes("intake-attachment-entry", 16)
    attachment_nonce = _bytes("intake-attachment-nonce", 24)
    attachment_blob = pin.seal_entry(
        report_key,
        report_id,
        attachment_entry_id,
        pin.REPORTER,
        pin.attachment_plaintext(attachment),
        attachment_nonce,
    )
    challenge = _bytes("intake-challenge", 32)
    session = pin.session_signed(challenge, keys.lookup)
    pow_nonce = pin.solve_pow(challenge, 12)
    return {
        "receipt": {
            "entropy": b64encode(entropy),
            "words": receipt,
            "salt": b64encode(pin.receipt_salt()),
            "opslimit": 3,
            "memlimit": 64 << 20,
            "box_public": b64encode(keys.box_public),
            "box_secret": b64encode(keys.box_secret),
            "sign_seed": b64encode(keys.sign_seed),
            "sign_public": b64encode(keys.sign_public),
            "lookup": b64encode(keys.lookup),
        },
        "entry": {
            "report_id": b64encode(report_id),
            "entry_id": b64encode(entry_id),
            "report_key": b64encode(report_key),
            "nonce": b64encode(nonce),
            "text": report.text,
            "language": report.language,
            "contact_way": report.contact_way,
            "contact_time": report.contact_time,
            "danger": report.danger,
            "plaintext": b64encode(plaintext),
            "ciphertext": b64encode(blob),
            "signature": b64encode(nacl.signing.SigningKey(keys.sign_seed).sign(signed).signature),
        },
        "reply": {
            "entry_id": b64encode(reply_id),
            "author": "u1",
            "nonce": b64encode(reply_nonce),
            "text": "We can help.",
            "ciphertext": b64encode(reply),
        },
        "attachment": {
            "entry_id": b64encode(attachment_entry_id),
            "nonce": b64encode(attachment_nonce),
            "id": b64encode(attachment_id),
            "file_key": b64encode(file_key),
            "stream_header": b64encode(stream_header),
            "header": b64encode(header),
            "name": attachment.name,
            "mime_type": attachment.mime_type,
            "size": attachment.size,
            "sha256": b64encode(attachment.sha256),
            "plaintext": b64encode(photo),
            "content": b64encode(content),
            "ciphertext": b64encode(attachment_blob),
        },
        "session": {
            "challenge": b64encode(challenge),
            "signature": b64encode(keys.signing_key.sign(session).signature),
        },
        "pow": {
            "challenge": b64encode(challenge),
            "difficulty": 12,
            "nonce": b64encode(pow_nonce),
            "digest": b64encode(pin.pow_digest(challenge, pow_nonce)),
        },
    }
