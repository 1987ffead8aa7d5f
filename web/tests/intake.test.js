/** Anonymous intake (§20): every value of tests/vectors/intake.json, byte for byte. */

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { decryptContent, encryptContent } from "../src/crypto/documents.js";
import {
  attachmentPlaintext,
  attachmentStreamHeader,
  entrySigned,
  leadingZeroBits,
  messagePlaintext,
  newReceipt,
  openEntry,
  openReportKey,
  receiptEntropy,
  receiptKeyPairs,
  receiptKeys,
  receiptSalt,
  receiptSeed,
  receiptWords,
  reportPlaintext,
  sealEntry,
  sealReportKey,
  sessionSigned,
  solveProof,
} from "../src/crypto/intake.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("intake");
let sodium;

before(async () => {
  sodium = await loadSodium();
});

test("the receipt's words, salt, keys and lookup id", () => {
  const r = v.receipt;
  assert.equal(receiptWords(sodium, b64decode(r.entropy)), r.words);
  assert.equal(b64encode(receiptEntropy(sodium, `  ${r.words.toUpperCase().replaceAll(" ", "   ")} `)), r.entropy);
  assert.equal(b64encode(receiptSalt(sodium)), r.salt);
  const keys = receiptKeys(sodium, receiptSeed(sodium, b64decode(r.entropy)));
  assert.equal(b64encode(keys.boxPublic), r.box_public);
  assert.equal(b64encode(keys.boxSecret), r.box_secret);
  assert.equal(b64encode(keys.signSeed), r.sign_seed);
  assert.equal(b64encode(keys.signPublic), r.sign_public);
  assert.equal(b64encode(keys.lookup), r.lookup);
  const signature = sodium.crypto_sign_detached(sessionSigned(b64decode(v.session.challenge), keys.lookup), keys.signSecret);
  assert.equal(b64encode(signature), v.session.signature);
});

test("a receipt with a wrong word or a wrong checksum is refused", () => {
  const words = v.receipt.words.split(" ");
  assert.throws(() => receiptEntropy(sodium, [...words.slice(0, 11), "notaword"].join(" ")), /12 words/);
  const swapped = [words[1], words[0], ...words.slice(2)].join(" ");
  assert.throws(() => receiptEntropy(sodium, swapped), /fit together/);
  assert.equal(receiptEntropy(sodium, newReceipt(sodium)).length, 16);
});

test("the report entry, its signature and a reply", () => {
  const e = v.entry;
  const report = { text: e.text, language: e.language, contactWay: e.contact_way, contactTime: e.contact_time, danger: e.danger };
  const plain = reportPlaintext(report);
  assert.equal(b64encode(plain), e.plaintext);
  const [rid, eid, rk] = [b64decode(e.report_id), b64decode(e.entry_id), b64decode(e.report_key)];
  const blob = sealEntry(sodium, rk, rid, eid, "reporter", plain, b64decode(e.nonce));
  assert.equal(b64encode(blob), e.ciphertext);
  assert.deepEqual(openEntry(sodium, rk, rid, eid, "reporter", blob), { report });
  const keys = receiptKeys(sodium, receiptSeed(sodium, b64decode(v.receipt.entropy)));
  const signature = sodium.crypto_sign_detached(entrySigned(rid, eid, "reporter", 0, blob), keys.signSecret);
  assert.equal(b64encode(signature), e.signature);
  const r = v.reply;
  const reply = sealEntry(sodium, rk, rid, b64decode(r.entry_id), r.author, messagePlaintext(r.text), b64decode(r.nonce));
  assert.equal(b64encode(reply), r.ciphertext);
  assert.deepEqual(openEntry(sodium, rk, rid, b64decode(r.entry_id), r.author, reply), { text: r.text });
  assert.throws(() => openEntry(sodium, rk, rid, b64decode(r.entry_id), "reporter", reply));
  const sealed = sealReportKey(sodium, rid, rk, 0, keys.boxPublic);
  assert.deepEqual(openReportKey(sodium, sealed, rid, 0, keys.boxPublic, keys.boxSecret), rk);
});

test("the proof of work", () => {
  const p = v.pow;
  const nonce = solveProof(sodium, b64decode(p.challenge), p.difficulty);
  assert.equal(b64encode(nonce), p.nonce);
  const digest = sodium.crypto_generichash(32, new Uint8Array([...b64decode(p.challenge), ...nonce]), null);
  assert.equal(b64encode(digest), p.digest);
  assert.ok(leadingZeroBits(digest) >= p.difficulty);
});

test("the proof of work in slices (the page yields between them) finds the same nonce", () => {
  const p = v.pow;
  const challenge = b64decode(p.challenge);
  let nonce = null;
  let start = 0;
  for (; nonce === null; start += 64) nonce = solveProof(sodium, challenge, p.difficulty, start, 64);
  assert.equal(b64encode(nonce), p.nonce);
  const counter = new DataView(nonce.buffer, nonce.byteOffset, 8).getUint32(0, true);
  if (counter >= 64) assert.equal(solveProof(sodium, challenge, p.difficulty, 0, counter), null);
});

test("the key pairs of a receipt's two seeds are those of its seed", () => {
  const seed = receiptSeed(sodium, b64decode(v.receipt.entropy));
  const boxSeed = sodium.crypto_kdf_derive_from_key(32, 1, "haven-ir", seed);
  const signSeed = sodium.crypto_kdf_derive_from_key(32, 2, "haven-ir", seed);
  assert.deepEqual(receiptKeyPairs(sodium, boxSeed, signSeed), receiptKeys(sodium, seed));
});

test("an attachment: its stream header, content and entry", () => {
  const a = v.attachment;
  const [rid, rk] = [b64decode(v.entry.report_id), b64decode(v.entry.report_key)];
  const [id, fileKey] = [b64decode(a.id), b64decode(a.file_key)];
  const streamHeader = attachmentStreamHeader(sodium, fileKey, id);
  assert.equal(b64encode(streamHeader), a.stream_header);
  const { header, ciphertext } = encryptContent(sodium, fileKey, b64decode(a.plaintext), streamHeader);
  assert.equal(b64encode(header), a.header);
  assert.equal(b64encode(ciphertext), a.content);
  assert.deepEqual(decryptContent(sodium, fileKey, header, ciphertext), b64decode(a.plaintext));
  const att = { id, fileKey, header, name: a.name, mimeType: a.mime_type, size: a.size, sha256: b64decode(a.sha256) };
  const blob = sealEntry(sodium, rk, rid, b64decode(a.entry_id), "reporter", attachmentPlaintext(att), b64decode(a.nonce));
  assert.equal(b64encode(blob), a.ciphertext);
  assert.deepEqual(openEntry(sodium, rk, rid, b64decode(a.entry_id), "reporter", blob), { attachment: att });
});
