/**
 * Safety numbers (docs/protocol.md §7): a fingerprint of two accounts' current keys that
 * both people can compare in person, as 60 digits and as a QR code.
 */

import { frame, u32, utf8 } from "./encoding.js";

export const LABEL_FINGERPRINT = "haven/v1/fingerprint";
export const QR_PREFIX = "HAVEN-SN1:";

/** BLAKE2b-256 over one account's id, key version and public keys. */
export function fingerprint(sodium, userId, version, x25519, ed25519) {
  const data = frame(LABEL_FINGERPRINT, utf8(userId), u32(version), x25519, ed25519);
  return sodium.crypto_generichash(32, data, null);
}

/** 30 decimal digits: six 5-byte big-endian chunks of the fingerprint, each mod 100000. */
export function fingerprintDigits(fp) {
  let out = "";
  for (let i = 0; i < 30; i += 5) {
    let n = 0n;
    for (const b of fp.subarray(i, i + 5)) n = (n << 8n) | BigInt(b);
    out += String(n % 100000n).padStart(5, "0");
  }
  return out;
}

/** 60 digits for two fingerprints: their digit strings sorted and concatenated. */
export function safetyNumber(fpA, fpB) {
  return [fingerprintDigits(fpA), fingerprintDigits(fpB)].sort().join("");
}

/** Twelve groups of five digits separated by spaces. */
export function formatSafetyNumber(number) {
  return number.match(/.{1,5}/g).join(" ");
}

/** The text a safety-number QR code carries. */
export function qrPayload(number) {
  return QR_PREFIX + number;
}
