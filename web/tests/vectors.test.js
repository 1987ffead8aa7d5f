/** Every value in tests/vectors/accounts.json and safety.json, checked byte for byte. */

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import {
  checkKdfParams,
  deriveMasterKey,
  deriveSubkey,
  normalizePassphrase,
  passphraseSubkeys,
  recoverySubkeys,
} from "../src/crypto/kdf.js";
import {
  bundleAd,
  formatRecoveryKey,
  keyPairsFrom,
  parseRecoveryKey,
  publicKeysMessage,
  publicRecord,
  unwrapBundle,
  verifyPublicRecord,
  wrapBundle,
} from "../src/crypto/keys.js";
import {
  fingerprint,
  fingerprintDigits,
  formatSafetyNumber,
  qrPayload,
  safetyNumber,
} from "../src/crypto/safety.js";
import { loadSodium, vectors } from "./helpers.js";

const accounts = vectors("accounts");
const safety = vectors("safety");
let sodium;

before(async () => {
  sodium = await loadSodium();
});

test("vector files are protocol 1", () => {
  assert.equal(accounts.protocol, 1);
  assert.equal(accounts.name, "accounts");
  assert.equal(safety.protocol, 1);
  assert.equal(safety.name, "safety");
});

describe("kdf vectors", () => {
  for (const [i, v] of accounts.kdf.entries()) {
    test(`kdf[${i}] normalisation, Argon2id master key and subkeys`, () => {
      const normalized = normalizePassphrase(v.passphrase);
      assert.equal(b64encode(normalized), v.normalized_utf8);
      const params = { alg: v.alg, salt: v.salt, opslimit: v.opslimit, memlimit: v.memlimit };
      const checked = checkKdfParams(params);
      assert.equal(b64encode(checked.salt), v.salt);
      const master = deriveMasterKey(sodium, normalized, params);
      assert.equal(b64encode(master), v.master_key);
      const keys = passphraseSubkeys(sodium, master);
      assert.equal(b64encode(keys.authKey), v.auth_key);
      assert.equal(b64encode(keys.wrapKey), v.wrap_key);
      assert.ok(master.every((b) => b === 0), "the master key is wiped after use");
    });
  }
});

describe("subkey vectors", () => {
  for (const [i, v] of accounts.subkeys.entries()) {
    test(`subkeys[${i}] crypto_kdf_derive_from_key(${v.subkey_id}, ${v.context})`, () => {
      const subkey = deriveSubkey(sodium, b64decode(v.key), v.subkey_id, v.context);
      assert.equal(b64encode(subkey), v.subkey);
    });
  }
});

test("recovery key vector: format, parse and subkeys", () => {
  const v = accounts.recovery_key;
  const key = b64decode(v.key);
  assert.equal(formatRecoveryKey(key), v.formatted);
  assert.deepEqual(parseRecoveryKey(v.formatted), key);
  assert.deepEqual(parseRecoveryKey(v.formatted.toLowerCase().replaceAll("-", " ")), key);
  const keys = recoverySubkeys(sodium, key);
  assert.equal(b64encode(keys.authKey), v.auth_key);
  assert.equal(b64encode(keys.wrapKey), v.wrap_key);
});

test("key bundle vector: associated data, wrap with the fixed nonce, unwrap", () => {
  const v = accounts.key_bundle;
  const keys = keyPairsFrom(sodium, v.key_version, b64decode(v.x25519_secret), b64decode(v.ed25519_seed));
  assert.equal(b64encode(bundleAd(v.username, v.key_version)), v.associated_data);
  const wrapKey = b64decode(v.wrap_key);
  const wrapped = wrapBundle(sodium, keys, v.username, wrapKey, b64decode(v.nonce));
  assert.equal(b64encode(wrapped), v.wrapped);
  assert.equal(wrapped.length, 106);
  const back = unwrapBundle(sodium, b64decode(v.wrapped), v.username, v.key_version, wrapKey);
  assert.equal(b64encode(back.x25519Secret), v.x25519_secret);
  assert.equal(b64encode(back.ed25519Seed), v.ed25519_seed);
  assert.throws(() => unwrapBundle(sodium, b64decode(v.wrapped), "someone.else", 1, wrapKey));
  assert.throws(() => unwrapBundle(sodium, b64decode(v.wrapped), v.username, 2, wrapKey));
});

test("public key vector: signed message, signature, verification", () => {
  const v = accounts.public_keys;
  const bundle = accounts.key_bundle;
  assert.equal(bundle.username, v.username);
  const keys = keyPairsFrom(sodium, v.version, b64decode(bundle.x25519_secret), b64decode(bundle.ed25519_seed));
  assert.equal(b64encode(keys.x25519Public), v.x25519);
  assert.equal(b64encode(keys.ed25519Public), v.ed25519);
  const message = publicKeysMessage(v.username, v.version, keys.x25519Public, keys.ed25519Public);
  assert.equal(b64encode(message), v.signed_message);
  const record = publicRecord(sodium, keys, v.username);
  assert.deepEqual(record, { version: v.version, x25519: v.x25519, ed25519: v.ed25519, signature: v.signature });
  const checked = verifyPublicRecord(sodium, record, v.username);
  assert.equal(checked.version, 1);
  assert.throws(() => verifyPublicRecord(sodium, record, "another.name"), /does not verify/);
});

describe("safety vectors", () => {
  const fps = [];
  for (const [i, a] of safety.accounts.entries()) {
    test(`account[${i}] fingerprint and digits`, () => {
      const fp = fingerprint(sodium, a.user_id, a.version, b64decode(a.x25519), b64decode(a.ed25519));
      assert.equal(b64encode(fp), a.fingerprint);
      assert.equal(fingerprintDigits(fp), a.digits);
      fps[i] = fp;
    });
  }
  test("safety number, formatting and QR payload", () => {
    const [a, b] = safety.accounts.map((x) => b64decode(x.fingerprint));
    const number = safetyNumber(a, b);
    assert.equal(number, safety.safety_number);
    assert.equal(safetyNumber(b, a), number, "both people see the same number");
    assert.equal(formatSafetyNumber(number), safety.formatted);
    assert.equal(qrPayload(number), safety.qr_payload);
  });
});
