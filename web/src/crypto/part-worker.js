/**
 * Dedicated worker for document content (§8.12): hashes and encrypts whole parts off the
 * page's main thread, so the page stays responsive during an upload. The page starts one
 * worker per pass over a file and terminates it after the pass.
 *
 * SODIUM_URL is injected by the build: the same content-hashed libsodium file the page
 * loads with Subresource Integrity, served from the HTTP cache the second time.
 */

import { partsHandler } from "./parts.js";

/* global SODIUM_URL */
self.importScripts(SODIUM_URL);

let handle = null;

self.onmessage = async (event) => {
  try {
    if (handle === null) {
      await self.sodium.ready;
      handle ??= partsHandler(self.sodium);
    }
    const [reply, transfer] = handle(event.data);
    // Ciphertext goes back as a Blob: the page's request sends it without copying it on
    // the main thread (an ArrayBuffer body costs Chromium's main thread ~30 ms per MiB).
    if (reply.body) self.postMessage({ ...reply, body: new Blob([reply.body]) });
    else self.postMessage(reply, transfer);
  } catch (error) {
    self.postMessage({ seq: event.data?.seq, error: error?.code ?? "stream_failed", message: String(error?.message ?? "") });
  }
};
