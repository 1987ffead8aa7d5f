/**
 * Document format of protocol v1 (docs/protocol.md §8), byte-compatible with
 * vault/protocol/documents.py: file-key subkeys and commitment, secretstream content in
 * 64 KiB chunks, padded metadata envelope, the uploader's signature, sealed file keys.
 */

import { ascii, b64decode, bytesEqual, concat, frame, u32, u64, utf8 } from "./encoding.js";
import { deriveSubkey } from "./kdf.js";
import { keysOfVersion, ProtocolError } from "./keys.js";

export const FORMAT_V1 = 1;
export const KEY_BYTES = 32;
export const DOCUMENT_ID_BYTES = 16;
export const COMMITMENT_BYTES = 32;
export const NONCE_BYTES = 24;
export const STREAM_HEADER_BYTES = 24;
export const CHUNK_OVERHEAD_BYTES = 17;
export const CHUNK_PLAINTEXT_BYTES = 64 * 1024;
export const CHUNK_CIPHERTEXT_BYTES = CHUNK_PLAINTEXT_BYTES + CHUNK_OVERHEAD_BYTES;
export const CONTENT_HEADER_BYTES = 1 + COMMITMENT_BYTES + STREAM_HEADER_BYTES;
export const SEALED_KEY_BYTES = 1 + 4 + 48 + DOCUMENT_ID_BYTES + KEY_BYTES;
export const METADATA_BLOCK = 256;
export const MAX_METADATA_PLAINTEXT = 4 * METADATA_BLOCK;
export const METADATA_OVERHEAD = 1 + NONCE_BYTES + 16;
export const MIN_PART_CHUNKS = 80;
export const MAX_PART_CHUNKS = 2048;
export const CHUNKS_PER_PART = 128;
export const PART_BYTES = CHUNKS_PER_PART * CHUNK_CIPHERTEXT_BYTES;
export const MIN_PART_BYTES = MIN_PART_CHUNKS * CHUNK_CIPHERTEXT_BYTES;
export const MAX_PART_BYTES = MAX_PART_CHUNKS * CHUNK_CIPHERTEXT_BYTES;
export const TAG_MESSAGE = 0;
export const TAG_FINAL = 3;

const CTX_FILE = "haven-fk";
const LABEL_INFO = "haven/v1/document-info";
const LABEL_METADATA = "haven/v1/document-metadata";
const LABEL_SIGNED = "haven/v1/document";
const MIME_RE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

export const DOCUMENT_TYPES = [
  "passport",
  "national_id",
  "birth_certificate",
  "visa_permit",
  "protective_order",
  "police_report",
  "medical_record",
  "immigration_form",
  "other",
];

/** A chunk failed to authenticate, or the stream was cut, reordered or extended. */
export class TamperedContent extends ProtocolError {
  constructor(message) {
    super(message, "tampered_content");
    this.name = "TamperedContent";
  }
}

// -- sizes ------------------------------------------------------------------------------

/** Chunks of a plaintext of `size` bytes: at least one. */
export function chunkCount(size) {
  return Math.max(1, Math.ceil(size / CHUNK_PLAINTEXT_BYTES));
}

/** Ciphertext bytes T of a plaintext of `size` bytes. */
export function ciphertextSize(size) {
  return size + CHUNK_OVERHEAD_BYTES * chunkCount(size);
}

/** Plaintext size S of a valid ciphertext size T; ProtocolError otherwise. */
export function plaintextSize(total) {
  if (!Number.isInteger(total) || total < CHUNK_OVERHEAD_BYTES) {
    throw new ProtocolError("impossible ciphertext size");
  }
  const n = Math.ceil(total / CHUNK_CIPHERTEXT_BYTES);
  const size = total - CHUNK_OVERHEAD_BYTES * n;
  if (size < 0 || ciphertextSize(size) !== total) throw new ProtocolError("impossible ciphertext size");
  return size;
}

/** Parts of an upload of T bytes in parts of `partBytes`. */
export function partCount(total, partBytes = PART_BYTES) {
  return Math.max(1, Math.ceil(total / partBytes));
}

/** Bytes in part `number` (from 1) of an object of T bytes. */
export function partSize(total, number, partBytes = PART_BYTES) {
  const count = partCount(total, partBytes);
  if (number < 1 || number > count) throw new RangeError("no such part");
  return number < count ? partBytes : total - partBytes * (count - 1);
}

