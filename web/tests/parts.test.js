/** The document worker's parts (§8.12) are byte for byte the main-thread stream of §8.2. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { before, describe, test } from "node:test";
import { b64decode, concat } from "../src/crypto/encoding.js";
import * as D from "../src/crypto/documents.js";
import { ProtocolError } from "../src/crypto/keys.js";
import { partsHandler } from "../src/crypto/parts.js";
import { AHEAD, pipeline } from "../src/partstream.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("documents");
let sodium;
before(async () => {
  sodium = await loadSodium();
});

const shake = (label, n) => new Uint8Array(createHash("shake256", { outputLength: n }).update(label).digest());
const sha256 = (b) => new Uint8Array(createHash("sha256").update(b).digest());
const fileKey = () => b64decode(v.file_key.file_key);
const streamHeader = () => b64decode(v.content.stream_header);

/** Drive the handler as the page drives the worker: parts of `plainPart` bytes, transferred. */
function workerPass(plain, plainPart, { key = fileKey(), header = streamHeader(), skip = new Set() } = {}) {
  const handle = partsHandler(sodium);
  handle({ op: "start", fileKey: key?.slice() ?? null, streamHeader: header?.slice() ?? null });
  const count = Math.max(1, Math.ceil(plain.length / plainPart));
  const bodies = [];
  const sizes = [];
  for (let k = 1; k <= count; k++) {
    const data = plain.slice((k - 1) * plainPart, k * plainPart).buffer;
    // postMessage with a transfer list, both ways: the buffers move, nothing is copied.
    const message = structuredClone({ op: "part", seq: k, data, last: k === count, body: !skip.has(k) }, { transfer: [data] });
    assert.equal(data.byteLength, 0);
    const [sent, transfer] = handle(message);
    const reply = structuredClone(sent, { transfer });
    assert.equal(reply.seq, k);
    if (reply.body) {
      assert.equal(sent.body.byteLength, 0);
      assert.equal(reply.body.byteLength, reply.size);
      bodies.push(new Uint8Array(reply.body));
    } else bodies.push(null);
    sizes.push(reply.size);
  }
  const [{ digest }] = handle({ op: "finish" });
  return { bodies, sizes, digest };
}

