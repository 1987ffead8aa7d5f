"""The evidence bundle's fixed parts: layout, part kinds, the exporter's signature (§24)."""

from __future__ import annotations

import nacl.exceptions
import nacl.signing

from vault.protocol.encoding import frame

FORMAT = "haven-evidence-bundle/1"
LABEL_MANIFEST = "haven/v1/evidence-bundle"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHECKPOINT = "log/checkpoint.txt"
HEAD = "log/head.json"
LOG_KEYS = "log/log-keys.json"
REPORT = "report.pdf"
VERIFIER = "verify.html"
CONTENT_MODES = ("plaintext", "ciphertext")

# Every part a verifier names, by where it lies in the bundle (first match wins).
KINDS = (
    ("manifest", (MANIFEST, SIGNATURE)),
    ("checkpoint", ("log/",)),
    ("proof", ("keys/",)),
    ("record", ("records/",)),
    ("event", ("events/",)),
    ("file", ("files/",)),
    ("report", (REPORT,)),
    ("verifier", (VERIFIER,)),
)


def part_kind(path: str) -> str:
    """The kind of part a path of the bundle holds (``manifest`` for anything unknown)."""
    for kind, prefixes in KINDS:
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes):
            return kind
    return "manifest"


def record_path(document_id: str) -> str:
    """Where a document's signed record lies."""
    return f"records/{document_id}.json"


def events_path(document_id: str) -> str:
    """Where a document's audit entries and their checkpoints lie."""
    return f"events/{document_id}.json"


def key_path(user_id: str, version: int) -> str:
    """Where an account's published key record and its inclusion proof lie."""
    return f"keys/{user_id}-{version}.json"


def manifest_message(manifest: bytes) -> bytes:
    """What the exporter signs: the manifest's exact bytes, framed."""
    return frame(LABEL_MANIFEST, manifest)


def sign_manifest(manifest: bytes, signing_key: nacl.signing.SigningKey) -> bytes:
    """The exporter's Ed25519 signature of the manifest."""
    return signing_key.sign(manifest_message(manifest)).signature


def manifest_signature_ok(manifest: bytes, signature: bytes, public_key: bytes) -> bool:
    """Whether the signature is the exporter's over these manifest bytes."""
    try:
        nacl.signing.VerifyKey(public_key).verify(manifest_message(manifest), signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True
