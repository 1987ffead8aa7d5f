/**
 * Outside links (docs/protocol.md §23), byte for byte as vault/protocol/links.py: lookup id,
 * envelope key and open token, the envelope of file keys, the sealed recipient label.
 */

import { b64decode, b64encode, concat, frame, u32, utf8 } from "./encoding.js";
import { parseFrame } from "./documents.js";
import { ProtocolError } from "./keys.js";

export const SECRET_BYTES = 32;
export const LABEL_BLOCK = 128;
export const MAX_LABEL_BYTES = 64;
export const MAX_DOCUMENTS = 20;
const NONCE_BYTES = 24;
const FORMAT_V1 = 1;
const FRAGMENT = "link=";

/** The lookup id the server files the link under (one-way from the secret). */
export function lookupId(sodium, secret) {
  return sodium.crypto_kdf_derive_from_key(32, 1, "haven-lk", secret);
}

/**
 * The envelope key and open token from the secret and `stretched`: the §2.3 auth subkey of
 * the link passphrase under the link's salt (the Argon2id worker's output), or empty bytes.
 */
export function linkKeys(sodium, secret, stretched = new Uint8Array(0)) {
  if (secret.length !== SECRET_BYTES) throw new ProtocolError("a link secret is 32 bytes");
  const base = sodium.crypto_kdf_derive_from_key(32, 2, "haven-lk", secret);
  const key = sodium.crypto_generichash(32, frame("haven/v1/link-key", stretched), base);
  const token = sodium.crypto_kdf_derive_from_key(32, 2, "haven-le", key);
  return {
    envelopeKey: sodium.crypto_kdf_derive_from_key(32, 1, "haven-le", key),
    token,
    tokenHash: sodium.crypto_generichash(32, token),
  };
}

/** Seal [{rawId, fileKey}] of a case under the link's envelope key. */
export function sealEnvelope(sodium, caseId, files, keys, lookup, nonce = null) {
  if (files.length < 1 || files.length > MAX_DOCUMENTS) throw new ProtocolError("a link carries 1 to 20 documents");
  const contents = frame("haven/v1/link-contents", utf8(caseId), ...files.map((f) => concat(f.rawId, f.fileKey)));
  const n = nonce ?? sodium.randombytes_buf(NONCE_BYTES);
  const ad = frame("haven/v1/link-envelope", lookup);
  return concat(Uint8Array.of(FORMAT_V1), n, sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(contents, ad, null, n, keys.envelopeKey));
}

/** Open an envelope: {caseId, files: [{rawId, fileKey}]}; a wrong passphrase fails here. */
export function openEnvelope(sodium, blob, keys, lookup) {
  if (blob.length < 1 + NONCE_BYTES + 16 || blob[0] !== FORMAT_V1) throw new ProtocolError("the link envelope has the wrong format");
  let plain;
  try {
    plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, blob.subarray(1 + NONCE_BYTES), frame("haven/v1/link-envelope", lookup), blob.subarray(1, 1 + NONCE_BYTES), keys.envelopeKey);
  } catch {
    throw new ProtocolError("the link does not open: wrong passphrase or damaged link", "link_locked");
  }
  const count = fieldCount(plain);
  if (count < 2 || count > MAX_DOCUMENTS + 1) throw new ProtocolError("a link envelope holds 1 to 20 documents");
  const { fields, rest } = parseFrame(plain, "haven/v1/link-contents", count);
  if (rest.length) throw new ProtocolError("the link envelope is not a frame");
  const caseId = new TextDecoder("utf-8", { fatal: true }).decode(fields[0]);
  const files = fields.slice(1).map((item) => {
    if (item.length !== 48) throw new ProtocolError("a link entry is 48 bytes");
    return { rawId: item.slice(0, 16), fileKey: item.slice(16) };
  });
  return { caseId, files };
}

function fieldCount(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let count = -1;
  let at = 0;
  while (at + 4 <= data.length) {
    at += 4 + view.getUint32(at, false);
    count += 1;
  }
  if (at !== data.length) throw new ProtocolError("the link envelope is not a frame");
  return count;
}

/** The recipient's name sealed to one reader's X25519 key of a version (181 bytes). */
export function sealLabel(sodium, recipient, x25519Public, version) {
  const name = utf8(recipient.trim());
  if (name.length < 1 || name.length > MAX_LABEL_BYTES) throw new ProtocolError("a recipient is 1 to 64 bytes", "label_length");
  const framed = frame("haven/v1/link-recipient", name);
  const padded = concat(framed, new Uint8Array(LABEL_BLOCK - framed.length));
  return concat(Uint8Array.of(FORMAT_V1), u32(version), sodium.crypto_box_seal(padded, x25519Public));
}

/** Open a label sealed to my keys ({version, x25519Public, x25519Secret}). */
export function openLabel(sodium, blob, mine) {
  if (blob.length !== 181 || blob[0] !== FORMAT_V1) throw new ProtocolError("the recipient label has the wrong format");
  if (new DataView(blob.buffer, blob.byteOffset + 1, 4).getUint32(0, false) !== mine.version) {
    throw new ProtocolError("the recipient label is sealed to another key version");
  }
  let padded;
  try {
    padded = sodium.crypto_box_seal_open(blob.subarray(5), mine.x25519Public, mine.x25519Secret);
  } catch {
    throw new ProtocolError("the recipient label does not open with my key");
  }
  const { fields, rest } = parseFrame(padded, "haven/v1/link-recipient", 1);
  if (fields[0].length > MAX_LABEL_BYTES || rest.some((b) => b !== 0)) throw new ProtocolError("the recipient label is not padded with zeros");
  return new TextDecoder("utf-8", { fatal: true }).decode(fields[0]);
}

/** The URL fragment carrying a secret. */
export const fragment = (secret) => FRAGMENT + b64encode(secret);

/** The secret of a `#link=…` fragment, or null when the fragment is not a link. */
export function parseFragment(hash) {
  const text = hash.startsWith("#") ? hash.slice(1) : hash;
  if (!text.startsWith(FRAGMENT)) return null;
  try {
    const secret = b64decode(text.slice(FRAGMENT.length));
    return secret.length === SECRET_BYTES ? secret : null;
  } catch {
    return null;
  }
}

