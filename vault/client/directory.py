"""Client side of key transparency: pin heads, check consistency and inclusion, self-monitor.

A client refuses to use a key unless the log includes it under a head that is consistent
with every head it saw before, signed by a log key it can chain back to the one it pinned,
and (§15) carried by a checkpoint that a quorum of its configured witnesses cosigned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vault.protocol import checkpoint as cp
from vault.protocol import merkle
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64decode
from vault.protocol.keys import PublicKeys

if TYPE_CHECKING:
    from vault.client.api import HavenClient


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses a client trusts and how many must cosign a head (§15).

    There is no default: a client is built either with witness keys and a quorum of at
    least one, or with ``WitnessPolicy.unwitnessed()``, a visible choice to trust the
    server's own log signature alone (a deployment with no witness yet, or a test).
    """

    keys: tuple[cp.VerifierKey, ...]
    quorum: int
    origin: str | None = None

    def __post_init__(self) -> None:
        """Refuse a quorum the keys cannot meet, and cosigner keys of another kind."""
        if any(k.alg != cp.ALG_COSIGNATURE_V1 for k in self.keys):
            raise ValueError("witness keys must be cosignature/v1 (0x04) verifier keys")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("a witness key is listed twice")
        if self.keys and not 1 <= self.quorum <= len(self.keys):
            raise ValueError("the quorum must be between 1 and the number of witness keys")
        if not self.keys and self.quorum != 0:
            raise ValueError("a quorum needs witness keys")

    @classmethod
    def of(cls, vkeys: list[str], quorum: int, origin: str | None = None) -> WitnessPolicy:
        """Parse verifier key strings (``name+hash+base64``)."""
        if not vkeys:
            raise ValueError("no witness keys given; use WitnessPolicy.unwitnessed() on purpose")
        return cls(tuple(cp.parse_verifier_key(v) for v in vkeys), quorum, origin)

    @classmethod
    def unwitnessed(cls) -> WitnessPolicy:
        """Trust heads signed by the log alone: no protection against a split view."""
        return cls((), 0)

    @property
    def is_witnessed(self) -> bool:
        """Whether heads need cosignatures."""
        return self.quorum > 0


