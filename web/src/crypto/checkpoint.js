/**
 * Witnessed checkpoints (docs/protocol.md §15), as vault/protocol/checkpoint.py: C2SP
 * tlog-checkpoint note text, signed-note signature lines and verifier keys, the log's
 * Ed25519 note signature (0x01) and witnesses' timestamped cosignature/v1 (0x04).
 * Pure: every function takes libsodium as its first argument where it needs it.
 */

import { bytesEqual, concat, utf8 } from "./encoding.js";

export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;
const DASH = "\u2014";
const MAX_SIGNATURES = 100;
const MAX_NOTE_BYTES = 1_000_000;

/** reason: "quorum" (too few cosignatures), "log" (no trusted log signature) or "malformed". */
export class CheckpointError extends Error {
  constructor(message, reason = "malformed") {
    super(message);
    this.name = "CheckpointError";
    this.code = "transparency";
    this.reason = reason;
  }
}

function b64stdDecode(sodium, text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    throw new CheckpointError("not canonical standard base64");
  }
  let bytes;
  try {
    bytes = sodium.from_base64(text, sodium.base64_variants.ORIGINAL);
  } catch {
    throw new CheckpointError("not canonical standard base64");
  }
  if (b64std(sodium, bytes) !== text) throw new CheckpointError("not canonical standard base64");
  return bytes;
}

const b64std = (sodium, bytes) => sodium.to_base64(bytes, sodium.base64_variants.ORIGINAL);
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** A key name or origin: non-empty, no Unicode space, no '+'. */
export function isValidName(name) {
  return typeof name === "string" && name.length > 0 && !/[\s+]/u.test(name);
}

/** The 4-byte key ID: SHA-256(name || 0x0A || alg || public key)[:4]. */
export function keyHash(sodium, name, algKey) {
  return sodium.crypto_hash_sha256(concat(utf8(name), Uint8Array.of(0x0a), algKey)).slice(0, 4);
}

/** Checkpoint body: origin, decimal size, standard-base64 root, each ending in LF. */
export function checkpointBody(sodium, { origin, size, root }) {
  if (!isValidName(origin) || root.length !== 32 || !Number.isSafeInteger(size) || size < 0) {
    throw new CheckpointError("invalid checkpoint");
  }
  return `${origin}\n${size}\n${b64std(sodium, root)}\n`;
}

