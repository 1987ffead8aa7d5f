/**
 * Split recovery (docs/protocol.md §22): Shamir 2-of-3 over the recovery key with the
 * audited shamir-secret-sharing package, share payloads, commitments, the setup signature,
 * the printed share and the recovery request key (pure, first), then the calls of §22.4–22.6.
 */

import { combine, split } from "shamir-secret-sharing";
import { get, post } from "./api.js";
import { passphraseKeys } from "./crypto/argon2.js";
import { b64decode, b64encode, bytesEqual, concat, frame, u32, utf8 } from "./crypto/encoding.js";
import { checkPassphraseStrength, deriveSubkey } from "./crypto/kdf.js";
import { ProtocolError, RECOVERY_KEY_BYTES, base32, base32Decode, formatRecoveryKey, normalizeUsername, parseRecoveryKey, verifyPublicRecord } from "./crypto/keys.js";
import { verifyLoggedKey } from "./directory.js";
import { trustContacts } from "./contacts.js";
import { session } from "./session.js";
import { sodiumReady } from "./sodium.js";

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

// -- routes (§22.4–22.6) ---------------------------------------------------------------

/** `{setup, request}` of my own split (each null when there is none). */
export const mySplit = () => get("/account/recovery-shares");

/** Cancel a recovery through shares someone started in my name. */
export const cancelShareRecovery = async () => (await post("/account/recovery-shares/cancel")).request;

/** Shares I keep for survivors, each with her latest request. */
export const heldShares = async () => (await get("/recovery-shares/held")).held;

/**
 * Split my recovery key: share 2 sealed to my counsel `member` ({user_id, username,
 * public_keys}, checked and pinned first, §16), share 3 printed. Returns the printed text.
 */
export async function splitMyRecoveryKey(recoveryText, member) {
  const sodium = await sodiumReady();
  const me = session.account;
  const record = (await trustContacts([member]))[member.user_id];
  const recovery = parseRecoveryKey(recoveryText);
  const parts = await splitRecoveryKey(recovery);
  sodium.memzero(recovery);
  const setupId = sodium.randombytes_buf(SETUP_ID_BYTES);
  const counsel = { setupId, slot: 2, share: parts[1] };
  const printed = { setupId, slot: 3, share: parts[2] };
  const commitments = [counsel, printed].map((p) => shareCommitment(sodium, me.username, setupId, p.slot, p.share));
  const message = setupMessage(me.username, setupId, me.keys.version, commitments);
  const body = {
    setup_id: b64encode(setupId),
    key_version: me.keys.version,
    signature: b64encode(sodium.crypto_sign_detached(message, me.keys.ed25519Secret)),
    holders: [
      {
        slot: 2,
        kind: "account",
        commitment: b64encode(commitments[0]),
        user_id: member.user_id,
        key_version: record.version,
        sealed_share: b64encode(sodium.crypto_box_seal(encodePayload(counsel), record.x25519)),
      },
      { slot: 3, kind: "printed", commitment: b64encode(commitments[1]) },
    ],
  };
  await post("/account/recovery-shares", body);
  const text = formatPrintedShare(printed);
  for (const part of parts) sodium.memzero(part);
  return text;
}

/** The request's keys from the new passphrase under the account's own KDF parameters. */
async function requestSecrets(sodium, username, passphrase) {
  const { kdf } = await post("/auth/prelogin", { username });
  const { authKey: privateKey, wrapKey: authKey } = await passphraseKeys(passphrase, kdf, "haven-sr");
  return { privateKey, authKey, publicKey: sodium.crypto_scalarmult_base(privateKey) };
}

/** Start a recovery through shares with the passphrase I will have afterwards. */
export async function startShareRecovery(username, passphrase) {
  const sodium = await sodiumReady();
  checkPassphraseStrength(passphrase);
  const name = normalizeUsername(username);
  const keys = await requestSecrets(sodium, name, passphrase);
  const body = { username: name, auth_key: b64encode(keys.authKey), request_key: b64encode(keys.publicKey) };
  sodium.memzero(keys.privateKey);
  return (await post("/auth/share-recovery/start", body)).request;
}

/** My waiting recovery: `{request, setup, shares}`, and the request keys to open them. */
async function recoveryStatus(sodium, name, passphrase) {
  const keys = await requestSecrets(sodium, name, passphrase);
  const status = await post("/auth/share-recovery/status", { username: name, auth_key: b64encode(keys.authKey) });
  return { status, keys };
}

