/**
 * Replacing the account's key pairs (docs/protocol.md §14, client steps 1–5), mirroring
 * the Python reference client: fetch the set of sealed keys, re-seal each to new key pairs
 * of the next version, wrap the new bundle under the passphrase (fresh salt) and a new
 * recovery key, send it all in one request (with the contact book re-encrypted under the
 * new keys, §16), then take the new keys and check them in the key log. The old private keys are wiped; the new recovery key is returned to show once.
 */

import { ApiError, logoutBeacon, post } from "./api.js";
import { bookForRotation } from "./contacts.js";
import { passphraseKeys } from "./crypto/argon2.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import { newKdfParams, recoverySubkeys } from "./crypto/kdf.js";
import {
  formatRecoveryKey,
  generateKeyPairs,
  generateRecoveryKey,
  ProtocolError,
  publicRecord,
  recordMatchesKeys,
  unwrapBundle,
  wipeKeyPairs,
  wrapBundle,
} from "./crypto/keys.js";
import { resealCount, resealSet } from "./crypto/rotation.js";
import { session } from "./session.js";
import { sodiumReady } from "./sodium.js";
import { resealHeldShares } from "./shares.js";

/** Attempts when the set changes between fetching and sending it (409 reseal_set_changed). */
export const ATTEMPTS = 3;

let generation = 0;

/** Stop a rotation under way (lock, quick exit): it sends nothing more and wipes its keys. */
export function cancelRotation() {
  generation += 1;
}

function wipe(sodium, ...buffers) {
  for (const b of buffers) if (b instanceof Uint8Array) sodium.memzero(b);
}

const repaint = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Replace my keys. `passphrase` is my passphrase as it stands (re-entered); it stays my
 * passphrase, under a fresh salt. `onProgress({phase, done, total})` with phases
 * "check", "fetch", "reseal", "wrap", "send", "verify". Returns the new recovery key,
 * formatted, to show once.
 */
export async function rotateKeys(passphrase, { onProgress = () => {} } = {}) {
  const sodium = await sodiumReady();
  const me = session.account;
  if (!me) throw new ApiError(401, "unauthorized", "sign in first");
  const mine = generation;
  const live = () => {
    if (generation !== mine || session.account !== me) throw Object.assign(new Error("the key rotation was stopped"), { code: "cancelled" });
  };
  const { username, keys: oldKeys } = me;

  // The passphrase as it stands: its auth subkey proves it to the server, and unwrapping
  // my own bundle with it tells a typing mistake before any work is done.
  onProgress({ phase: "check" });
  const { kdf: currentKdf } = await post("/auth/prelogin", { username });
  const current = await passphraseKeys(passphrase, currentKdf);
  try {
    live();
    const held = unwrapBundle(sodium, b64decode(me.wrappedKeys), username, oldKeys.version, current.wrapKey);
    const same = recordMatchesKeys({ version: held.version, x25519: held.x25519Public, ed25519: held.ed25519Public }, oldKeys);
    wipeKeyPairs(sodium, held);
    if (!same) throw new ProtocolError("the server's copy of my keys does not match", "keys_mismatch");
  } catch (error) {
    wipe(sodium, current.authKey, current.wrapKey);
    if (error.code === "bundle_does_not_decrypt") throw new ApiError(401, "bad_credentials", "wrong passphrase");
    throw error;
  }

  const newKeys = generateKeyPairs(sodium, oldKeys.version + 1);
  const recovery = generateRecoveryKey(sodium);
  const rkeys = recoverySubkeys(sodium, recovery);
  let derived = null;
  try {
    onProgress({ phase: "wrap" });
    const params = newKdfParams(sodium);
    const kdf = { alg: params.alg, salt: b64encode(params.salt), opslimit: params.opslimit, memlimit: params.memlimit };
    derived = await passphraseKeys(passphrase, kdf);
    live();
    const base = {
      current_auth_key: b64encode(current.authKey),
      public_keys: publicRecord(sodium, newKeys, username),
      passphrase: { kdf, auth_key: b64encode(derived.authKey), wrapped_keys: b64encode(wrapBundle(sodium, newKeys, username, derived.wrapKey)) },
      recovery_auth_key: b64encode(rkeys.authKey),
      recovery_wrapped_keys: b64encode(wrapBundle(sodium, newKeys, username, rkeys.wrapKey)),
    };
    let answer = null;
    for (let attempt = 1; ; attempt++) {
      onProgress({ phase: "fetch" });
      const set = await post("/account/keys/reseal", {});
      live();
      const total = resealCount(set);
      const sealed = await resealSet(sodium, set, oldKeys, newKeys, {
        onProgress: (done) => onProgress({ phase: "reseal", done, total }),
        pause: async () => {
          await repaint();
          live();
        },
      });
      onProgress({ phase: "send", done: total, total });
      live();
      try {
        // The contact book moves to the new keys in the same request (§16), loaded afresh
        // on every attempt so its counter is the stored one plus one.
        const contactBook = await bookForRotation(newKeys);
        live();
        answer = await post("/account/keys", { ...base, documents: sealed.documents, messages: sealed.messages, contact_book: contactBook });
        break;
      } catch (error) {
        const again = ["reseal_set_changed", "contact_book_conflict"];
        if (!(error instanceof ApiError) || !again.includes(error.code) || attempt >= ATTEMPTS) throw error;
      }
    }
    // The server answered with the account at v+1 and a fresh session for this page; if
    // the page was locked meanwhile, that session ends too.
    if (generation !== mine || session.account !== me) {
      logoutBeacon();
      live();
    }
    // Shares I keep for survivors follow my keys (§22.4), while the old ones are still here.
    await resealHeldShares(sodium, oldKeys, newKeys).catch(() => {});
    session.installRotatedKeys(sodium, answer.account, newKeys);
    onProgress({ phase: "verify" });
    await session.verifyOwnKeys();
    return formatRecoveryKey(recovery);
  } catch (error) {
    if (session.account?.keys !== newKeys) wipeKeyPairs(sodium, newKeys);
    throw error;
  } finally {
    wipe(sodium, recovery, rkeys.authKey, rkeys.wrapKey, current.authKey, current.wrapKey, derived?.authKey, derived?.wrapKey);
  }
}
