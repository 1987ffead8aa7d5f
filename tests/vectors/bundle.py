"""The evidence-bundle vector (protocol §24.8): `python -m tests.vectors.bundle`.

Writes tests/vectors/bundle/ (and bundle-ciphertext/, the same with the stored ciphertext) —
a complete bundle, unpacked, made from fixed seeds and times
(every byte reproducible) — and bundle.expected.json beside it: no failure for the bundle as it is, and for
each part the part name a one-byte change there must give.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from vault.protocol import audit as pa
from vault.protocol import bundle as pb
from vault.protocol import checkpoint as cp
from vault.protocol import documents as pdoc
from vault.protocol import merkle
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.keys import KeyPairs

OUT = Path(__file__).resolve().parent / "bundle"
OUT_CIPHERTEXT = OUT.with_name("bundle-ciphertext")
ORIGIN = "haven.example/key-log"
WITNESS = "witness.example/w1"
CASE = "Y2FzZS12ZWN0b3ItMDAwMQ"
SURVIVOR = ("c3Vydml2b3ItdmVjdG9yMQ", "maria.v")
COUNSEL = ("Y291bnNlbC12ZWN0b3ItMQ", "counsel.ana")
DOCUMENT = bytes(range(16))
T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z
PLAINTEXT = b"Vector passport scan.\n" * 3100  # 68,200 bytes: two chunks


def seed(n: int) -> bytes:
    """A fixed 32-byte seed."""
    return hashlib.sha256(f"haven bundle vector {n}".encode()).digest()


def keys(n: int) -> KeyPairs:
    """Fixed key pairs of version 1."""
    return KeyPairs(1, seed(n), seed(n + 100))


def _json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _entry(seq: int, prev: bytes, kind: str, actor: str, **ids: Any) -> dict[str, Any]:
    detail = ids.pop("detail", {})
    fields = pa.ChainFields(
        seq,
        prev,
        kind,
        actor,
        ids.get("subject_id"),
        ids.get("case_id"),
        ids.get("document_id"),
        pa.canonical_detail(detail),
        T0 + 60_000 * seq,
    )
    return {
        "seq": seq,
        "kind": kind,
        "actor_id": actor,
        "subject_id": ids.get("subject_id"),
        "case_id": ids.get("case_id"),
        "document_id": ids.get("document_id"),
        "detail": detail,
        "created_ms": fields.created_ms,
        "prev_hash": b64encode(prev),
        "hash": b64encode(fields.hash()),
    }


def _audit(log_seed: bytes, doc_id: str, size: int) -> dict[str, Any]:
    """Upload, grant and download of the document, sealed at 1 and 2; 3 is under 4's checkpoint."""
    on_doc = {"case_id": CASE, "document_id": doc_id, "subject_id": SURVIVOR[0]}
    rows = [
        (
            "upload",
            SURVIVOR[0],
            {**on_doc, "detail": {"size": pdoc.ciphertext_size(size)}},
        ),
        ("grant", SURVIVOR[0], on_doc),
        ("download", COUNSEL[0], {**on_doc, "detail": {"purpose": "save"}}),
        ("login", SURVIVOR[0], {}),
    ]
    prev, chain = pa.GENESIS, []
    for seq, (kind, actor, ids) in enumerate(rows, start=1):
        chain.append(_entry(seq, prev, kind, actor, **dict(ids)))
        prev = b64decode(chain[-1]["hash"])
    checkpoints = []
    for seq in (1, 2, 4):
        signed = b64decode(chain[seq - 1]["hash"])
        ts = T0 + 60_000 * seq + 1
        checkpoints.append(
            {
                "seq": seq,
                "hash": b64encode(signed),
                "timestamp_ms": ts,
                "key_version": 1,
                "signature": b64encode(pa.sign_checkpoint(log_seed, seq, signed, ts, 1)),
            }
        )
    return {
        "document_id": doc_id,
        "entries": chain[:3],
        "links": chain[3:],
        "checkpoints": checkpoints,
    }


