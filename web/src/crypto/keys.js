/**
 * Account keys (docs/protocol.md §2.4, §3): usernames, key pairs, self-signed public key
 * records, wrapped key bundles and the printable recovery key.
 */

import { b64decode, b64encode, bytesEqual, concat, frame, u32, utf8 } from "./encoding.js";

export const FORMAT_V1 = 1;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const BUNDLE_PLAINTEXT_BYTES = 1 + 32 + 32;
export const WRAPPED_BUNDLE_BYTES = 1 + NONCE_BYTES + BUNDLE_PLAINTEXT_BYTES + TAG_BYTES;
export const RECOVERY_KEY_BYTES = 32;
export const LABEL_BUNDLE = "haven/v1/key-bundle";
export const LABEL_PUBKEYS = "haven/v1/public-keys";
const USERNAME_RE = /^[a-z0-9][a-z0-9._-]{2,31}$/;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** Raised when an envelope fails to parse, authenticate or verify. */
export class ProtocolError extends Error {
  constructor(message, code = "protocol_error") {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

/** NFKC-normalise, trim and lower-case a username, then check its shape. */
export function normalizeUsername(username) {
  const name = username.normalize("NFKC").trim().toLowerCase();
  if (!USERNAME_RE.test(name)) throw new ProtocolError("bad username", "bad_username");
  return name;
}

/** Key pairs of one version from their private parts (x25519 secret, ed25519 seed). */
export function keyPairsFrom(sodium, version, x25519Secret, ed25519Seed) {
  const sign = sodium.crypto_sign_seed_keypair(ed25519Seed);
  return {
    version,
    x25519Secret,
    ed25519Seed,
    x25519Public: sodium.crypto_scalarmult_base(x25519Secret),
    ed25519Public: sign.publicKey,
    ed25519Secret: sign.privateKey,
  };
}

/** Fresh X25519 and Ed25519 key pairs for a key version. */
export function generateKeyPairs(sodium, version = 1) {
  return keyPairsFrom(
    sodium,
    version,
    sodium.randombytes_buf(32),
    sodium.randombytes_buf(sodium.crypto_sign_SEEDBYTES),
  );
}

/** Overwrite every private part of a key pair set. */
export function wipeKeyPairs(sodium, keys) {
  if (!keys) return;
  for (const name of ["x25519Secret", "ed25519Seed", "ed25519Secret"]) {
    if (keys[name] instanceof Uint8Array) sodium.memzero(keys[name]);
  }
}

/** The exact bytes an account signs to publish its keys. */
export function publicKeysMessage(username, version, x25519, ed25519) {
  return frame(LABEL_PUBKEYS, utf8(username), u32(version), x25519, ed25519);
}

/** The self-signed public key record of a key pair set, as the API's JSON. */
export function publicRecord(sodium, keys, username) {
  const message = publicKeysMessage(username, keys.version, keys.x25519Public, keys.ed25519Public);
  const signature = sodium.crypto_sign_detached(message, keys.ed25519Secret);
  return {
    version: keys.version,
    x25519: b64encode(keys.x25519Public),
    ed25519: b64encode(keys.ed25519Public),
    signature: b64encode(signature),
  };
}

/**
 * Decode a public key record from JSON and check its self-signature for `username`.
 * Returns `{version, x25519, ed25519, signature}` as bytes; throws ProtocolError otherwise.
 */
export function verifyPublicRecord(sodium, record, username) {
  let x25519, ed25519, signature;
  try {
    x25519 = b64decode(record.x25519);
    ed25519 = b64decode(record.ed25519);
    signature = b64decode(record.signature);
  } catch {
    throw new ProtocolError("public key record is not canonical", "bad_public_keys");
  }
  const version = record.version;
  if (x25519.length !== 32 || ed25519.length !== 32 || signature.length !== 64) {
    throw new ProtocolError("public key record has wrong lengths", "bad_public_keys");
  }
  if (!Number.isInteger(version) || version < 1 || version > 2 ** 31) {
    throw new ProtocolError("key version out of range", "bad_public_keys");
  }
  const message = publicKeysMessage(username, version, x25519, ed25519);
  let ok = false;
  try {
    ok = sodium.crypto_sign_verify_detached(signature, message, ed25519);
  } catch {
    ok = false;
  }
  if (!ok) throw new ProtocolError("public key self-signature does not verify", "bad_signature");
  return { version, x25519, ed25519, signature };
}

/**
 * The key pair set of `version` among `keys` (one set, or a list of sets). A sealed key
 * names the version it was made for; without that version's private keys it cannot be
 * opened, and this says so plainly (code `other_key_version`).
 */
export function keysOfVersion(keys, version) {
  const found = (Array.isArray(keys) ? keys : [keys]).find((k) => k && k.version === version);
  if (!found) {
    throw new ProtocolError(`sealed to key version ${version}, which this device does not hold`, "other_key_version");
  }
  return found;
}

/** Whether a verified public record belongs to these private keys. */
export function recordMatchesKeys(record, keys) {
  return (
    record.version === keys.version &&
    bytesEqual(record.x25519, keys.x25519Public) &&
    bytesEqual(record.ed25519, keys.ed25519Public)
  );
}

/** Associated data binding a wrapped bundle to its owner and key version. */
export function bundleAd(username, version) {
  return frame(LABEL_BUNDLE, utf8(username), u32(version));
}

/** Encrypt the private keys under a wrapping key: 0x01 || nonce || XChaCha20-Poly1305. */
export function wrapBundle(sodium, keys, username, wrapKey, nonce = null) {
  const n = nonce ?? sodium.randombytes_buf(NONCE_BYTES);
  const plain = concat(Uint8Array.of(FORMAT_V1), keys.x25519Secret, keys.ed25519Seed);
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
    plain,
    bundleAd(username, keys.version),
    null,
    n,
    wrapKey,
  );
  sodium.memzero(plain);
  return concat(Uint8Array.of(FORMAT_V1), n, ct);
}

/** Decrypt a wrapped key bundle; refuse anything that does not authenticate. */
export function unwrapBundle(sodium, blob, username, version, wrapKey) {
  if (blob.length !== WRAPPED_BUNDLE_BYTES || blob[0] !== FORMAT_V1) {
    throw new ProtocolError("wrapped key bundle has the wrong format", "bad_bundle");
  }
  let plain;
  try {
    plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      blob.subarray(1 + NONCE_BYTES),
      bundleAd(username, version),
      blob.subarray(1, 1 + NONCE_BYTES),
      wrapKey,
    );
  } catch {
    throw new ProtocolError("key bundle does not decrypt", "bundle_does_not_decrypt");
  }
  if (plain.length !== BUNDLE_PLAINTEXT_BYTES || plain[0] !== FORMAT_V1) {
    sodium.memzero(plain);
    throw new ProtocolError("key bundle has an unknown inner format", "bad_bundle");
  }
  const keys = keyPairsFrom(sodium, version, plain.slice(1, 33), plain.slice(33, 65));
  sodium.memzero(plain);
  return keys;
}

