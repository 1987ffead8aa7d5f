/** The contact book (§16): every value of tests/vectors/contacts.json, and the pinning rules. */

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as CB from "../src/crypto/contacts.js";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("contacts");
let sodium;
const [X1, E1, X2, E2] = [1, 2, 3, 4].map((n) => new Uint8Array(32).fill(n));

before(async () => {
  sodium = await loadSodium();
});

test("book key is the KDF of the X25519 secret", () => {
  assert.equal(b64encode(CB.bookKey(sodium, b64decode(v.x25519_secret))), v.book_key);
});

describe("book vectors", () => {
  for (const c of v.books) {
    test(`${c.name}: plaintext, associated data and blob byte for byte`, () => {
      const key = b64decode(v.book_key);
      assert.equal(b64encode(CB.encodeBook(c.book)), c.plaintext);
      assert.equal(b64encode(CB.bookAd(v.user_id, c.version, c.counter)), c.ad);
      const blob = CB.encryptBook(sodium, c.book, v.user_id, c.version, c.counter, key, b64decode(c.nonce));
      assert.equal(b64encode(blob), c.blob);
      const opened = CB.decryptBook(sodium, b64decode(c.blob), v.user_id, c.version, key);
      assert.equal(opened.counter, c.counter);
      assert.deepEqual(opened.book, c.book);
    });
  }
  for (const r of v.refused) {
    test(`refused: ${r.why}`, () => {
      assert.throws(() => CB.decryptBook(sodium, b64decode(r.blob), v.user_id, 3, b64decode(v.book_key)), CB.ContactBookError);
    });
  }
  test("another account's id does not open the book", () => {
    const c = v.books[1];
    assert.throws(() => CB.decryptBook(sodium, b64decode(c.blob), "someone-else", 3, b64decode(v.book_key)), /does not open/);
  });
  test("a non-canonical plaintext is refused", () => {
    assert.throws(() => CB.decodeBook(b64decode(v.not_canonical_plaintext)), /canonical/);
  });
});

test("pin on first use, a key change needs acknowledgement and drops the verified badge", () => {
  const book = CB.emptyBook();
  assert.equal(CB.pin(book, "u", "user.a", 1, X1, E1), "new");
  assert.equal(CB.pin(book, "u", "user.a", 1, X1, E1), "same");
  CB.markVerified(book, "u", 1);
  assert.ok(CB.isVerified(book, "u"));
  assert.equal(CB.pin(book, "u", "user.a", 2, X2, E2), "changed");
  assert.ok(CB.needsAcknowledgement(book, "u"));
  assert.ok(!CB.isVerified(book, "u"));
  CB.acknowledge(book, "u");
  assert.equal(CB.pin(book, "u", "user.a", 2, X2, E2), "same");
  assert.ok(!CB.isVerified(book, "u"));
  CB.markVerified(book, "u", 2);
  assert.ok(CB.isVerified(book, "u"));
  assert.equal(CB.pin(book, "u", "user.a", 1, X1, E1, { current: false }), "same");
  assert.throws(() => CB.pin(book, "u", "user.a", 1, X1, E1), CB.EquivocationError);
});

test("other bytes for a pinned version are equivocation", () => {
  const book = CB.emptyBook();
  CB.pin(book, "u", "user.a", 1, X1, E1);
  assert.throws(() => CB.pin(book, "u", "user.a", 1, X2, E1), CB.EquivocationError);
  assert.throws(() => CB.pin(book, "u", "user.a", 1, X1, E2, { current: false }), CB.EquivocationError);
});

test("heads only grow", () => {
  const book = CB.emptyBook();
  CB.setHead(book, 5, X1);
  CB.setHead(book, 9, X2);
  assert.throws(() => CB.setHead(book, 8, X1), /smaller/);
  assert.throws(() => CB.setHead(book, 9, X1), CB.EquivocationError);
});

test("merge joins pins and keeps the later state; a fork is equivocation", () => {
  const mine = CB.emptyBook();
  const theirs = CB.emptyBook();
  CB.pin(mine, "a", "user.a", 1, X1, E1);
  CB.pin(mine, "a", "user.a", 2, X2, E2);
  CB.acknowledge(mine, "a");
  CB.pin(theirs, "a", "user.a", 1, X1, E1);
  CB.markVerified(theirs, "a", 1);
  CB.pin(theirs, "b", "user.b", 1, X2, E2);
  CB.setHead(theirs, 10, X1);
  CB.setHead(mine, 4, X2);
  const merged = CB.merge(mine, theirs);
  assert.deepEqual(Object.keys(merged.contacts).sort(), ["a", "b"]);
  assert.equal(merged.contacts.a.acknowledged, 2);
  assert.equal(merged.contacts.a.verified, 1);
  assert.equal(merged.head.size, 10);
  const forked = CB.emptyBook();
  CB.pin(forked, "a", "user.a", 1, X2, E2);
  assert.throws(() => CB.merge(forked, theirs), CB.EquivocationError);
});

test("books of the wrong shape are refused", () => {
  const bad = [
    { contacts: {}, head: null, version: 2 },
    { contacts: {}, head: null, version: 1, extra: 1 },
    { contacts: {}, head: { root: "AA", size: 1 }, version: 1 },
    { contacts: { u: { acknowledged: 2, keys: { 1: { ed25519: b64encode(E1), x25519: b64encode(X1) } }, username: "a", verified: null } }, head: null, version: 1 },
    { contacts: { u: { acknowledged: 1, keys: { "01": { ed25519: b64encode(E1), x25519: b64encode(X1) } }, username: "a", verified: null } }, head: null, version: 1 },
    { contacts: { u: { acknowledged: 1.5, keys: { 1: { ed25519: b64encode(E1), x25519: b64encode(X1) } }, username: "a", verified: null } }, head: null, version: 1 },
  ];
  for (const book of bad) assert.throws(() => CB.checkBook(book), CB.ContactBookError);
});
