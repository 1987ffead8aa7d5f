"""What the account route modules share: the per-account rate-limit key and the server hash cost.

The account views, shares and duress routes limit by the account named in the body and hash
with the server's cost from settings; these live here, below all of them, so no view module
reaches into another's private helpers.
"""

from __future__ import annotations

import nacl.encoding
import nacl.hash
from flask import current_app, request

from vault.accounts import services


def server_hash_cost() -> services.HashCost:
    """The server-side hash cost from settings."""
    cfg = current_app.config
    return services.HashCost(cfg["HAVEN_SERVER_HASH_OPSLIMIT"], cfg["HAVEN_SERVER_HASH_MEMLIMIT"])


def account_key() -> str:
    """Rate-limit key for the account named in the body (hashed, so no name is kept)."""
    data = request.get_json(silent=True)
    name = data.get("username") if isinstance(data, dict) else None
    name = name.strip().lower() if isinstance(name, str) else ""
    digest = nacl.hash.blake2b(name.encode(), digest_size=16, encoder=nacl.encoding.HexEncoder)
    return "account:" + digest.decode()
