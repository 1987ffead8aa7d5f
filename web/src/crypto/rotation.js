/**
 * User key rotation (docs/protocol.md §14), the part that needs no network: open every
 * sealed file key and message key with the old key pairs and seal it again to the new
 * X25519 key. Byte-compatible with the Python client; the keys it opens are wiped at once.
 */

import { b64decode, b64encode } from "./encoding.js";
import { DOCUMENT_ID_BYTES, openFileKey, sealFileKey } from "./documents.js";
import { ProtocolError } from "./keys.js";
import { openKey, sealKey } from "./messages.js";

/** One sealed key of the set could not be opened or re-sealed; names the item. */
export class ResealFailed extends ProtocolError {
  constructor(kind, id, reason) {
    super(`${kind} ${id}: ${reason}`, "reseal_failed");
    this.name = "ResealFailed";
    this.itemKind = kind;
    this.itemId = id;
  }
}

/** 0x01 || u32(v+1) || crypto_box_seal(D || FK, X') from a file key sealed to version v. */
export function resealFileKey(sodium, sealed, documentId, oldKeys, newKeys) {
  const fileKey = openFileKey(sodium, sealed, documentId, oldKeys);
  try {
    return sealFileKey(sodium, fileKey, documentId, newKeys.x25519Public, newKeys.version);
  } finally {
    sodium.memzero(fileKey);
  }
}

/** 0x01 || crypto_box_seal(K, X') from a message key sealed to the old X25519 key. */
export function resealMessageKey(sodium, sealed, oldKeys, newKeys) {
  const key = openKey(sodium, sealed, oldKeys);
  try {
    return sealKey(sodium, key, newKeys.x25519Public);
  } finally {
    sodium.memzero(key);
  }
}

/** How many sealed keys a reseal set holds. */
export const resealCount = (set) => (set.documents?.length ?? 0) + (set.messages?.length ?? 0);

/**
 * Re-seal a whole set from POST /account/keys/reseal (§14 steps 1–2) for POST /account/keys:
 * `{documents: [{id, sealed_key}], messages: [{id, sealed_key}]}`. Refuses a set made for
 * another key version than the one held, and names the first item that does not open.
 * `onProgress(done, total)`; `pause()` is awaited now and then so a page can repaint.
 */
export async function resealSet(sodium, set, oldKeys, newKeys, { onProgress = () => {}, pause = null, every = 50 } = {}) {
  if (set?.key_version !== oldKeys.version) {
    throw new ProtocolError(`the keys to replace are version ${set?.key_version}, not ${oldKeys.version}`, "keys_changed");
  }
  if (newKeys.version !== oldKeys.version + 1) throw new ProtocolError("the new keys must be the next version");
  const documents = set.documents ?? [];
  const messages = set.messages ?? [];
  const total = documents.length + messages.length;
  const out = { documents: [], messages: [] };
  let done = 0;
  const step = async () => {
    done += 1;
    if (done % every === 0 || done === total) {
      onProgress(done, total);
      if (pause) await pause();
    }
  };
  onProgress(0, total);
  for (const item of documents) {
    let sealed;
    try {
      const rawId = b64decode(item.id);
      if (rawId.length !== DOCUMENT_ID_BYTES) throw new Error("document id is not 16 bytes");
      sealed = resealFileKey(sodium, b64decode(item.sealed_key), rawId, oldKeys, newKeys);
    } catch (error) {
      throw new ResealFailed("document", item.id, error.message);
    }
    out.documents.push({ id: item.id, sealed_key: b64encode(sealed) });
    await step();
  }
  for (const item of messages) {
    let sealed;
    try {
      if (item.key_version != null && item.key_version !== oldKeys.version) {
        throw new Error(`sealed to key version ${item.key_version}`);
      }
      sealed = resealMessageKey(sodium, b64decode(item.sealed_key), oldKeys, newKeys);
    } catch (error) {
      throw new ResealFailed("message", item.id, error.message);
    }
    out.messages.push({ id: item.id, sealed_key: b64encode(sealed) });
    await step();
  }
  return out;
}
