"""The intake side of the Python client (protocol §20): a reporter without an account
submits, comes back with her receipt, reads and answers; a team member works the inbox."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from vault.client.api import ApiError, HavenClient, parse_public_keys
from vault.client.directory import KeyDirectory
from vault.client.documents import Documents
from vault.client.messages import Messenger
from vault.protocol import documents as pdoc
from vault.protocol import intake as pin
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.kdf import DEFAULT_MEMLIMIT, DEFAULT_OPSLIMIT
from vault.protocol.keys import ProtocolError, PublicKeys


@dataclass(frozen=True)
class Entry:
    """One decrypted entry: who wrote it (None: the reporter) and what."""

    seq: int
    author_id: str | None
    content: pin.Report | str | pin.Attachment


@dataclass(frozen=True)
class Submitted:
    """What the reporter keeps after submitting: the receipt, shown once."""

    receipt: str
    report_id: str


class TeamBundle:
    """Serves the key-log reads a KeyDirectory makes from GET /intake/team's answer, so a
    reporter without an account runs exactly the checks a signed-in client runs (§20.3)."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.bundle = bundle
        self.members = {m["user_id"]: m for m in bundle["members"]}

    def get(self, path: str, **params: Any) -> Any:
        """Answer one directory read from the bundle."""
        head = self.bundle["head"]
        if path == "/directory/log-keys":
            return {"log_keys": self.bundle["log_keys"]}
        if path == "/directory/checkpoint" and self.bundle["checkpoint"] is not None:
            return self.bundle["checkpoint"]
        if path in ("/directory/head", f"/directory/heads/{head['size']}"):
            return {"head": head}
        if path == "/directory/proofs/inclusion" and params.get("size") == head["size"]:
            for member in self.members.values():
                if member["public_keys"]["log_index"] == params.get("index"):
                    return {"proof": member["inclusion"]}
        if path.startswith("/users/") and path.endswith("/keys"):
            member = self.members.get(path.split("/")[2])
            if member is not None:
                return member["history"]
        raise ProtocolError(f"the intake team's answer lacks {path}")


