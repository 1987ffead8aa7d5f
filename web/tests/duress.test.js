/** The duress passphrase (§18.7): every value of tests/vectors/duress.json, byte for byte. */

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { checkKdfParams, deriveMasterKey, normalizePassphrase, passphraseSubkeys } from "../src/crypto/kdf.js";
import { keyPairsFrom, publicRecord, unwrapBundle, wrapBundle } from "../src/crypto/keys.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("duress");
let sodium;

before(async () => {
  sodium = await loadSodium();
});

test("both passphrases derive under the account's one salt", () => {
  checkKdfParams(v.kdf);
  for (const role of ["passphrase", "duress"]) {
    const master = deriveMasterKey(sodium, normalizePassphrase(v[role].passphrase), v.kdf);
    assert.equal(b64encode(master), v[role].master_key);
    const keys = passphraseSubkeys(sodium, master);
    assert.equal(b64encode(keys.authKey), v[role].auth_key);
    assert.equal(b64encode(keys.wrapKey), v[role].wrap_key);
  }
  assert.notEqual(v.passphrase.auth_key, v.duress.auth_key);
});

test("the decoy's bundle is wrapped under the duress wrap key, in the account's name", () => {
  const d = v.decoy;
  const keys = keyPairsFrom(sodium, 1, b64decode(d.x25519_secret), b64decode(d.ed25519_seed));
  const wrapped = wrapBundle(sodium, keys, v.username, b64decode(v.duress.wrap_key), b64decode(d.nonce));
  assert.equal(b64encode(wrapped), d.wrapped_keys);
  assert.deepEqual(publicRecord(sodium, keys, v.username), d.public_keys);
  const opened = unwrapBundle(sodium, b64decode(d.wrapped_keys), v.username, 1, b64decode(v.duress.wrap_key));
  assert.equal(b64encode(opened.x25519Secret), d.x25519_secret);
  // The real passphrase's wrap key does not open the decoy.
  assert.throws(() => unwrapBundle(sodium, b64decode(d.wrapped_keys), v.username, 1, b64decode(v.passphrase.wrap_key)));
});
