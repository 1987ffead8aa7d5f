"""Messaging for the Python client: compose, send, list, verify, decrypt, follow events.

Nothing is shown unless it verifies: the envelope must name the conversation it was
listed in, its signature must verify against the sender's published key (self-signed
for the sender's username and included in the key transparency log), it must be sealed
to this account's key, and the body must authenticate under its exact header. Keys are
sealed to only after the same checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from vault.client.api import Account, ApiError, HavenClient, parse_public_keys, wait_to_retry
from vault.client.documents import OpenedDocument
from vault.protocol import documents as pdoc
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.keys import ProtocolError, PublicKeys
from vault.protocol.messages import envelope_json, parse_envelope

# Answers to a send that mean "your view of the conversation is out of date".
__all__ = ["envelope_json", "parse_envelope"]

REFETCH_CODES = frozenset({"stale_key_version", "timer_changed", "recipients_mismatch"})


@dataclass(frozen=True)
class Member:
    """A conversation member as the server describes it, keys checked."""

    user_id: str
    role: str
    username: str
    public_keys: PublicKeys


@dataclass(frozen=True)
class Conversation:
    """A conversation with its current members and timer."""

    id: str
    case_id: str
    ttl: int
    members: dict[str, Member]
    raw: dict[str, Any]


@dataclass(frozen=True)
class Plaintext:
    """A verified, decrypted message."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_username: str
    sent_at: int
    ttl: int
    text: str
    attachments: tuple[str, ...]


@dataclass(frozen=True)
class Event:
    """One server-sent event: a kind, its resumable id and its ids-only data."""

    kind: str
    id: str | None
    data: dict[str, Any]


