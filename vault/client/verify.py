"""`haven verify BUNDLE`: check an evidence bundle with no network and no server (§24.7).

Every failure names the part it is in — ``manifest``, ``checkpoint``, ``proof``, ``record``,
``file``, ``event``, ``report`` or ``verifier`` — and its path in the bundle. A part whose
own check failed is not used to judge others: a record whose uploader key failed is left
unchecked rather than reported twice.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vault.client.api import parse_public_keys
from vault.client.directory import record_entry
from vault.client.progress import Progress
from vault.protocol import audit as pa
from vault.protocol import bundle as pb
from vault.protocol import checkpoint as cp
from vault.protocol import documents as pdoc
from vault.protocol import merkle
from vault.protocol import transparency as kt
from vault.protocol.encoding import EncodingError, b64decode
from vault.protocol.keys import ProtocolError

READ_BYTES = 1024 * 1024
# What a malformed or forged part raises while it is read or checked.
PART_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    EncodingError,
    zipfile.BadZipFile,
    OSError,
    UnicodeDecodeError,
)


@dataclass(frozen=True)
class Failure:
    """One part that did not verify."""

    part: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.part} {self.path}: {self.reason}"


@dataclass
class Verification:
    """The outcome: what failed (nothing, if the bundle verified) and what was checked."""

    failures: list[Failure] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        """Whether every part verified."""
        return not self.failures

    def fail(self, path: str, reason: str) -> None:
        """Record a failure of the part at ``path``."""
        self.failures.append(Failure(pb.part_kind(path), path, reason))

    def failed(self, path: str) -> bool:
        """Whether the part at ``path`` already failed."""
        return any(f.path == path for f in self.failures)


class Source:
    """The bundle as a zip file or as the folder it was unpacked into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = None if path.is_dir() else zipfile.ZipFile(path)

    def names(self) -> set[str]:
        """Every file of the bundle, as a path relative to its top."""
        if self.archive is not None:
            return {n for n in self.archive.namelist() if not n.endswith("/")}
        return {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """Read one part as a stream."""
        if self.archive is not None:
            with self.archive.open(name) as handle:
                yield handle
        else:
            target = (self.path / name).resolve()
            if not target.is_relative_to(self.path.resolve()):
                raise ValueError("the path leaves the bundle")
            with target.open("rb") as handle:
                yield handle

    def read(self, name: str) -> bytes:
        """One whole (small) part."""
        with self.open(name) as handle:
            return handle.read()

    def json(self, name: str) -> Any:
        """One JSON part."""
        return json.loads(self.read(name).decode("utf-8"))


def _hash_part(src: Source, path: str, progress: Progress) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with src.open(path) as handle:
        while piece := handle.read(READ_BYTES):
            digest.update(piece)
            size += len(piece)
            progress.advance(len(piece))
    return size, digest.hexdigest()


class _Checker:
    """The checks of one bundle, in the order of §24.7."""

    def __init__(
        self, src: Source, log_keys: Sequence[bytes], witnesses: Sequence[str] | None, quorum: int
    ) -> None:
        self.src = src
        self.out = Verification()
        self.pinned_log_keys = list(log_keys)
        self.witness_override = witnesses
        self.quorum_override = quorum
        self.log_keys: dict[int, bytes] = {}
        self.tree: tuple[int, bytes] | None = None
        self.keys: dict[str, bytes] = {}

    def manifest(self) -> dict[str, Any] | None:
        try:
            data = self.src.json(pb.MANIFEST)
            if not isinstance(data, dict) or data.get("format") != pb.FORMAT:
                raise ValueError(f"not a {pb.FORMAT} manifest")
            for key in ("case_id", "exporter", "trust", "documents", "parts"):
                if key not in data:
                    raise ValueError(f"the manifest has no {key}")
            return data
        except PART_ERRORS as exc:
            self.out.fail(pb.MANIFEST, f"unreadable: {exc}")
            return None

    def hashes(self, manifest: dict[str, Any], progress: Progress) -> None:
        listed = {pb.MANIFEST, pb.SIGNATURE}
        present = self.src.names()
        for part in manifest["parts"]:
            path = str(part["path"])
            listed.add(path)
            if self.out.failed(path):
                continue
            if path not in present:
                self.out.fail(path, "missing from the bundle")
                continue
            try:
                size, digest = _hash_part(self.src, path, progress)
            except PART_ERRORS as exc:
                self.out.fail(path, f"damaged: {exc}")
                continue
            if size != part["size"] or digest != part["sha256"]:
                self.out.fail(path, "its SHA-256 differs from the manifest's: altered")
            if pb.part_kind(path) == "file":
                progress.file_done()
        for extra in sorted(present - listed):
            self.out.fail(pb.MANIFEST, f"{extra} is in the bundle but not in the manifest")
        for required in (pb.CHECKPOINT, pb.HEAD, pb.LOG_KEYS, pb.REPORT):
            if required not in listed:
                self.out.fail(required, "missing from the manifest")

    def log(self, trust: dict[str, Any]) -> None:
        """Log keys chained by announcements, the cosigned checkpoint, its signed head."""
        path = pb.LOG_KEYS
        try:
            previous: dict[str, Any] | None = None
            for item in self.src.json(path)["log_keys"]:
                version, public = int(item["version"]), b64decode(item["public_key"])
                if previous is not None:
                    kt.verify_announcement(
                        b64decode(previous["public_key"]),
                        int(previous["version"]),
                        version,
                        public,
                        b64decode(item["announcement"]),
                    )
                self.log_keys[version] = public
                previous = item
            if self.pinned_log_keys and not set(self.pinned_log_keys) & set(self.log_keys.values()):
                raise ValueError("none of these log keys is the one you were given")
            if not self.log_keys:
                raise ValueError("no log key")
        except PART_ERRORS as exc:
            self.out.fail(path, f"log keys do not chain: {exc}")
            self.log_keys = {}
            return
        path = pb.CHECKPOINT
        try:
            note = self.src.read(path).decode("utf-8")
            origin = str(trust["origin"])
            logs = [cp.log_verifier(origin, k) for k in self.log_keys.values()]
            vkeys = self.witness_override
            if vkeys is None:
                vkeys = [str(v) for v in trust["witnesses"]]
            quorum = self.quorum_override or int(trust["quorum"])
            witnesses = [cp.parse_verifier_key(v) for v in vkeys]
            if quorum:
                body = cp.verify_cosigned(note, logs, witnesses, quorum)
            else:
                body = _log_signed(note, logs)
            if body.origin != origin:
                raise ValueError("the checkpoint is of another log")
        except PART_ERRORS as exc:
            self.out.fail(path, f"checkpoint refused: {exc}")
            return
        path = pb.HEAD
        try:
            data = self.src.json(path)["head"]
            head = kt.TreeHead(
                int(data["size"]),
                b64decode(data["root"]),
                int(data["timestamp_ms"]),
                int(data["key_version"]),
                b64decode(data["signature"]),
            )
            head.verify(self.log_keys[head.key_version])
            if (head.size, head.root) != (body.size, body.root):
                raise ValueError("the signed head is not the cosigned checkpoint's")
        except PART_ERRORS as exc:
            self.out.fail(path, f"tree head refused: {exc}")
            return
        self.tree = (head.size, head.root)
        self.out.checked.append(
            f"key log checkpoint at size {head.size}, "
            + (
                f"cosigned by {quorum} of {len(witnesses)} witness(es)"
                if quorum
                else "signed by the log alone (the exporter had no witnesses)"
            )
        )

    def key(self, path: str) -> bytes | None:
        """An account's key record: self-signed, and included in the checkpoint's tree."""
        if path in self.keys:
            return self.keys[path]
        if self.out.failed(path) or self.tree is None:
            return None
        try:
            data = self.src.json(path)
            record = data["record"]
            parse_public_keys(record).verify(str(data["username"]))
            size, root = self.tree
            if int(data["size"]) != size:
                raise ValueError("the proof is for another tree size")
            leaf = record_entry(str(data["user_id"]), record).leaf()
            proof = [b64decode(p) for p in data["proof"]]
            merkle.verify_inclusion(leaf, int(record["log_index"]), size, proof, root)
        except PART_ERRORS as exc:
            self.out.fail(path, f"key not proven in the log: {exc}")
            return None
        self.keys[path] = b64decode(record["ed25519"])
        return self.keys[path]

    def signature(self, manifest: dict[str, Any], raw: bytes) -> bool:
        """The exporter's signature over the manifest; False only if it is wrong."""
        exporter = manifest["exporter"]
        key = self.key(str(exporter["key"]))
        if key is None:
            return True  # the key's own failure is reported; the hashes still say what changed
        try:
            data = self.src.json(str(exporter["key"]))
            if data["user_id"] != exporter["user_id"] or data["username"] != exporter["username"]:
                raise ValueError("the exporter's key is another account's")
            signature = b64decode(self.src.read(pb.SIGNATURE).decode("ascii"))
            if not pb.manifest_signature_ok(raw, signature, key):
                raise ValueError("the exporter's signature does not verify")
        except PART_ERRORS as exc:
            self.out.fail(pb.SIGNATURE, str(exc))
            return False
        self.out.checked.append(f"manifest signed by {exporter['username']}")
        return True

    def document(self, case_id: str, content: str, item: dict[str, Any]) -> None:
        path = str(item["record"])
        key = self.key(str(item["uploader_key"]))
        if key is None or self.out.failed(path):
            return
        try:
            data = self.src.json(path)
            doc = data["document"]
            if doc["id"] != item["id"] or doc["case_id"] != case_id:
                raise ValueError("the record is of another document or case")
            record = pdoc.SignedDocument.from_json(doc)
            raw_id, header = record.document_id, record.header
            uploader = self.src.json(str(item["uploader_key"]))
            if (uploader["user_id"], uploader["record"]["version"]) != (
                record.uploader_id,
                record.key_version,
            ):
                raise ValueError("the uploader key given is not the signer's")
            record.verify(key, b64decode(doc["signature"]))
            file_key = b64decode(data["file_key"])
            commitment, _ = pdoc.parse_content_header(header)
            if commitment != pdoc.FileKeys.derive(file_key).commitment:
                raise ValueError("the file key is not the one the signed header commits to")
            info = pdoc.open_metadata(
                record.metadata, file_key, raw_id, record.case_id, record.uploader_id, header
            )
            if pdoc.ciphertext_size(info.size) != record.ciphertext_size:
                raise ValueError("the signed sizes do not agree")
        except (*PART_ERRORS, ProtocolError) as exc:
            self.out.fail(path, f"signed record refused: {exc}")
            return
        self.file(str(item["file"]), content, info, file_key, header, record.ciphertext_size)
        self.events(str(item["events"]), case_id, doc["id"])

    def file(
        self,
        path: str,
        content: str,
        info: pdoc.DocumentInfo,
        file_key: bytes,
        header: bytes,
        ciphertext_size: int,
    ) -> None:
        if self.out.failed(path):
            return
        digest, size = hashlib.sha256(), 0
        try:
            with self.src.open(path) as handle:
                if content == "ciphertext":
                    decryptor = pdoc.ContentDecryptor(file_key, header)
                    total = 0
                    while chunk := handle.read(pdoc.CHUNK_CIPHERTEXT_BYTES):
                        total += len(chunk)
                        plain = decryptor.pull(chunk)
                        digest.update(plain)
                        size += len(plain)
                    decryptor.finish()
                    if total != ciphertext_size:
                        raise ValueError("the ciphertext has another length than signed")
                else:
                    while piece := handle.read(READ_BYTES):
                        digest.update(piece)
                        size += len(piece)
            if size != info.size or digest.digest() != info.sha256:
                raise ValueError("its SHA-256 or size is not the one the uploader signed")
        except (*PART_ERRORS, ProtocolError) as exc:
            self.out.fail(path, str(exc))
            return
        self.out.checked.append(f"file {path}: SHA-256 {info.sha256.hex()} as signed")

    def events(self, path: str, case_id: str, document_id: str) -> None:
        """Each entry hashes as the chain says and links to a checkpoint the log key signed."""
        if self.out.failed(path) or not self.log_keys:
            return
        try:
            data = self.src.json(path)
            entries = data["entries"]
            if not entries:
                raise ValueError("no audit entry for this document")
            chain: dict[int, tuple[bytes, bytes]] = {}
            for entry in [*entries, *data["links"]]:
                seq, prev, own = int(entry["seq"]), b64decode(entry["prev_hash"]), entry["hash"]
                fields = pa.ChainFields(
                    seq,
                    prev,
                    str(entry["kind"]),
                    entry["actor_id"],
                    entry["subject_id"],
                    entry["case_id"],
                    entry["document_id"],
                    pa.canonical_detail(entry["detail"]),
                    int(entry["created_ms"]),
                )
                if fields.hash() != b64decode(own):
                    raise ValueError(f"audit entry {seq} does not hash to its recorded hash")
                chain[seq] = (prev, b64decode(own))
            for entry in entries:
                if entry["document_id"] != document_id or entry["case_id"] != case_id:
                    raise ValueError(f"audit entry {entry['seq']} is of another document")
            checkpoints = sorted(data["checkpoints"], key=lambda c: int(c["seq"]))
            for entry in entries:
                _prove_entry(int(entry["seq"]), chain, checkpoints, self.log_keys)
        except (*PART_ERRORS, pa.ChainError) as exc:
            self.out.fail(path, str(exc))
            return
        self.out.checked.append(f"{len(entries)} audit entries of {document_id} under checkpoints")


def _log_signed(note: str, logs: Sequence[cp.VerifierKey]) -> cp.Checkpoint:
    """A checkpoint signed by a trusted log key (an export made with no witnesses)."""
    parsed = cp.parse_note(note)
    body = cp.parse_body(parsed.text)
    for key in logs:
        for sig in parsed.signatures:
            if sig.name == key.name and sig.key_hash == key.key_hash:
                cp.verify_signature(parsed.text, sig, key)
                return body
    raise ValueError("the checkpoint is not signed by the log")


def _prove_entry(
    seq: int,
    chain: dict[int, tuple[bytes, bytes]],
    checkpoints: list[dict[str, Any]],
    log_keys: dict[int, bytes],
) -> None:
    """Walk from an entry to the first checkpoint at or after it; check that checkpoint."""
    cover = next((c for c in checkpoints if int(c["seq"]) >= seq), None)
    if cover is None:
        raise ValueError(f"audit entry {seq} is under no checkpoint")
    end = int(cover["seq"])
    for s in range(seq + 1, end + 1):
        if s not in chain or chain[s][0] != chain[s - 1][1]:
            raise ValueError(f"audit entry {s} does not follow entry {s - 1}")
    signed = b64decode(cover["hash"])
    if chain[end][1] != signed:
        raise ValueError(f"audit entry {end} differs from its signed checkpoint")
    version = int(cover["key_version"])
    if version not in log_keys:
        raise ValueError(f"the checkpoint at entry {end} names an unknown log key")
    pa.verify_checkpoint(
        log_keys[version],
        end,
        signed,
        int(cover["timestamp_ms"]),
        version,
        b64decode(cover["signature"]),
    )


def verify_bundle(
    path: Path,
    *,
    log_keys: Sequence[bytes] = (),
    witnesses: Sequence[str] | None = None,
    quorum: int = 0,
) -> Verification:
    """Check every part of a bundle (zip or folder) offline; ``log_keys``/``witnesses``
    replace the bundle's own trust anchors with ones the verifier got elsewhere."""
    try:
        src = Source(path)
    except (OSError, zipfile.BadZipFile) as exc:
        out = Verification()
        out.fail(pb.MANIFEST, f"not a bundle: {exc}")
        return out
    checker = _Checker(src, log_keys, witnesses, quorum)
    manifest = checker.manifest()
    if manifest is None:
        return checker.out
    try:
        checker.log(manifest["trust"])
        if not checker.signature(manifest, src.read(pb.MANIFEST)):
            return checker.out  # an unsigned manifest says nothing about the other parts
        total = sum(int(p["size"]) for p in manifest["parts"])
        files = sum(1 for p in manifest["parts"] if pb.part_kind(str(p["path"])) == "file")
        with Progress("verify", total, files) as progress:
            checker.hashes(manifest, progress)
        for item in manifest["documents"]:
            checker.document(str(manifest["case_id"]), str(manifest["content"]), item)
    except PART_ERRORS as exc:
        checker.out.fail(pb.MANIFEST, f"malformed: {exc}")
    return checker.out
