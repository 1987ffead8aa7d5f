/**
 * Message envelopes of protocol v1 (docs/protocol.md §9), byte-compatible with
 * vault/protocol/messages.py: canonical header, padded body under a fresh key with the
 * header as associated data, the key sealed to every recipient, the sender's signature.
 */

import { b64decode, b64encode, concat, frame, lp, u32, u64, utf8 } from "./encoding.js";
import { keysOfVersion, ProtocolError } from "./keys.js";

export const FORMAT_V1 = 1;
export const MESSAGE_ID_BYTES = 16;
export const MESSAGE_KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const PAD_BLOCK = 256;
export const SEALED_KEY_BYTES = 1 + 48 + MESSAGE_KEY_BYTES;
export const MIN_BODY_BYTES = 1 + NONCE_BYTES + PAD_BLOCK + TAG_BYTES;
export const MAX_RECIPIENTS = 32;
export const MAX_ATTACHMENTS = 16;
export const TIMERS = [0, 3600, 86400, 7 * 86400, 30 * 86400];
const LABEL_HEADER = "haven/v1/message-header";
const LABEL_SIGNED = "haven/v1/message";
const MAX_ID = 64;

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Sort strings by their UTF-8 bytes (the protocol's order). */
export function sortByBytes(ids) {
  return [...ids].sort((a, b) => compareBytes(utf8(a), utf8(b)));
}

function idOk(id) {
  const n = typeof id === "string" ? utf8(id).length : 0;
  return n >= 1 && n <= MAX_ID;
}

const versionOk = (v) => Number.isInteger(v) && v >= 1 && v < 2 ** 31;

/**
 * Check a header: {conversationId, messageId (16 bytes), senderId, senderKeyVersion,
 * sentAt, ttl, recipients: [{userId, keyVersion}], attachments: [string]}.
 */
export function checkHeader(h) {
  if (!idOk(h.conversationId) || !idOk(h.senderId)) throw new ProtocolError("bad id in header");
  if (!(h.messageId instanceof Uint8Array) || h.messageId.length !== MESSAGE_ID_BYTES) {
    throw new ProtocolError("message id must be 16 bytes");
  }
  if (!versionOk(h.senderKeyVersion)) throw new ProtocolError("sender key version out of range");
  if (!Number.isSafeInteger(h.sentAt) || h.sentAt < 0) throw new ProtocolError("sent_at out of range");
  if (!TIMERS.includes(h.ttl)) throw new ProtocolError("bad ttl");
  const r = h.recipients;
  if (!Array.isArray(r) || r.length < 1 || r.length > MAX_RECIPIENTS) throw new ProtocolError("1 to 32 recipients");
  for (let i = 0; i < r.length; i++) {
    if (!idOk(r[i].userId) || !versionOk(r[i].keyVersion)) throw new ProtocolError("bad recipient");
    if (i > 0 && compareBytes(utf8(r[i - 1].userId), utf8(r[i].userId)) >= 0) {
      throw new ProtocolError("recipients must be sorted by user id, without duplicates");
    }
  }
  const sender = r.find((x) => x.userId === h.senderId);
  if (!sender) throw new ProtocolError("the sender must be one of the recipients");
  if (sender.keyVersion !== h.senderKeyVersion) throw new ProtocolError("sender's own copy uses another version");
  const a = h.attachments ?? [];
  if (a.length > MAX_ATTACHMENTS) throw new ProtocolError("at most 16 attachments");
  for (let i = 0; i < a.length; i++) {
    if (!idOk(a[i])) throw new ProtocolError("bad attachment id");
    if (i > 0 && compareBytes(utf8(a[i - 1]), utf8(a[i])) >= 0) throw new ProtocolError("attachments must be sorted");
  }
}

/** The canonical header bytes (associated data and signed prefix). */
export function encodeHeader(h) {
  checkHeader(h);
  const recipients = concat(u32(h.recipients.length), ...h.recipients.flatMap((r) => [lp(utf8(r.userId)), u32(r.keyVersion)]));
  const a = h.attachments ?? [];
  const attachments = concat(u32(a.length), ...a.map((d) => lp(utf8(d))));
  return frame(
    LABEL_HEADER,
    Uint8Array.of(FORMAT_V1),
    utf8(h.conversationId),
    h.messageId,
    utf8(h.senderId),
    u32(h.senderKeyVersion),
    u64(h.sentAt),
    u32(h.ttl),
    recipients,
    attachments,
  );
}

/** frame("haven/v1/message", header, body, sealed_1..n). */
export function signedMessage(headerBytes, body, sealedKeys) {
  return frame(LABEL_SIGNED, headerBytes, body, ...sealedKeys);
}

/** 0x01 || nonce || XChaCha20-Poly1305(sodium_pad(utf8(text), 256), ad = header). */
export function encryptBody(sodium, headerBytes, text, messageKey, nonce) {
  const padded = sodium.pad(utf8(text), PAD_BLOCK);
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(padded, headerBytes, null, nonce, messageKey);
  return concat(Uint8Array.of(FORMAT_V1), nonce, ct);
}

/** Open a body under this exact header; ProtocolError otherwise. */
export function decryptBody(sodium, headerBytes, body, messageKey) {
  if (body.length < MIN_BODY_BYTES || body[0] !== FORMAT_V1) throw new ProtocolError("body has the wrong format");
  try {
    const padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      body.subarray(1 + NONCE_BYTES),
      headerBytes,
      body.subarray(1, 1 + NONCE_BYTES),
      messageKey,
    );
    const plain = sodium.unpad(padded, PAD_BLOCK);
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  } catch {
    throw new ProtocolError("the message body does not decrypt under its header");
  }
}

