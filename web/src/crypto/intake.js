/**
 * Anonymous intake (docs/protocol.md §20): receipt words, the keys a receipt derives, the
 * report key and its sealed copies, entries, and the proof of work. Byte-compatible with
 * vault/protocol/intake.py (tests/vectors/intake.json).
 */

import { wordlist } from "@scure/bip39/wordlists/english.js";
import { ascii, bytesEqual, concat, frame, u32, u64, utf8 } from "./encoding.js";
import { DEFAULT_MEMLIMIT, DEFAULT_OPSLIMIT, KEY_BYTES, deriveSubkey } from "./kdf.js";

export const FORMAT_V1 = 1;
export const ID_BYTES = 16;
export const RECEIPT_WORDS = 12;
export const REPORTER = "reporter";
export const DANGER = ["unknown", "no", "yes"];
export const POW_NONCE_BYTES = 8;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const PAD_BLOCK = 256;
const MAX_ENTRY_PLAINTEXT = 64 * 1024;
const CTX_RECEIPT = "haven-ir";
const WORDS = wordlist; // BIP-39 English, 2048 words (MIT, via @scure/bip39)
const INDEX = new Map(WORDS.map((word, i) => [word, i]));

/** A receipt that is not twelve words of the list with a fitting checksum. */
export class ReceiptError extends Error {
  constructor(message) {
    super(message);
    this.name = "ReceiptError";
  }
}

/** The twelve BIP-39 words of 16 bytes of entropy (4 checksum bits from SHA-256). */
export function receiptWords(sodium, entropy) {
  if (entropy.length !== 16) throw new RangeError("a receipt carries 16 bytes");
  const check = sodium.crypto_hash_sha256(entropy)[0] >> 4;
  let bits = "";
  for (const byte of entropy) bits += byte.toString(2).padStart(8, "0");
  bits += check.toString(2).padStart(4, "0");
  const words = [];
  for (let i = 0; i < RECEIPT_WORDS; i++) words.push(WORDS[parseInt(bits.slice(11 * i, 11 * i + 11), 2)]);
  return words.join(" ");
}

/** A fresh receipt: 128 random bits as twelve words. */
export function newReceipt(sodium) {
  return receiptWords(sodium, sodium.randombytes_buf(16));
}

/** The 16 bytes a typed receipt stands for; case and spacing do not matter. */
export function receiptEntropy(sodium, text) {
  const words = text.toLowerCase().trim().split(/\s+/);
  if (words.length !== RECEIPT_WORDS || !words.every((w) => INDEX.has(w))) {
    throw new ReceiptError("a receipt is 12 words from the list");
  }
  const bits = words.map((w) => INDEX.get(w).toString(2).padStart(11, "0")).join("");
  const entropy = new Uint8Array(16);
  for (let i = 0; i < 16; i++) entropy[i] = parseInt(bits.slice(8 * i, 8 * i + 8), 2);
  if (parseInt(bits.slice(128), 2) !== sodium.crypto_hash_sha256(entropy)[0] >> 4) {
    throw new ReceiptError("the words do not fit together");
  }
  return entropy;
}

/** The fixed Argon2id salt of every receipt. */
export function receiptSalt(sodium) {
  return sodium.crypto_generichash(16, utf8("haven/v1/intake-receipt"), null);
}

/** The 32-byte seed of a receipt's entropy (Argon2id with the accounts' parameters). */
export function receiptSeed(sodium, entropy) {
  return sodium.crypto_pwhash(
    KEY_BYTES,
    entropy,
    receiptSalt(sodium),
    DEFAULT_OPSLIMIT,
    DEFAULT_MEMLIMIT,
    sodium.crypto_pwhash_ALG_ARGON2ID13,
  );
}

/** The lookup id: BLAKE2b-256 of the framed public keys. */
export function lookupId(sodium, boxPublic, signPublic) {
  return sodium.crypto_generichash(32, frame("haven/v1/intake-lookup", boxPublic, signPublic), null);
}

