/**
 * The work of the document worker (§8.12), pure so node tests drive it: SHA-256 of the
 * plaintext and secretstream encryption of whole parts, in the exact chunks and tags of
 * §8.2, byte for byte what ContentEncryptor gives one chunk at a time on the page.
 *
 * Messages, in order, each answered before the next is read:
 *   {op: "start", fileKey, streamHeader}  streamHeader null: hash only (no encryption)
 *   {op: "part", seq, data: ArrayBuffer, last, body}  → {seq, size, body?: ArrayBuffer}
 *   {op: "finish"}  → {digest: Uint8Array}, and every key and state wiped
 * `data` is a run of whole 64 KiB plaintext chunks (the last part's last chunk may be
 * shorter); `size` is the ciphertext size of the part (the plaintext size when hashing only).
 */

import { ProtocolError } from "./keys.js";
import { CHUNK_OVERHEAD_BYTES, CHUNK_PLAINTEXT_BYTES, ContentEncryptor } from "./documents.js";

/** A message handler over `sodium`: call it with each message, post what it returns. */
export function partsHandler(sodium) {
  let enc = null;
  let hash = null;

  const part = ({ seq, data, last, body }) => {
    if (hash === null) throw new ProtocolError("no stream was started");
    const plain = new Uint8Array(data);
    const n = last ? Math.max(1, Math.ceil(plain.length / CHUNK_PLAINTEXT_BYTES)) : plain.length / CHUNK_PLAINTEXT_BYTES;
    if (!Number.isInteger(n)) throw new ProtocolError("only the final chunk may be shorter than 64 KiB");
    const out = enc && body ? new Uint8Array(plain.length + n * CHUNK_OVERHEAD_BYTES) : null;
    let size = 0;
    for (let i = 0; i < n; i++) {
      const chunk = plain.subarray(i * CHUNK_PLAINTEXT_BYTES, (i + 1) * CHUNK_PLAINTEXT_BYTES);
      sodium.crypto_hash_sha256_update(hash, chunk);
      if (!enc) {
        size += chunk.length;
        continue;
      }
      const c = enc.push(chunk, last && i === n - 1);
      out?.set(c, size);
      size += c.length;
    }
    plain.fill(0);
    return out ? [{ seq, size, body: out.buffer }, [out.buffer]] : [{ seq, size }, []];
  };

  return (message) => {
    if (message.op === "start") {
      enc = null;
      if (message.streamHeader) {
        const key = new Uint8Array(message.fileKey);
        enc = new ContentEncryptor(sodium, key, new Uint8Array(message.streamHeader));
        sodium.memzero(key);
      }
      hash = sodium.crypto_hash_sha256_init();
      return [{ started: true }, []];
    }
    if (message.op === "part") return part(message);
    if (message.op === "finish") {
      if (hash === null) throw new ProtocolError("no stream was started");
      const digest = sodium.crypto_hash_sha256_final(hash);
      hash = null;
      enc = null;
      return [{ digest }, [digest.buffer]];
    }
    throw new ProtocolError("unknown operation");
  };
}
