/** The PRF way in (docs/protocol.md §21.9): the key a passkey's PRF output derives. */

import { deriveSubkey } from "./kdf.js";

/** WebAuthn `prf.eval.first`: the same for every passkey and account. */
export const PRF_INPUT = new TextEncoder().encode("haven/v1/passkey-unlock");

/** crypto_kdf_derive_from_key(32, 1, "haven-pk", prfOutput): wraps a copy of the key bundle. */
export function prfWrapKey(sodium, prfOutput) {
  if (prfOutput.length !== 32) throw new RangeError("a PRF output is 32 bytes");
  return deriveSubkey(sodium, prfOutput, 1, "haven-pk");
}
