/**
 * The contact book in the page (docs/protocol.md §16), mirroring vault/client/contacts.py.
 * The page keeps no local storage, so every contact key it has seen, which the person
 * accepted and which they verified by safety number, and the newest key-log head it
 * verified live in one encrypted book on the server, loaded at sign-in. In memory only;
 * forgetBook() drops it (lock, logout, quick exit).
 */

import { ApiError, get, request } from "./api.js";
import * as CB from "./crypto/contacts.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import { verifyPublicRecord } from "./crypto/keys.js";
import { TransparencyError } from "./crypto/transparency.js";
import { setHeadStore, verifyContactHistory, verifyLoggedKey } from "./directory.js";
import { sodiumReady } from "./sodium.js";

export { ContactBookError, EquivocationError } from "./crypto/contacts.js";

/** Saves retried after a conflict (another session of the account saved meanwhile). */
export const ATTEMPTS = 5;

/** A contact's keys changed and the person has not accepted the new ones yet. */
export class KeyChangedError extends Error {
  constructor(contacts) {
    super(`keys changed: ${contacts.map((c) => c.username).join(", ")}`);
    this.name = "KeyChangedError";
    this.code = "key_changed";
    this.contacts = contacts;
  }
}

let account = () => null;
let state = null; // {userId, book, counter, lost}
let highest = 0; // the highest authenticated counter seen this session
let queue = Promise.resolve();

/**
 * Run `task` after every book operation this page started before it. One load, change or
 * save at a time: a load sent before this page's own save would otherwise come back older
 * than the book just saved (taken for a rollback), or replace the book in memory and lose
 * the change of the operation that overlapped it.
 */
function serial(task) {
  const run = queue.then(task, task);
  queue = run.catch(() => {});
  return run;
}

/** Where the signed-in account (id and key pairs) comes from. */
export function attachAccount(getAccount) {
  account = getAccount;
}

/** Forget the book (lock, logout, another account). */
export function forgetBook() {
  state = null;
  highest = 0;
}

function me() {
  const acct = account();
  if (!acct) throw new ApiError(401, "unauthorized", "sign in first");
  return acct;
}

async function fetchBook(sodium, acct) {
  const data = await get("/account/contact-book");
  const { counter, book } = data ?? {};
  if (!Number.isSafeInteger(counter) || counter < 0) throw new CB.ContactBookError("the server's contact book counter is not a count");
  if (book === null) {
    if (counter !== 0) throw new CB.ContactBookError("the server lists a counter but no contact book");
    return { userId: acct.id, book: CB.emptyBook(), counter: 0, lost: false };
  }
  const blob = b64decode(book);
  const { version } = CB.parseHeader(blob);
  // A rotation that did not carry the book left it under keys this page does not hold.
  if (version < acct.keys.version) return { userId: acct.id, book: CB.emptyBook(), counter, lost: true };
  const key = CB.bookKey(sodium, acct.keys.x25519Secret);
  try {
    const opened = CB.decryptBook(sodium, blob, acct.id, acct.keys.version, key);
    if (opened.counter !== counter) throw new CB.ContactBookError("the contact book's counter is not the one the server lists");
    return { userId: acct.id, book: opened.book, counter, lost: false };
  } finally {
    sodium.memzero(key);
  }
}

/** Fetch and open the stored book; refuse one older than any this page saw (a rollback). */
export const loadBook = () => serial(loadNow);

async function loadNow() {
  const sodium = await sodiumReady();
  const acct = me();
  const loaded = await fetchBook(sodium, acct);
  if (state && state.userId !== acct.id) forgetBook();
  if (loaded.counter < highest) {
    throw new CB.ContactBookError(`the server answered contact book ${loaded.counter}, older than ${highest} seen before`, "contact_book_rollback");
  }
  highest = loaded.counter;
  state = loaded;
  return state;
}

/** Inside serial(): the book in memory, loaded first if it is not this account's. */
async function ensureLoaded() {
  const acct = me();
  if (!state || state.userId !== acct.id) await loadNow();
  return state;
}

function encrypt(sodium, book, acct, keys, counter) {
  const key = CB.bookKey(sodium, keys.x25519Secret);
  try {
    return b64encode(CB.encryptBook(sodium, book, acct.id, keys.version, counter, key));
  } finally {
    sodium.memzero(key);
  }
}

async function saveNow() {
  const sodium = await sodiumReady();
  const acct = me();
  for (let attempt = 1; ; attempt++) {
    const counter = state.counter + 1;
    try {
      await request("PUT", "/account/contact-book", { counter, book: encrypt(sodium, state.book, acct, acct.keys, counter) });
      state.counter = counter;
      state.lost = false;
      highest = Math.max(highest, counter);
      return;
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== "contact_book_conflict" || attempt >= ATTEMPTS) throw error;
      const mine = state.book;
      await loadNow();
      state.book = CB.merge(mine, state.book);
    }
  }
}