/** Byte range [first, last] of chunk `i` in an object of T bytes. */
export function chunkRange(i, total) {
  return [CHUNK_CIPHERTEXT_BYTES * i, Math.min(total, CHUNK_CIPHERTEXT_BYTES * (i + 1)) - 1];
}

// -- keys -------------------------------------------------------------------------------

/** content, metadata and commitment subkeys of a file key. */
export function fileKeys(sodium, fileKey) {
  if (!(fileKey instanceof Uint8Array) || fileKey.length !== KEY_BYTES) {
    throw new ProtocolError("a file key is 32 bytes");
  }
  return {
    content: deriveSubkey(sodium, fileKey, 1, CTX_FILE),
    metadata: deriveSubkey(sodium, fileKey, 2, CTX_FILE),
    commitment: deriveSubkey(sodium, fileKey, 3, CTX_FILE),
  };
}

export const generateFileKey = (sodium) => sodium.randombytes_buf(KEY_BYTES);
export const generateDocumentId = (sodium) => sodium.randombytes_buf(DOCUMENT_ID_BYTES);

// -- content ----------------------------------------------------------------------------

/** 0x01 || commitment || secretstream header. */
export function contentHeader(commitment, streamHeader) {
  if (commitment.length !== COMMITMENT_BYTES || streamHeader.length !== STREAM_HEADER_BYTES) {
    throw new ProtocolError("content header parts have the wrong length");
  }
  return concat(Uint8Array.of(FORMAT_V1), commitment, streamHeader);
}

/** [commitment, stream header] of a content header. */
export function parseContentHeader(header) {
  if (header.length !== CONTENT_HEADER_BYTES || header[0] !== FORMAT_V1) {
    throw new ProtocolError("content header has the wrong format");
  }
  return [header.subarray(1, 33), header.subarray(33)];
}

/**
 * Encrypt content chunk by chunk. With `streamHeader`, restart the stream under that
 * header (init_pull gives the state init_push made): resuming an upload.
 */
export class ContentEncryptor {
  constructor(sodium, fileKey, streamHeader = null) {
    this.sodium = sodium;
    const keys = fileKeys(sodium, fileKey);
    if (streamHeader === null) {
      const init = sodium.crypto_secretstream_xchacha20poly1305_init_push(keys.content);
      this.state = init.state;
      streamHeader = init.header;
    } else {
      if (streamHeader.length !== STREAM_HEADER_BYTES) throw new ProtocolError("secretstream header must be 24 bytes");
      this.state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(streamHeader, keys.content);
    }
    this.header = contentHeader(keys.commitment, streamHeader);
    sodium.memzero(keys.content);
    sodium.memzero(keys.metadata);
    this.index = 0;
    this.isFinished = false;
  }

  push(chunk, isFinal) {
    if (this.isFinished) throw new ProtocolError("the stream already ended");
    if (chunk.length > CHUNK_PLAINTEXT_BYTES || (!isFinal && chunk.length !== CHUNK_PLAINTEXT_BYTES)) {
      throw new ProtocolError("only the final chunk may be shorter than 64 KiB");
    }
    if (isFinal && chunk.length === 0 && this.index > 0) {
      throw new ProtocolError("an empty final chunk is only allowed for an empty file");
    }
    const out = this.sodium.crypto_secretstream_xchacha20poly1305_push(
      this.state,
      chunk,
      null,
      isFinal ? TAG_FINAL : TAG_MESSAGE,
    );
    this.index += 1;
    this.isFinished = isFinal;
    return out;
  }
}

/** Decrypt and authenticate content chunk by chunk; refuse anything altered. */
export class ContentDecryptor {
  constructor(sodium, fileKey, header) {
    this.sodium = sodium;
    const keys = fileKeys(sodium, fileKey);
    const [commitment, streamHeader] = parseContentHeader(header);
    if (!bytesEqual(commitment, keys.commitment)) {
      throw new ProtocolError("the file key does not match the content's key commitment");
    }
    this.state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(streamHeader, keys.content);
    sodium.memzero(keys.content);
    sodium.memzero(keys.metadata);
    this.index = 0;
    this.isFinished = false;
  }

