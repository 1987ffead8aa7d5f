"""Second factors from the Python client (protocol §21): TOTP, passkeys, the policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vault.client.api import Account, HavenClient
from vault.protocol import keys as pkeys
from vault.protocol import passkeys as ppasskeys
from vault.protocol.encoding import b64decode, b64encode


class Factors:
    """The signed-in account's second factors."""

    def __init__(self, client: HavenClient) -> None:
        self.client = client

    def state(self) -> dict[str, Any]:
        """TOTP on or off, recovery codes left, and whether the role must keep a factor."""
        found: dict[str, Any] = self.client.get("/account/factors")
        return found

    def begin_totp(self) -> dict[str, Any]:
        """A new TOTP secret (base32 and otpauth URI), to put into an authenticator app."""
        found: dict[str, Any] = self.client.post("/account/factors/totp")
        return found

    def confirm_totp(self, code: str) -> list[str]:
        """Turn TOTP on with a code from the app; the recovery codes, to keep safe."""
        found = self.client.post("/account/factors/totp/confirm", {"code": code})
        return list(found["recovery_codes"])

    def remove_totp(self) -> None:
        """Turn TOTP off (needs a sign-in within the last minutes)."""
        self.client.post("/account/factors/totp/remove")

    def policy(self) -> bool:
        """Admins: whether counsel and admins must have a second factor."""
        return bool(self.client.get("/admin/factor-policy")["required_for_staff"])

    def set_policy(self, required_for_staff: bool) -> bool:
        """Admins: require (or stop requiring) a second factor of counsel and admins."""
        body = {"required_for_staff": required_for_staff}
        return bool(self.client.post("/admin/factor-policy", body)["required_for_staff"])

    # -- passkeys (§21.8, §21.9); ``authenticator`` is whatever answers WebAuthn options --

    def passkeys(self) -> list[dict[str, Any]]:
        """My passkeys: id, name, dates, whether each opens the account alone."""
        return list(self.client.get("/account/passkeys")["passkeys"])

    def add_passkey(self, create: Callable[[dict[str, Any]], dict[str, Any]], name: str) -> str:
        """Register a passkey: ``create`` answers the creation options; its id."""
        options = self.client.post("/account/passkeys/options")["public_key"]
        body = {"credential": create(options), "name": name}
        return str(self.client.post("/account/passkeys", body)["passkey"]["id"])

    def set_unlock(self, passkey_id: str, prf_output: bytes) -> None:
        """Let a PRF passkey open the account alone: my keys wrapped under its PRF key."""
        acct = self.client.account
        assert acct is not None
        wrapped = pkeys.wrap_bundle(acct.keys, acct.username, ppasskeys.prf_wrap_key(prf_output))
        body = {"wrapped_keys": b64encode(wrapped)}
        self.client.post(f"/account/passkeys/{passkey_id}/unlock", body)

    def remove_passkey(self, passkey_id: str) -> None:
        """Remove a passkey and its way in."""
        self.client.post(f"/account/passkeys/{passkey_id}/remove")


def sign_in_with_passkey(
    client: HavenClient, get: Callable[[dict[str, Any]], tuple[dict[str, Any], bytes]]
) -> Account:
    """Sign in with a PRF passkey alone: ``get`` answers the request options with an
    assertion and the PRF output for PRF_INPUT; the keys come from the PRF-wrapped copy."""
    options = client.post("/auth/passkey/options")["public_key"]
    credential, prf_output = get(options)
    data = client.post("/auth/passkey", {"credential": credential})
    acct = data["account"]
    keys = pkeys.unwrap_bundle(
        b64decode(data["prf_wrapped_keys"]),
        acct["username"],
        acct["key_version"],
        ppasskeys.prf_wrap_key(prf_output),
    )
    return client.install_account(acct, keys)