/** Store the book as counter + 1 (one save at a time; on a conflict load, merge, retry). */
export const saveBook = () => serial(saveNow);

/** Load if needed, apply `mutate`, save if it changed anything: all as one operation. */
function change(mutate) {
  return serial(async () => {
    const current = await ensureLoaded();
    const before = CB.canonicalJson(current.book);
    const result = mutate(current.book);
    if (CB.canonicalJson(current.book) !== before) await saveNow();
    return result;
  });
}

/**
 * Check a contact's current key record the way every send and share does: self-signature,
 * inclusion in the key log, the log's publish history for them, then the pin. Returns
 * {record, status, changed, verified}; throws EquivocationError (never encrypt to them).
 */
export async function inspectContact(userId, username, published) {
  const sodium = await sodiumReady();
  let record = verifyPublicRecord(sodium, published, username);
  await verifyLoggedKey(userId, published);
  const newer = await verifyContactHistory(userId, record);
  if (newer) {
    // They replaced their keys after `published` was read: the newer record, checked the
    // same way, is the one to pin and seal to (§12.5 step 4); a second change is refused.
    record = verifyPublicRecord(sodium, newer, username);
    await verifyLoggedKey(userId, newer);
    if (await verifyContactHistory(userId, record)) throw new TransparencyError(`the keys of ${username} changed twice while they were checked`);
  }
  const status = await change((book) => CB.pin(book, userId, username, record.version, record.x25519, record.ed25519));
  return { record, status, changed: CB.needsAcknowledgement(state.book, userId), verified: CB.isVerified(state.book, userId) };
}

/**
 * Before sealing anything to `members` ([{user_id, username, public_keys}], not me):
 * inspect each; throw KeyChangedError listing those whose new keys are not accepted yet.
 * Returns the checked records by user id.
 */
export async function trustContacts(members) {
  const records = {};
  const changed = [];
  for (const m of members) {
    const seen = await inspectContact(m.user_id, m.username, m.public_keys);
    records[m.user_id] = seen.record;
    if (seen.changed) changed.push({ userId: m.user_id, username: m.username, version: seen.record.version });
  }
  if (changed.length) throw new KeyChangedError(changed);
  return records;
}

/**
 * A key of an older version (a signature made before a rotation): refuse it if that
 * version was pinned with other bytes; nothing is pinned or saved.
 */
export async function checkPinned(userId, version, x25519, ed25519) {
  const current = await serial(ensureLoaded);
  const pinned = current.book.contacts[userId]?.keys[String(version)];
  if (pinned && (pinned.x25519 !== b64encode(x25519) || pinned.ed25519 !== b64encode(ed25519))) {
    throw new CB.EquivocationError(`key version ${version} of ${current.book.contacts[userId].username} was shown before with other keys`);
  }
}

/** The person accepts a contact's newest keys for encrypting. */
export const acknowledgeContact = (userId) => change((book) => CB.acknowledge(book, userId));

/** The person compared the safety number for the contact's keys at `version`. */
export const markContactVerified = (userId, version) => change((book) => CB.markVerified(book, userId, version));

/** Whether the safety number was compared for the contact's newest keys. */
export const isContactVerified = (userId) => Boolean(state) && CB.isVerified(state.book, userId);

/** Whether the contact's keys changed since the person last accepted them. */
export const contactNeedsAcknowledgement = (userId) => Boolean(state) && CB.needsAcknowledgement(state.book, userId);

/** Whether the stored book could not be opened (left under replaced keys) and began again. */
export const bookWasLost = () => state?.lost === true;

/**
 * `contact_book` for POST /account/keys (§14, §16): the stored book, loaded afresh,
 * encrypted under the new key pairs with the next counter.
 */
export async function bookForRotation(newKeys) {
  const sodium = await sodiumReady();
  const acct = me();
  const current = await loadBook();
  const counter = current.counter + 1;
  return { counter, book: encrypt(sodium, current.book, acct, newKeys, counter) };
}

// The newest verified key-log head is pinned in the book too (§16 rule 5), so a page
// with no memory of its own still refuses a log smaller than one this account saw.
setHeadStore({
  head: () => (state?.book.head ? { size: state.book.head.size, root: b64decode(state.book.head.root) } : null),
  pin: async (size, root) => {
    if (!state || state.userId !== account()?.id) return;
    await change((book) => CB.setHead(book, size, root));
  },
});