class Messenger:
    """Messaging over a signed-in HavenClient."""

    def __init__(self, client: HavenClient, *, retries: int = 3, backoff: float = 1.0) -> None:
        self.client = client
        self.retries = retries
        self.backoff = backoff
        self._keys: dict[tuple[str, int], PublicKeys] = {}
        self._conversations: dict[str, Conversation] = {}

    @property
    def account(self) -> Account:
        """The signed-in account (with its private keys)."""
        if self.client.account is None:
            raise RuntimeError("sign in first")
        return self.client.account

    # -- conversations ----------------------------------------------------------------

    def conversations(self) -> list[dict[str, Any]]:
        """My conversations with unread counts."""
        data: list[dict[str, Any]] = self.client.get("/conversations")["conversations"]
        return data

    def create_conversation(self, case_id: str, member_ids: list[str]) -> Conversation:
        """Open a conversation in a case with these other members."""
        data = self.client.post(f"/cases/{case_id}/conversations", {"members": member_ids})
        return self.conversation(data["conversation"]["id"])

    def conversation(self, conversation_id: str) -> Conversation:
        """Fetch a conversation; check every member's key record against their username."""
        data = self.client.get(f"/conversations/{conversation_id}")["conversation"]
        if data["id"] != conversation_id:
            raise ProtocolError("the server answered with another conversation")
        members: dict[str, Member] = {}
        for m in data["members"]:
            record = m["public_keys"]
            if record["version"] != m["key_version"] or record["user_id"] != m["user_id"]:
                raise ProtocolError("a member's key record does not match the member")
            keys = self._checked_keys(m["user_id"], m["username"], record)
            members[m["user_id"]] = Member(m["user_id"], m["role"], m["username"], keys)
        me = self.account
        mine = members.get(me.id)
        if mine is None or mine.public_keys != me.public_keys:
            raise ProtocolError("the server lists me with keys that are not mine")
        conversation = Conversation(data["id"], data["case_id"], int(data["ttl"]), members, data)
        self._conversations[conversation_id] = conversation
        return conversation

    def set_timer(self, conversation_id: str, seconds: int) -> Conversation:
        """Set the disappearing-message timer for messages sent from now on."""
        self.client.request(
            "PUT", f"/conversations/{conversation_id}/timer", json={"seconds": seconds}
        )
        return self.conversation(conversation_id)

    def mark_read(self, conversation_id: str, seq: int) -> int:
        """Move my read marker forward to message number ``seq``."""
        data = self.client.post(f"/conversations/{conversation_id}/read", {"seq": seq})
        return int(data["last_read_seq"])

    # -- sending ----------------------------------------------------------------------

    def compose(
        self,
        conversation: Conversation,
        text: str,
        *,
        message_id: bytes | None = None,
        attachments: Sequence[str] = (),
    ) -> pmsg.Envelope:
        """Encrypt and sign ``text`` for the conversation's current members."""
        me = self.account
        recipients = tuple(
            sorted(
                (
                    pmsg.Recipient(m.user_id, m.public_keys.version)
                    for m in conversation.members.values()
                ),
                key=lambda r: r.user_id.encode("utf-8"),
            )
        )
        header = pmsg.Header(
            conversation_id=conversation.id,
            message_id=message_id or pmsg.new_message_id(),
            sender_id=me.id,
            sender_key_version=me.keys.version,
            sent_at=time.time_ns() // 1_000_000,
            ttl=conversation.ttl,
            recipients=recipients,
            attachments=tuple(sorted(set(attachments), key=lambda d: d.encode("utf-8"))),
        )
        x25519 = {m.user_id: m.public_keys.x25519 for m in conversation.members.values()}
        return pmsg.compose(header, text, me.keys, x25519)

    def attachment_keys(
        self, conversation: Conversation, documents: Sequence[OpenedDocument]
    ) -> list[dict[str, Any]]:
        """File keys of my documents sealed to the members who cannot read them yet."""
        me = self.account
        keys: list[dict[str, Any]] = []
        for doc in documents:
            if doc.owner_id != me.id:
                continue  # a reader may attach only what every member can read already
            readers = {g["user_id"] for g in doc.data.get("grants") or ()}
            for member in conversation.members.values():
                if member.user_id == me.id or member.user_id in readers:
                    continue
                public = member.public_keys
                sealed = pdoc.seal_file_key(doc.file_key, doc.raw_id, public.x25519, public.version)
                keys.append(
                    {
                        "document_id": doc.id,
                        "user_id": member.user_id,
                        "sealed_key": b64encode(sealed),
                    }
                )
        return keys

    def send(
        self, conversation_id: str, text: str, attachments: Sequence[OpenedDocument] = ()
    ) -> dict[str, Any]:
        """Send ``text`` (and documents, granting members who cannot read them yet); on a
        stale-key or timer conflict, fetch the conversation again and retry once."""
        conversation = self._conversations.get(conversation_id) or self.conversation(
            conversation_id
        )
        for attempt in (1, 2):
            for m in conversation.raw["members"]:  # pinned, and any key change accepted
                self.client.trust_contact(m["user_id"], m["username"], m["public_keys"])
            envelope = self.compose(conversation, text, attachments=[d.id for d in attachments])
            try:
                return self.send_envelope(envelope, self.attachment_keys(conversation, attachments))
            except ApiError as exc:
                if attempt == 2 or exc.code not in REFETCH_CODES:
                    raise
            conversation = self.conversation(conversation_id)
        raise AssertionError("unreachable")

    def send_envelope(
        self, envelope: pmsg.Envelope, attachment_keys: Sequence[dict[str, Any]] = ()
    ) -> dict[str, Any]:
        """Post a composed envelope; on a dropped connection or a 502/503/504 post the same
        bytes again (the server stores a message once and answers a retry with it)."""
        cid = envelope.header.conversation_id
        body = envelope_json(envelope)
        if attachment_keys:
            body["attachment_keys"] = list(attachment_keys)
        attempt = 0
        while True:
            try:
                # The envelope carries its message id: a byte-identical repeat is stored once.
                data: dict[str, Any] = self.client.post(
                    f"/conversations/{cid}/messages", body, idempotent=True
                )["message"]
                return data
            except (requests.ConnectionError, requests.Timeout, ApiError) as exc:
                attempt = wait_to_retry(exc, attempt, self.retries, self.backoff)

    def delete(self, conversation_id: str, message_id: str) -> None:
        """Delete one of my messages for everyone."""
        self.client.request("DELETE", f"/conversations/{conversation_id}/messages/{message_id}")

    # -- reading ----------------------------------------------------------------------

    def page(
        self,
        conversation_id: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of raw envelopes, newest first, and the next page's ``before``."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        if after is not None:
            params["after"] = after
        data = self.client.get(f"/conversations/{conversation_id}/messages", **params)
        return data["messages"], data["next_before"]

    def read(
        self, conversation_id: str, *, before: int | None = None, limit: int = 50
    ) -> list[Plaintext]:
        """Verified, decrypted messages newest first (tombstones are left out)."""
        messages, _ = self.page(conversation_id, before=before, limit=limit)
        return [self.open(conversation_id, m) for m in messages if not m.get("deleted")]

    def sender_keys(self, conversation: Conversation, user_id: str, version: int) -> PublicKeys:
        """A member's published keys of one version, self-signature checked."""
        cached = self._keys.get((user_id, version))
        if cached is not None:
            return cached
        member = conversation.members.get(user_id)
        if member is None:
            raise ProtocolError("the sender is not a member of this conversation")
        data = self.client.get(f"/users/{user_id}/keys")
        for record in data["keys"]:
            if record["version"] == version and record["user_id"] == user_id:
                return self._checked_keys(user_id, member.username, record)
        raise ProtocolError("the sender's key of that version is not published")

    def _checked_keys(self, user_id: str, username: str, record: dict[str, Any]) -> PublicKeys:
        """A key record checked once: self-signature and inclusion in the key log."""
        keys = parse_public_keys(record)
        if self._keys.get((user_id, keys.version)) != keys:
            self.client.verify_contact(user_id, username, record)
            self._keys[(user_id, keys.version)] = keys
        return keys

    def verify(self, conversation_id: str, data: dict[str, Any]) -> pmsg.Envelope:
        """Check header binding and signature; return the envelope or raise ProtocolError."""
        envelope = parse_envelope(data)
        header = envelope.header
        if header.conversation_id != conversation_id:
            raise ProtocolError("the envelope belongs to another conversation")
        if data.get("id") != b64encode(header.message_id):
            raise ProtocolError("the envelope's id does not match its header")
        conversation = self._conversations.get(conversation_id) or self.conversation(
            conversation_id
        )
        if header.sender_id not in conversation.members:
            conversation = self.conversation(conversation_id)
        envelope.verify(self.sender_keys(conversation, header.sender_id, header.sender_key_version))
        return envelope

    def open(self, conversation_id: str, data: dict[str, Any]) -> Plaintext:
        """Verify, then decrypt one listed message."""
        envelope = self.verify(conversation_id, data)
        me = self.account
        header = envelope.header
        conversation = self._conversations[conversation_id]
        sender = self.sender_keys(conversation, header.sender_id, header.sender_key_version)
        reseal = data.get("reseal")
        resealed = (
            None
            if reseal is None
            else (int(reseal["key_version"]), b64decode(reseal["sealed_key"]))
        )
        text = pmsg.open_envelope(envelope, me.id, me.keys, sender, resealed)
        return Plaintext(
            id=data["id"],
            conversation_id=conversation_id,
            seq=int(data["seq"]),
            sender_id=header.sender_id,
            sender_username=conversation.members[header.sender_id].username,
            sent_at=header.sent_at,
            ttl=header.ttl,
            text=text,
            attachments=header.attachments,
        )

    # -- events -----------------------------------------------------------------------

    def connect_events(
        self, last_event_id: str | None = None, *, read_timeout: float = 60.0
    ) -> requests.Response:
        """Open the server-sent event stream; the caller reads and closes the response."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        return self.client.request(
            "GET", "/events", headers=headers, stream=True, timeout=(10, read_timeout)
        )

    def events(
        self, last_event_id: str | None = None, *, read_timeout: float = 60.0
    ) -> Iterator[Event]:
        """Follow the event stream (ids only) from ``last_event_id`` until it ends."""
        with self.connect_events(last_event_id, read_timeout=read_timeout) as response:
            yield from parse_events(response.iter_lines(decode_unicode=True))


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Turn text/event-stream lines into events (comments such as heartbeats are skipped)."""
    kind, event_id, data = "message", None, ""
    for line in lines:
        if line == "":
            if data or event_id is not None:
                yield Event(kind, event_id, json.loads(data) if data else {})
            kind, event_id, data = "message", None, ""
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data = f"{data}\n{value}" if data else value