/** A fresh 32-byte recovery key. */
export function generateRecoveryKey(sodium) {
  return sodium.randombytes_buf(RECOVERY_KEY_BYTES);
}

/** RFC 4648 base32 without padding (the last group's spare bits zero). */
export function base32(bytes) {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

/** Render a recovery key as 13 groups of four RFC 4648 base32 characters. */
export function formatRecoveryKey(key) {
  if (key.length !== RECOVERY_KEY_BYTES) throw new RangeError("a recovery key is 32 bytes");
  return base32(key).match(/.{1,4}/g).join("-");
}

/** Parse a typed recovery key, ignoring case, spaces and dashes; refuse non-canonical input. */
export function parseRecoveryKey(text) {
  const cleaned = String(text).replace(/[\s-]/g, "").toUpperCase();
  if (cleaned.length !== 52 || !/^[A-Z2-7]+$/.test(cleaned)) {
    throw new ProtocolError("a recovery key is 52 characters from A-Z and 2-7", "bad_recovery_key");
  }
  const out = base32Decode(cleaned);
  if (out === null) throw new ProtocolError("recovery key is not canonical", "bad_recovery_key");
  return out;
}

/** Decode unpadded base32 of A-Z2-7; null when the spare bits are not zero (non-canonical). */
export function base32Decode(cleaned) {
  const out = new Uint8Array(Math.floor((cleaned.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of cleaned) {
    acc = (acc << 5) | BASE32.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  return acc === 0 ? out : null;
}

/** The groups (1-based) of a formatted recovery key, for asking the person to type some back. */
export function recoveryKeyGroups(formatted) {
  return formatted.split("-");
}
