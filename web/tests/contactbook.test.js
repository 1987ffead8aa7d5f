/**
 * The page's contact book (src/contacts.js) against an in-memory server that keeps the
 * book and its counter as the real one does (compare-and-swap): load, save, merge after a
 * conflict, rollback and counter checks, a book left under replaced keys, rotation.
 */

import assert from "node:assert/strict";
import { afterEach, before, beforeEach, test } from "node:test";
import * as CB from "../src/crypto/contacts.js";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { generateKeyPairs } from "../src/crypto/keys.js";
import { loadSodium } from "./helpers.js";

let sodium;
let page;
let server;
const USER = "user-me";
const [X1, E1, X2, E2] = [1, 2, 3, 4].map((n) => new Uint8Array(32).fill(n));

before(async () => {
  sodium = await loadSodium();
  globalThis.sodium = sodium;
  page = await import("../src/contacts.js");
});

/** The server's side of GET/PUT /account/contact-book. */
function fakeServer() {
  const state = { counter: 0, book: null, puts: 0 };
  globalThis.fetch = async (url, init) => {
    assert.equal(url, "/api/v1/account/contact-book");
    const json = (status, body) => ({ status, ok: status < 400, json: async () => body });
    if (init.method === "GET") return json(200, { counter: state.counter, book: state.book });
    const body = JSON.parse(init.body);
    state.puts += 1;
    if (body.counter !== state.counter + 1) return json(409, { error: { code: "contact_book_conflict", message: "" } });
    state.counter = body.counter;
    state.book = body.book;
    return json(200, { counter: body.counter });
  };
  return state;
}

let account;

beforeEach(() => {
  server = fakeServer();
  account = { id: USER, keys: generateKeyPairs(sodium, 1) };
  page.attachAccount(() => account);
  page.forgetBook();
});

afterEach(() => {
  delete globalThis.fetch;
});

/** Store `book` on the server as another session would, at the next counter. */
function storeElsewhere(book, keys = account.keys) {
  const counter = server.counter + 1;
  const key = CB.bookKey(sodium, keys.x25519Secret);
  server.book = b64encode(CB.encryptBook(sodium, book, USER, keys.version, counter, key));
  server.counter = counter;
}

function serverBook(keys = account.keys) {
  const key = CB.bookKey(sodium, keys.x25519Secret);
  return CB.decryptBook(sodium, b64decode(server.book), USER, keys.version, key);
}

function bookWith(...contacts) {
  const book = CB.emptyBook();
  for (const [id, version, x, e] of contacts) CB.pin(book, id, `name.${id}`, version, x, e);
  return book;
}

test("an empty book before the first save; acknowledging and verifying save at counter + 1", async () => {
  const loaded = await page.loadBook();
  assert.equal(loaded.counter, 0);
  assert.deepEqual(loaded.book, CB.emptyBook());
  const book = bookWith(["a", 1, X1, E1]);
  CB.pin(book, "a", "name.a", 2, X2, E2);
  storeElsewhere(book);
  await page.loadBook();
  assert.ok(page.contactNeedsAcknowledgement("a"));
  await page.acknowledgeContact("a");
  assert.ok(!page.contactNeedsAcknowledgement("a"));
  assert.ok(!page.isContactVerified("a"));
  await page.markContactVerified("a", 2);
  assert.ok(page.isContactVerified("a"));
  assert.equal(server.counter, 3);
  const stored = serverBook();
  assert.equal(stored.counter, 3);
  assert.equal(stored.book.contacts.a.verified, 2);
});

test("a conflict loads the newer book, merges and saves again", async () => {
  storeElsewhere(bookWith(["a", 1, X1, E1], ["b", 1, X2, E2]));
  await page.loadBook();
  // Another session saves meanwhile: contact c.
  storeElsewhere(bookWith(["a", 1, X1, E1], ["b", 1, X2, E2], ["c", 1, X1, E2]));
  await page.markContactVerified("a", 1);
  assert.equal(server.counter, 3);
  const stored = serverBook().book;
  assert.deepEqual(Object.keys(stored.contacts).sort(), ["a", "b", "c"]);
  assert.equal(stored.contacts.a.verified, 1);
  assert.equal(server.puts, 2);
});

test("two changes started together in one page both land, and no load is taken for a rollback", async () => {
  storeElsewhere(bookWith(["a", 1, X1, E1], ["b", 1, X2, E2]));
  // The server answers each request as of when it arrived, a moment later (as over a network),
  // so without one-at-a-time a load sent before this page's own save comes back older than it.
  const answer = globalThis.fetch;
  globalThis.fetch = (url, init) => {
    const reply = answer(url, init);
    return new Promise((resolve) => setTimeout(() => resolve(reply), 5));
  };
  await Promise.all([page.markContactVerified("a", 1), page.markContactVerified("b", 1)]);
  const stored = serverBook().book;
  assert.equal(stored.contacts.a.verified, 1);
  assert.equal(stored.contacts.b.verified, 1);
  assert.equal(server.counter, 3);
});

test("an older book than one seen this session is refused; so is a counter that disagrees", async () => {
  storeElsewhere(bookWith(["a", 1, X1, E1]));
  const old = { ...server };
  await page.markContactVerified("a", 1);
  assert.equal(server.counter, 2);
  server.counter = old.counter;
  server.book = old.book;
  await assert.rejects(page.loadBook(), (e) => e.code === "contact_book_rollback");
  page.forgetBook();
  server.counter = 5;
  await assert.rejects(page.loadBook(), (e) => e instanceof CB.ContactBookError && /counter/.test(e.message));
});

test("a book of another account, or tampered, does not open", async () => {
  storeElsewhere(bookWith(["a", 1, X1, E1]));
  const raw = b64decode(server.book);
  raw[raw.length - 1] ^= 1;
  server.book = b64encode(raw);
  await assert.rejects(page.loadBook(), /does not open/);
});

test("a book left under replaced keys is lost, not fatal; the next save starts afresh", async () => {
  const old = account.keys;
  storeElsewhere(bookWith(["a", 1, X1, E1]), old);
  account = { id: USER, keys: generateKeyPairs(sodium, 2) };
  await page.loadBook();
  assert.ok(page.bookWasLost());
  await page.saveBook();
  assert.ok(!page.bookWasLost());
  assert.equal(serverBook().counter, 2);
  assert.deepEqual(serverBook().book, CB.emptyBook());
});

test("the book for a rotation is the stored one under the new keys at the next counter", async () => {
  storeElsewhere(bookWith(["a", 1, X1, E1]));
  const next = generateKeyPairs(sodium, 2);
  const body = await page.bookForRotation(next);
  assert.equal(body.counter, 2);
  const key = CB.bookKey(sodium, next.x25519Secret);
  const opened = CB.decryptBook(sodium, b64decode(body.book), USER, 2, key);
  assert.equal(opened.counter, 2);
  assert.deepEqual(Object.keys(opened.book.contacts), ["a"]);
});

test("a key pinned with other bytes is refused for an older signature too", async () => {
  storeElsewhere(bookWith(["a", 1, X1, E1]));
  await page.loadBook();
  await page.checkPinned("a", 1, X1, E1);
  await page.checkPinned("a", 2, X2, E2); // not pinned: nothing to compare
  await assert.rejects(page.checkPinned("a", 1, X2, E1), CB.EquivocationError);
});
