"""HavenClient: talks to a Haven server over HTTP and does all crypto locally.

The server receives only the authentication subkey, public keys and ciphertext.
"""

from __future__ import annotations

import http.client
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from vault.client.contacts import ContactBook
from vault.client.directory import KeyDirectory, WitnessPolicy
from vault.client.shares import reseal_held
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.kdf import (
    KdfParams,
    check_passphrase_strength,
    passphrase_keys,
    recovery_keys,
)


class ApiError(Exception):
    """The server answered with an error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Account:
    """The signed-in account as this client knows it, private keys included."""

    id: str
    role: str
    username: str
    keys: pkeys.KeyPairs
    public_keys: pkeys.PublicKeys


def _streamed(kwargs: dict[str, Any]) -> bool:
    """A body read from a stream cannot be sent twice from here (its caller re-sends it)."""
    data = kwargs.get("data")
    return data is not None and not isinstance(data, bytes | str | dict)


def invite_token(link_or_token: str) -> bytes:
    """Accept an invite link (token in the fragment) or a bare token."""
    token = link_or_token.rsplit("invite=", 1)[-1]
    return b64decode(token)


def factor_body(value: str | None) -> dict[str, str]:
    """A six-digit value is a TOTP code; anything else is sent as a recovery code."""
    if value is None:
        raise ApiError(401, "factor_required", "this account needs its second factor")
    value = value.strip()
    return {"code": value} if re.fullmatch(r"[0-9]{6}", value) else {"recovery_code": value}


def _kdf_json(params: KdfParams) -> dict[str, Any]:
    return {
        "alg": params.alg,
        "salt": b64encode(params.salt),
        "opslimit": params.opslimit,
        "memlimit": params.memlimit,
    }


def _public_json(pub: pkeys.PublicKeys) -> dict[str, Any]:
    return {
        "version": pub.version,
        "x25519": b64encode(pub.x25519),
        "ed25519": b64encode(pub.ed25519),
        "signature": b64encode(pub.signature),
    }


def parse_public_keys(data: dict[str, Any]) -> pkeys.PublicKeys:
    """Decode a public key record from JSON."""
    return pkeys.PublicKeys(
        int(data["version"]),
        b64decode(data["x25519"]),
        b64decode(data["ed25519"]),
        b64decode(data["signature"]),
    )


def reseal_file_key(item: dict[str, Any], old: pkeys.KeyPairs, new: pkeys.KeyPairs) -> bytes:
    """Open a document's sealed file key with the old keys and seal it to the new ones."""
    raw_id = b64decode(item["id"])
    file_key = pdoc.open_file_key(b64decode(item["sealed_key"]), raw_id, old)
    return pdoc.seal_file_key(file_key, raw_id, bytes(new.box_key.public_key), new.version)


def reseal_message_key(item: dict[str, Any], old: pkeys.KeyPairs, new_x25519: bytes) -> bytes:
    """Open a message's sealed key with the old keys and seal it to the new X25519 key."""
    if int(item["key_version"]) != old.version:
        raise pkeys.ProtocolError("a message key is sealed to a version I do not hold")
    return pmsg.seal_key(pmsg.open_key(b64decode(item["sealed_key"]), old), new_x25519)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Answers that mean "a backing service is down for now": a write safe to repeat is repeated.
RETRYABLE_STATUS = frozenset({502, 503, 504})


def wait_to_retry(exc: Exception, attempt: int, retries: int, backoff: float) -> int:
    """Re-raise ``exc`` unless it is a dropped connection or a retryable answer and tries
    remain; otherwise sleep with exponential backoff and return the next attempt number."""
    busy = isinstance(exc, ApiError) and exc.code == "too_many_pending_bodies"  # 429, §10.2
    if isinstance(exc, ApiError) and exc.status not in RETRYABLE_STATUS and not busy:
        raise exc
    attempt += 1
    if attempt > retries:
        raise exc
    time.sleep(backoff * 2 ** (attempt - 1))
    return attempt


# A server may close an idle kept-alive connection just as a request goes out on it; the
# request then fails with one of these before any answer came back.
CLOSED_BEFORE_ANSWER = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)
STALE_CONNECTION_RETRIES = 2


def closed_before_answer(exc: BaseException) -> bool:
    """Whether a failed request ended with the connection closed and no answer at all."""
    if isinstance(exc, requests.Timeout):
        return False
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, CLOSED_BEFORE_ANSWER):
            return True
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