describe("document worker parts", () => {
  for (const c of v.content.cases) {
    test(`vector ${c.plaintext_shake256_label}: one chunk per part gives the vector's ciphertext`, () => {
      const plain = shake(c.plaintext_shake256_label, c.plaintext_size);
      const { bodies, digest } = workerPass(plain, D.CHUNK_PLAINTEXT_BYTES);
      const ciphertext = concat(...bodies);
      assert.equal(ciphertext.length, c.ciphertext_size);
      assert.equal(createHash("sha256").update(ciphertext).digest("hex"), c.ciphertext_sha256);
      assert.equal(Buffer.from(digest).toString("hex"), c.plaintext_sha256);
    });
  }

  test("several upload parts give the main-thread path's bytes, part sizes and SHA-256", () => {
    const plainPart = D.MIN_PART_CHUNKS * D.CHUNK_PLAINTEXT_BYTES;
    const plain = shake("three-parts", 2 * plainPart + 5 * D.CHUNK_PLAINTEXT_BYTES + 1234);
    const main = D.encryptContent(sodium, fileKey(), plain, streamHeader());
    const { bodies, sizes, digest } = workerPass(plain, plainPart);
    assert.deepEqual(concat(...bodies), main.ciphertext);
    const total = D.ciphertextSize(plain.length);
    assert.deepEqual(sizes, [1, 2, 3].map((k) => D.partSize(total, k, D.MIN_PART_BYTES)));
    assert.deepEqual(digest, sha256(plain));
  });

  test("a resumed upload encrypts acknowledged parts without returning them, and the rest is unchanged", () => {
    const plainPart = D.MIN_PART_CHUNKS * D.CHUNK_PLAINTEXT_BYTES;
    const plain = shake("resumed", 2 * plainPart + 777);
    const main = D.encryptContent(sodium, fileKey(), plain, streamHeader());
    const { bodies, sizes, digest } = workerPass(plain, plainPart, { skip: new Set([1]) });
    assert.equal(bodies[0], null);
    assert.equal(sizes[0], D.MIN_PART_BYTES);
    assert.deepEqual(concat(...bodies.slice(1)), main.ciphertext.subarray(D.MIN_PART_BYTES));
    assert.deepEqual(digest, sha256(plain));
  });

  test("an empty file is one empty final chunk", () => {
    const { bodies, digest } = workerPass(new Uint8Array(0), D.MIN_PART_BYTES);
    assert.deepEqual(concat(...bodies), D.encryptContent(sodium, fileKey(), new Uint8Array(0), streamHeader()).ciphertext);
    assert.deepEqual(digest, sha256(new Uint8Array(0)));
  });

  test("hashing only: the SHA-256 of the file, and no ciphertext", () => {
    const plain = shake("hash-only", 3 * 64 * D.CHUNK_PLAINTEXT_BYTES + 99);
    const { bodies, sizes, digest } = workerPass(plain, 64 * D.CHUNK_PLAINTEXT_BYTES, { key: null, header: null });
    assert.deepEqual(bodies, [null, null, null, null]);
    assert.equal(sizes.reduce((a, b) => a + b, 0), plain.length);
    assert.deepEqual(digest, sha256(plain));
  });

  test("a part that is not whole chunks before the last (a file that shrank) is refused", () => {
    const handle = partsHandler(sodium);
    handle({ op: "start", fileKey: fileKey(), streamHeader: streamHeader() });
    const data = new Uint8Array(D.CHUNK_PLAINTEXT_BYTES + 5).buffer;
    assert.throws(() => handle({ op: "part", seq: 1, data, last: false, body: true }), ProtocolError);
    const unstarted = partsHandler(sodium);
    assert.throws(() => unstarted({ op: "part", seq: 1, data: new ArrayBuffer(0), last: true, body: true }), ProtocolError);
  });
});

describe("document worker pipeline", () => {
  test("reads and posts parts in order, at most AHEAD beyond the one uploading", async () => {
    const count = 9;
    const events = [];
    let held = 0;
    let most = 0;
    const tick = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    // A stand-in for the worker: answers each part after a delay, in the order posted.
    const stream = {
      last: Promise.resolve(),
      part(seq, buffer, last, body) {
        events.push(["post", seq]);
        this.last = this.last.then(() => tick(1)).then(() => ({ seq, size: buffer.byteLength, body }));
        return this.last;
      },
    };
    // Reads finish out of order (later parts faster); posts must not.
    const read = async (k) => {
      events.push(["read", k]);
      held += 1;
      most = Math.max(most, held);
      await tick(k % 3 === 1 ? 6 : 1);
      return { buffer: new ArrayBuffer(k), last: k === count, body: true };
    };
    await pipeline(stream, count, read, async (k, reply) => {
      assert.equal(reply.seq, k);
      await tick(3); // the upload of part k
      events.push(["sent", k]);
      held -= 1;
    });
    const order = (kind) => events.filter((e) => e[0] === kind).map((e) => e[1]);
    const all = [...Array(count).keys()].map((i) => i + 1);
    assert.deepEqual(order("read"), all);
    assert.deepEqual(order("post"), all);
    assert.deepEqual(order("sent"), all);
    assert.equal(most, AHEAD + 1);
  });

  test("a failed upload stops the pipeline with its error", async () => {
    const stream = { part: async (seq) => ({ seq, size: 1 }) };
    const read = async () => ({ buffer: new ArrayBuffer(1), last: false, body: true });
    await assert.rejects(
      pipeline(stream, 5, read, async (k) => {
        if (k === 2) throw new Error("network");
      }),
      /network/,
    );
  });
});