class Reporter:
    """A reporter's device: no account, only a receipt."""

    def __init__(
        self,
        client: HavenClient,
        *,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
    ) -> None:
        self.client = client
        self.opslimit = opslimit
        self.memlimit = memlimit
        self.keys: pin.ReceiptKeys | None = None
        self.report_id: bytes | None = None
        self.report_key: bytes | None = None

    def team(self) -> dict[str, PublicKeys]:
        """The team's current box keys, each checked in the key log as for any contact."""
        return TeamKeys(self.client).current()

    def proof(self) -> dict[str, str]:
        """A fresh challenge and the nonce that solves it."""
        answer = self.client.post("/intake/challenges")
        challenge = b64decode(answer["challenge"])
        nonce = pin.solve_pow(challenge, int(answer["difficulty"]))
        return {"challenge": answer["challenge"], "nonce": b64encode(nonce)}

    def _entry(self, plaintext: bytes) -> dict[str, str]:
        assert self.keys and self.report_id and self.report_key
        entry_id = os.urandom(pin.ID_BYTES)
        blob = pin.seal_entry(self.report_key, self.report_id, entry_id, pin.REPORTER, plaintext)
        signed = pin.entry_signed(self.report_id, entry_id, pin.REPORTER, 0, blob)
        signature = self.keys.signing_key.sign(signed).signature
        return {
            "id": b64encode(entry_id),
            "ciphertext": b64encode(blob),
            "signature": b64encode(signature),
        }

    def submit(self, report: pin.Report) -> Submitted:
        """Encrypt the report to the team and send it; return the receipt to show once."""
        submitted, body = self.prepare(report)
        self.client.post("/intake/reports", body)
        return submitted

    def prepare(self, report: pin.Report) -> tuple[Submitted, dict[str, Any]]:
        """The receipt and the request body of a new report, proof of work solved."""
        team = self.team()
        receipt = pin.new_receipt()
        self.keys = pin.receipt_keys(receipt, self.opslimit, self.memlimit)
        self.report_id = os.urandom(pin.ID_BYTES)
        self.report_key = os.urandom(pin.REPORT_KEY_BYTES)
        rid, rk = self.report_id, self.report_key
        body = {
            "id": b64encode(rid),
            "box_public_key": b64encode(self.keys.box_public),
            "sign_public_key": b64encode(self.keys.sign_public),
            "reporter_key": b64encode(pin.seal_report_key(rid, rk, 0, self.keys.box_public)),
            "team_keys": [
                {
                    "user_id": uid,
                    "sealed_key": b64encode(pin.seal_report_key(rid, rk, k.version, k.x25519)),
                }
                for uid, k in team.items()
            ],
            "entry": self._entry(pin.report_plaintext(report)),
            "proof": self.proof(),
        }
        return Submitted(receipt, b64encode(rid)), body

    def come_back(self, receipt: str) -> list[Entry]:
        """Open a session with the receipt alone; return the decrypted thread."""
        self.keys = pin.receipt_keys(receipt, self.opslimit, self.memlimit)
        answer = self.client.post("/intake/challenges")
        challenge = b64decode(answer["challenge"])
        lookup = self.keys.lookup
        signature = self.keys.signing_key.sign(pin.session_signed(challenge, lookup)).signature
        body = {
            "lookup": b64encode(lookup),
            "challenge": answer["challenge"],
            "signature": b64encode(signature),
        }
        return self._open(self.client.post("/intake/session", body)["report"])

    def thread(self) -> list[Entry]:
        """The report's entries as they are now."""
        return self._open(self.client.get("/intake/session/report")["report"])

    def _open(self, report: dict[str, Any]) -> list[Entry]:
        assert self.keys is not None
        self.report_id = b64decode(report["id"])
        self.report_key = pin.open_report_key(
            b64decode(report["sealed_key"]),
            self.report_id,
            0,
            self.keys.box_public,
            self.keys.box_secret,
        )
        return open_thread(self.client, report, self.report_key)

    def move_to_case(self, account: HavenClient, case_id: str, member_ids: list[str]) -> str:
        """On her consent: copy the thread into a new conversation of her case, sealed to its
        members as ordinary messages (attachments as case documents), then shred the intake
        report. The conversation's id."""
        names = {uid: m["username"] for uid, m in TeamKeys(self.client).members.items()}
        messenger = Messenger(account)
        conversation = messenger.create_conversation(case_id, member_ids)
        documents = Documents(account)
        for entry in self.thread():
            line = transcript_line(entry, names)
            if isinstance(entry.content, pin.Attachment):
                att = entry.content
                doc = documents.upload(
                    case_id,
                    io.BytesIO(self.fetch(att)),
                    doc_type="other",
                    name=att.name,
                    mime_type=att.mime_type,
                )
                messenger.send(conversation.id, line, attachments=[doc])
            else:
                messenger.send(conversation.id, line)
        self.client.request("DELETE", "/intake/session/report")
        return conversation.id

    def upload(
        self,
        data: bytes,
        *,
        part_size: int = pdoc.PART_BYTES,
        on_part: Callable[[int], None] | None = None,
        attachment_id: bytes | None = None,
        file_key: bytes | None = None,
    ) -> tuple[bytes, bytes, bytes]:
        """Encrypt and upload (or resume, given the same id and key) an attachment's content:
        its id, file key and content header. Parts the server holds are not sent again."""
        aid = attachment_id or os.urandom(pin.ID_BYTES)
        key = file_key or pdoc.generate_file_key()
        # The stream header comes from the key and id, so a resumed upload pushes the same bytes
        # (§8.2 "Restarting a stream": never different plaintext under one header).
        stream_header = pin.attachment_stream_header(key, aid)
        header, ciphertext = pdoc.encrypt_content(key, data, stream_header)
        path = f"/intake/session/attachments/{b64encode(aid)}"
        try:
            upload = self.client.get(path)["upload"]
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = {
                "id": b64encode(aid),
                "ciphertext_size": len(ciphertext),
                "chunk_count": pdoc.chunk_count(len(data)),
                "part_size": part_size,
            }
            upload = self.client.post("/intake/session/attachments", body)["upload"]
        held = {p["number"] for p in upload["parts"]}
        for number in range(1, upload["part_count"] + 1):
            if number in held:
                continue
            first = (number - 1) * part_size
            self.client.request(
                "PUT",
                f"{path}/parts/{number}",
                data=ciphertext[first : first + part_size],
                headers={"Content-Type": "application/octet-stream"},
            )
            if on_part is not None:
                on_part(number)
        self.client.post(f"{path}/finalize")
        return aid, key, header

    def attach(self, data: bytes, name: str, mime_type: str, **upload: Any) -> pin.Attachment:
        """Upload a file and add the entry that names it (the team reads it with the report)."""
        aid, key, header = self.upload(data, **upload)
        att = pin.Attachment(
            aid, key, header, name, mime_type, len(data), hashlib.sha256(data).digest()
        )
        self.client.post("/intake/session/entries", self._entry(pin.attachment_plaintext(att)))
        return att

    def fetch(self, att: pin.Attachment) -> bytes:
        """Download and check an attachment of her report."""
        path = f"/intake/session/attachments/{b64encode(att.id)}/content"
        return open_attachment(att, self.client.request("GET", path).content)

    def add(self, text: str) -> None:
        """Add a message to the report."""
        self.client.post("/intake/session/entries", self._entry(pin.message_plaintext(text)))