class HavenClient:
    """One device's connection to a Haven server."""

    def __init__(self, base_url: str, *, witnesses: WitnessPolicy, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.timeout = timeout
        self.account: Account | None = None
        self.directory = KeyDirectory(self, witnesses)
        self.contacts = ContactBook(self)

    # -- transport -------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any
    ) -> requests.Response:
        """Send a request (again, if safe or ``idempotent``, on a connection closed unanswered)."""
        kwargs.setdefault("timeout", self.timeout)
        if method.upper() not in SAFE_METHODS and "json" not in kwargs:
            # Every state-changing request names its media type, body or not (protocol §5.1).
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        may_repeat = (method.upper() in SAFE_METHODS or idempotent) and not _streamed(kwargs)
        attempt = 0
        while True:
            try:
                response = self.http.request(method, f"{self.base_url}/api/v1{path}", **kwargs)
                break
            except requests.ConnectionError as exc:
                attempt += 1
                if not may_repeat or attempt > STALE_CONNECTION_RETRIES:
                    raise
                if not closed_before_answer(exc):
                    raise
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ApiError(response.status_code, err["code"], err["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "http_error", response.text[:200]) from None
        return response

    def post(
        self, path: str, body: dict[str, Any] | None = None, *, idempotent: bool = False
    ) -> Any:
        """POST JSON and return the decoded JSON answer (None for 204); ``idempotent``: the
        protocol makes repeating it harmless, so a stale connection is retried."""
        response = self.request(
            "POST", path, json=body if body is not None else {}, idempotent=idempotent
        )
        return None if response.status_code == 204 else response.json()

    def get(self, path: str, **params: Any) -> Any:
        """GET and return the decoded JSON answer."""
        return self.request("GET", path, params=params or None).json()

    # -- accounts --------------------------------------------------------------------

    def _new_passphrase(
        self, passphrase: str, keys: pkeys.KeyPairs, username: str
    ) -> dict[str, Any]:
        check_passphrase_strength(passphrase)
        params = KdfParams(salt=os.urandom(16))
        derived = passphrase_keys(passphrase, params)
        return {
            "kdf": _kdf_json(params),
            "auth_key": b64encode(derived.auth_key),
            "wrapped_keys": b64encode(pkeys.wrap_bundle(keys, username, derived.wrap_key)),
        }

    def register(self, invite: str, username: str, passphrase: str) -> str:
        """Create an account from an invite; return the recovery key to show the user once."""
        name = pkeys.normalize_username(username)
        keys = pkeys.KeyPairs.generate(version=1)
        recovery = pkeys.generate_recovery_key()
        rkeys = recovery_keys(recovery)
        body = {
            "invite": b64encode(invite_token(invite)),
            "username": name,
            "passphrase": self._new_passphrase(passphrase, keys, name),
            "recovery_auth_key": b64encode(rkeys.auth_key),
            "recovery_wrapped_keys": b64encode(pkeys.wrap_bundle(keys, name, rkeys.wrap_key)),
            "public_keys": _public_json(keys.public(name)),
        }
        data = self.post("/auth/register", body)
        self._set_account(data["account"], keys)
        return pkeys.format_recovery_key(recovery)

    def prelogin(self, username: str) -> KdfParams:
        """Fetch and check the KDF parameters; refuse anything below the protocol floor."""
        # Reads only (and counted per attempt by the limiter): safe to repeat.
        data = self.post("/auth/prelogin", {"username": username}, idempotent=True)["kdf"]
        params = KdfParams(b64decode(data["salt"]), data["opslimit"], data["memlimit"], data["alg"])
        params.check()
        return params

    def login(
        self, username: str, passphrase: str, *, factor: str | Callable[[], str] | None = None
    ) -> Account:
        """Sign in from any device knowing username and passphrase; ``factor`` (a TOTP code,
        a recovery code, or a callable asked only when the server wants one) completes the
        sign-in of an account with a second factor (§21.1)."""
        name = pkeys.normalize_username(username)
        derived = passphrase_keys(passphrase, self.prelogin(name))
        # A repeated login starts one more session of the same account: harmless.
        data = self.post(
            "/auth/login",
            {"username": name, "auth_key": b64encode(derived.auth_key)},
            idempotent=True,
        )
        if data.get("factor") is not None:
            data = self.post("/auth/factor", factor_body(factor() if callable(factor) else factor))
        acct = data["account"]
        keys = pkeys.unwrap_bundle(
            b64decode(acct["wrapped_keys"]), name, acct["key_version"], derived.wrap_key
        )
        return self._set_account(acct, keys)

    def install_account(self, acct: dict[str, Any], keys: pkeys.KeyPairs) -> Account:
        """Take an account answer and the keys opened from it (another way in than login)."""
        return self._set_account(acct, keys)

    def _set_account(self, acct: dict[str, Any], keys: pkeys.KeyPairs) -> Account:
        public = parse_public_keys(acct["public_keys"])
        public.verify(acct["username"])
        if public.x25519 != bytes(keys.box_key.public_key) or public.ed25519 != bytes(
            keys.signing_key.verify_key
        ):
            raise pkeys.ProtocolError("the server's copy of my public keys does not match my keys")
        self.directory.verify_key(acct["id"], acct["public_keys"])
        self.directory.monitor_self(acct["id"], public)
        self.account = Account(acct["id"], acct["role"], acct["username"], keys, public)
        return self.account

    def logout(self) -> None:
        """End every session of this account and forget the keys."""
        self.post("/auth/logout")
        self.account = None
        self.http.cookies.clear()

    def recover(
        self,
        username: str,
        recovery_key: str,
        new_passphrase: str,
        *,
        factor: str | Callable[[], str] | None = None,
    ) -> Account:
        """Unlock with the recovery key and set a new passphrase; ``factor`` as for login."""
        name = pkeys.normalize_username(username)
        rkeys = recovery_keys(pkeys.parse_recovery_key(recovery_key))
        proof = {"username": name, "recovery_auth_key": b64encode(rkeys.auth_key)}
        data = self.post("/auth/recovery/start", proof)
        keys = pkeys.unwrap_bundle(
            b64decode(data["recovery_wrapped_keys"]), name, data["key_version"], rkeys.wrap_key
        )
        body = proof | {"passphrase": self._new_passphrase(new_passphrase, keys, name)}
        data = self.post("/auth/recovery/complete", body)
        if data.get("factor") is not None:
            data = self.post("/auth/factor", factor_body(factor() if callable(factor) else factor))
        return self._set_account(data["account"], keys)

    def change_passphrase(
        self, current: str, new: str, *, factor: str | Callable[[], str] | None = None
    ) -> None:
        """Re-wrap the private keys under a new passphrase, then sign in again with it (and
        ``factor``, as for login, where the account has one)."""
        assert self.account is not None, "sign in first"
        name = self.account.username
        derived = passphrase_keys(current, self.prelogin(name))
        body = {
            "current_auth_key": b64encode(derived.auth_key),
            "passphrase": self._new_passphrase(new, self.account.keys, name),
        }
        self.post("/account/passphrase", body)
        self.login(name, new, factor=factor)

    def reauth(self, passphrase: str) -> None:
        """Prove the passphrase again so admin changes are allowed for a while (§25.1)."""
        assert self.account is not None, "sign in first"
        derived = passphrase_keys(passphrase, self.prelogin(self.account.username))
        self.post("/admin/reauth", {"auth_key": b64encode(derived.auth_key)})

    def set_duress(self, passphrase: str, duress_passphrase: str, *, alert_counsel: bool) -> Any:
        """Set a duress passphrase (§18.3): a fresh decoy account that it opens at sign-in.

        The duress subkeys are derived with this account's own salt and parameters, so
        pre-login answers the same for both passphrases.
        """
        assert self.account is not None, "sign in first"
        name = self.account.username
        check_passphrase_strength(duress_passphrase)
        params = self.prelogin(name)
        current = passphrase_keys(passphrase, params)
        duress = passphrase_keys(duress_passphrase, params)
        decoy = pkeys.KeyPairs.generate(version=1)
        body = {
            "current_auth_key": b64encode(current.auth_key),
            "auth_key": b64encode(duress.auth_key),
            "wrapped_keys": b64encode(pkeys.wrap_bundle(decoy, name, duress.wrap_key)),
            "public_keys": _public_json(decoy.public(name)),
            "alert_counsel": alert_counsel,
        }
        return self.post("/account/duress", body)["duress"]

    def remove_duress(self, passphrase: str) -> None:
        """Turn the duress passphrase off; the server deletes the decoy and its content."""
        assert self.account is not None, "sign in first"
        current = passphrase_keys(passphrase, self.prelogin(self.account.username))
        self.post("/account/duress/remove", {"current_auth_key": b64encode(current.auth_key)})

    def rotate_keys(
        self, passphrase: str, *, new_passphrase: str | None = None, attempts: int = 3
    ) -> str:
        """Replace my key pairs (a lost phone, or a key marked compromised), re-sealing
        every file key and message key I can read (§14); return the new recovery key.

        Every other session of the account ends; this client stays signed in. The keys
        are wrapped under ``new_passphrase`` when given, else under ``passphrase`` again
        (with a fresh salt).
        """
        assert self.account is not None, "sign in first"
        name, old = self.account.username, self.account.keys
        current = passphrase_keys(passphrase, self.prelogin(name))
        new = pkeys.KeyPairs.generate(version=old.version + 1)
        new_x25519 = bytes(new.box_key.public_key)
        recovery = pkeys.generate_recovery_key()
        rkeys = recovery_keys(recovery)
        keys_part = {
            "current_auth_key": b64encode(current.auth_key),
            "public_keys": _public_json(new.public(name)),
            "passphrase": self._new_passphrase(new_passphrase or passphrase, new, name),
            "recovery_auth_key": b64encode(rkeys.auth_key),
            "recovery_wrapped_keys": b64encode(pkeys.wrap_bundle(new, name, rkeys.wrap_key)),
        }
        done: dict[tuple[str, str], bytes] = {}  # (id, sealed key) -> re-sealed, across tries

        def reseal(item: dict[str, Any], kind: str) -> dict[str, str]:
            key = (item["id"], item["sealed_key"])
            if key not in done:
                done[key] = (
                    reseal_file_key(item, old, new)
                    if kind == "document"
                    else reseal_message_key(item, old, new_x25519)
                )
            return {"id": item["id"], "sealed_key": b64encode(done[key])}

        for attempt in range(attempts):
            # Starting freezes the account: nothing new is sealed to it meanwhile.
            found = self.post("/account/keys/reseal")
            if found["key_version"] != old.version:
                raise pkeys.ProtocolError("the server names a key version I do not hold")
            body = keys_part | {
                "documents": [reseal(d, "document") for d in found["documents"]],
                "messages": [reseal(m, "message") for m in found["messages"]],
            }
            book = self.contacts.rotation_body(new)  # the book moves to the new keys (§16)
            if book is not None:
                body["contact_book"] = book
            try:
                acct = self.post("/account/keys", body)["account"]
            except ApiError as exc:
                if exc.code != "reseal_set_changed" or attempt == attempts - 1:
                    raise
                continue
            self._set_account(acct, new)
            reseal_held(self, old, new)  # shares I keep for survivors follow my keys (§22)
            return pkeys.format_recovery_key(recovery)
        raise AssertionError("unreachable")

    def create_invite(self, role: str) -> str:
        """Create an invite link (counsel: survivors; admins: counsel or admins)."""
        link: str = self.post("/invites", {"role": role})["invite"]["link"]
        return link

    def cases(self) -> list[dict[str, Any]]:
        """My cases; every member's keys verified (§12.5) and pinned in my contact book."""
        cases: list[dict[str, Any]] = self.get("/cases")["cases"]
        for case in cases:
            for member in case["members"]:
                self.verify_contact(member["user_id"], member["username"], member["public_keys"])
                if self.account is not None and member["user_id"] != self.account.id:
                    self.contacts.pin(member["user_id"], member["username"], member["public_keys"])
        return cases

    def request_counsel(self, case_id: str, username: str) -> None:
        """Ask my client to let another counsel into the case (protocol §17).

        The server answers the same whether or not ``username`` is a counsel account, so
        there is nothing to return: the survivor sees the request if it is one.
        """
        self.post(f"/cases/{case_id}/members", {"username": username})

    def member_requests(self, case_id: str) -> list[dict[str, Any]]:
        """Counsel waiting for my approval to join my case, oldest first (survivors)."""
        requests_: list[dict[str, Any]] = self.get(f"/cases/{case_id}/member-requests")["requests"]
        return requests_

    def approve_member(self, case_id: str, request_id: str) -> dict[str, Any]:
        """Let a requested counsel into my case; returns the case with its new member."""
        case: dict[str, Any] = self.post(f"/cases/{case_id}/member-requests/{request_id}/approve")[
            "case"
        ]
        for member in case["members"]:
            self.verify_contact(member["user_id"], member["username"], member["public_keys"])
        return case

    def decline_member(self, case_id: str, request_id: str) -> None:
        """Refuse a requested counsel: nothing of my case reaches them."""
        self.post(f"/cases/{case_id}/member-requests/{request_id}/decline")

    def remove_counsel(self, case_id: str, user_id: str) -> None:
        """Take a counsel out of my case: they lose it and every grant in it (survivors)."""
        self.request("DELETE", f"/cases/{case_id}/members/{user_id}")

    def verify_contact(self, user_id: str, username: str, record: dict[str, Any]) -> None:
        """Check a contact's key record of any version: self-signature, inclusion, history."""
        parse_public_keys(record).verify(username)
        self.directory.verify_key(user_id, record)
        self.directory.check_contact(user_id, record)

    def trust_contact(self, user_id: str, username: str, record: dict[str, Any]) -> None:
        """Before sealing to a contact's current record: verify it, pin it in the contact
        book, and raise KeyChanged until the user accepted a key change (§12.5, §16)."""
        if user_id == (self.account.id if self.account else None):
            return
        self.verify_contact(user_id, username, record)
        self.contacts.pin(user_id, username, record)
        self.contacts.require_acknowledged(user_id)
