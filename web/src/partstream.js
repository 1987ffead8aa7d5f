/**
 * Page side of the document worker (§8.12): one worker per pass over a file (the SHA-256
 * pass, then the encrypting pass), fed whole parts read from the File and transferred,
 * never copied. Parts are read and encrypted ahead of the one being uploaded, at most
 * `AHEAD` of them, so memory stays bounded while encryption and upload overlap.
 * Where the browser has no Worker, docs.js keeps its main-thread path.
 */

import { ProtocolError } from "./crypto/keys.js";
import { verifyWorker } from "./workers.js";

/* global PART_WORKER_URL, PART_WORKER_SRI */

/** Parts held (read, encrypting or encrypted) beyond the one uploading. */
export const AHEAD = 2;

/** Whether this browser can run the worker; the page path is used otherwise. */
export const workerAvailable = () => typeof globalThis.Worker === "function" && typeof PART_WORKER_URL === "string";

/** One pass over a file in its own worker; answers come back in the order asked. */
export class PartStream {
  /** Start a pass: encrypting under `fileKey` and `streamHeader`, or hashing only (both null). */
  static async open(fileKey = null, streamHeader = null) {
    await verifyWorker(PART_WORKER_URL, PART_WORKER_SRI);
    const stream = new PartStream(new Worker(PART_WORKER_URL, { name: "parts" }));
    try {
      // Cloned into the message (no copy left on the page); the caller wipes its key.
      await stream.call({ op: "start", fileKey, streamHeader });
    } catch (error) {
      stream.close();
      throw error;
    }
    return stream;
  }

  constructor(worker) {
    this.worker = worker;
    this.waiting = [];
    worker.onmessage = (event) => {
      const { resolve, reject } = this.waiting.shift();
      const data = event.data;
      if (data.error) reject(new ProtocolError(data.message || "the document worker failed", data.error));
      else resolve(data);
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      this.close(Object.assign(new Error("document worker failed"), { code: "stream_failed" }));
    };
  }

  call(message, transfer = []) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(message, transfer);
    });
  }

  /** Hash (and encrypt) one part; its plaintext `buffer` moves to the worker. */
  part(seq, buffer, last, body) {
    return this.call({ op: "part", seq, data: buffer, last, body }, [buffer]);
  }

  /** The SHA-256 of every plaintext byte passed. */
  async finish() {
    return new Uint8Array((await this.call({ op: "finish" })).digest);
  }

  /** Stop the worker; whatever was still asked fails with `error`. */
  close(error = new Error("document worker closed")) {
    this.worker.terminate();
    for (const { reject } of this.waiting.splice(0)) reject(error);
  }
}

/**
 * Pass parts 1..count through `stream` in order: `read(k)` gives {buffer, last, body}
 * and is called in order, at most AHEAD parts ahead of `consume(k, reply)`, which is
 * awaited part by part (the upload of part k).
 */
export async function pipeline(stream, count, read, consume) {
  const queue = [];
  let tail = Promise.resolve();
  const post = (k) => {
    // Post in order: part k+1 goes to the worker only after part k (the stream's order).
    const sent = tail.then(() => read(k)).then((r) => ({ reply: stream.part(k, r.buffer, r.last, r.body) }));
    tail = sent;
    const reply = sent.then((s) => s.reply);
    reply.catch(() => {});
    return reply;
  };
  let next = 1;
  for (let k = 1; k <= count; k++) {
    while (next <= count && next <= k + AHEAD) queue.push(post(next++));
    await consume(k, await queue.shift());
  }
}
