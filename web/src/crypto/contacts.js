/**
 * The contact book (docs/protocol.md §16), as vault/protocol/contacts.py: every contact
 * key this account has seen, which it accepted and which it verified by safety number,
 * and the newest key-log head it verified, encrypted under a key derived from its own
 * X25519 secret. The server stores the blob and a counter and can read neither.
 */

import { b64decode, b64encode, bytesEqual, concat, frame, u32, u64, utf8 } from "./encoding.js";
import { deriveSubkey } from "./kdf.js";
import { ProtocolError } from "./keys.js";

export const FORMAT_V1 = 1;
export const BOOK_VERSION = 1;
export const LABEL_BOOK = "haven/v1/contact-book";
export const CTX_BOOK = "haven-cb";
export const SUBKEY_BOOK = 1;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const HEADER_BYTES = 1 + 4 + 8 + NONCE_BYTES;
export const MIN_BLOB_BYTES = HEADER_BYTES + TAG_BYTES;
export const MAX_BLOB_BYTES = 256 * 1024;
const MAX_U32 = 0xffffffff;
const MAX_COUNTER = Number.MAX_SAFE_INTEGER;
const MAX_ID_CHARS = 64;

/** The book does not open, is not in the canonical shape, or breaks a rule. */
export class ContactBookError extends ProtocolError {
  constructor(message, code = "contact_book") {
    super(message, code);
    this.name = "ContactBookError";
  }
}

/** A contact's key version was shown with other bytes than the ones pinned for it. */
export class EquivocationError extends ContactBookError {
  constructor(message) {
    super(message, "equivocation");
    this.name = "EquivocationError";
  }
}

/** book_key(v) = crypto_kdf_derive_from_key(32, 1, "haven-cb", x25519_secret of v). */
export const bookKey = (sodium, x25519Secret) => deriveSubkey(sodium, x25519Secret, SUBKEY_BOOK, CTX_BOOK);

/** frame("haven/v1/contact-book", utf8(user_id), u32(v), u64(counter)). */
export const bookAd = (userId, version, counter) => frame(LABEL_BOOK, utf8(userId), u32(version), u64(counter));

/** A book with no contacts and no pinned head. */
export const emptyBook = () => ({ contacts: {}, head: null, version: BOOK_VERSION });

