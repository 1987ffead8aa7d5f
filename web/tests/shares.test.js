/** Split recovery (§22): every value of tests/vectors/shares.json, and shares of both clients. */

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { deriveMasterKey, normalizePassphrase } from "../src/crypto/kdf.js";
import {
  combineShares,
  decodePayload,
  encodePayload,
  formatPrintedShare,
  openShare,
  parsePrintedShare,
  requestKeys,
  setupMessage,
  shareCommitment,
  splitRecoveryKey,
} from "../src/shares.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("shares");
let sodium;

before(async () => {
  sodium = await loadSodium();
});

test("shares made by pyshamir and by shamir-secret-sharing combine to the same key here", async () => {
  for (const pair of [...v.python_pairs, ...v.js_pairs]) {
    const [a, b] = pair.shares.map(b64decode);
    assert.equal(b64encode(await combineShares(a, b)), pair.secret);
    assert.equal(b64encode(await combineShares(b, a)), v.secret);
  }
});

test("a fresh split rebuilds from any two shares, and one share alone is refused", async () => {
  const key = b64decode(v.secret);
  const shares = await splitRecoveryKey(key);
  assert.equal(shares.length, 3);
  for (const [i, j] of [[0, 1], [0, 2], [1, 2]]) {
    assert.deepEqual(await combineShares(shares[i], shares[j]), key);
  }
  await assert.rejects(combineShares(shares[0], shares[0]), /distinct/);
});

test("payload, commitment, printed share and setup signature are byte for byte", () => {
  const setupId = b64decode(v.setup_id);
  const commitments = [];
  for (const p of v.payloads) {
    const share = b64decode(p.share);
    const payload = { setupId, slot: p.slot, share };
    assert.equal(b64encode(encodePayload(payload)), p.payload);
    assert.equal(formatPrintedShare(payload), p.printed);
    assert.deepEqual(parsePrintedShare(p.printed.toLowerCase().replaceAll("-", " ")), payload);
    assert.deepEqual(decodePayload(b64decode(p.payload)), payload);
    const c = shareCommitment(sodium, v.username, setupId, p.slot, share);
    assert.equal(b64encode(c), p.commitment);
    commitments.push(c);
  }
  const message = setupMessage(v.username, setupId, v.key_version, commitments);
  assert.equal(b64encode(message), v.setup_message);
  const signer = sodium.crypto_sign_seed_keypair(b64decode(v.ed25519_seed));
  assert.equal(b64encode(sodium.crypto_sign_detached(message, signer.privateKey)), v.setup_signature);
  const groups = v.payloads[0].printed.split("-");
  groups[12] = (groups[12][0] === "A" ? "B" : "A") + groups[12].slice(1);
  const tampered = groups.join("-");
  assert.throws(() => parsePrintedShare(v.payloads[0].printed.slice(0, -1)), /82 characters/);
  assert.notDeepEqual(parsePrintedShare(tampered).share, b64decode(v.payloads[0].share));
});

test("the request key comes from the new passphrase; a sealed share opens and checks", () => {
  const r = v.request;
  const master = deriveMasterKey(sodium, normalizePassphrase(r.passphrase), r.kdf);
  assert.equal(b64encode(master), r.master_key);
  const pair = requestKeys(sodium, master);
  assert.equal(b64encode(pair.privateKey), r.x25519_secret);
  assert.equal(b64encode(pair.publicKey), r.x25519_public);
  assert.equal(b64encode(pair.authKey), r.auth_key);
  const p = v.payloads[1];
  const sealed = sodium.crypto_box_seal(b64decode(p.payload), pair.publicKey);
  const opened = openShare(sodium, sealed, pair, v.username, b64decode(p.commitment));
  assert.equal(b64encode(opened.share), p.share);
  assert.throws(() => openShare(sodium, sealed, pair, "someone.else", b64decode(p.commitment)), /commitment/);
});
