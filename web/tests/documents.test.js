/** Every value of tests/vectors/documents.json, byte for byte, and the refusals of §8. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { before, describe, test } from "node:test";
import { b64decode, b64encode, concat } from "../src/crypto/encoding.js";
import * as D from "../src/crypto/documents.js";
import { keyPairsFrom } from "../src/crypto/keys.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("documents");
let sodium;
before(async () => {
  sodium = await loadSodium();
});

const shake = (label, n) => new Uint8Array(createHash("shake256", { outputLength: n }).update(label).digest());
const sha256hex = (b) => createHash("sha256").update(b).digest("hex");

describe("document vectors: constants and sizes", () => {
  test("constants", () => {
    const c = v.constants;
    assert.equal(D.CHUNK_PLAINTEXT_BYTES, c.chunk_plaintext_bytes);
    assert.equal(D.CHUNK_CIPHERTEXT_BYTES, c.chunk_ciphertext_bytes);
    assert.equal(D.CHUNKS_PER_PART, c.chunks_per_part);
    assert.equal(D.PART_BYTES, c.part_bytes);
    assert.equal(D.MIN_PART_BYTES, c.min_part_bytes);
    assert.equal(D.MAX_PART_BYTES, c.max_part_bytes);
    assert.equal(D.CONTENT_HEADER_BYTES, c.content_header_bytes);
    assert.equal(D.SEALED_KEY_BYTES, c.sealed_key_bytes);
    assert.equal(D.METADATA_BLOCK, c.metadata_block);
    assert.deepEqual(D.DOCUMENT_TYPES, c.document_types);
  });
  for (const s of v.sizes) {
    test(`sizes for ${s.plaintext_size} bytes`, () => {
      assert.equal(D.chunkCount(s.plaintext_size), s.chunk_count);
      assert.equal(D.ciphertextSize(s.plaintext_size), s.ciphertext_size);
      assert.equal(D.plaintextSize(s.ciphertext_size), s.plaintext_size);
      assert.equal(D.partCount(s.ciphertext_size), s.part_count);
      assert.equal(D.partSize(s.ciphertext_size, s.part_count), s.last_part_size);
      assert.deepEqual(D.chunkRange(s.chunk_count - 1, s.ciphertext_size), s.last_chunk_range);
    });
  }
  test("impossible ciphertext sizes are refused", () => {
    for (const t of [0, 16, 65553 + 17, 65554 + 65553]) assert.throws(() => D.plaintextSize(t));
  });
});

describe("document vectors: file key and content", () => {
  test("subkeys and commitment", () => {
    const fk = v.file_key;
    const keys = D.fileKeys(sodium, b64decode(fk.file_key));
    assert.equal(b64encode(keys.content), fk.content_key);
    assert.equal(b64encode(keys.metadata), fk.metadata_key);
    assert.equal(b64encode(keys.commitment), fk.commitment);
  });
  for (const c of v.content.cases) {
    test(`content ${c.plaintext_shake256_label} (${c.plaintext_size} bytes)`, () => {
      const fileKey = b64decode(v.file_key.file_key);
      const plain = shake(c.plaintext_shake256_label, c.plaintext_size);
      assert.equal(sha256hex(plain), c.plaintext_sha256);
      const { header, ciphertext } = D.encryptContent(sodium, fileKey, plain, b64decode(v.content.stream_header));
      assert.equal(b64encode(header), c.content_header);
      assert.equal(ciphertext.length, c.ciphertext_size);
      assert.equal(sha256hex(ciphertext), c.ciphertext_sha256);
      const n = D.chunkCount(c.plaintext_size);
      if (c.final_chunk) assert.equal(b64encode(ciphertext.subarray(D.chunkRange(n - 1, ciphertext.length)[0])), c.final_chunk);
      if (c.ciphertext) assert.equal(b64encode(ciphertext), c.ciphertext);
      assert.deepEqual(D.decryptContent(sodium, fileKey, header, ciphertext), plain);
    });
  }
  test("tampered, truncated, extended and reordered streams are refused", () => {
    const fileKey = b64decode(v.file_key.file_key);
    const plain = shake("passport-scan", 2 * 65536 + 1000);
    const { header, ciphertext } = D.encryptContent(sodium, fileKey, plain);
    const flipped = ciphertext.slice();
    flipped[70000] ^= 1;
    assert.throws(() => D.decryptContent(sodium, fileKey, header, flipped), D.TamperedContent);
    assert.throws(() => D.decryptContent(sodium, fileKey, header, ciphertext.subarray(0, 2 * 65553)), D.TamperedContent);
    const extended = concat(ciphertext, ciphertext.subarray(0, 17));
    assert.throws(() => D.decryptContent(sodium, fileKey, header, extended), D.TamperedContent);
    const swapped = concat(ciphertext.subarray(65553, 2 * 65553), ciphertext.subarray(0, 65553), ciphertext.subarray(2 * 65553));
    assert.throws(() => D.decryptContent(sodium, fileKey, header, swapped), D.TamperedContent);
    const other = D.generateFileKey(sodium);
    assert.throws(() => D.decryptContent(sodium, other, header, ciphertext), /commitment/);
  });
  test("restarting a stream from its header gives the same ciphertext", () => {
    const fileKey = D.generateFileKey(sodium);
    const plain = shake("resume", 3 * 65536 + 5);
    const first = D.encryptContent(sodium, fileKey, plain);
    const again = D.encryptContent(sodium, fileKey, plain, first.header.subarray(33));
    assert.deepEqual(again.header, first.header);
    assert.deepEqual(again.ciphertext, first.ciphertext);
  });
});

describe("document vectors: metadata, signature, sealed key", () => {
  const m = () => v.metadata;
  const info = () => ({
    name: m().name,
    mimeType: m().mime_type,
    size: m().size,
    docType: m().doc_type,
    expiresOn: m().expires_on,
    sha256: b64decode(m().sha256),
  });
  test("metadata plaintext, associated data and envelope", () => {
    const header = b64decode(v.signature.content_header);
    const id = b64decode(m().document_id);
    assert.equal(b64encode(D.encodeInfo(info())), m().plaintext);
    assert.equal(b64encode(D.metadataAd(id, m().case_id, m().uploader_id, header)), m().associated_data);
    const fileKey = b64decode(v.file_key.file_key);
    const env = D.sealMetadata(sodium, info(), fileKey, id, m().case_id, m().uploader_id, header, b64decode(m().nonce));
    assert.equal(b64encode(env), m().envelope);
    const opened = D.openMetadata(sodium, env, fileKey, id, m().case_id, m().uploader_id, header);
    assert.deepEqual(opened, info());
    assert.throws(() => D.openMetadata(sodium, env, fileKey, id, "case-other", m().uploader_id, header));
    assert.throws(() => D.openMetadata(sodium, env, fileKey, id, m().case_id, "user-other", header));
  });
  test("metadata rules", () => {
    for (const bad of [{ name: "" }, { name: "a/b" }, { name: ".." }, { name: "a\u0001" }, { mimeType: "Image/PNG" },
      { docType: "diary" }, { expiresOn: "2031-02-30" }, { sha256: new Uint8Array(31) }]) {
      assert.throws(() => D.encodeInfo({ ...info(), ...bad }));
    }
    const padded = D.encodeInfo(info());
    const dirty = padded.slice();
    dirty[dirty.length - 1] = 1;
    assert.throws(() => D.decodeInfo(dirty), /padding/);
    assert.equal(D.encodeInfo({ ...info(), name: "x".repeat(255) }).length % 256, 0);
  });
  test("metadata frame of exactly 256 bytes: no padding, one block, 297-byte envelope", () => {
    const f = v.metadata_full_block;
    const header = b64decode(v.signature.content_header);
    const id = b64decode(m().document_id);
    const fileKey = b64decode(v.file_key.file_key);
    const full = { ...info(), name: f.name };
    const enc = new TextEncoder();
    const fields = [enc.encode(f.name), enc.encode(full.mimeType), new Uint8Array(8), enc.encode(full.docType), enc.encode(full.expiresOn), full.sha256];
    const frameBytes = 4 + "haven/v1/document-info".length + fields.reduce((n, x) => n + 4 + x.length, 0);
    assert.equal(frameBytes, 256);
    const plain = D.encodeInfo(full);
    assert.equal(plain.length, f.plaintext_bytes);
    assert.equal(plain.length, D.METADATA_BLOCK);
    assert.equal(b64encode(plain), f.plaintext);
    const env = D.sealMetadata(sodium, full, fileKey, id, m().case_id, m().uploader_id, header, b64decode(f.nonce));
    assert.equal(env.length, 297);
    assert.equal(b64encode(env), f.envelope);
    assert.deepEqual(D.openMetadata(sodium, env, fileKey, id, m().case_id, m().uploader_id, header), full);
  });
  test("signed message and signature", () => {
    const s = v.signature;
    const record = {
      documentId: b64decode(m().document_id),
      caseId: m().case_id,
      uploaderId: m().uploader_id,
      keyVersion: s.key_version,
      header: b64decode(s.content_header),
      ciphertextSize: s.ciphertext_size,
      metadata: b64decode(m().envelope),
    };
    assert.equal(b64encode(D.signedMessage(record)), s.signed_message);
    const keys = keyPairsFrom(sodium, s.key_version, new Uint8Array(32), b64decode(s.uploader_ed25519_seed));
    assert.equal(b64encode(keys.ed25519Public), s.uploader_ed25519);
    assert.equal(b64encode(D.signDocument(sodium, record, keys)), s.signature);
    D.verifyDocument(sodium, record, keys.ed25519Public, b64decode(s.signature));
    assert.throws(() => D.verifyDocument(sodium, { ...record, ciphertextSize: 1 }, keys.ed25519Public, b64decode(s.signature)));
  });
  test("sealed file key: reproduced with the ephemeral key, opened by the reader", () => {
    const k = v.sealed_key;
    const reader = keyPairsFrom(sodium, k.reader_key_version, b64decode(k.reader_x25519_secret), new Uint8Array(32));
    assert.equal(b64encode(reader.x25519Public), k.reader_x25519);
    const id = b64decode(m().document_id);
    const fileKey = b64decode(v.file_key.file_key);
    const esk = b64decode(k.ephemeral_secret);
    const epk = sodium.crypto_scalarmult_base(esk);
    const nonce = sodium.crypto_generichash(24, concat(epk, reader.x25519Public), null);
    const box = sodium.crypto_box_easy(concat(id, fileKey), nonce, reader.x25519Public, esk);
    const sealed = concat(Uint8Array.of(1, 0, 0, 0, k.reader_key_version), epk, box);
    assert.equal(b64encode(sealed), k.sealed);
    assert.equal(D.sealedKeyVersion(sealed), k.reader_key_version);
    assert.deepEqual(D.openFileKey(sodium, b64decode(k.sealed), id, reader), fileKey);
    assert.throws(() => D.openFileKey(sodium, sealed, new Uint8Array(16), reader), /another document/);
    assert.throws(() => D.openFileKey(sodium, sealed, id, { ...reader, version: 1 }), /version/);
    const mine = D.sealFileKey(sodium, fileKey, id, reader.x25519Public, reader.version);
    assert.equal(mine.length, D.SEALED_KEY_BYTES);
    assert.deepEqual(D.openFileKey(sodium, mine, id, reader), fileKey);
  });
});
