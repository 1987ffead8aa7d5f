"""The PRF way in (protocol §21.9): the key a passkey's PRF output derives, which wraps a
copy of the account's key bundle exactly like the passphrase's wrap subkey does (§3)."""

from __future__ import annotations

from vault.protocol.kdf import derive_subkey

# The PRF input (WebAuthn `prf.eval.first`): the same for every passkey and account; the
# authenticator's per-credential secret makes each output different.
PRF_INPUT = b"haven/v1/passkey-unlock"
PRF_OUTPUT_BYTES = 32
CTX_PASSKEY = b"haven-pk"
SUBKEY_WRAP = 1


def prf_wrap_key(prf_output: bytes) -> bytes:
    """crypto_kdf_derive_from_key(32, 1, "haven-pk", prf_output)."""
    if len(prf_output) != PRF_OUTPUT_BYTES:
        raise ValueError("a PRF output is 32 bytes")
    return derive_subkey(prf_output, SUBKEY_WRAP, CTX_PASSKEY)
