"""`haven docs bundle`: a case's documents as one archive that verifies offline (§24).

The archive holds the files (plaintext or ciphertext), each document's signed record and
file key, the uploaders' and the exporter's published keys with inclusion proofs against a
witnessed key-log checkpoint, each document's audit-chain entries with the checkpoints that
sign them, a PDF chain-of-custody report, the HTML verifier, and a manifest the exporter
signs that lists the SHA-256 of every other part.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault.client.api import ApiError, HavenClient
from vault.client.documents import Documents, OpenedDocument, safe_file_name
from vault.client.progress import Progress
from vault.client.report import ReportDocument, write_report
from vault.protocol import bundle as pb
from vault.protocol import checkpoint as cp
from vault.protocol.encoding import b64encode

READ_BYTES = 1024 * 1024
VERIFIER_ENV = "HAVEN_VERIFIER_HTML"
DEFAULT_VERIFIER = Path(__file__).resolve().parents[2] / "web" / "dist" / "verify.html"
RECORD_FIELDS = (
    "id",
    "case_id",
    "owner_id",
    "owner_key_version",
    "header",
    "metadata",
    "signature",
    "ciphertext_size",
    "chunk_count",
    "created_at",
    "finalized_at",
)


class BundleError(Exception):
    """The bundle cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class BundleResult:
    """A written bundle."""

    path: Path
    document_ids: list[str]
    parts: int
    size: int
    has_verifier: bool


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a file, read in pieces."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while piece := handle.read(READ_BYTES):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class _Exporter:
    """One export: stages every part in a private folder, then zips it."""

    def __init__(self, client: HavenClient, case_id: str, stage: Path, content: str) -> None:
        if client.account is None:
            raise BundleError("sign in first")
        self.client = client
        self.account = client.account
        self.case_id = case_id
        self.stage = stage
        self.content = content
        self.documents = Documents(client)
        case = client.get(f"/cases/{case_id}")["case"]
        self.names = {m["user_id"]: m["username"] for m in case["members"]}
        self.parts: list[str] = []

    def put(self, path: str, data: Any) -> None:
        _dump(self.stage / path, data)
        self.parts.append(path)

    def log(self) -> tuple[int, str]:
        """The witnessed checkpoint, its signed head and the log keys; return (size, origin)."""
        answer = self.client.get("/directory/checkpoint")
        note = str(answer["checkpoint"])
        body = cp.parse_body(cp.parse_note(note).text)
        head = self.client.get(f"/directory/heads/{body.size}")["head"]
        (self.stage / "log").mkdir(exist_ok=True)
        (self.stage / pb.CHECKPOINT).write_text(note, encoding="utf-8")
        self.parts.append(pb.CHECKPOINT)
        self.put(pb.HEAD, {"head": head})
        self.put(pb.LOG_KEYS, self.client.get("/directory/log-keys"))
        return body.size, body.origin

    def key(self, user_id: str, version: int, size: int) -> str:
        """An account's key record of a version, with its inclusion proof at ``size``."""
        path = pb.key_path(user_id, version)
        if path in self.parts:
            return path
        record = self.client.get(f"/users/{user_id}/keys/{version}")["key"]
        if int(record["log_index"]) >= size:
            raise BundleError(
                "a key is not yet in a checkpoint the witnesses cosigned; try again later"
            )
        proof = self.client.get(
            "/directory/proofs/inclusion", index=record["log_index"], size=size
        )["proof"]
        username = self.names.get(user_id)
        if username is None and user_id == self.account.id:
            username = self.account.username
        if username is None:
            raise BundleError("a signer is no longer a member of the case")
        self.put(
            path,
            {
                "user_id": user_id,
                "username": username,
                "record": record,
                "size": size,
                "proof": proof,
            },
        )
        return path

    def file(self, doc: OpenedDocument, progress: Progress) -> str:
        """The document's content as the counsel chose: decrypted, or the stored ciphertext."""
        folder = self.stage / "files" / doc.id
        folder.mkdir(parents=True)
        if self.content == "ciphertext":
            target = folder / f"{doc.id}.haven"
            response = self.client.request(
                "GET", f"/documents/{doc.id}/content", params={"purpose": "save"}, stream=True
            )
            with response, target.open("wb") as out:
                for piece in response.iter_content(chunk_size=READ_BYTES):
                    out.write(piece)
                    progress.advance(len(piece))
        else:
            target = folder / safe_file_name(doc.info.name, doc.id)
            on_chunk = progress.chunk(doc.info.size)
            self.documents.download(doc.id, target, document=doc, on_chunk=on_chunk)
        path = target.relative_to(self.stage).as_posix()
        self.parts.append(path)
        progress.file_done()
        return path

    def case_subjects(self) -> dict[tuple[str, str, str], list[tuple[float, str]]]:
        """Readers named by the case's events (the chain keeps the owner, not the reader)."""
        found: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
        before: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if before is not None:
                params["before"] = before
            page = self.client.get(f"/cases/{self.case_id}/events", **params)["events"]
            for event in page:
                if event.get("document_id") and event.get("subject_id"):
                    at = datetime.fromisoformat(event["created_at"]).timestamp() * 1000
                    key = (event["kind"], event["document_id"], event.get("actor_id") or "")
                    found.setdefault(key, []).append((at, event["subject_id"]))
            if len(page) < 500:
                return found
            before = int(page[-1]["id"])


