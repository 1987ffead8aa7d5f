"""Split recovery from the Python client (protocol §22): split the recovery key, keep and
release a share, start, follow, finish and cancel a recovery through shares."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from vault.protocol import keys as pkeys
from vault.protocol import shares as pshares
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.kdf import check_passphrase_strength, derive_master_key

if TYPE_CHECKING:
    from vault.client.api import Account, HavenClient


class ShareRefused(pkeys.ProtocolError):
    """A share, a setup or a request did not check out; nothing was sent."""


def _account(client: HavenClient) -> Account:
    assert client.account is not None, "sign in first"
    return client.account


def _counsel_record(client: HavenClient, counsel_id: str) -> dict[str, Any]:
    for case in client.cases():  # every member's keys verified and pinned (§12.5, §16)
        for member in case["members"]:
            if member["user_id"] == counsel_id and member["role"] == "counsel":
                client.trust_contact(member["user_id"], member["username"], member["public_keys"])
                record: dict[str, Any] = member["public_keys"]
                return record
    raise ShareRefused("that account is not counsel on any of my cases")


def setup_body(
    me: Account, recovery: bytes, holder_id: str, holder_record: dict[str, Any]
) -> tuple[dict[str, Any], pshares.SharePayload]:
    """A signed split of ``recovery``: share 2 sealed to the holder's key record, share 3
    printed. Returns the body of §22.4 and the printed payload."""
    parts = pshares.split_secret(recovery)
    setup_id = os.urandom(pshares.SETUP_ID_BYTES)
    held, printed = (pshares.SharePayload(setup_id, n, parts[n - 1]) for n in pshares.HELD_SLOTS)
    commitments = [
        pshares.commitment(me.username, p.setup_id, p.slot, p.share) for p in (held, printed)
    ]
    message = pshares.setup_message(me.username, setup_id, me.keys.version, commitments)
    body = {
        "setup_id": b64encode(setup_id),
        "key_version": me.keys.version,
        "signature": b64encode(me.keys.signing_key.sign(message).signature),
        "holders": [
            {
                "slot": 2,
                "kind": "account",
                "commitment": b64encode(commitments[0]),
                "user_id": holder_id,
                "key_version": holder_record["version"],
                "sealed_share": b64encode(held.seal(b64decode(holder_record["x25519"]))),
            },
            {"slot": 3, "kind": "printed", "commitment": b64encode(commitments[1])},
        ],
    }
    return body, printed


def split_recovery_key(client: HavenClient, recovery_key: str, counsel_id: str) -> str:
    """Split my recovery key: share 2 sealed to my counsel's current key, share 3 printed.

    Returns the printed share for the trusted person; it is shown once and never stored.
    """
    record = _counsel_record(client, counsel_id)
    recovery = pkeys.parse_recovery_key(recovery_key)
    body, printed = setup_body(_account(client), recovery, counsel_id, record)
    client.post("/account/recovery-shares", body)
    return pshares.format_printed(printed)


def _request_secrets(client: HavenClient, username: str, passphrase: str) -> tuple[bytes, Any]:
    """The request's auth subkey and X25519 key from the new passphrase (account's KDF)."""
    master = derive_master_key(passphrase, client.prelogin(username))
    return pshares.request_auth_key(master), pshares.request_key(master)


def start_recovery(client: HavenClient, username: str, new_passphrase: str) -> dict[str, Any]:
    """Start a recovery through shares with the passphrase I will have afterwards."""
    check_passphrase_strength(new_passphrase)
    name = pkeys.normalize_username(username)
    auth_key, key = _request_secrets(client, name, new_passphrase)
    body = {
        "username": name,
        "auth_key": b64encode(auth_key),
        "request_key": b64encode(bytes(key.public_key)),
    }
    request: dict[str, Any] = client.post("/auth/share-recovery/start", body)["request"]
    return request


def enter_printed_share(
    client: HavenClient, username: str, new_passphrase: str, printed: str
) -> dict[str, Any]:
    """Enter the trusted person's printed share for my waiting recovery."""
    name = pkeys.normalize_username(username)
    payload = pshares.parse_printed(printed)
    auth_key, key = _request_secrets(client, name, new_passphrase)
    share = {
        "setup_id": b64encode(payload.setup_id),
        "slot": payload.slot,
        "commitment": b64encode(
            pshares.commitment(name, payload.setup_id, payload.slot, payload.share)
        ),
        "sealed_share": b64encode(payload.seal(bytes(key.public_key))),
    }
    body = {"username": name, "auth_key": b64encode(auth_key), "share": share}
    request: dict[str, Any] = client.post("/auth/share-recovery/share", body)["request"]
    return request


def recovery_status(client: HavenClient, username: str, new_passphrase: str) -> dict[str, Any]:
    """My waiting recovery's state (and the sealed shares once it is ready)."""
    name = pkeys.normalize_username(username)
    auth_key, _ = _request_secrets(client, name, new_passphrase)
    status: dict[str, Any] = client.post(
        "/auth/share-recovery/status", {"username": name, "auth_key": b64encode(auth_key)}
    )
    return status