  pull(chunk) {
    if (this.isFinished) throw new TamperedContent("data after the final chunk");
    if (chunk.length < CHUNK_OVERHEAD_BYTES || chunk.length > CHUNK_CIPHERTEXT_BYTES) {
      throw new TamperedContent(`chunk ${this.index} has an impossible length`);
    }
    let result;
    try {
      result = this.sodium.crypto_secretstream_xchacha20poly1305_pull(this.state, chunk, null);
    } catch {
      result = false;
    }
    if (!result) throw new TamperedContent(`chunk ${this.index} does not authenticate`);
    if (result.tag === TAG_FINAL) {
      this.isFinished = true;
    } else if (result.tag !== TAG_MESSAGE || chunk.length !== CHUNK_CIPHERTEXT_BYTES) {
      throw new TamperedContent(`chunk ${this.index} has an unexpected tag or length`);
    }
    this.index += 1;
    return result.message;
  }

  finish() {
    if (!this.isFinished) throw new TamperedContent("the content ends before its final chunk");
  }
}

/** Encrypt a whole small plaintext: {header, ciphertext}. */
export function encryptContent(sodium, fileKey, data, streamHeader = null) {
  const enc = new ContentEncryptor(sodium, fileKey, streamHeader);
  const n = chunkCount(data.length);
  const parts = [];
  for (let i = 0; i < n; i++) {
    parts.push(enc.push(data.subarray(i * CHUNK_PLAINTEXT_BYTES, (i + 1) * CHUNK_PLAINTEXT_BYTES), i === n - 1));
  }
  return { header: enc.header, ciphertext: concat(...parts) };
}

/** Decrypt a whole content ciphertext held in memory. */
export function decryptContent(sodium, fileKey, header, ciphertext) {
  const dec = new ContentDecryptor(sodium, fileKey, header);
  const out = [];
  for (let first = 0; first < ciphertext.length; first += CHUNK_CIPHERTEXT_BYTES) {
    out.push(dec.pull(ciphertext.subarray(first, first + CHUNK_CIPHERTEXT_BYTES)));
  }
  dec.finish();
  return concat(...out);
}

// -- metadata ---------------------------------------------------------------------------

/** Refuse metadata values outside the protocol's rules. */
export function checkInfo(info) {
  const name = utf8(info.name);
  if (name.length < 1 || name.length > 255) throw new ProtocolError("a file name is 1 to 255 bytes of UTF-8", "bad_name");
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f/\\]/.test(info.name) || info.name === "." || info.name === "..") {
    throw new ProtocolError("a file name has no control characters, '/' or '\\'", "bad_name");
  }
  if (info.mimeType.length > 127 || !MIME_RE.test(info.mimeType)) throw new ProtocolError("bad MIME type");
  if (!Number.isSafeInteger(info.size) || info.size < 0) throw new ProtocolError("size out of range");
  if (!DOCUMENT_TYPES.includes(info.docType)) throw new ProtocolError("unknown document type");
  if (info.expiresOn && !validDate(info.expiresOn)) throw new ProtocolError("bad expiry date");
  if (info.sha256.length !== 32) throw new ProtocolError("SHA-256 is 32 bytes");
}

function validDate(text) {
  if (!DATE_RE.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
}

/** The padded plaintext of the metadata envelope. */
export function encodeInfo(info) {
  checkInfo(info);
  const body = frame(
    LABEL_INFO,
    utf8(info.name),
    ascii(info.mimeType),
    u64(info.size),
    ascii(info.docType),
    ascii(info.expiresOn ?? ""),
    info.sha256,
  );
  const padded = Math.ceil(body.length / METADATA_BLOCK) * METADATA_BLOCK;
  if (padded > MAX_METADATA_PLAINTEXT) throw new ProtocolError("metadata is too long");
  return concat(body, new Uint8Array(padded - body.length));
}

/** Split frame(label, f1..fcount) off the front of data: {fields, rest}. */
export function parseFrame(data, label, count) {
  const fields = [];
  let at = 0;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i <= count; i++) {
    if (at + 4 > data.length) throw new ProtocolError("frame is truncated");
    const length = view.getUint32(at, false);
    at += 4;
    if (at + length > data.length) throw new ProtocolError("frame is truncated");
    const value = data.subarray(at, at + length);
    at += length;
    if (i === 0) {
      if (!bytesEqual(value, ascii(label))) throw new ProtocolError("frame has the wrong label");
    } else fields.push(value);
  }
  return { fields, rest: data.subarray(at) };
}

