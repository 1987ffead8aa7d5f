/** Key transparency: RFC 9162 proofs verified against trees and proofs built here. */

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { frame, u32 } from "../src/crypto/encoding.js";
import * as KT from "../src/crypto/transparency.js";
import { loadSodium } from "./helpers.js";

let sodium;
before(async () => {
  sodium = await loadSodium();
});

// Proof generation as in vault/protocol/merkle.py (RFC 9162 §2.1.3.1, §2.1.4.1).
function subtree(leaves, lo, hi) {
  return KT.rootOf(sodium, leaves.slice(lo, hi));
}
function inclusionProof(leaves, index) {
  const path = (m, lo, hi) => {
    const n = hi - lo;
    if (n === 1) return [];
    const k = KT.splitPoint(n);
    return m < k ? [...path(m, lo, lo + k), subtree(leaves, lo + k, hi)] : [...path(m - k, lo + k, hi), subtree(leaves, lo, lo + k)];
  };
  return path(index, 0, leaves.length);
}
function consistencyProof(leaves, oldSize) {
  const sub = (m, lo, hi, complete) => {
    const n = hi - lo;
    if (m === n) return complete ? [] : [subtree(leaves, lo, hi)];
    const k = KT.splitPoint(n);
    return m <= k ? [...sub(m, lo, lo + k, complete), subtree(leaves, lo + k, hi)] : [...sub(m - k, lo + k, hi, false), subtree(leaves, lo, lo + k)];
  };
  return sub(oldSize, 0, leaves.length, true);
}

test("the empty root and leaf/node domain separation", () => {
  assert.equal(Buffer.from(KT.rootOf(sodium, [])).toString("hex"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const a = KT.leafHash(sodium, new Uint8Array(0));
  assert.equal(Buffer.from(a).toString("hex"), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
});

test("inclusion proofs for every index of trees of 1..33 leaves; tampering is refused", () => {
  const all = Array.from({ length: 33 }, (_, i) => KT.leafHash(sodium, Uint8Array.of(i)));
  for (let size = 1; size <= 33; size++) {
    const leaves = all.slice(0, size);
    const root = KT.rootOf(sodium, leaves);
    for (let i = 0; i < size; i++) {
      const proof = inclusionProof(leaves, i);
      KT.verifyInclusion(sodium, leaves[i], i, size, proof, root);
      const other = KT.leafHash(sodium, Uint8Array.of(250));
      assert.throws(() => KT.verifyInclusion(sodium, other, i, size, proof, root), KT.TransparencyError);
      if (proof.length) assert.throws(() => KT.verifyInclusion(sodium, leaves[i], i, size, proof.slice(1), root), KT.TransparencyError);
      assert.throws(() => KT.verifyInclusion(sodium, leaves[i], i, size, [...proof, root], root), KT.TransparencyError);
    }
    assert.throws(() => KT.verifyInclusion(sodium, leaves[0], size, size, [], root), KT.TransparencyError);
  }
});

test("consistency proofs for every pair of sizes up to 33; forks and rollbacks are refused", () => {
  const all = Array.from({ length: 33 }, (_, i) => KT.leafHash(sodium, Uint8Array.of(i)));
  for (let n = 1; n <= 33; n++) {
    const newRoot = KT.rootOf(sodium, all.slice(0, n));
    for (let m = 1; m <= n; m++) {
      const oldRoot = KT.rootOf(sodium, all.slice(0, m));
      const proof = m === n ? [] : consistencyProof(all.slice(0, n), m);
      KT.verifyConsistency(sodium, m, n, proof, oldRoot, newRoot);
      if (m < n) {
        const forked = KT.rootOf(sodium, [KT.leafHash(sodium, Uint8Array.of(200)), ...all.slice(1, m)]);
        assert.throws(() => KT.verifyConsistency(sodium, m, n, proof, forked, newRoot), KT.TransparencyError);
      }
    }
  }
  assert.throws(() => KT.verifyConsistency(sodium, 5, 4, [], new Uint8Array(32), new Uint8Array(32)), KT.TransparencyError);
});

test("entries, heads and announcements", () => {
  const seed = new Uint8Array(32).fill(3);
  const log = sodium.crypto_sign_seed_keypair(seed);
  const head = { size: 7, root: new Uint8Array(32).fill(1), timestampMs: 1795000000000, keyVersion: 1 };
  head.signature = sodium.crypto_sign_detached(KT.headMessage(head), log.privateKey);
  KT.verifyHead(sodium, head, log.publicKey);
  assert.throws(() => KT.verifyHead(sodium, { ...head, size: 8 }, log.publicKey), KT.TransparencyError);
  const next = sodium.crypto_sign_seed_keypair(new Uint8Array(32).fill(4));
  const announcement = sodium.crypto_sign_detached(frame("haven/v1/log-key", u32(2), next.publicKey, u32(1)), log.privateKey);
  KT.verifyAnnouncement(sodium, log.publicKey, 1, 2, next.publicKey, announcement);
  assert.throws(() => KT.verifyAnnouncement(sodium, log.publicKey, 1, 3, next.publicKey, announcement), KT.TransparencyError);
  assert.throws(() => KT.verifyAnnouncement(sodium, log.publicKey, 1, 2, next.publicKey, new Uint8Array(64)), KT.TransparencyError);
  const entry = KT.encodeEntry({ kind: "publish", userId: "u", version: 1, x25519: new Uint8Array(32), ed25519: new Uint8Array(32), signature: new Uint8Array(64), timestampMs: 5 });
  assert.equal(entry.length, 4 + 17 + 4 + 7 + 4 + 1 + 4 + 4 + 4 + 32 + 4 + 32 + 4 + 64 + 4 + 8);
  assert.throws(() => KT.encodeEntry({ kind: "nope" }), KT.TransparencyError);
});
