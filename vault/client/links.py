"""Outside links (protocol §23): the owner's create, list, approve and revoke, and the
recipient's open, which verifies every document as a signed-in reader would."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import nacl.utils

from vault.client.api import ApiError, parse_public_keys
from vault.client.directory import KeyDirectory
from vault.client.documents import Documents, open_with_key
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol import links as plink
from vault.protocol import transparency as kt
from vault.protocol.encoding import EncodingError, b64decode, b64encode
from vault.protocol.kdf import KdfParams, check_passphrase_strength

if TYPE_CHECKING:
    from vault.client.api import HavenClient


class LinkRefused(Exception):
    """A link that does not open (gone, wrong passphrase) or a document that fails a check."""


@dataclass(frozen=True)
class MadeLink:
    """A link just created: its record and the URL to give the recipient."""

    link: dict[str, Any]
    url: str


@dataclass(frozen=True)
class VerifiedFile:
    """One file a recipient saved, with what was verified about it."""

    document_id: str
    name: str
    size: int
    sha256: str
    uploader: str
    uploaded_at: str
    path: Path


@dataclass
class OpenedLink:
    """The result of one open: its number and each verified, saved file."""

    number: int
    files: list[VerifiedFile] = field(default_factory=list)


class Links:
    """Outside links as one signed-in client manages them."""

    def __init__(self, client: HavenClient) -> None:
        self.client = client
        self.documents = Documents(client)

    def _case(self, case_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.client.get(f"/cases/{case_id}")["case"])

    def create(
        self,
        case_id: str,
        document_ids: list[str],
        recipient: str,
        expires_at: datetime,
        max_opens: int,
        passphrase: str | None = None,
    ) -> MadeLink:
        """Seal the file keys under a new link secret and register the link."""
        account = self.client.account
        if account is None:
            raise RuntimeError("sign in first")
        files = []
        for document_id in document_ids:
            opened = self.documents.get(document_id)
            files.append((opened.raw_id, opened.file_key))
        secret = plink.generate_secret()
        lookup = plink.lookup_id(secret)
        params = None
        if passphrase is not None:
            check_passphrase_strength(passphrase)
            params = KdfParams(nacl.utils.random(16))
        keys = plink.link_keys(secret, passphrase, params)
        envelope = plink.seal_envelope(plink.Contents(case_id, tuple(files)), keys, lookup)
        mine = account.public_keys
        body: dict[str, Any] = {
            "lookup_id": b64encode(lookup),
            "token_hash": b64encode(keys.token_hash),
            "envelope": b64encode(envelope),
            "document_ids": document_ids,
            "label": b64encode(plink.seal_label(recipient, mine.x25519, mine.version)),
            "expires_at": expires_at.isoformat(),
            "max_opens": max_opens,
        }
        if params is not None:
            body["kdf"] = {
                "alg": params.alg,
                "salt": b64encode(params.salt),
                "opslimit": params.opslimit,
                "memlimit": params.memlimit,
            }
        case = self._case(case_id)
        survivor = next(m for m in case["members"] if m["role"] == "survivor")
        if survivor["user_id"] != account.id:
            self.client.trust_contact(
                survivor["user_id"], survivor["username"], survivor["public_keys"]
            )
            theirs = parse_public_keys(survivor["public_keys"])
            body["survivor_label"] = b64encode(
                plink.seal_label(recipient, theirs.x25519, theirs.version)
            )
        link = self.client.post(f"/cases/{case_id}/links", body)["link"]
        return MadeLink(link, f"{self.client.base_url}/app/#{plink.fragment(secret)}")

    def recipient(self, link: dict[str, Any]) -> str:
        """The recipient's name, from the label sealed to me."""
        account = self.client.account
        if account is None:
            raise RuntimeError("sign in first")
        return plink.open_label(
            b64decode(link["label"]),
            account.public_keys.x25519,
            account.keys.x25519_secret,
            account.keys.version,
        )

    def list(self, case_id: str) -> list[dict[str, Any]]:
        """The links of a case I may see, each with its recipient opened."""
        links = self.client.get(f"/cases/{case_id}/links")["links"]
        return [link | {"recipient": self.recipient(link)} for link in links]

    def approve(self, link_id: str) -> dict[str, Any]:
        """Consent to a link counsel made for my documents."""
        return cast(dict[str, Any], self.client.post(f"/links/{link_id}/approve")["link"])

    def revoke(self, link_id: str) -> None:
        """Stop a link at once (or decline a pending one)."""
        self.client.request("DELETE", f"/links/{link_id}")


class _Replay:
    """Answers the key directory's GETs from the material an open carried (§23.5)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.directory = answer["directory"]
        self.uploaders = {u["user_id"]: u for u in answer["uploaders"]}

    def get(self, path: str, **params: Any) -> Any:
        """What the server's route of that path would have answered."""
        heads = {h["size"]: h for h in self.directory["heads"]}
        if path == "/directory/log-keys":
            return {"log_keys": self.directory["log_keys"]}
        if path == "/directory/checkpoint":
            return {
                "size": self.directory["checkpoint_size"],
                "checkpoint": self.directory["checkpoint"],
            }
        if path == "/directory/head":
            return {"head": heads[max(heads)]}
        if path.startswith("/directory/heads/"):
            return {"head": heads[int(path.rsplit("/", 1)[1])]}
        if path == "/directory/proofs/inclusion":
            for proof in self.directory["proofs"]:
                if (proof["index"], proof["size"]) == (params["index"], params["size"]):
                    return {"proof": proof["proof"]}
        if path.startswith("/users/") and path.endswith("/keys"):
            return self.uploaders[path.split("/")[2]]
        raise kt.TransparencyError(f"the link's open did not carry {path}")