def build(
    out: Path = OUT, plaintext: bytes = PLAINTEXT, content: str = "plaintext"
) -> dict[str, Any]:
    """Write the vector bundle into ``out`` (a bench passes a larger ``plaintext``); return
    bundle.expected.json's content."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log_seed, witness_seed = seed(1), seed(2)
    survivor, counsel = keys(10), keys(20)
    people = [(SURVIVOR, survivor), (COUNSEL, counsel)]
    records, entries = [], []
    for index, ((user_id, username), pair) in enumerate(people):
        pub = pair.public(username)
        logged = T0 + index
        entries.append(
            kt.KeyEntry("publish", user_id, 1, pub.x25519, pub.ed25519, pub.signature, logged)
        )
        records.append(
            {
                "user_id": user_id,
                "version": 1,
                "x25519": b64encode(pub.x25519),
                "ed25519": b64encode(pub.ed25519),
                "signature": b64encode(pub.signature),
                "status": "current",
                "log_index": index,
                "logged_at_ms": logged,
            }
        )
    leaves = [e.leaf() for e in entries]
    size, root = len(leaves), merkle.root_of(leaves)
    head = kt.TreeHead(size, root, T0 + 10, 1).signed(log_seed)
    note = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, size, root), [log_seed])
    cosigned = cp.Note(
        note.text, (*note.signatures, cp.cosign(note.text, WITNESS, witness_seed, 1_780_000_100))
    )
    witness = cp.VerifierKey(WITNESS, cp.ALG_COSIGNATURE_V1, kt.log_public_key(witness_seed))
    (out / "log").mkdir()
    (out / pb.CHECKPOINT).write_text(cosigned.encode(), encoding="utf-8")
    _json(
        out / pb.HEAD,
        {
            "head": {
                "size": size,
                "root": b64encode(root),
                "timestamp_ms": head.timestamp_ms,
                "key_version": 1,
                "signature": b64encode(head.signature),
            }
        },
    )
    log_public = b64encode(kt.log_public_key(log_seed))
    _json(
        out / pb.LOG_KEYS,
        {"log_keys": [{"version": 1, "public_key": log_public, "announcement": None}]},
    )
    subtree = merkle.subtree_from_perfect(
        lambda level, i: merkle.root_of(leaves[i << level : (i + 1) << level])
    )
    for index, ((user_id, username), _) in enumerate(people):
        proof = [b64encode(p) for p in merkle.inclusion_proof(index, size, subtree)]
        _json(
            out / pb.key_path(user_id, 1),
            {
                "user_id": user_id,
                "username": username,
                "record": records[index],
                "size": size,
                "proof": proof,
            },
        )
    file_key = seed(3)
    header, ciphertext = pdoc.encrypt_content(file_key, plaintext, seed(4)[:24])
    info = pdoc.DocumentInfo(
        name="passport scan.txt",
        mime_type="text/plain",
        size=len(plaintext),
        doc_type="passport",
        expires_on=None,
        sha256=hashlib.sha256(plaintext).digest(),
    )
    metadata = pdoc.seal_metadata(info, file_key, DOCUMENT, CASE, SURVIVOR[0], header, seed(5)[:24])
    signed = pdoc.SignedDocument(DOCUMENT, CASE, SURVIVOR[0], 1, header, len(ciphertext), metadata)
    doc_id = b64encode(DOCUMENT)
    record = {
        "id": doc_id,
        "case_id": CASE,
        "owner_id": SURVIVOR[0],
        "owner_key_version": 1,
        "header": b64encode(header),
        "metadata": b64encode(metadata),
        "signature": b64encode(signed.sign(survivor)),
        "ciphertext_size": len(ciphertext),
        "chunk_count": pdoc.chunk_count(len(plaintext)),
        "created_at": "2026-05-28T20:27:40+00:00",
        "finalized_at": "2026-05-28T20:27:40+00:00",
    }
    _json(out / pb.record_path(doc_id), {"document": record, "file_key": b64encode(file_key)})
    _json(out / pb.events_path(doc_id), _audit(log_seed, doc_id, len(plaintext)))
    is_plain = content == "plaintext"
    file_path = f"files/{doc_id}/" + ("passport scan.txt" if is_plain else f"{doc_id}.haven")
    (out / file_path).parent.mkdir(parents=True)
    (out / file_path).write_bytes(plaintext if is_plain else ciphertext)
    (out / pb.REPORT).write_bytes(
        b"%PDF-1.4\n% Haven vector bundle: a stand-in for the report\n%%EOF\n"
    )
    paths = [
        pb.CHECKPOINT,
        pb.HEAD,
        pb.LOG_KEYS,
        pb.key_path(COUNSEL[0], 1),
        pb.key_path(SURVIVOR[0], 1),
        pb.record_path(doc_id),
        pb.events_path(doc_id),
        file_path,
        pb.REPORT,
    ]
    parts = []
    for path in paths:
        data = (out / path).read_bytes()
        parts.append(
            {
                "path": path,
                "kind": pb.part_kind(path),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {
        "format": pb.FORMAT,
        "case_id": CASE,
        "server": "https://haven.example",
        "exported_at": "2026-05-29T09:00:00+00:00",
        "exporter": {
            "user_id": COUNSEL[0],
            "username": COUNSEL[1],
            "key_version": 1,
            "key": pb.key_path(COUNSEL[0], 1),
        },
        "content": content,
        "trust": {"origin": ORIGIN, "log_size": size, "witnesses": [witness.encode()], "quorum": 1},
        "documents": [
            {
                "id": doc_id,
                "record": pb.record_path(doc_id),
                "events": pb.events_path(doc_id),
                "file": file_path,
                "uploader_key": pb.key_path(SURVIVOR[0], 1),
            }
        ],
        "parts": parts,
    }
    raw = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    (out / pb.MANIFEST).write_bytes(raw)
    (out / pb.SIGNATURE).write_text(
        b64encode(pb.sign_manifest(raw, counsel.signing_key)), encoding="ascii"
    )
    tampered = {path: pb.part_kind(path) for path in [pb.MANIFEST, pb.SIGNATURE, *paths]}
    return {"failures": [], "tampered": tampered}


if __name__ == "__main__":
    _json(OUT.parent / "bundle.expected.json", build())
    _json(
        OUT.parent / "bundle-ciphertext.expected.json", build(OUT_CIPHERTEXT, content="ciphertext")
    )
    print(f"wrote {OUT}, {OUT_CIPHERTEXT} and their expected outcomes")