const plain = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** Canonical JSON text: sorted keys, no spaces; integers only. */
export function canonicalJson(value) {
  if (value === null || typeof value === "string" || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new ContactBookError("only integers belong in the book");
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (plain(value)) {
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  throw new ContactBookError("the book holds a value JSON cannot carry");
}

function int(value, what, low, high) {
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new ContactBookError(`${what} must be an integer within ${low}..${high}`);
  }
  return value;
}

function key32(value, what) {
  let bytes;
  try {
    bytes = b64decode(value);
  } catch {
    throw new ContactBookError(`${what} is not canonical base64url`);
  }
  if (bytes.length !== 32) throw new ContactBookError(`${what} must be 32 bytes`);
}

function exactKeys(value, names, what) {
  const keys = plain(value) ? Object.keys(value).sort() : null;
  if (!keys || keys.join(",") !== [...names].sort().join(",")) {
    throw new ContactBookError(`${what} must have exactly the fields ${[...names].sort().join(", ")}`);
  }
  return value;
}

/** Refuse anything that is not a book in the shape of §16; return it unchanged. */
export function checkBook(book) {
  exactKeys(book, ["contacts", "head", "version"], "the book");
  if (book.version !== BOOK_VERSION) throw new ContactBookError(`unsupported contact book version ${book.version}`);
  if (book.head !== null) {
    exactKeys(book.head, ["root", "size"], "head");
    key32(book.head.root, "head.root");
    int(book.head.size, "head.size", 0, MAX_COUNTER);
  }
  if (!plain(book.contacts)) throw new ContactBookError("contacts must be an object");
  for (const [userId, contact] of Object.entries(book.contacts)) {
    if (userId.length < 1 || userId.length > MAX_ID_CHARS) throw new ContactBookError("a contact id has the wrong length");
    exactKeys(contact, ["acknowledged", "keys", "username", "verified"], `contact ${userId}`);
    if (typeof contact.username !== "string" || !contact.username) throw new ContactBookError(`contact ${userId}: username must be a string`);
    if (!plain(contact.keys) || Object.keys(contact.keys).length === 0) {
      throw new ContactBookError(`contact ${userId}: keys must be a non-empty object`);
    }
    const versions = new Set();
    for (const [text, record] of Object.entries(contact.keys)) {
      if (!/^[0-9]+$/.test(text) || String(Number(text)) !== text) throw new ContactBookError(`contact ${userId}: key versions are decimal integers`);
      versions.add(int(Number(text), `contact ${userId}`, 1, MAX_U32));
      exactKeys(record, ["ed25519", "x25519"], `contact ${userId} key ${text}`);
      key32(record.ed25519, `contact ${userId} key ${text} ed25519`);
      key32(record.x25519, `contact ${userId} key ${text} x25519`);
    }
    if (!versions.has(int(contact.acknowledged, "acknowledged", 1, MAX_U32))) {
      throw new ContactBookError(`contact ${userId}: acknowledged names no pinned version`);
    }
    if (contact.verified !== null && !versions.has(int(contact.verified, "verified", 1, MAX_U32))) {
      throw new ContactBookError(`contact ${userId}: verified names no pinned version`);
    }
  }
  return book;
}

/** The canonical plaintext of a checked book. */
export const encodeBook = (book) => utf8(canonicalJson(checkBook(book)));

/** Parse a plaintext book; refuse it unless it is checked and canonical. */
export function decodeBook(plaintext) {
  let text;
  let book;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(plaintext);
    book = JSON.parse(text);
  } catch {
    throw new ContactBookError("the book is not JSON");
  }
  checkBook(book);
  if (canonicalJson(book) !== text) throw new ContactBookError("the book is not canonical JSON");
  return book;
}

/** The key version and counter a blob names (not yet authenticated). */
export function parseHeader(blob) {
  if (blob.length < MIN_BLOB_BYTES) throw new ContactBookError("the contact book is too short");
  if (blob.length > MAX_BLOB_BYTES) throw new ContactBookError("the contact book is too large");
  if (blob[0] !== FORMAT_V1) throw new ContactBookError(`unknown contact book format ${blob[0]}`);
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const version = view.getUint32(1, false);
  const counter = view.getBigUint64(5, false);
  if (version < 1 || counter < 1n || counter > BigInt(MAX_COUNTER)) {
    throw new ContactBookError("the contact book names an impossible version or counter");
  }
  return { version, counter: Number(counter) };
}

/** 0x01 || u32(v) || u64(counter) || nonce || AEAD(plaintext, ad, nonce, book_key(v)). */
export function encryptBook(sodium, book, userId, version, counter, key, nonce = null) {
  int(counter, "counter", 1, MAX_COUNTER);
  int(version, "version", 1, MAX_U32);
  const n = nonce ?? sodium.randombytes_buf(NONCE_BYTES);
  const sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(encodeBook(book), bookAd(userId, version, counter), null, n, key);
  const blob = concat(Uint8Array.of(FORMAT_V1), u32(version), u64(counter), n, sealed);
  if (blob.length > MAX_BLOB_BYTES) throw new ContactBookError("the contact book is too large");
  return blob;
}

/** Open a blob under book_key(version); return {counter, book}. */
export function decryptBook(sodium, blob, userId, version, key) {
  const header = parseHeader(blob);
  if (header.version !== version) {
    throw new ContactBookError(`the contact book is under key version ${header.version}, not ${version}`);
  }
  let plaintext;
  try {
    plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      blob.subarray(HEADER_BYTES),
      bookAd(userId, version, header.counter),
      blob.subarray(13, HEADER_BYTES),
      key,
    );
  } catch {
    throw new ContactBookError("the contact book does not open with my keys");
  }
  return { counter: header.counter, book: decodeBook(plaintext) };
}

// -- operations on a book ------------------------------------------------------------