class TeamKeys:
    """The intake team's key records from GET /intake/team, checked with a KeyDirectory that
    reads the bundled log material: the checks of a signed-in client, without an account."""

    def __init__(self, client: HavenClient) -> None:
        self.bundle = client.get("/intake/team")
        source = TeamBundle(self.bundle)
        self.directory = KeyDirectory(cast(HavenClient, source), client.directory.witnesses)
        self.members = {m["user_id"]: m for m in self.bundle["members"]}

    def record(self, user_id: str, version: int) -> PublicKeys:
        """A member's key record of one version, self-signature, inclusion and history checked."""
        member = self.members.get(user_id)
        if member is None:
            raise ProtocolError(f"{user_id} is not on the intake team")
        for record in member["history"]["keys"]:
            if int(record["version"]) == version:
                keys = parse_public_keys(record)
                keys.verify(member["username"])
                self.directory.verify_key(user_id, record)
                self.directory.check_contact(user_id, record)
                return keys
        raise ProtocolError(f"no key version {version} of {user_id}")

    def current(self) -> dict[str, PublicKeys]:
        """Every member's current keys, checked."""
        out = {
            uid: self.record(uid, int(m["public_keys"]["version"]))
            for uid, m in self.members.items()
        }
        if not out:
            raise ProtocolError("the intake team is empty")
        return out


def open_thread(client: HavenClient, report: dict[str, Any], report_key: bytes) -> list[Entry]:
    """Verify and decrypt every entry of a report."""
    rid = b64decode(report["id"])
    out: list[Entry] = []
    team: TeamKeys | None = None
    for item in report["entries"]:
        author = item["author_id"] or pin.REPORTER
        blob = b64decode(item["ciphertext"])
        if item["author_id"] is None:
            key = b64decode(report["sign_public_key"])
        else:
            team = team or TeamKeys(client)
            key = team.record(author, int(item["key_version"])).ed25519
        eid = b64decode(item["id"])
        signed = pin.entry_signed(rid, eid, author, int(item["key_version"]), blob)
        if not pin.verify_signature(key, signed, b64decode(item["signature"])):
            raise ProtocolError(f"entry {item['seq']} is not signed by its author")
        content = pin.open_entry(report_key, rid, eid, author, blob)
        if (item["seq"] == 1) != isinstance(content, pin.Report):
            raise ProtocolError("only the first entry is the report")
        out.append(Entry(int(item["seq"]), item["author_id"], content))
    return out