/** The box and signing key pairs of a receipt's seed, and the lookup id. */
export function receiptKeys(sodium, seed) {
  return receiptKeyPairs(sodium, deriveSubkey(sodium, seed, 1, CTX_RECEIPT), deriveSubkey(sodium, seed, 2, CTX_RECEIPT));
}

/** The key pairs and lookup id of a receipt's box and signing seeds ("haven-ir" subkeys 1, 2). */
export function receiptKeyPairs(sodium, boxSeed, signSeed) {
  const box = sodium.crypto_box_seed_keypair(boxSeed);
  const sign = sodium.crypto_sign_seed_keypair(signSeed);
  return {
    boxPublic: box.publicKey,
    boxSecret: box.privateKey,
    signSeed,
    signPublic: sign.publicKey,
    signSecret: sign.privateKey,
    lookup: lookupId(sodium, box.publicKey, sign.publicKey),
  };
}

/** 0x01 || u32(version) || crypto_box_seal(R || RK, public). */
export function sealReportKey(sodium, reportId, reportKey, version, publicKey) {
  return concat(Uint8Array.of(FORMAT_V1), u32(version), sodium.crypto_box_seal(concat(reportId, reportKey), publicKey));
}

/** Open a sealed report key made for this reader, version and report. */
export function openReportKey(sodium, blob, reportId, version, publicKey, secretKey) {
  if (blob.length !== 101 || blob[0] !== FORMAT_V1 || !bytesEqual(blob.slice(1, 5), u32(version))) {
    throw new Error("sealed report key has the wrong format or version");
  }
  const plain = sodium.crypto_box_seal_open(blob.slice(5), publicKey, secretKey);
  if (!bytesEqual(plain.slice(0, ID_BYTES), reportId)) throw new Error("sealed report key names another report");
  return plain.slice(ID_BYTES);
}

/** The framed first entry: text and the structured answers. */
export function reportPlaintext(report) {
  const danger = DANGER.indexOf(report.danger ?? "unknown");
  if (danger < 0) throw new RangeError("danger is unknown, no or yes");
  return frame(
    "haven/v1/intake-report",
    utf8(report.text),
    utf8(report.language ?? ""),
    utf8(report.contactWay ?? ""),
    utf8(report.contactTime ?? ""),
    Uint8Array.of(danger),
  );
}

/** The secretstream header of an attachment: BLAKE2b-192 of its id, keyed by its file key. */
export function attachmentStreamHeader(sodium, fileKey, attachmentId) {
  return sodium.crypto_generichash(24, frame("haven/v1/intake-stream", attachmentId), fileKey);
}

/** The framed attachment entry: id, file key, content header, name, type, size, SHA-256. */
export function attachmentPlaintext(att) {
  return frame(
    "haven/v1/intake-attachment",
    att.id,
    att.fileKey,
    att.header,
    utf8(att.name),
    ascii(att.mimeType),
    u64(att.size),
    att.sha256,
  );
}

/** The framed later entry. */
export function messagePlaintext(text) {
  return frame("haven/v1/intake-message", utf8(text));
}

function entryAd(reportId, entryId, author) {
  return frame("haven/v1/intake-entry", reportId, entryId, ascii(author));
}

/** 0x01 || nonce || XChaCha20-Poly1305(pad256(plaintext), ad, RK). */
export function sealEntry(sodium, reportKey, reportId, entryId, author, plaintext, nonce = null) {
  if (plaintext.length > MAX_ENTRY_PLAINTEXT) throw new RangeError("an entry holds at most 64 KiB");
  const n = nonce ?? sodium.randombytes_buf(NONCE_BYTES);
  const padded = new Uint8Array(Math.ceil(plaintext.length / PAD_BLOCK) * PAD_BLOCK || PAD_BLOCK);
  padded.set(plaintext);
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(padded, entryAd(reportId, entryId, author), null, n, reportKey);
  return concat(Uint8Array.of(FORMAT_V1), n, ct);
}

