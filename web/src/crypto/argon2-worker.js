/**
 * Dedicated worker for Argon2id: derives the master key, returns only the two subkeys,
 * and wipes everything. The page starts one worker per derivation and terminates it,
 * so 64 MiB or more of Argon2id memory never stays mapped and the master key never
 * reaches the page.
 *
 * SODIUM_URL is injected by the build: the same content-hashed libsodium file the page
 * loads with Subresource Integrity, served from the HTTP cache the second time.
 */

import { deriveMasterKey, passphraseSubkeys, subkeys } from "./kdf.js";

/* global SODIUM_URL */
self.importScripts(SODIUM_URL);

self.onmessage = async (event) => {
  const { passphrase, params, context } = event.data;
  try {
    const sodium = self.sodium;
    await sodium.ready;
    const master = deriveMasterKey(sodium, passphrase, params);
    sodium.memzero(passphrase);
    // A recovery request (§22.5) asks for the "haven-sr" subkeys 1 and 2 instead, an intake
    // receipt (§20.2) for the "haven-ir" ones (its box and signing seeds).
    const own = context === "haven-sr" || context === "haven-ir";
    const { authKey, wrapKey } = own ? subkeys(sodium, master, context) : passphraseSubkeys(sodium, master);
    sodium.memzero(master);
    self.postMessage({ authKey, wrapKey }, [authKey.buffer, wrapKey.buffer]);
  } catch (error) {
    passphrase.fill(0);
    self.postMessage({ error: error?.name === "WeakParameters" ? "weak_parameters" : "kdf_failed" });
  }
};
