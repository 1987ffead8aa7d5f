/** The PRF way in (docs/protocol.md §21.9): the key a passkey's PRF output derives; answers as JSON (§21.8). */

import { b64encode } from "./encoding.js";
import { deriveSubkey } from "./kdf.js";

/** WebAuthn `prf.eval.first`: the same for every passkey and account. */
export const PRF_INPUT = new TextEncoder().encode("haven/v1/passkey-unlock");

/** crypto_kdf_derive_from_key(32, 1, "haven-pk", prfOutput): wraps a copy of the key bundle. */
export function prfWrapKey(sodium, prfOutput) {
  if (prfOutput.length !== 32) throw new RangeError("a PRF output is 32 bytes");
  return deriveSubkey(sodium, prfOutput, 1, "haven-pk");
}

const encode = (buffer) => b64encode(new Uint8Array(buffer));

/** A WebAuthn answer as the JSON of `PublicKeyCredential.toJSON()`, without extension outputs. */
export function credentialJson(credential) {
  const r = credential.response;
  const response = { clientDataJSON: encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = encode(r.attestationObject);
    response.transports = r.getTransports?.() ?? [];
  } else {
    response.authenticatorData = encode(r.authenticatorData);
    response.signature = encode(r.signature);
    if (r.userHandle) response.userHandle = encode(r.userHandle);
  }
  // Never the PRF output: it would let the server open the PRF copy of the keys.
  return { id: credential.id, rawId: encode(credential.rawId), type: credential.type, response, clientExtensionResults: {}, authenticatorAttachment: credential.authenticatorAttachment ?? null };
}
