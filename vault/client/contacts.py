"""The Python client's contact book (docs/protocol.md §16): pinned contact keys kept
encrypted on the server, so every session of the account remembers them.

Pin on first use; a newer key version than the one the user accepted is a key change
that must be acknowledged before anything is sealed to it; a version seen before with
other bytes is equivocation and is refused outright.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vault.protocol import contacts as pcb
from vault.protocol import keys as pkeys
from vault.protocol.contacts import ContactBookError, EquivocationError, PinStatus
from vault.protocol.encoding import b64decode, b64encode

if TYPE_CHECKING:
    from vault.client.api import HavenClient

__all__ = ["ContactBook", "ContactBookError", "EquivocationError", "KeyChanged", "RollbackError"]


class RollbackError(ContactBookError):
    """The server answered an older book than one this client saw in this session."""


class KeyChanged(ContactBookError):
    """A contact's keys changed and the user has not accepted the new ones yet."""

    def __init__(self, user_id: str, username: str) -> None:
        super().__init__(f"{username}'s keys changed; accept the new keys before sending")
        self.user_id = user_id
        self.username = username


class ContactBook:
    """This account's contact book: load, change, save with compare-and-swap."""

    def __init__(self, client: HavenClient, *, autosave: bool = True, attempts: int = 5) -> None:
        self.client = client
        self.autosave = autosave
        self.attempts = attempts
        self.book: dict[str, Any] = pcb.empty_book()
        self.counter = 0  # the stored counter this book is based on
        self.highest_counter = 0  # the highest authenticated counter seen this session
        self.loaded = False
        # The stored book is under a key version this client does not hold (a rotation
        # that did not carry it): its pins are lost and the next save starts afresh.
        self.lost = False

    # -- storage ---------------------------------------------------------------------

    def _account(self) -> tuple[str, pkeys.KeyPairs]:
        account = self.client.account
        if account is None:
            raise ContactBookError("sign in first")
        return account.id, account.keys

    def _open(self, data: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """Decrypt a GET answer; return (counter, book, lost)."""
        user_id, keys = self._account()
        counter, blob = data["counter"], data["book"]
        if type(counter) is not int or counter < 0:
            raise ContactBookError("the server's contact book counter is not a count")
        if blob is None:
            if counter != 0:
                raise ContactBookError("the server lists a counter but no contact book")
            return 0, pcb.empty_book(), False
        raw = b64decode(blob)
        version, _ = pcb.parse_header(raw)
        if version < keys.version:
            return counter, pcb.empty_book(), True
        named, book = pcb.decrypt_book(raw, user_id, keys.version, pcb.book_key(keys.x25519_secret))
        if named != counter:
            raise ContactBookError("the contact book's counter is not the one the server lists")
        return counter, book, False

    def load(self) -> None:
        """Fetch and open the stored book; refuse one older than any seen this session."""
        counter, book, lost = self._open(self.client.get("/account/contact-book"))
        if counter < self.highest_counter:
            raise RollbackError(
                f"the server answered contact book {counter}, older than {self.highest_counter}"
            )
        self.book, self.counter, self.lost, self.loaded = book, counter, lost, True
        self.highest_counter = counter

    def _ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()

    def blob(self, keys: pkeys.KeyPairs, counter: int) -> bytes:
        """This book encrypted under ``keys`` with ``counter``."""
        user_id, _ = self._account()
        return pcb.encrypt_book(
            self.book, user_id, keys.version, counter, pcb.book_key(keys.x25519_secret)
        )

    def save(self) -> None:
        """Store the book as counter + 1; on a conflict load, merge and try again."""
        from vault.client.api import ApiError  # here: api.py will import this module

        self._ensure_loaded()
        _, keys = self._account()
        for attempt in range(self.attempts):
            counter = self.counter + 1
            body = {"counter": counter, "book": b64encode(self.blob(keys, counter))}
            try:
                self.client.request("PUT", "/account/contact-book", json=body)
            except ApiError as exc:
                if exc.code != "contact_book_conflict" or attempt == self.attempts - 1:
                    raise
                mine = self.book
                self.load()
                self.book = pcb.merge(mine, self.book)
                continue
            self.counter = self.highest_counter = counter
            self.lost = False
            return

    def rotation_body(self, new_keys: pkeys.KeyPairs) -> dict[str, Any] | None:
        """``contact_book`` for POST /account/keys (§14): the book under the new version."""
        self.load()
        counter = self.counter + 1
        return {"counter": counter, "book": b64encode(self.blob(new_keys, counter))}

    def _changed(self) -> None:
        if self.autosave:
            self.save()

    # -- contacts --------------------------------------------------------------------

    def pin(self, user_id: str, username: str, record: dict[str, Any]) -> PinStatus:
        """Pin a contact's current key record (JSON, self-signature checked here; the
        caller checks it is in the key log). Raises EquivocationError on other bytes for a
        pinned version or an older version shown as current."""
        self._ensure_loaded()
        public = pkeys.PublicKeys(
            int(record["version"]),
            b64decode(record["x25519"]),
            b64decode(record["ed25519"]),
            b64decode(record["signature"]),
        )
        public.verify(username)
        before = pcb.canonical_json(self.book)
        status = pcb.pin(
            self.book, user_id, username, public.version, public.x25519, public.ed25519
        )
        if pcb.canonical_json(self.book) != before:
            self._changed()
        return status

    def require_acknowledged(self, user_id: str) -> None:
        """Raise KeyChanged unless the contact's newest keys were accepted (before a send)."""
        self._ensure_loaded()
        if pcb.needs_acknowledgement(self.book, user_id):
            contact = self.book["contacts"][user_id]
            raise KeyChanged(user_id, contact["username"])

    def needs_acknowledgement(self, user_id: str) -> bool:
        """Whether the contact's keys changed since the user last accepted them."""
        self._ensure_loaded()
        return pcb.needs_acknowledgement(self.book, user_id)

    def acknowledge(self, user_id: str) -> None:
        """The user accepts the contact's newest keys."""
        self._ensure_loaded()
        pcb.acknowledge(self.book, user_id)
        self._changed()

    def mark_verified(self, user_id: str, version: int) -> None:
        """The user compared the safety number for the contact's keys at ``version``."""
        self._ensure_loaded()
        pcb.mark_verified(self.book, user_id, version)
        self._changed()

    def is_verified(self, user_id: str) -> bool:
        """Whether the safety number was compared for the contact's newest keys."""
        self._ensure_loaded()
        return pcb.is_verified(self.book, user_id)

    # -- key-log head ----------------------------------------------------------------

    @property
    def head(self) -> tuple[int, bytes] | None:
        """The newest key-log head this account verified, as (size, root)."""
        self._ensure_loaded()
        head = self.book["head"]
        return None if head is None else (int(head["size"]), b64decode(head["root"]))

    def set_head(self, size: int, root: bytes) -> None:
        """Pin a newer verified head; refuse a smaller one or another root at one size."""
        self._ensure_loaded()
        if self.head == (size, root):
            return
        pcb.set_head(self.book, size, root)
        self._changed()