/** Parse and check a metadata plaintext, padding included. */
export function decodeInfo(data) {
  if (data.length % METADATA_BLOCK || data.length === 0 || data.length > MAX_METADATA_PLAINTEXT) {
    throw new ProtocolError("metadata plaintext has the wrong length");
  }
  const { fields, rest } = parseFrame(data, LABEL_INFO, 6);
  if (rest.some((b) => b !== 0)) throw new ProtocolError("metadata padding is not zero");
  const [name, mime, size, docType, expires, sha256] = fields;
  if (size.length !== 8) throw new ProtocolError("metadata size field is not 8 bytes");
  let info;
  try {
    const strict = new TextDecoder("utf-8", { fatal: true });
    const expiresText = strict.decode(expires);
    if (expiresText && !validDate(expiresText)) throw new Error("date");
    const big = new DataView(size.buffer, size.byteOffset, 8).getBigUint64(0, false);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("size");
    info = {
      name: strict.decode(name),
      mimeType: strict.decode(mime),
      size: Number(big),
      docType: strict.decode(docType),
      expiresOn: expiresText || null,
      sha256: Uint8Array.from(sha256),
    };
  } catch {
    throw new ProtocolError("metadata field is not valid text or date");
  }
  checkInfo(info);
  return info;
}

/** Associated data binding metadata to its document, case, uploader and content header. */
export function metadataAd(documentId, caseId, uploaderId, header) {
  return frame(LABEL_METADATA, documentId, utf8(caseId), utf8(uploaderId), header);
}

/** 0x01 || nonce || XChaCha20-Poly1305(info, ad, nonce, metadata subkey). */
export function sealMetadata(sodium, info, fileKey, documentId, caseId, uploaderId, header, nonce = null) {
  nonce ??= sodium.randombytes_buf(NONCE_BYTES);
  const keys = fileKeys(sodium, fileKey);
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
    encodeInfo(info),
    metadataAd(documentId, caseId, uploaderId, header),
    null,
    nonce,
    keys.metadata,
  );
  sodium.memzero(keys.metadata);
  sodium.memzero(keys.content);
  return concat(Uint8Array.of(FORMAT_V1), nonce, ct);
}

/** Check the envelope's shape as the server does. */
export function checkMetadataShape(blob) {
  const ok =
    blob.length >= METADATA_OVERHEAD + METADATA_BLOCK &&
    blob.length <= METADATA_OVERHEAD + MAX_METADATA_PLAINTEXT &&
    blob[0] === FORMAT_V1 &&
    (blob.length - METADATA_OVERHEAD) % METADATA_BLOCK === 0;
  if (!ok) throw new ProtocolError("metadata envelope has the wrong format");
}

/** Decrypt and parse a metadata envelope; ProtocolError if it was made for anything else. */
export function openMetadata(sodium, blob, fileKey, documentId, caseId, uploaderId, header) {
  checkMetadataShape(blob);
  const keys = fileKeys(sodium, fileKey);
  let plain;
  try {
    plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      blob.subarray(1 + NONCE_BYTES),
      metadataAd(documentId, caseId, uploaderId, header),
      blob.subarray(1, 1 + NONCE_BYTES),
      keys.metadata,
    );
  } catch {
    throw new ProtocolError("metadata does not decrypt for this document");
  } finally {
    sodium.memzero(keys.metadata);
    sodium.memzero(keys.content);
  }
  return decodeInfo(plain);
}

// -- signature --------------------------------------------------------------------------

/** The exact bytes the uploader signs (§8.4). */
export function signedMessage({ documentId, caseId, uploaderId, keyVersion, header, ciphertextSize: total, metadata }) {
  return frame(
    LABEL_SIGNED,
    Uint8Array.of(FORMAT_V1),
    documentId,
    utf8(caseId),
    utf8(uploaderId),
    u32(keyVersion),
    header,
    u64(total),
    metadata,
  );
}

