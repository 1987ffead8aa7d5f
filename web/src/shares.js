/**
 * Split recovery (docs/protocol.md §22): Shamir 2-of-3 over the recovery key with the
 * audited shamir-secret-sharing package, share payloads, commitments, the setup signature,
 * the printed share and the recovery request key. Pure: no DOM, no network.
 */

import { combine, split } from "shamir-secret-sharing";
import { bytesEqual, concat, frame, u32, utf8 } from "./crypto/encoding.js";
import { deriveSubkey } from "./crypto/kdf.js";
import { ProtocolError, RECOVERY_KEY_BYTES, base32, base32Decode } from "./crypto/keys.js";

export const SHARE_BYTES = RECOVERY_KEY_BYTES + 1;
export const SETUP_ID_BYTES = 16;
export const PAYLOAD_BYTES = 1 + SETUP_ID_BYTES + 1 + SHARE_BYTES;
export const HELD_SLOTS = [2, 3];
const LABEL_SHARE = "haven/v1/recovery-share";
const LABEL_SETUP = "haven/v1/recovery-setup";
const CTX_REQUEST = "haven-sr";
const PRINTED_PREFIX = "HS1";

/** Three shares of a 32-byte recovery key, any two of which rebuild it. */
export async function splitRecoveryKey(recoveryKey) {
  if (recoveryKey.length !== RECOVERY_KEY_BYTES) throw new RangeError("a recovery key is 32 bytes");
  return split(recoveryKey, 3, 2);
}

/** The recovery key from two shares with distinct, non-zero x-bytes. */
export async function combineShares(a, b) {
  if (a.length !== SHARE_BYTES || b.length !== SHARE_BYTES) {
    throw new ProtocolError("two shares of 33 bytes are needed", "bad_share");
  }
  const xa = a[SHARE_BYTES - 1];
  const xb = b[SHARE_BYTES - 1];
  if (xa === xb || xa === 0 || xb === 0) {
    throw new ProtocolError("the shares must have distinct, non-zero x-bytes", "bad_share");
  }
  return combine([a, b]);
}

/** BLAKE2b-256 binding a share to its account, setup and slot. */
export function shareCommitment(sodium, username, setupId, slot, share) {
  const data = frame(LABEL_SHARE, utf8(username), setupId, Uint8Array.of(slot), share);
  return sodium.crypto_generichash(32, data);
}

/** What the survivor signs over a setup: name, setup id, key version, both commitments. */
export function setupMessage(username, setupId, keyVersion, commitments) {
  const parts = HELD_SLOTS.map((slot, i) => concat(Uint8Array.of(slot), commitments[i]));
  return frame(LABEL_SETUP, utf8(username), setupId, u32(keyVersion), ...parts);
}

/** 0x01 || setup id || slot || share: 51 bytes. */
export function encodePayload({ setupId, slot, share }) {
  return concat(Uint8Array.of(1), setupId, Uint8Array.of(slot), share);
}

/** Parse a share payload; refuse another length, version or slot. */
export function decodePayload(bytes) {
  if (bytes.length !== PAYLOAD_BYTES || bytes[0] !== 1) {
    throw new ProtocolError("not a version-1 share payload", "bad_share");
  }
  const slot = bytes[1 + SETUP_ID_BYTES];
  if (!HELD_SLOTS.includes(slot)) throw new ProtocolError("a share payload names slot 2 or 3", "bad_share");
  return { setupId: bytes.slice(1, 1 + SETUP_ID_BYTES), slot, share: bytes.slice(2 + SETUP_ID_BYTES) };
}

/** The printed share: "HS1-" then the payload in base32, groups of four. */
export function formatPrintedShare(payload) {
  return [PRINTED_PREFIX, ...base32(encodePayload(payload)).match(/.{1,4}/g)].join("-");
}

/** Read a typed or scanned printed share, ignoring case, spaces and dashes. */
export function parsePrintedShare(text) {
  const compact = String(text).replace(/[\s-]/g, "").toUpperCase();
  const body = compact.slice(PRINTED_PREFIX.length);
  if (!compact.startsWith(PRINTED_PREFIX) || body.length !== 82 || !/^[A-Z2-7]+$/.test(body)) {
    throw new ProtocolError("a printed share is HS1 and 82 characters from A-Z and 2-7", "bad_share");
  }
  const bytes = base32Decode(body);
  if (bytes === null) throw new ProtocolError("a printed share is not canonical", "bad_share");
  return decodePayload(bytes);
}

/** The recovery request's X25519 key pair and auth subkey, from the new passphrase's master
 * key under the account's own KDF parameters. */
export function requestKeys(sodium, master) {
  const privateKey = deriveSubkey(sodium, master, 1, CTX_REQUEST);
  return {
    privateKey,
    publicKey: sodium.crypto_scalarmult_base(privateKey),
    authKey: deriveSubkey(sodium, master, 2, CTX_REQUEST),
  };
}

/** Open a share sealed to a key pair and check it against the commitment the setup signed. */
export function openShare(sodium, sealed, keyPair, username, expected) {
  const payload = decodePayload(sodium.crypto_box_seal_open(sealed, keyPair.publicKey, keyPair.privateKey));
  const commitment = shareCommitment(sodium, username, payload.setupId, payload.slot, payload.share);
  if (!bytesEqual(commitment, expected)) throw new ProtocolError("the share does not match its commitment", "bad_share");
  return payload;
}
