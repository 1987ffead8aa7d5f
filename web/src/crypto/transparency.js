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

/** Two different keys for one (account, version), or versions out of order (§12.4). */
export class EquivocationError extends TransparencyError {
  constructor(message) {
    super(message);
    this.name = "EquivocationError";
    this.code = "equivocation";
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
 * The rule of §12 step 3 and §14, for my own keys and for a contact's alike: decode every
 * listed log entry (the logged bytes, never the fields listed beside them); among the
 * `publish` entries naming `userId` there must be exactly one per version 1 … `version`,
 * in increasing log order, none above it, and the current one must hold exactly the keys
 * of the record in hand. `entries` are [{index, data}] (GET /directory/mine, or the
 * `entries` of GET /users/{id}/keys). `mine` chooses the wording of the refusal.
 */
export function checkPublishHistory(entries, { userId, version, x25519, ed25519, signature = null }, { mine = false } = {}) {
  if (!Array.isArray(entries)) throw new TransparencyError("the server sent no log entries");
  const say = mine
    ? {
        twice: (v) => `the log holds key version ${v} twice in my name`,
        order: (v) => `the log holds key version ${v} in my name out of order`,
        above: (v) => `the log holds a key version ${v} in my name that I never made`,
        missing: (v) => `key version ${v} of mine is missing from the log`,
      }
    : {
        twice: (v) => `the log holds key version ${v} of this person twice`,
        order: (v) => `the log holds key version ${v} of this person out of order`,
        above: (v) => `the log holds a key version ${v} of this person newer than the one shown`,
        missing: (v) => `key version ${v} of this person is missing from the log`,
      };
  const decoded = entries.map((item) => {
    let data;
    try {
      data = b64decode(item.data);
    } catch {
      throw new TransparencyError("log entry is not canonical base64url");
    }
    if (!Number.isSafeInteger(item.index) || item.index < 0) throw new TransparencyError("log entry has no valid index");
    return { index: item.index, entry: decodeEntry(data) };
  });
  decoded.sort((a, b) => a.index - b.index);
  const published = new Map();
  let last = 0;
  for (const [i, { index, entry }] of decoded.entries()) {
    if (i > 0 && decoded[i - 1].index === index) throw new TransparencyError(`log entry ${index} is listed twice`);
    if (entry.userId !== userId) throw new TransparencyError(`log entry ${index} names another account`);
    if (entry.kind !== "publish") {
      if (!published.has(entry.version)) throw new TransparencyError(`log entry ${index} is about version ${entry.version}, never published`);
      continue;
    }
    if (published.has(entry.version)) throw new EquivocationError(say.twice(entry.version));
    if (entry.version < last) throw new EquivocationError(say.order(entry.version));
    last = entry.version;
    published.set(entry.version, entry);
  }
  for (const v of published.keys()) {
    if (v > version) throw new TransparencyError(say.above(v));
  }
  for (let v = 1; v <= version; v++) {
    if (!published.has(v)) throw new TransparencyError(say.missing(v));
  }
  const current = published.get(version);
  if (!bytesEqual(current.x25519, x25519) || !bytesEqual(current.ed25519, ed25519) || (signature && !bytesEqual(current.signature, signature))) {
    throw new EquivocationError(mine ? `the log holds a key version ${version} in my name that I never made` : `the log holds other keys for version ${version} of this person`);
  }
}

/**
 * An older record of a contact, read before they replaced their keys (§12.5 step 4): the
 * rule of checkPublishHistory over the entries up to its version, so it must be the one
 * publish of that version. Call it after checkPublishHistory passed on the newest record.
 */
export function checkPublishedAt(entries, held) {
  const upTo = entries.filter((item) => decodeEntry(b64decode(item.data)).version <= held.version);
  checkPublishHistory(upTo, held);
}

/** Self-monitoring (§12 step 3, §14): checkPublishHistory for my own keys. */
export const checkOwnEntries = (entries, held) => checkPublishHistory(entries, held, { mine: true });

/** frame("haven/v1/tree-head", u64(size), root, u64(t_ms), u32(k)). */
export function headMessage({ size, root, timestampMs, keyVersion }) {
  return frame("haven/v1/tree-head", u64(size), root, u64(timestampMs), u32(keyVersion));
}

/** A signed head as the routes serve it (§12.6), decoded. */
export function headFromJson(data) {
  return {
    size: data.size,
    root: b64decode(data.root),
    timestampMs: data.timestamp_ms,
    keyVersion: data.key_version,
    signature: b64decode(data.signature),
  };
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