/** Parse a checkpoint note text (exactly three lines; no extension lines). */
export function parseBody(sodium, text) {
  if (!text.endsWith("\n")) throw new CheckpointError("checkpoint text must end in a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length !== 3) throw new CheckpointError("checkpoint must have exactly three lines");
  const [origin, sizeText, rootText] = lines;
  if (!isValidName(origin)) throw new CheckpointError("invalid checkpoint origin");
  if (!/^(0|[1-9][0-9]{0,18})$/.test(sizeText)) throw new CheckpointError("invalid checkpoint size");
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw new CheckpointError("checkpoint size too large");
  const root = b64stdDecode(sodium, rootText);
  if (root.length !== 32) throw new CheckpointError("checkpoint root is not 32 bytes");
  return { origin, size, root };
}

/** A verifier key {name, alg, publicKey, keyHash} from the vkey string name+hash+base64. */
export function parseVerifierKey(sodium, vkey) {
  // Split at the first two '+' only: standard base64 may itself hold '+'.
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new CheckpointError("a verifier key is name+hash+key");
  const [name, hashHex, keyText] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
  if (!isValidName(name) || !/^[0-9a-f]{8}$/.test(hashHex)) {
    throw new CheckpointError("malformed verifier key");
  }
  const algKey = b64stdDecode(sodium, keyText);
  if (algKey.length !== 33 || (algKey[0] !== ALG_ED25519 && algKey[0] !== ALG_COSIGNATURE_V1)) {
    throw new CheckpointError("verifier key is not an Ed25519 (0x01) or cosignature (0x04) key");
  }
  const hash = keyHash(sodium, name, algKey);
  if (hex(hash) !== hashHex) throw new CheckpointError("verifier key hash does not match");
  return { name, alg: algKey[0], publicKey: algKey.slice(1), keyHash: hash };
}

/** The log's verifier: name = origin, algorithm 0x01. */
export function logVerifier(sodium, origin, publicKey) {
  const algKey = concat(Uint8Array.of(ALG_ED25519), publicKey);
  return { name: origin, alg: ALG_ED25519, publicKey, keyHash: keyHash(sodium, origin, algKey) };
}

/** Parse one signature line (without its LF): {name, keyHash, signature}. */
export function parseSignatureLine(sodium, line) {
  if (!line.startsWith(`${DASH} `)) throw new CheckpointError("signature line must start with an em dash");
  const parts = line.slice(2).split(" ");
  if (parts.length !== 2 || !isValidName(parts[0])) throw new CheckpointError("malformed signature line");
  const raw = b64stdDecode(sodium, parts[1]);
  if (raw.length < 5) throw new CheckpointError("signature too short");
  return { name: parts[0], keyHash: raw.slice(0, 4), signature: raw.slice(4) };
}

/** Split a signed note at its last empty line: {text, signatures}. */
export function parseNote(sodium, data) {
  if (typeof data !== "string" || utf8(data).length > MAX_NOTE_BYTES) throw new CheckpointError("note too large");
  if (/[\x00-\x09\x0b-\x1f\ufffd]/.test(data)) throw new CheckpointError("note holds control characters");
  const split = data.lastIndexOf("\n\n");
  if (split < 0) throw new CheckpointError("note has no signature block");
  const text = data.slice(0, split + 1);
  const block = data.slice(split + 2);
  if (!block.endsWith("\n")) throw new CheckpointError("signature lines must end in a newline");
  const signatures = block.slice(0, -1).split("\n").map((line) => parseSignatureLine(sodium, line));
  if (signatures.length > MAX_SIGNATURES) throw new CheckpointError("too many signatures");
  return { text, signatures };
}

/** The bytes a cosigner signs: "cosignature/v1\ntime <T>\n" then the note text. */
export function cosignatureMessage(text, timestamp) {
  return utf8(`cosignature/v1\ntime ${BigInt(timestamp)}\n${text}`);
}

const matches = (sig, key) => sig.name === key.name && bytesEqual(sig.keyHash, key.keyHash);

/** Check one signature by a known key; the cosignature's timestamp (BigInt), or null for a log one. */
export function verifySignature(sodium, text, sig, key) {
  if (key.alg === ALG_ED25519) {
    if (sig.signature.length !== 64 || !sodium.crypto_sign_verify_detached(sig.signature, utf8(text), key.publicKey)) {
      throw new CheckpointError(`the signature by ${key.name} does not verify`);
    }
    return null;
  }
  if (sig.signature.length !== 72) throw new CheckpointError(`the cosignature by ${key.name} is not 72 bytes`);
  const timestamp = new DataView(sig.signature.buffer, sig.signature.byteOffset, 8).getBigUint64(0, false);
  if (
    timestamp >= 1n << 63n ||
    !sodium.crypto_sign_verify_detached(sig.signature.slice(8), cosignatureMessage(text, timestamp), key.publicKey)
  ) {
    throw new CheckpointError(`the cosignature by ${key.name} does not verify`);
  }
  return timestamp;
}

/**
 * Accept a checkpoint only if a trusted log key signed it and `quorum` of the configured
 * witnesses cosigned it. logKeys and witnessKeys are verifier keys (parseVerifierKey /
 * logVerifier). Returns {origin, size, root}; throws CheckpointError otherwise.
 */
export function verifyCosigned(sodium, note, logKeys, witnessKeys, quorum) {
  const distinct = new Set(witnessKeys.map((k) => `${k.name}+${hex(k.keyHash)}`));
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > distinct.size) {
    throw new CheckpointError("the quorum must be between 1 and the number of witness keys");
  }
  const parsed = parseNote(sodium, note);
  const checkpoint = parseBody(sodium, parsed.text);
  const seen = new Set();
  for (const sig of parsed.signatures) {
    const id = `${sig.name}+${hex(sig.keyHash)}`;
    if (seen.has(id)) throw new CheckpointError("the note carries two signatures by one key");
    seen.add(id);
  }
  let signedByLog = false;
  for (const key of logKeys) {
    if (key.name !== checkpoint.origin) continue;
    for (const sig of parsed.signatures) {
      if (matches(sig, key)) {
        verifySignature(sodium, parsed.text, sig, key);
        signedByLog = true;
      }
    }
  }
  if (!signedByLog) throw new CheckpointError("the checkpoint is not signed by a log key I trust", "log");
  const cosigned = new Set(); // a key listed twice still counts once
  for (const key of witnessKeys) {
    if (key.alg !== ALG_COSIGNATURE_V1) throw new CheckpointError(`witness key ${key.name} is not a cosignature/v1 key`);
    const lines = parsed.signatures.filter((sig) => matches(sig, key));
    for (const sig of lines) verifySignature(sodium, parsed.text, sig, key);
    if (lines.length) cosigned.add(`${key.name}+${hex(key.keyHash)}+${hex(key.publicKey)}`);
  }
  const count = cosigned.size;
  if (count < quorum) {
    throw new CheckpointError(
      `the checkpoint of size ${checkpoint.size} is cosigned by ${count} of the ${quorum} witnesses required: not yet witnessed, or a split view`,
      "quorum",
    );
  }
  return checkpoint;
}