function readFields(data, count) {
  const fields = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > data.length) throw new Error("truncated entry");
    const size = new DataView(data.buffer, data.byteOffset + offset, 4).getUint32(0);
    offset += 4;
    if (offset + size > data.length) throw new Error("truncated entry");
    fields.push(data.slice(offset, offset + size));
    offset += size;
  }
  if (data.slice(offset).some((b) => b !== 0)) throw new Error("non-zero bytes after the entry");
  return fields;
}

/** Decrypt an entry: {report} for the first, {text} or {attachment} for the others. */
export function openEntry(sodium, reportKey, reportId, entryId, author, blob) {
  const body = blob.length - 1 - NONCE_BYTES - TAG_BYTES;
  if (blob[0] !== FORMAT_V1 || body < PAD_BLOCK || body % PAD_BLOCK) throw new Error("malformed entry");
  const padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
    null,
    blob.slice(1 + NONCE_BYTES),
    entryAd(reportId, entryId, author),
    blob.slice(1, 1 + NONCE_BYTES),
    reportKey,
  );
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const [label] = readFields(padded.slice(0, 4 + new DataView(padded.buffer, padded.byteOffset, 4).getUint32(0)), 1);
  const name = decoder.decode(label);
  if (name === "haven/v1/intake-report") {
    const [, text, language, way, time, danger] = readFields(padded, 6);
    if (danger.length !== 1 || danger[0] >= DANGER.length) throw new Error("danger is out of range");
    const [t, l, w, tm] = [text, language, way, time].map((f) => decoder.decode(f));
    return { report: { text: t, language: l, contactWay: w, contactTime: tm, danger: DANGER[danger[0]] } };
  }
  if (name === "haven/v1/intake-attachment") {
    const [, id, fileKey, header, fileName, mime, size, sha256] = readFields(padded, 8);
    if (id.length !== ID_BYTES || fileKey.length !== 32 || size.length !== 8 || sha256.length !== 32) {
      throw new Error("malformed attachment entry");
    }
    const bytes = new DataView(size.buffer, size.byteOffset, 8);
    const sizeValue = bytes.getUint32(0) * 2 ** 32 + bytes.getUint32(4);
    return { attachment: { id, fileKey, header, name: decoder.decode(fileName), mimeType: decoder.decode(mime), size: sizeValue, sha256 } };
  }
  if (name !== "haven/v1/intake-message") throw new Error("unknown entry");
  const [, text] = readFields(padded, 2);
  return { text: decoder.decode(text) };
}

/** The bytes an entry's author signs. */
export function entrySigned(reportId, entryId, author, keyVersion, blob) {
  return frame("haven/v1/intake-entry-signed", reportId, entryId, ascii(author), u32(keyVersion), blob);
}

/** The bytes a returning reporter signs. */
export function sessionSigned(challenge, lookup) {
  return frame("haven/v1/intake-session", challenge, lookup);
}

/** How many leading zero bits a digest has. */
export function leadingZeroBits(digest) {
  let count = 0;
  for (const byte of digest) {
    if (byte === 0) {
      count += 8;
      continue;
    }
    return count + Math.clz32(byte) - 24;
  }
  return count;
}

/**
 * An 8-byte nonce (little-endian counter from `start`) meeting the difficulty; null when
 * none of the `limit` counters from `start` does (so a page can yield between rounds).
 */
export function solveProof(sodium, challenge, difficulty, start = 0, limit = Infinity) {
  const input = new Uint8Array(challenge.length + POW_NONCE_BYTES);
  input.set(challenge);
  const view = new DataView(input.buffer, challenge.length, POW_NONCE_BYTES);
  for (let counter = start; counter < start + limit; counter++) {
    view.setUint32(0, counter >>> 0, true);
    view.setUint32(4, Math.floor(counter / 2 ** 32), true);
    if (leadingZeroBits(sodium.crypto_generichash(32, input, null)) >= difficulty) {
      return input.slice(challenge.length);
    }
  }
  return null;
}