def open_attachment(att: pin.Attachment, ciphertext: bytes) -> bytes:
    """Decrypt an attachment's content and check its size and SHA-256."""
    data = pdoc.decrypt_content(att.file_key, att.header, ciphertext)
    if len(data) != att.size or hashlib.sha256(data).digest() != att.sha256:
        raise ProtocolError("the attachment is not the file its entry names")
    return data


def transcript_line(entry: Entry, names: dict[str, str]) -> str:
    """One intake entry as the text of a case message (§20.10)."""
    who = "reporter" if entry.author_id is None else names.get(entry.author_id, entry.author_id)
    content = entry.content
    if isinstance(content, pin.Attachment):
        return f"[intake #{entry.seq}, {who}] attached {content.name} ({content.size} bytes)"
    if isinstance(content, pin.Report):
        return (
            f"[intake #{entry.seq}, {who}] {content.text}\n"
            f"language: {content.language or '-'}; contact: {content.contact_way or '-'} "
            f"({content.contact_time or '-'}); in danger now: {content.danger}"
        )
    return f"[intake #{entry.seq}, {who}] {content}"


class Inbox:
    """A signed-in team member's view of the intake."""

    def __init__(self, client: HavenClient) -> None:
        self.client = client

    def reports(self) -> list[dict[str, Any]]:
        """Every report, newest activity first."""
        return list(self.client.get("/intake/reports")["reports"])

    def _key(self, report: dict[str, Any]) -> bytes:
        account = self.client.account
        assert account is not None
        if report["sealed_key"] is None:
            raise ProtocolError("this report was not sealed to you")
        return pin.open_report_key(
            b64decode(report["sealed_key"]),
            b64decode(report["id"]),
            account.keys.version,
            account.public_keys.x25519,
            account.keys.x25519_secret,
        )

    def read(self, report_id: str) -> list[Entry]:
        """Open a report and decrypt its thread (recorded in the audit chain)."""
        report = self.client.get(f"/intake/reports/{report_id}")["report"]
        return open_thread(self.client, report, self._key(report))

    def reply(self, report_id: str, text: str) -> None:
        """Send a reply the reporter can read with her receipt."""
        account = self.client.account
        assert account is not None
        report = self.client.get(f"/intake/reports/{report_id}")["report"]
        rid, key = b64decode(report_id), self._key(report)
        entry_id = os.urandom(pin.ID_BYTES)
        blob = pin.seal_entry(key, rid, entry_id, account.id, pin.message_plaintext(text))
        signed = pin.entry_signed(rid, entry_id, account.id, account.keys.version, blob)
        body = {
            "id": b64encode(entry_id),
            "key_version": account.keys.version,
            "ciphertext": b64encode(blob),
            "signature": b64encode(account.keys.signing_key.sign(signed).signature),
        }
        self.client.post(f"/intake/reports/{report_id}/entries", body)

    def share(self, report_id: str, user_id: str) -> None:
        """Seal a report's key to a team member who joined after it arrived."""
        report = self.client.get(f"/intake/reports/{report_id}")["report"]
        keys = TeamKeys(self.client).current()[user_id]
        sealed = pin.seal_report_key(
            b64decode(report_id), self._key(report), keys.version, keys.x25519
        )
        body = {"user_id": user_id, "sealed_key": b64encode(sealed)}
        self.client.post(f"/intake/reports/{report_id}/keys", body)

    def fetch(self, report_id: str, att: pin.Attachment) -> bytes:
        """Download and check an attachment of a report."""
        path = f"/intake/reports/{report_id}/attachments/{b64encode(att.id)}/content"
        return open_attachment(att, self.client.request("GET", path).content)

    def assign(self, report_id: str, user_id: str) -> None:
        """Give the report to a team member."""
        self.client.post(f"/intake/reports/{report_id}/assign", {"user_id": user_id})

    def handled(self, report_id: str) -> None:
        """Mark the report handled."""
        self.client.post(f"/intake/reports/{report_id}/handled")