export function signDocument(sodium, record, keys) {
  if (keys.version !== record.keyVersion) throw new ProtocolError("signing key version does not match the record");
  return sodium.crypto_sign_detached(signedMessage(record), keys.ed25519Secret);
}

export function verifyDocument(sodium, record, ed25519Public, signature) {
  let ok = false;
  try {
    ok = signature.length === 64 && sodium.crypto_sign_verify_detached(signature, signedMessage(record), ed25519Public);
  } catch {
    ok = false;
  }
  if (!ok) throw new ProtocolError("the uploader's signature does not verify", "bad_signature");
}

// -- sealed file keys -------------------------------------------------------------------

/** 0x01 || u32(reader version) || crypto_box_seal(document_id || file_key, reader). */
export function sealFileKey(sodium, fileKey, documentId, x25519Public, version) {
  if (fileKey.length !== KEY_BYTES || documentId.length !== DOCUMENT_ID_BYTES) {
    throw new ProtocolError("file key or document id has the wrong length");
  }
  const plain = concat(documentId, fileKey);
  const sealed = sodium.crypto_box_seal(plain, x25519Public);
  sodium.memzero(plain);
  return concat(Uint8Array.of(FORMAT_V1), u32(version), sealed);
}

/** The reader key version a sealed file key was made for. */
export function sealedKeyVersion(blob) {
  if (blob.length !== SEALED_KEY_BYTES || blob[0] !== FORMAT_V1) {
    throw new ProtocolError("sealed file key has the wrong format");
  }
  return new DataView(blob.buffer, blob.byteOffset + 1, 4).getUint32(0, false);
}

/**
 * Open a sealed file key with the key pair of the version it names (`keys`: one key pair
 * set or a list of them) and check its document id.
 */
export function openFileKey(sodium, blob, documentId, keys) {
  const mine = keysOfVersion(keys, sealedKeyVersion(blob));
  let plain;
  try {
    plain = sodium.crypto_box_seal_open(blob.subarray(5), mine.x25519Public, mine.x25519Secret);
  } catch {
    throw new ProtocolError("the sealed file key does not open with my key");
  }
  if (!bytesEqual(plain.subarray(0, DOCUMENT_ID_BYTES), documentId)) {
    throw new ProtocolError("the sealed file key belongs to another document");
  }
  return plain.slice(DOCUMENT_ID_BYTES);
}

/**
 * Verify a document record from the server and unlock it (§8.7): signature with the
 * uploader's key `signerEd25519`, sealed key, commitment, metadata, sizes.
 * Returns {id, rawId, caseId, ownerId, info, fileKey, header, ciphertextSize, data}.
 */
export function openDocumentRecord(sodium, data, keys, signerEd25519, linkFileKey = null) {
  const rawId = b64decode(data.id);
  if (rawId.length !== DOCUMENT_ID_BYTES) throw new ProtocolError("document id is not 16 bytes");
  const header = b64decode(data.header);
  const metadata = b64decode(data.metadata);
  const record = {
    documentId: rawId,
    caseId: data.case_id,
    uploaderId: data.owner_id,
    keyVersion: Number(data.owner_key_version),
    header,
    ciphertextSize: Number(data.ciphertext_size),
    metadata,
  };
  verifyDocument(sodium, record, signerEd25519, b64decode(data.signature));
  // An outside link (§23) carries the file key itself instead of a key sealed to a reader.
  const fileKey = linkFileKey ?? openFileKey(sodium, b64decode(data.sealed_key), rawId, keys);
  const [commitment] = parseContentHeader(header);
  const fk = fileKeys(sodium, fileKey);
  const match = bytesEqual(commitment, fk.commitment);
  sodium.memzero(fk.content);
  sodium.memzero(fk.metadata);
  if (!match) throw new ProtocolError("the file key does not match the content header");
  const info = openMetadata(sodium, metadata, fileKey, rawId, record.caseId, record.uploaderId, header);
  if (ciphertextSize(info.size) !== record.ciphertextSize) throw new ProtocolError("the signed sizes do not agree");
  return {
    id: data.id,
    rawId,
    caseId: record.caseId,
    ownerId: record.uploaderId,
    info,
    fileKey,
    header,
    ciphertextSize: record.ciphertextSize,
    data,
  };
}
