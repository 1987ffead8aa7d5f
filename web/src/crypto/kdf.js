/**
 * Passphrases and key derivation (docs/protocol.md §2): NFKC, Argon2id parameter checks,
 * crypto_kdf subkeys. Functions that need libsodium take it as their first argument so
 * the same code runs in the page, in the Argon2id worker and under node's test runner.
 */

import { b64decode, utf8 } from "./encoding.js";

export const ARGON2ID = "argon2id13";
export const SALT_BYTES = 16;
export const KEY_BYTES = 32;
export const MIN_OPSLIMIT = 3;
export const MAX_OPSLIMIT = 16;
export const MIN_MEMLIMIT = 64 * 1024 * 1024;
export const MAX_MEMLIMIT = 1024 * 1024 * 1024;
export const DEFAULT_OPSLIMIT = 3;
export const DEFAULT_MEMLIMIT = 64 * 1024 * 1024;
export const MIN_PASSPHRASE_CHARS = 12;
export const MAX_PASSPHRASE_BYTES = 1024;

export const CTX_PASSPHRASE = "haven-pw";
export const CTX_RECOVERY = "haven-rk";
export const SUBKEY_AUTH = 1;
export const SUBKEY_WRAP = 2;

/** Raised when KDF parameters or a passphrase break the protocol's floor or ceiling. */
export class WeakParameters extends Error {
  constructor(message, code = "weak_parameters") {
    super(message);
    this.name = "WeakParameters";
    this.code = code;
  }
}

/**
 * Check server-sent parameters `{alg, salt, opslimit, memlimit}` (salt as base64url) and
 * return them with the salt decoded; refuse weak or hostile values before running anything.
 */
export function checkKdfParams(kdf) {
  if (kdf === null || typeof kdf !== "object") throw new WeakParameters("no KDF parameters");
  if (kdf.alg !== ARGON2ID) throw new WeakParameters(`unsupported KDF ${JSON.stringify(kdf.alg)}`);
  let salt;
  try {
    salt = typeof kdf.salt === "string" ? b64decode(kdf.salt) : kdf.salt;
  } catch {
    throw new WeakParameters("salt is not canonical base64url");
  }
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_BYTES) {
    throw new WeakParameters("salt must be 16 bytes");
  }
  const { opslimit, memlimit } = kdf;
  if (!Number.isSafeInteger(opslimit) || opslimit < MIN_OPSLIMIT || opslimit > MAX_OPSLIMIT) {
    throw new WeakParameters(`opslimit must be within ${MIN_OPSLIMIT}..${MAX_OPSLIMIT}`);
  }
  if (
    !Number.isSafeInteger(memlimit) ||
    memlimit < MIN_MEMLIMIT ||
    memlimit > MAX_MEMLIMIT ||
    memlimit % 1024 !== 0
  ) {
    throw new WeakParameters("memlimit must be a multiple of 1 KiB within 64 MiB..1 GiB");
  }
  return { alg: ARGON2ID, salt, opslimit, memlimit };
}

/** NFKC-normalise a passphrase and encode it as UTF-8. */
export function normalizePassphrase(passphrase) {
  return utf8(passphrase.normalize("NFKC"));
}

/** Refuse passphrases shorter than 12 characters after NFKC, or longer than 1024 bytes. */
export function checkPassphraseStrength(passphrase) {
  const normalized = passphrase.normalize("NFKC");
  if ([...normalized].length < MIN_PASSPHRASE_CHARS) {
    throw new WeakParameters("passphrase is too short", "passphrase_too_short");
  }
  if (utf8(normalized).length > MAX_PASSPHRASE_BYTES) {
    throw new WeakParameters("passphrase is too long", "passphrase_too_long");
  }
}

/**
 * A rough strength hint for a passphrase being chosen: 0 too short, 1 fair, 2 good,
 * 3 strong. Only a hint for the person typing; the protocol enforces the minimum.
 */
export function passphraseStrength(passphrase) {
  const text = passphrase.normalize("NFKC");
  const chars = [...text];
  if (chars.length < MIN_PASSPHRASE_CHARS) return 0;
  const distinct = new Set(chars).size;
  const words = text.split(/\s+/).filter((w) => w.length >= 3).length;
  let score = 1;
  if (chars.length >= 16 && distinct >= 8) score = 2;
  if ((chars.length >= 20 && distinct >= 10) || (words >= 4 && chars.length >= 18)) score = 3;
  return score;
}

/** Argon2id master key (32 bytes) from a normalised passphrase and checked parameters. */
export function deriveMasterKey(sodium, passphraseBytes, params) {
  const checked = checkKdfParams(params);
  return sodium.crypto_pwhash(
    KEY_BYTES,
    passphraseBytes,
    checked.salt,
    checked.opslimit,
    checked.memlimit,
    sodium.crypto_pwhash_ALG_ARGON2ID13,
  );
}

/** libsodium crypto_kdf_derive_from_key: a 32-byte subkey for (id, 8-character context). */
export function deriveSubkey(sodium, key, subkeyId, context, length = KEY_BYTES) {
  if (key.length !== KEY_BYTES || context.length !== 8) {
    throw new RangeError("crypto_kdf needs a 32-byte key and an 8-byte context");
  }
  return sodium.crypto_kdf_derive_from_key(length, subkeyId, context, key);
}

/** The authentication and wrapping subkeys of a master key or a recovery key. */
export function subkeys(sodium, key, context) {
  return {
    authKey: deriveSubkey(sodium, key, SUBKEY_AUTH, context),
    wrapKey: deriveSubkey(sodium, key, SUBKEY_WRAP, context),
  };
}

/** Subkeys of a passphrase's master key; the master key is wiped afterwards. */
export function passphraseSubkeys(sodium, master) {
  const keys = subkeys(sodium, master, CTX_PASSPHRASE);
  sodium.memzero(master);
  return keys;
}

/** Subkeys of a 32-byte recovery key (no Argon2id: the key has 256 bits of entropy). */
export function recoverySubkeys(sodium, recoveryKey) {
  return subkeys(sodium, recoveryKey, CTX_RECOVERY);
}

/** Fresh parameters for a new passphrase: random salt, the protocol's defaults. */
export function newKdfParams(sodium) {
  return {
    alg: ARGON2ID,
    salt: sodium.randombytes_buf(SALT_BYTES),
    opslimit: DEFAULT_OPSLIMIT,
    memlimit: DEFAULT_MEMLIMIT,
  };
}
