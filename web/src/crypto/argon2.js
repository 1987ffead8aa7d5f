/**
 * Page side of the Argon2id worker: one fresh worker per derivation, terminated after it
 * answers, whatever the answer.
 */

import { verifyWorker } from "../workers.js";
import { ARGON2ID, DEFAULT_MEMLIMIT, DEFAULT_OPSLIMIT, checkKdfParams, normalizePassphrase, WeakParameters } from "./kdf.js";

/* global ARGON2_WORKER_URL, ARGON2_WORKER_SRI */

/**
 * Derive `{authKey, wrapKey}` from a passphrase and server-sent KDF parameters (subkeys 1
 * and 2 of "haven-pw", or of `context` "haven-sr" for a recovery request, §22.5).
 * Parameters are checked here first, so weak or hostile ones never reach the worker.
 */
export async function passphraseKeys(passphrase, kdf, context = null) {
  return derive(normalizePassphrase(passphrase), checkKdfParams(kdf), context);
}

/**
 * The "haven-ir" subkeys 1 and 2 (box seed, signing seed) of an intake receipt's Argon2id
 * seed (§20.2), in the same worker; `entropy` is wiped by the transfer.
 */
export function receiptSubkeys(entropy, salt) {
  const params = checkKdfParams({ alg: ARGON2ID, salt, opslimit: DEFAULT_OPSLIMIT, memlimit: DEFAULT_MEMLIMIT });
  return derive(entropy, params, "haven-ir");
}

async function derive(bytes, params, context) {
  await verifyWorker(ARGON2_WORKER_URL, ARGON2_WORKER_SRI);
  return new Promise((resolve, reject) => {
    const worker = new Worker(ARGON2_WORKER_URL, { name: "kdf" });
    const done = () => worker.terminate();
    worker.onmessage = (event) => {
      done();
      const data = event.data;
      if (data.error === "weak_parameters") reject(new WeakParameters("refused parameters"));
      else if (data.error) reject(Object.assign(new Error("kdf failed"), { code: "kdf_failed" }));
      else resolve({ authKey: data.authKey, wrapKey: data.wrapKey });
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      done();
      reject(Object.assign(new Error("kdf worker failed"), { code: "kdf_failed" }));
    };
    worker.postMessage({ passphrase: bytes, params, context }, [bytes.buffer]);
  });
}
