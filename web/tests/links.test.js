/** Outside links (§23.9): every value of tests/vectors/links.json, byte for byte. */

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { deriveMasterKey, normalizePassphrase, passphraseSubkeys } from "../src/crypto/kdf.js";
import * as L from "../src/crypto/links.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("links");
let sodium;

before(async () => {
  sodium = await loadSodium();
});

test("lookup id, keys and token with and without the passphrase", () => {
  const secret = b64decode(v.secret);
  assert.equal(L.fragment(secret), v.fragment);
  assert.deepEqual(L.parseFragment(`#${v.fragment}`), secret);
  assert.equal(L.parseFragment("#invite=abc"), null);
  assert.equal(b64encode(L.lookupId(sodium, secret)), v.lookup_id);
  const plain = L.linkKeys(sodium, secret);
  assert.equal(b64encode(plain.envelopeKey), v.without_passphrase.envelope_key);
  assert.equal(b64encode(plain.token), v.without_passphrase.token);
  assert.equal(b64encode(plain.tokenHash), v.without_passphrase.token_hash);
  const w = v.with_passphrase;
  const master = deriveMasterKey(sodium, normalizePassphrase(w.passphrase), w.kdf);
  const guarded = L.linkKeys(sodium, secret, passphraseSubkeys(sodium, master).authKey);
  assert.equal(b64encode(guarded.envelopeKey), w.envelope_key);
  assert.equal(b64encode(guarded.token), w.token);
  assert.equal(b64encode(guarded.tokenHash), w.token_hash);
});

test("the envelope seals and opens as the vector, and refuses the wrong key", () => {
  const lookup = b64decode(v.lookup_id);
  const keys = { envelopeKey: b64decode(v.with_passphrase.envelope_key) };
  const files = v.envelope.documents.map((d) => ({ rawId: b64decode(d.id), fileKey: b64decode(d.file_key) }));
  const sealed = L.sealEnvelope(sodium, v.envelope.case_id, files, keys, lookup, b64decode(v.envelope.nonce));
  assert.equal(b64encode(sealed), v.envelope.sealed_with_passphrase);
  const opened = L.openEnvelope(sodium, sealed, keys, lookup);
  assert.equal(opened.caseId, v.envelope.case_id);
  assert.deepEqual(opened.files.map((f) => b64encode(f.fileKey)), v.envelope.documents.map((d) => d.file_key));
  const wrong = { envelopeKey: b64decode(v.without_passphrase.envelope_key) };
  assert.throws(() => L.openEnvelope(sodium, sealed, wrong, lookup), /wrong passphrase/);
});

test("a label opens for its reader only", () => {
  const me = sodium.crypto_box_keypair();
  const sealed = L.sealLabel(sodium, v.label.recipient, me.publicKey, 2);
  assert.equal(sealed.length, 181);
  const mine = { version: 2, x25519Public: me.publicKey, x25519Secret: me.privateKey };
  assert.equal(L.openLabel(sodium, sealed, mine), v.label.recipient);
  assert.throws(() => L.openLabel(sodium, sealed, { ...mine, version: 1 }));
  const padded = sodium.crypto_box_seal_open(sealed.subarray(5), me.publicKey, me.privateKey);
  assert.equal(b64encode(padded), v.label.padded);
});