/** The newest key version pinned for a contact. */
export const newest = (contact) => Math.max(...Object.keys(contact.keys).map(Number));

const samePinned = (record, x25519, ed25519) => record.x25519 === b64encode(x25519) && record.ed25519 === b64encode(ed25519);

/**
 * Pin a contact's (verified) key record on first use; return "new", "same" or
 * "changed" (a newer version than the acknowledged one). A version pinned with other
 * bytes throws EquivocationError; so does a `current` record older than one already seen.
 */
export function pin(book, userId, username, version, x25519, ed25519, { current = true } = {}) {
  int(version, "version", 1, MAX_U32);
  const entry = { ed25519: b64encode(ed25519), x25519: b64encode(x25519) };
  const contact = book.contacts[userId];
  if (!contact) {
    book.contacts[userId] = { acknowledged: version, keys: { [String(version)]: entry }, username, verified: null };
    return "new";
  }
  const known = contact.keys[String(version)];
  if (known && !samePinned(known, x25519, ed25519)) {
    throw new EquivocationError(`${contact.username}'s key version ${version} was shown before with other keys`);
  }
  if (current && version < newest(contact)) {
    throw new EquivocationError(`${contact.username}'s keys are shown at version ${version}, older than version ${newest(contact)} already seen`);
  }
  contact.keys[String(version)] = entry;
  contact.username = username;
  return version > contact.acknowledged ? "changed" : "same";
}

/** Whether the contact's newest keys are newer than the ones the user accepted. */
export function needsAcknowledgement(book, userId) {
  const contact = book.contacts[userId];
  return Boolean(contact) && newest(contact) > contact.acknowledged;
}

/** The user accepts the contact's newest keys for encrypting. */
export function acknowledge(book, userId) {
  const contact = book.contacts[userId];
  contact.acknowledged = newest(contact);
}

/** The user compared the safety number at `version` (the newest; it is acknowledged too). */
export function markVerified(book, userId, version) {
  const contact = book.contacts[userId];
  if (!contact || version !== newest(contact)) throw new ContactBookError("only the contact's newest keys can be marked verified");
  contact.verified = version;
  contact.acknowledged = version;
}

/** Whether the safety number was compared for the contact's newest keys. */
export function isVerified(book, userId) {
  const contact = book.contacts[userId];
  return Boolean(contact) && contact.verified === newest(contact);
}

/** Pin a newer verified key-log head; refuse a smaller one or another root at one size. */
export function setHead(book, size, root) {
  const head = book.head;
  if (head) {
    if (size < head.size) throw new ContactBookError("the key log is smaller than the head this account pinned");
    if (size === head.size && !bytesEqual(b64decode(head.root), root)) {
      throw new EquivocationError("the key log shows another root at the size already pinned");
    }
  }
  book.head = { root: b64encode(root), size };
}

/**
 * Join two books (mine changed locally, theirs newer on the server): every pinned key,
 * the later acknowledgement and verification, the larger head. Conflicting bytes for one
 * (contact, version) or two roots at one size throw EquivocationError.
 */
export function merge(mine, theirs) {
  const out = JSON.parse(canonicalJson(theirs));
  for (const [userId, contact] of Object.entries(mine.contacts)) {
    const other = out.contacts[userId];
    if (!other) {
      out.contacts[userId] = JSON.parse(canonicalJson(contact));
      continue;
    }
    for (const [text, record] of Object.entries(contact.keys)) {
      const seen = other.keys[text];
      if (seen && (seen.x25519 !== record.x25519 || seen.ed25519 !== record.ed25519)) {
        throw new EquivocationError(`${contact.username}'s key version ${text} differs`);
      }
      other.keys[text] = { ...record };
    }
    other.acknowledged = Math.max(other.acknowledged, contact.acknowledged);
    const verified = [other.verified, contact.verified].filter((v) => v !== null);
    other.verified = verified.length ? Math.max(...verified) : null;
  }
  if (mine.head && (!out.head || mine.head.size >= out.head.size)) setHead(out, mine.head.size, b64decode(mine.head.root));
  return checkBook(out);
}