/** Enter the trusted person's printed share (typed or scanned) for my waiting recovery. */
export async function enterPrintedShare(username, passphrase, printedText) {
  const sodium = await sodiumReady();
  const name = normalizeUsername(username);
  const payload = parsePrintedShare(printedText);
  const keys = await requestSecrets(sodium, name, passphrase);
  const share = {
    setup_id: b64encode(payload.setupId),
    slot: payload.slot,
    commitment: b64encode(shareCommitment(sodium, name, payload.setupId, payload.slot, payload.share)),
    sealed_share: b64encode(sodium.crypto_box_seal(encodePayload(payload), keys.publicKey)),
  };
  sodium.memzero(keys.privateKey);
  return (await post("/auth/share-recovery/share", { username: name, auth_key: b64encode(keys.authKey), share })).request;
}

/**
 * Follow my recovery; once ready, open both shares, rebuild the recovery key and set the
 * new passphrase (§4 recovery). Returns `{request, account}` (account null until ready).
 */
export async function finishShareRecovery(username, passphrase) {
  const sodium = await sodiumReady();
  const name = normalizeUsername(username);
  const { status, keys } = await recoveryStatus(sodium, name, passphrase);
  if (!status.setup || status.shares.length !== 2) {
    sodium.memzero(keys.privateKey);
    return { request: status.request, account: null };
  }
  const expected = Object.fromEntries(status.setup.holders.map((h) => [h.slot, b64decode(h.commitment)]));
  const parts = status.shares.map((item) => openShare(sodium, b64decode(item.sealed_share), keys, name, expected[item.slot]).share);
  sodium.memzero(keys.privateKey);
  const recovery = await combineShares(parts[0], parts[1]);
  const account = await session.recover(name, formatRecoveryKey(recovery), passphrase);
  sodium.memzero(recovery);
  const message = setupMessage(name, b64decode(status.setup.setup_id), status.setup.key_version, HELD_SLOTS.map((slot) => expected[slot]));
  if (!sodium.crypto_sign_verify_detached(b64decode(status.setup.signature), message, session.account.record.ed25519)) {
    throw new ProtocolError("the split was not signed by me", "bad_signature");
  }
  return { request: status.request, account };
}

/** Release the share I keep in `item` (from heldShares) to her waiting request. */
export async function releaseHeldShare(item) {
  const sodium = await sodiumReady();
  const me = session.account;
  if (item.key_version !== me.keys.version) throw new ProtocolError("sealed to a key I no longer hold", "other_key_version");
  const owner = verifyPublicRecord(sodium, item.owner_key, item.owner_username);
  await verifyLoggedKey(item.owner_id, item.owner_key);
  const setup = item.setup;
  const commitments = setup.holders.map((h) => b64decode(h.commitment));
  const message = setupMessage(item.owner_username, b64decode(setup.setup_id), setup.key_version, commitments);
  if (!sodium.crypto_sign_verify_detached(b64decode(setup.signature), message, owner.ed25519)) {
    throw new ProtocolError("the split is not signed by her", "bad_signature");
  }
  const expected = b64decode(setup.holders.find((h) => h.slot === item.slot).commitment);
  const keys = { publicKey: me.keys.x25519Public, privateKey: me.keys.x25519Secret };
  const payload = openShare(sodium, b64decode(item.sealed_share), keys, item.owner_username, expected);
  const body = {
    setup_id: b64encode(payload.setupId),
    slot: payload.slot,
    commitment: b64encode(expected),
    sealed_share: b64encode(sodium.crypto_box_seal(encodePayload(payload), b64decode(item.request.request_key))),
  };
  return (await post(`/recovery-shares/requests/${encodeURIComponent(item.request.id)}/release`, body)).request;
}

/** After I replaced my keys (§14): seal every share I keep again, to my new key. */
export async function resealHeldShares(sodium, oldKeys, newKeys) {
  for (const item of await heldShares()) {
    if (item.key_version !== oldKeys.version || !item.sealed_share) continue;
    const expected = b64decode(item.setup.holders.find((h) => h.slot === item.slot).commitment);
    const keys = { publicKey: oldKeys.x25519Public, privateKey: oldKeys.x25519Secret };
    const payload = openShare(sodium, b64decode(item.sealed_share), keys, item.owner_username, expected);
    await post("/recovery-shares/held/reseal", {
      setup_id: b64encode(payload.setupId),
      key_version: newKeys.version,
      sealed_share: b64encode(sodium.crypto_box_seal(encodePayload(payload), newKeys.x25519Public)),
    });
  }
}
