/**
 * Canonical encodings of protocol v1 (docs/protocol.md §1): unpadded base64url,
 * big-endian integers, length prefixes and labelled frames. Pure functions, no libsodium.
 */

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const DECODE = new Map([...B64URL].map((c, i) => [c, i]));

/** Raised when text or bytes are not in the one canonical encoding. */
export class EncodingError extends Error {
  constructor(message = "not canonical unpadded base64url") {
    super(message);
    this.name = "EncodingError";
  }
}

/** Encode bytes as base64url without padding. */
export function b64encode(bytes) {
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63] + B64URL[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63];
  }
  return out;
}

/** Decode canonical unpadded base64url; refuse padding, stray characters and slack bits. */
export function b64decode(text) {
  if (typeof text !== "string" || !B64URL_RE.test(text) || text.length % 4 === 1) {
    throw new EncodingError();
  }
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of text) {
    acc = (acc << 6) | DECODE.get(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) throw new EncodingError();
  return out;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(text) {
  return encoder.encode(text);
}

/** ASCII bytes of a label; refuse anything outside 0x00–0x7f. */
export function ascii(text) {
  if (!/^[\x00-\x7f]*$/.test(text)) throw new EncodingError("label must be ASCII");
  return encoder.encode(text);
}

/** Concatenate byte arrays. */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An unsigned 32-bit integer, big-endian. */
export function u32(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError("u32 out of range");
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

/** An unsigned 64-bit integer, big-endian. */
export function u64(n) {
  const value = BigInt(n);
  if (value < 0n || value >= 1n << 64n) throw new RangeError("u64 out of range");
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, false);
  return out;
}

/** Length-prefix bytes with their u32 big-endian length. */
export function lp(bytes) {
  return concat(u32(bytes.length), bytes);
}

/** A domain label followed by length-prefixed fields: signed messages and AEAD data. */
export function frame(label, ...fields) {
  return concat(lp(ascii(label)), ...fields.map(lp));
}

/** Constant-shape comparison of two byte arrays (public values only). */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