def finish_recovery(client: HavenClient, username: str, new_passphrase: str) -> Account:
    """Open both released shares, rebuild my recovery key and set the new passphrase."""
    name = pkeys.normalize_username(username)
    auth_key, key = _request_secrets(client, name, new_passphrase)
    status = client.post(
        "/auth/share-recovery/status", {"username": name, "auth_key": b64encode(auth_key)}
    )
    if status["setup"] is None or len(status["shares"]) != 2:
        raise ShareRefused("the recovery is not ready yet")
    setup = status["setup"]
    expected = {h["slot"]: b64decode(h["commitment"]) for h in setup["holders"]}
    parts = []
    for item in status["shares"]:
        payload = pshares.open_payload(b64decode(item["sealed_share"]), bytes(key))
        mine = pshares.commitment(name, payload.setup_id, payload.slot, payload.share)
        if payload.slot != item["slot"] or mine != expected.get(payload.slot):
            raise ShareRefused("a released share does not match my setup")
        parts.append(payload.share)
    recovery = pkeys.format_recovery_key(pshares.combine_shares(parts))
    account = client.recover(name, recovery, new_passphrase)
    # Only now are my keys known: the setup the shares matched must carry my signature.
    pshares.verify_setup(
        account.public_keys.ed25519,
        name,
        b64decode(setup["setup_id"]),
        setup["key_version"],
        [expected[slot] for slot in pshares.HELD_SLOTS],
        b64decode(setup["signature"]),
    )
    return account


def cancel_recovery(client: HavenClient) -> dict[str, Any]:
    """Cancel a recovery through shares someone started in my name."""
    request: dict[str, Any] = client.post("/account/recovery-shares/cancel")["request"]
    return request


def held_shares(client: HavenClient) -> list[dict[str, Any]]:
    """Shares I keep for survivors, each owner's key and setup verified."""
    held: list[dict[str, Any]] = client.get("/recovery-shares/held")["held"]
    for item in held:
        record = item["owner_key"]
        client.verify_contact(item["owner_id"], item["owner_username"], record)
        setup = item["setup"]
        pshares.verify_setup(
            b64decode(record["ed25519"]),
            item["owner_username"],
            b64decode(setup["setup_id"]),
            setup["key_version"],
            [b64decode(h["commitment"]) for h in setup["holders"]],
            b64decode(setup["signature"]),
        )
    return held


def _open_held(item: dict[str, Any], keys: pkeys.KeyPairs) -> pshares.SharePayload:
    payload = pshares.open_payload(b64decode(item["sealed_share"]), keys.x25519_secret)
    setup = item["setup"]
    expected = {h["slot"]: b64decode(h["commitment"]) for h in setup["holders"]}
    name = item["owner_username"]
    if payload.setup_id != b64decode(setup["setup_id"]) or payload.slot != item["slot"]:
        raise ShareRefused("the held share names another setup")
    if pshares.commitment(name, payload.setup_id, payload.slot, payload.share) != expected.get(
        payload.slot
    ):
        raise ShareRefused("the held share does not match its commitment")
    return payload


def release_share(client: HavenClient, owner_username: str) -> dict[str, Any]:
    """Release the share I keep for OWNER to her waiting recovery request."""
    me = _account(client)
    name = pkeys.normalize_username(owner_username)
    for item in held_shares(client):
        request = item["request"]
        if item["owner_username"] != name or request is None or request["state"] != "waiting":
            continue
        if item["key_version"] != me.keys.version:
            raise ShareRefused("the share is sealed to a key version I no longer hold")
        payload = _open_held(item, me.keys)
        commitment = b64decode(
            next(h["commitment"] for h in item["setup"]["holders"] if h["slot"] == payload.slot)
        )
        body = {
            "setup_id": b64encode(payload.setup_id),
            "slot": payload.slot,
            "commitment": b64encode(commitment),
            "sealed_share": b64encode(payload.seal(b64decode(request["request_key"]))),
        }
        released: dict[str, Any] = client.post(
            f"/recovery-shares/requests/{request['id']}/release", body
        )["request"]
        return released
    raise ShareRefused(f"no waiting recovery of {name} for a share I keep")


def reseal_held(client: HavenClient, old: pkeys.KeyPairs, new: pkeys.KeyPairs) -> int:
    """After replacing my keys (§14): seal every share I keep to the new key; how many."""
    count = 0
    for item in client.get("/recovery-shares/held")["held"]:
        if item["key_version"] != old.version or item["sealed_share"] is None:
            continue
        payload = _open_held(item, old)
        body = {
            "setup_id": b64encode(payload.setup_id),
            "key_version": new.version,
            "sealed_share": b64encode(payload.seal(bytes(new.box_key.public_key))),
        }
        client.post("/recovery-shares/held/reseal", body)
        count += 1
    return count
