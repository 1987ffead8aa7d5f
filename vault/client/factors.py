"""Second factors from the Python client (protocol §21): TOTP set-up and removal, policy."""

from __future__ import annotations

from typing import Any

from vault.client.api import HavenClient


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