def _subject(
    entry: dict[str, Any], found: dict[tuple[str, str, str], list[tuple[float, str]]]
) -> str | None:
    key = (entry["kind"], entry.get("document_id") or "", entry.get("actor_id") or "")
    near = [(abs(at - entry["created_ms"]), who) for at, who in found.get(key, [])]
    near = [n for n in near if n[0] < 5000]
    return min(near)[1] if near else None


def _select(documents: list[OpenedDocument], wanted: Sequence[str] | None) -> list[OpenedDocument]:
    if not wanted:
        return documents
    by_id = {d.id: d for d in documents}
    missing = [w for w in wanted if w not in by_id]
    if missing:
        raise BundleError(f"not a readable, verified document of this case: {', '.join(missing)}")
    return [by_id[w] for w in dict.fromkeys(wanted)]


def export_bundle(
    client: HavenClient,
    case_id: str,
    out: Path,
    *,
    document_ids: Sequence[str] | None = None,
    content: str = "plaintext",
    verifier: Path | None = None,
) -> BundleResult:
    """Write the evidence bundle of a case (or of some of its documents) to ``out``."""
    if content not in pb.CONTENT_MODES:
        raise BundleError("content is plaintext or ciphertext")
    if out.exists():
        raise BundleError(f"{out} exists; choose a new file name")
    verifier = verifier or Path(os.environ.get(VERIFIER_ENV) or DEFAULT_VERIFIER)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".haven-bundle-", dir=out.parent) as tmp:
        stage = Path(tmp)
        try:
            manifest = _stage(client, case_id, stage, document_ids, content, verifier)
        except ApiError as exc:
            raise BundleError(f"the server refused: {exc.message}") from exc
        manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
        assert client.account is not None
        signature = pb.sign_manifest(manifest_bytes, client.account.keys.signing_key)
        partial = stage / "bundle.zip"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(pb.MANIFEST, manifest_bytes)
            archive.writestr(pb.SIGNATURE, b64encode(signature))
            for part in manifest["parts"]:
                archive.write(stage / part["path"], part["path"])
        os.replace(partial, out)
    return BundleResult(
        out,
        [d["id"] for d in manifest["documents"]],
        len(manifest["parts"]) + 2,
        out.stat().st_size,
        any(p["kind"] == "verifier" for p in manifest["parts"]),
    )


def _stage(
    client: HavenClient,
    case_id: str,
    stage: Path,
    document_ids: Sequence[str] | None,
    content: str,
    verifier: Path,
) -> dict[str, Any]:
    """Gather every part into ``stage``; return the manifest (unsigned)."""
    ex = _Exporter(client, case_id, stage, content)
    listing = ex.documents.case_documents(case_id)
    chosen = _select(listing.documents, document_ids)
    if not chosen:
        raise BundleError("no document of this case can be exported")
    size, origin = ex.log()
    exporter_key = ex.key(ex.account.id, ex.account.keys.version, size)
    found = ex.case_subjects()
    listed: list[dict[str, Any]] = []
    reported: list[ReportDocument] = []
    subjects: dict[int, str] = {}
    total = sum(d.ciphertext_size if content == "ciphertext" else d.info.size for d in chosen)
    with Progress("bundle", total, len(chosen)) as progress:
        for doc in chosen:
            key = ex.key(doc.owner_id, doc.owner_key_version, size)
            record = {k: doc.data.get(k) for k in RECORD_FIELDS}
            ex.put(
                pb.record_path(doc.id), {"document": record, "file_key": b64encode(doc.file_key)}
            )
            custody = ex.client.get(f"/documents/{doc.id}/custody")
            ex.put(pb.events_path(doc.id), custody)
            file_path = ex.file(doc, progress)
            listed.append(
                {
                    "id": doc.id,
                    "record": pb.record_path(doc.id),
                    "events": pb.events_path(doc.id),
                    "file": file_path,
                    "uploader_key": key,
                }
            )
            for entry in custody["entries"]:
                who = _subject(entry, found)
                if who is not None:
                    subjects[int(entry["seq"])] = who
            reported.append(
                ReportDocument(
                    doc.id,
                    doc.info.name,
                    doc.info.doc_type,
                    doc.info.size,
                    doc.info.sha256.hex(),
                    ex.names.get(doc.owner_id, doc.owner_id),
                    doc.created_at,
                    doc.owner_key_version,
                    file_path,
                    custody["entries"],
                )
            )
    policy = client.directory.witnesses
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    write_report(
        stage / pb.REPORT,
        case_id=case_id,
        server=client.base_url,
        exporter=ex.account.username,
        exported_at=exported_at,
        content=content,
        log_size=size,
        witnesses=len(policy.keys),
        documents=reported,
        names=ex.names,
        subjects=subjects,
    )
    ex.parts.append(pb.REPORT)
    if verifier.is_file():
        (stage / pb.VERIFIER).write_bytes(verifier.read_bytes())
        ex.parts.append(pb.VERIFIER)
    parts = []
    for path in ex.parts:
        part_size, digest = sha256_file(stage / path)
        parts.append(
            {"path": path, "kind": pb.part_kind(path), "size": part_size, "sha256": digest}
        )
    return {
        "format": pb.FORMAT,
        "case_id": case_id,
        "server": client.base_url,
        "exported_at": exported_at,
        "exporter": {
            "user_id": ex.account.id,
            "username": ex.account.username,
            "key_version": ex.account.keys.version,
            "key": exporter_key,
        },
        "content": content,
        "trust": {
            "origin": origin,
            "log_size": size,
            "witnesses": [k.encode() for k in policy.keys],
            "quorum": policy.quorum,
        },
        "documents": listed,
        "parts": parts,
    }