def _signer(
    directory: KeyDirectory, uploaders: dict[str, Any], user_id: str, version: int
) -> tuple[str, bytes]:
    """The uploader's username and Ed25519 key: self-signed, logged, one publish (§12.5)."""
    uploader = uploaders.get(user_id)
    if uploader is None:
        raise pkeys.ProtocolError("the open did not name the uploader")
    for key in uploader["keys"]:
        if key["version"] == version:
            parse_public_keys(key).verify(uploader["username"])
            directory.verify_key(user_id, key)
            directory.check_contact(user_id, key)
            return uploader["username"], parse_public_keys(key).ed25519
    raise pkeys.ProtocolError(f"the uploader has no key version {version}")


def open_link(
    client: HavenClient, url: str, dest: Path, passphrase: str | None = None
) -> OpenedLink:
    """Open a link URL (one counted open), verify every document and save it into ``dest``."""
    try:
        secret = plink.parse_link_url(url)
    except (pkeys.ProtocolError, EncodingError) as exc:
        raise LinkRefused(str(exc)) from exc
    lookup = b64encode(plink.lookup_id(secret))
    try:
        found = client.get(f"/link/{lookup}")["link"]
    except ApiError as exc:
        raise LinkRefused("this link does not exist or no longer opens") from exc
    kdf = found["kdf"]
    params = None
    if kdf is not None:
        params = KdfParams(b64decode(kdf["salt"]), kdf["opslimit"], kdf["memlimit"], kdf["alg"])
    try:
        keys = plink.link_keys(secret, passphrase, params)
        contents = plink.open_envelope(b64decode(found["envelope"]), keys, b64decode(lookup))
    except pkeys.ProtocolError as exc:
        raise LinkRefused(str(exc)) from exc
    try:
        answer = client.post(f"/link/{lookup}/open", {"token": b64encode(keys.token)})
    except ApiError as exc:
        raise LinkRefused("this link does not exist or no longer opens") from exc
    directory = KeyDirectory(cast("HavenClient", _Replay(answer)), client.directory.witnesses)
    uploaders = {u["user_id"]: u for u in answer["uploaders"]}
    records = {r["id"]: r for r in answer["documents"]}
    result = OpenedLink(answer["open"]["number"])
    ticket = answer["open"]["ticket"]
    for raw_id, file_key in contents.files:
        document_id = b64encode(raw_id)
        record = records.get(document_id)
        if record is None or record["case_id"] != contents.case_id:
            raise LinkRefused(f"document {document_id} is missing from the link's open")
        try:
            result.files.append(
                _save(client, directory, uploaders, lookup, ticket, record, file_key, dest)
            )
        except (pkeys.ProtocolError, EncodingError, KeyError, ValueError) as exc:
            raise LinkRefused(f"document {document_id} refused: {exc}") from exc
    return result


def _save(
    client: HavenClient,
    directory: KeyDirectory,
    uploaders: dict[str, Any],
    lookup: str,
    ticket: str,
    record: dict[str, Any],
    file_key: bytes,
    dest: Path,
) -> VerifiedFile:
    """Verify one record (§8.4, §8.3, commitment), then download, decrypt and check it."""
    signed = pdoc.SignedDocument.from_json(record)
    username, signer = _signer(directory, uploaders, signed.uploader_id, signed.key_version)
    signed.verify(signer, b64decode(record["signature"]))
    info = open_with_key(signed, file_key)
    target = dest / Path(info.name).name
    if target.exists():
        raise FileExistsError(target)
    response = client.request(
        "GET",
        f"/link/{lookup}/documents/{record['id']}/content",
        headers={"Haven-Link-Ticket": ticket},
        stream=True,
    )
    decryptor = pdoc.ContentDecryptor(file_key, signed.header)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".haven-", suffix=".partial", dir=dest)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, response:
            buffer = bytearray()
            for piece in response.iter_content(chunk_size=pdoc.CHUNK_CIPHERTEXT_BYTES):
                buffer += piece
                while len(buffer) >= pdoc.CHUNK_CIPHERTEXT_BYTES and not decryptor.is_finished:
                    plain = decryptor.pull(bytes(buffer[: pdoc.CHUNK_CIPHERTEXT_BYTES]))
                    del buffer[: pdoc.CHUNK_CIPHERTEXT_BYTES]
                    out.write(plain)
                    digest.update(plain)
            if buffer:
                plain = decryptor.pull(bytes(buffer))
                out.write(plain)
                digest.update(plain)
            decryptor.finish()
        if digest.digest() != info.sha256:
            raise pkeys.ProtocolError("the SHA-256 does not match the signed one")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return VerifiedFile(
        document_id=record["id"],
        name=info.name,
        size=info.size,
        sha256=digest.hexdigest(),
        uploader=username,
        uploaded_at=str(record["finalized_at"] or record["created_at"]),
        path=target,
    )
