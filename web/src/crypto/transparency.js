/**
 * Key transparency (docs/protocol.md §12), as vault/protocol/merkle.py and
 * transparency.py: RFC 6962/9162 hashing with SHA-256, inclusion and consistency proof
 * verification (RFC 9162 §2.1.3.2, §2.1.4.2), log entries, signed tree heads, log-key
 * announcements.
 */

import { ascii, b64decode, bytesEqual, concat, frame, u32, u64, utf8 } from "./encoding.js";

export class TransparencyError extends Error {
  constructor(message) {
    super(message);
    this.name = "TransparencyError";
    this.code = "transparency";
  }
}

export const KINDS = ["publish", "supersede", "compromise"];

export const leafHash = (sodium, data) => sodium.crypto_hash_sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (sodium, left, right) => sodium.crypto_hash_sha256(concat(Uint8Array.of(1), left, right));

/** Largest power of two smaller than n. */
export function splitPoint(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Merkle tree hash of a list of leaf hashes. */
export function rootOf(sodium, leaves) {
  if (leaves.length === 0) return sodium.crypto_hash_sha256(new Uint8Array(0));
  if (leaves.length === 1) return leaves[0];
  const k = splitPoint(leaves.length);
  return nodeHash(sodium, rootOf(sodium, leaves.slice(0, k)), rootOf(sodium, leaves.slice(k)));
}

// Sizes and indices stay below 2^53; halving uses Math.floor, not 32-bit shifts.
const half = (n) => Math.floor(n / 2);
const odd = (n) => n % 2 === 1;

/** RFC 9162 §2.1.3.2. Throws TransparencyError unless the proof leads to the root. */
export function verifyInclusion(sodium, leaf, index, size, proof, root) {
  if (!(index < size)) throw new TransparencyError("index beyond tree size");
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new TransparencyError("proof too long");
    if (odd(fn) || fn === sn) {
      r = nodeHash(sodium, p, r);
      if (!odd(fn)) {
        while (fn && !odd(fn)) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(sodium, r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0 || !bytesEqual(r, root)) throw new TransparencyError("inclusion proof does not lead to the root");
}

/** RFC 9162 §2.1.4.2. Throws TransparencyError unless new extends old. */
export function verifyConsistency(sodium, oldSize, newSize, proof, oldRoot, newRoot) {
  if (oldSize > newSize) throw new TransparencyError("old tree is larger");
  if (oldSize === newSize) {
    if (proof.length || !bytesEqual(oldRoot, newRoot)) throw new TransparencyError("same size, different roots");
    return;
  }
  if (oldSize === 0) {
    if (proof.length) throw new TransparencyError("proof from the empty tree must be empty");
    return;
  }
  const path = [...proof];
  if (Number.isInteger(Math.log2(oldSize))) path.unshift(oldRoot);
  if (!path.length) throw new TransparencyError("empty consistency proof");
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) throw new TransparencyError("proof too long");
    if (odd(fn) || fn === sn) {
      fr = nodeHash(sodium, c, fr);
      sr = nodeHash(sodium, c, sr);
      if (!odd(fn)) {
        while (fn && !odd(fn)) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sodium, sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0 || !bytesEqual(fr, oldRoot) || !bytesEqual(sr, newRoot)) {
    throw new TransparencyError("consistency proof does not match the roots");
  }
}

/** frame("haven/v1/kt-entry", kind, utf8(user_id), u32(version), X, E, S, u64(t_ms)). */
export function encodeEntry({ kind, userId, version, x25519, ed25519, signature, timestampMs }) {
  if (!KINDS.includes(kind)) throw new TransparencyError(`unknown entry kind ${kind}`);
  return frame("haven/v1/kt-entry", ascii(kind), utf8(userId), u32(version), x25519, ed25519, signature, u64(timestampMs));
}

/**
 * Parse an encoded entry back into its fields; refuse anything that does not re-encode to
 * the same bytes (wrong label, field count or sizes, trailing bytes).
 */
export function decodeEntry(data) {
  const fields = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  while (at < data.length) {
    if (at + 4 > data.length) throw new TransparencyError("log entry is truncated");
    const length = view.getUint32(at, false);
    at += 4;
    if (at + length > data.length) throw new TransparencyError("log entry is truncated");
    fields.push(data.subarray(at, at + length));
    at += length;
  }
  const sizes = [null, null, null, 4, 32, 32, 64, 8];
  if (fields.length !== sizes.length || sizes.some((n, i) => n !== null && fields[i].length !== n)) {
    throw new TransparencyError("log entry has the wrong shape");
  }
  let entry;
  try {
    const strict = new TextDecoder("utf-8", { fatal: true });
    const t = new DataView(fields[7].buffer, fields[7].byteOffset, 8).getBigUint64(0, false);
    if (t > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("time");
    entry = {
      kind: strict.decode(fields[1]),
      userId: strict.decode(fields[2]),
      version: new DataView(fields[3].buffer, fields[3].byteOffset, 4).getUint32(0, false),
      x25519: Uint8Array.from(fields[4]),
      ed25519: Uint8Array.from(fields[5]),
      signature: Uint8Array.from(fields[6]),
      timestampMs: Number(t),
    };
  } catch {
    throw new TransparencyError("log entry is not valid text");
  }
  if (!KINDS.includes(entry.kind) || !bytesEqual(encodeEntry(entry), data)) {
    throw new TransparencyError("log entry is not canonical");
  }
  return entry;
}

/**
 * Self-monitoring (§12 step 3, with the rule of §14): among the log's `publish` entries in
 * my name there must be exactly one per version 1 … `version`, none above it, and the
 * current one must hold the keys I hold. `entries` are GET /directory/mine's.
 */
export function checkOwnEntries(entries, { userId, version, x25519, ed25519 }) {
  const published = new Map();
  for (const item of entries) {
    let data;
    try {
      data = b64decode(item.data);
    } catch {
      throw new TransparencyError("log entry is not canonical base64url");
    }
    const entry = decodeEntry(data);
    if (entry.kind !== item.kind || entry.userId !== item.user_id || entry.version !== item.key_version) {
      throw new TransparencyError(`log entry ${item.index} does not say what it is listed as`);
    }
    if (entry.userId !== userId || entry.kind !== "publish") continue;
    if (published.has(entry.version)) {
      throw new TransparencyError(`the log holds key version ${entry.version} twice in my name`);
    }
    published.set(entry.version, entry);
  }
  for (const v of published.keys()) {
    if (v > version) throw new TransparencyError(`the log holds a key version ${v} in my name that I never made`);
  }
  for (let v = 1; v <= version; v++) {
    if (!published.has(v)) throw new TransparencyError(`key version ${v} of mine is missing from the log`);
  }
  const current = published.get(version);
  if (!bytesEqual(current.x25519, x25519) || !bytesEqual(current.ed25519, ed25519)) {
    throw new TransparencyError(`the log holds a key version ${version} in my name that I never made`);
  }
}

/** frame("haven/v1/tree-head", u64(size), root, u64(t_ms), u32(k)). */
export function headMessage({ size, root, timestampMs, keyVersion }) {
  return frame("haven/v1/tree-head", u64(size), root, u64(timestampMs), u32(keyVersion));
}

export function verifyHead(sodium, head, publicKey) {
  let ok = false;
  try {
    ok = sodium.crypto_sign_verify_detached(head.signature, headMessage(head), publicKey);
  } catch {
    ok = false;
  }
  if (!ok) throw new TransparencyError("tree head signature does not verify");
}

/** frame("haven/v1/log-key", u32(k), public_k, u32(p)), signed by p. */
export function verifyAnnouncement(sodium, previousPublic, previousVersion, version, publicKey, signature) {
  let ok = false;
  try {
    ok = sodium.crypto_sign_verify_detached(
      signature,
      frame("haven/v1/log-key", u32(version), publicKey, u32(previousVersion)),
      previousPublic,
    );
  } catch {
    ok = false;
  }
  if (!ok) throw new TransparencyError(`log key ${version} was not announced by ${previousVersion}`);
}