@dataclass
class KeyDirectory:
    """What one client has pinned: log keys it trusts and the newest head it verified."""

    client: HavenClient
    witnesses: WitnessPolicy
    log_keys: dict[int, bytes] = field(default_factory=dict)
    head: kt.TreeHead | None = None
    pins: dict[tuple[str, int], tuple[bytes, bytes]] = field(default_factory=dict)
    included: set[tuple[bytes, int, int]] = field(default_factory=set)
    origin: str | None = None

    def _trust_log_keys(self) -> None:
        """Follow announcements from the pinned log key to the newest (first use pins v1)."""
        chain = self.client.get("/directory/log-keys")["log_keys"]
        previous: dict[str, Any] | None = None
        for item in chain:
            version, public = item["version"], b64decode(item["public_key"])
            if previous is not None:
                if item["announcement"] is None:
                    raise kt.TransparencyError(f"log key {version} was not announced")
                kt.verify_announcement(
                    b64decode(previous["public_key"]),
                    previous["version"],
                    version,
                    public,
                    b64decode(item["announcement"]),
                )
            if version in self.log_keys and self.log_keys[version] != public:
                raise kt.TransparencyError(f"log key {version} changed since it was pinned")
            if not self.log_keys and previous is None:
                self.log_keys[version] = public  # trust on first use of the first key
            elif previous is not None and previous["version"] in self.log_keys:
                self.log_keys[version] = public
            previous = item

    def _witnessed_size(self) -> tuple[int, bytes]:
        """The size and root of the newest checkpoint a quorum of my witnesses cosigned."""
        answer = self.client.get("/directory/checkpoint")
        note = answer["checkpoint"]
        if not isinstance(note, str):
            raise kt.TransparencyError("the checkpoint is not a signed note")
        try:
            claimed = cp.parse_body(cp.parse_note(note).text)
            origin = self.witnesses.origin or self.origin or claimed.origin
            if claimed.origin != origin:
                raise kt.TransparencyError(f"the log's origin changed from {origin!r}")
            if not self.log_keys:
                self._trust_log_keys()
            logs = [cp.log_verifier(origin, k) for k in self.log_keys.values()]
            try:
                checked = cp.verify_cosigned(note, logs, self.witnesses.keys, self.witnesses.quorum)
            except cp.CheckpointError as exc:
                if exc.reason != "log":
                    raise
                self._trust_log_keys()  # a newer log key may have been announced
                logs = [cp.log_verifier(origin, k) for k in self.log_keys.values()]
                checked = cp.verify_cosigned(note, logs, self.witnesses.keys, self.witnesses.quorum)
        except cp.CheckpointError as exc:
            raise kt.TransparencyError(f"witnessed checkpoint refused: {exc}") from exc
        if checked.size != answer["size"]:
            raise kt.TransparencyError("the checkpoint's size differs from the one announced")
        self.origin = origin
        return checked.size, checked.root

    def refresh(self) -> kt.TreeHead:
        """Fetch the newest head; verify its signature and its consistency with the pinned one.

        With witnesses configured the head is the newest cosigned checkpoint's, not the
        newest head: a head no quorum of witnesses has seen is never used.
        """
        if self.witnesses.is_witnessed:
            size, root = self._witnessed_size()
            data = self.client.get(f"/directory/heads/{size}")["head"]
            if data["size"] != size or b64decode(data["root"]) != root:
                raise kt.TransparencyError("the signed head differs from the cosigned checkpoint")
        else:
            data = self.client.get("/directory/head")["head"]
        head = kt.TreeHead(
            data["size"],
            b64decode(data["root"]),
            data["timestamp_ms"],
            data["key_version"],
            b64decode(data["signature"]),
        )
        if head.key_version not in self.log_keys:
            self._trust_log_keys()
        if head.key_version not in self.log_keys:
            raise kt.TransparencyError("tree head signed by a log key that does not chain to mine")
        head.verify(self.log_keys[head.key_version])
        old = self.head
        if old is not None:
            if head.size < old.size:
                raise kt.TransparencyError("the log shrank: the server rolled it back")
            proof = self.client.get(
                "/directory/proofs/consistency", **{"from": old.size, "to": head.size}
            )["proof"]
            merkle.verify_consistency(
                old.size, head.size, [b64decode(p) for p in proof], old.root, head.root
            )
        self.head = head
        return head

    def verify_key(self, user_id: str, record: dict[str, Any]) -> None:
        """Check that a published key record is in the log, exactly as given."""
        if record.get("log_index") is None or record.get("logged_at_ms") is None:
            raise kt.TransparencyError(f"key {record.get('version')} of {user_id} is not logged")
        head = self.head if self.head and self.head.size > record["log_index"] else self.refresh()
        if record["log_index"] >= head.size:
            raise kt.TransparencyError(
                f"key {record.get('version')} of {user_id} is not yet in a checkpoint the "
                "witnesses cosigned; try again later"
            )
        entry = record_entry(user_id, record)
        if (entry.leaf(), record["log_index"], head.size) in self.included:
            return
        answer = self.client.get(
            "/directory/proofs/inclusion", index=record["log_index"], size=head.size
        )
        proof = [b64decode(p) for p in answer["proof"]]
        try:
            merkle.verify_inclusion(entry.leaf(), record["log_index"], head.size, proof, head.root)
        except merkle.ProofError as exc:
            raise kt.TransparencyError(f"key of {user_id} is not in the log") from exc
        self.included.add((entry.leaf(), record["log_index"], head.size))

    def check_contact(self, user_id: str, record: dict[str, Any]) -> None:
        """Refuse a contact whose log history breaks the one-publish rule (§12.4).

        Every entry naming the contact is decoded from its own bytes; the record must be
        the one ``publish`` of its version, and no version may differ from what I pinned.
        """
        # A server reading the account's version and the log in separate statements, with
        # a rotation committing between them, gives one answer whose two halves disagree;
        # the same check on a second answer tells that from a server that keeps them apart.
        # Each answer's versions are pinned: a second answer cannot replace what the first
        # showed.
        for attempt in range(2):
            answer = self.client.get(f"/users/{user_id}/keys")
            entries = [(int(e["index"]), b64decode(e["data"])) for e in answer["entries"]]
            published = kt.check_history(user_id, entries)
            for entry in published.values():
                self.pin(entry)
            if len(published) == int(answer["current_version"]):
                break
            if attempt == 1:
                raise kt.EquivocationError(
                    f"the server's current version of {user_id} is not the log's newest"
                )
        held = published.get(int(record["version"]))
        if held is None or held.encode() != record_entry(user_id, record).encode():
            raise kt.EquivocationError(
                f"the log holds other keys for version {record['version']} of {user_id}"
            )

    def pin(self, entry: kt.KeyEntry) -> None:
        """Pin a contact's key version on first use; refuse other bytes for it later."""
        keys = (entry.x25519, entry.ed25519)
        pinned = self.pins.setdefault((entry.user_id, entry.version), keys)
        if pinned != keys:
            raise kt.EquivocationError(
                f"version {entry.version} of {entry.user_id} is not the key I pinned for it"
            )

    def monitor_self(self, user_id: str, mine: PublicKeys) -> None:
        """Refuse if the log holds a key in my name that I did not make (§12.4).

        Exactly one ``publish`` entry per version 1 … current, read from each entry's own
        bytes, and the current one holds my keys: a newer version, a gap or a second entry
        for a version is refused.
        """
        entries = [
            (int(e["index"]), b64decode(e["data"]))
            for e in self.client.get("/directory/mine")["entries"]
        ]
        current = kt.KeyEntry(
            "publish", user_id, mine.version, mine.x25519, mine.ed25519, mine.signature, 0
        )
        try:
            kt.check_history(user_id, entries, current)
        except kt.TransparencyError as exc:
            raise kt.TransparencyError(
                f"the log holds a key in my name that I never made: {exc}"
            ) from exc


def record_entry(user_id: str, record: dict[str, Any]) -> kt.KeyEntry:
    """The ``publish`` entry a published key record stands for, rebuilt byte for byte."""
    return kt.KeyEntry(
        "publish",
        user_id,
        int(record["version"]),
        b64decode(record["x25519"]),
        b64decode(record["ed25519"]),
        b64decode(record["signature"]),
        int(record["logged_at_ms"]),
    )