/** 0x01 || crypto_box_seal(message key, recipient X25519 key). */
export function sealKey(sodium, messageKey, x25519Public) {
  return concat(Uint8Array.of(FORMAT_V1), sodium.crypto_box_seal(messageKey, x25519Public));
}

/** Recover a message key sealed to my key pair. */
export function openKey(sodium, sealed, keys) {
  if (sealed.length !== SEALED_KEY_BYTES || sealed[0] !== FORMAT_V1) throw new ProtocolError("a sealed key has the wrong format");
  let key;
  try {
    key = sodium.crypto_box_seal_open(sealed.subarray(1), keys.x25519Public, keys.x25519Secret);
  } catch {
    throw new ProtocolError("the message key was not sealed to this key");
  }
  if (key.length !== MESSAGE_KEY_BYTES) throw new ProtocolError("a message key is 32 bytes");
  return key;
}

/**
 * Compose a signed envelope as the API's JSON (§9.5). `x25519` maps each recipient's
 * user id to its checked X25519 public key of the version the header names.
 */
export function compose(sodium, header, text, senderKeys, x25519, { messageKey, nonce, seal } = {}) {
  const headerBytes = encodeHeader(header);
  if (senderKeys.version !== header.senderKeyVersion) throw new ProtocolError("signing key version does not match");
  const key = messageKey ?? sodium.randombytes_buf(MESSAGE_KEY_BYTES);
  const body = encryptBody(sodium, headerBytes, text, key, nonce ?? sodium.randombytes_buf(NONCE_BYTES));
  const sealed = header.recipients.map((r, i) => (seal ? seal(key, x25519[r.userId], i) : sealKey(sodium, key, x25519[r.userId])));
  if (!messageKey) sodium.memzero(key);
  const signature = sodium.crypto_sign_detached(signedMessage(headerBytes, body, sealed), senderKeys.ed25519Secret);
  return {
    id: b64encode(header.messageId),
    conversation_id: header.conversationId,
    sender_id: header.senderId,
    sender_key_version: header.senderKeyVersion,
    sent_at: header.sentAt,
    ttl: header.ttl,
    recipients: header.recipients.map((r, i) => ({ user_id: r.userId, key_version: r.keyVersion, sealed_key: b64encode(sealed[i]) })),
    attachments: [...(header.attachments ?? [])],
    body: b64encode(body),
    signature: b64encode(signature),
  };
}

/** The header of an envelope as the API gives it. */
export function headerOf(envelope) {
  return {
    conversationId: envelope.conversation_id,
    messageId: b64decode(envelope.id),
    senderId: envelope.sender_id,
    senderKeyVersion: envelope.sender_key_version,
    sentAt: envelope.sent_at,
    ttl: envelope.ttl,
    recipients: envelope.recipients.map((r) => ({ userId: r.user_id, keyVersion: r.key_version })),
    attachments: envelope.attachments ?? [],
  };
}

/**
 * The sealed message key meant for me and the key version it is sealed to: the reseal
 * when I re-sealed it in a key rotation (§14), else my own `recipients` entry.
 */
export function mySealedKey(envelope, userId) {
  const index = (envelope.recipients ?? []).findIndex((r) => r.user_id === userId);
  if (index < 0) throw new ProtocolError("this message was not sealed to this account");
  const reseal = envelope.reseal;
  if (reseal) {
    if (!versionOk(reseal.key_version)) throw new ProtocolError("reseal key version out of range");
    return { sealed: b64decode(reseal.sealed_key), version: reseal.key_version };
  }
  const entry = envelope.recipients[index];
  return { sealed: b64decode(entry.sealed_key), version: entry.key_version };
}

/**
 * Verify and open an envelope (§9.6): conversation, header rules, signature by the
 * sender's checked key `senderEd25519`, my sealed key (the reseal if there is one, §14)
 * opened with my key pair of the version it names, body. `keys` is one key pair set or a
 * list of them. Returns text.
 */
export function openEnvelope(sodium, envelope, { conversationId, userId, keys, senderEd25519 }) {
  if (envelope.conversation_id !== conversationId) throw new ProtocolError("message from another conversation");
  const header = headerOf(envelope);
  const headerBytes = encodeHeader(header);
  const body = b64decode(envelope.body);
  if (body.length < MIN_BODY_BYTES || body[0] !== FORMAT_V1 || (body.length - 1 - NONCE_BYTES - TAG_BYTES) % PAD_BLOCK) {
    throw new ProtocolError("body has the wrong format");
  }
  const sealed = envelope.recipients.map((r) => b64decode(r.sealed_key));
  for (const s of sealed) if (s.length !== SEALED_KEY_BYTES || s[0] !== FORMAT_V1) throw new ProtocolError("bad sealed key");
  const signature = b64decode(envelope.signature);
  let ok = false;
  try {
    ok = signature.length === 64 && sodium.crypto_sign_verify_detached(signature, signedMessage(headerBytes, body, sealed), senderEd25519);
  } catch {
    ok = false;
  }
  if (!ok) throw new ProtocolError("the message signature does not verify", "bad_signature");
  const mine = mySealedKey(envelope, userId);
  const key = openKey(sodium, mine.sealed, keysOfVersion(keys, mine.version));
  try {
    return decryptBody(sodium, headerBytes, body, key);
  } finally {
    sodium.memzero(key);
  }
}
