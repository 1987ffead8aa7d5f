/**
 * Passkeys in the browser (docs/protocol.md §21.8, §21.9): the routes, WebAuthn options and
 * answers as JSON, and the PRF way in. The PRF output and the key it derives stay in this
 * page; only the bundle wrapped under that key is sent.
 */

import { get, post } from "./api.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import { PRF_INPUT, credentialJson, prfWrapKey } from "./crypto/passkeys.js";
import { factorError } from "./factors.js";
import { t } from "./i18n.js";
import { session } from "./session.js";
import { sodiumReady } from "./sodium.js";

/** Whether this browser offers WebAuthn at all. */
export function passkeysOffered() {
  return typeof window !== "undefined" && typeof window.PublicKeyCredential === "function" && Boolean(navigator.credentials);
}

/** `{passkeys: [{id, name, can_unlock, created_at, last_used_at}]}`. */
export function myPasskeys() {
  return get("/account/passkeys");
}

/** Rename one of my passkeys. */
export function renamePasskey(id, name) {
  return post(`/account/passkeys/${encodeURIComponent(id)}/name`, { name: name.trim() });
}

/** Remove one of my passkeys and its way in. */
export function removePasskey(id) {
  return post(`/account/passkeys/${encodeURIComponent(id)}/remove`);
}

const bytes = (buffer) => new Uint8Array(buffer);
const encode = (buffer) => b64encode(bytes(buffer));
const descriptors = (list) => (list ?? []).map((d) => ({ ...d, id: b64decode(d.id) }));
const prfAsk = () => ({ prf: { eval: { first: PRF_INPUT } } });

/** The PRF output of an answer, or null where the authenticator gave none. */
function prfOutput(credential) {
  const first = credential.getClientExtensionResults?.().prf?.results?.first;
  return first ? bytes(first) : null;
}

/** navigator.credentials.get for the server's request options, asking for the PRF output. */
async function getAssertion(options) {
  const publicKey = { ...options, challenge: b64decode(options.challenge), allowCredentials: descriptors(options.allowCredentials), extensions: prfAsk() };
  return navigator.credentials.get({ publicKey });
}

/** Run `use` with the key a PRF output derives (§21.9), wiped afterwards with the output. */
async function withPrfKey(output, use) {
  const sodium = await sodiumReady();
  const key = prfWrapKey(sodium, output);
  try {
    return await use(key);
  } finally {
    sodium.memzero(key);
    sodium.memzero(output);
  }
}

/**
 * Register a passkey (fresh sign-in). Where the authenticator has PRF, also keep my key
 * bundle wrapped under its PRF key, so the passkey alone opens the account.
 */
export async function addPasskey(name) {
  const { public_key: options } = await post("/account/passkeys/options");
  const publicKey = {
    ...options,
    challenge: b64decode(options.challenge),
    user: { ...options.user, id: b64decode(options.user.id) },
    excludeCredentials: descriptors(options.excludeCredentials),
    extensions: prfAsk(),
  };
  const created = await navigator.credentials.create({ publicKey });
  const { passkey } = await post("/account/passkeys", { credential: credentialJson(created), name: name.trim() });
  const results = created.getClientExtensionResults?.().prf;
  if (!results?.enabled && !results?.results) return passkey;
  // Some authenticators give the PRF output only when asked by an assertion; this one is
  // checked by nobody, so its challenge is local.
  let output = prfOutput(created);
  if (!output) {
    const sodium = await sodiumReady();
    const local = { challenge: b64encode(sodium.randombytes_buf(32)), allowCredentials: [{ type: "public-key", id: encode(created.rawId) }], userVerification: "required" };
    output = prfOutput(await getAssertion(local));
  }
  if (!output) return passkey;
  const wrapped = await withPrfKey(output, (key) => session.wrapMyKeys(key));
  return (await post(`/account/passkeys/${encodeURIComponent(passkey.id)}/unlock`, { wrapped_keys: b64encode(wrapped) })).passkey;
}

/** Complete a held sign-in (§21.1) with one of the account's passkeys. */
export async function completeWithPasskey() {
  const { public_key: options } = await post("/auth/factor/passkey/options");
  const answer = await getAssertion(options);
  return session.completeFactorWith("/auth/factor/passkey", { credential: credentialJson(answer) });
}

/** Sign in with a PRF passkey alone: the server sends the copy only its PRF key opens. */
export async function signInWithPasskey() {
  const { public_key: options } = await post("/auth/passkey/options");
  const answer = await getAssertion(options);
  const output = prfOutput(answer);
  // No PRF output, no way to open the copy: do not start a session it cannot use.
  if (!output) throw Object.assign(new Error("no PRF output"), { code: "passkey_cannot_unlock" });
  return withPrfKey(output, async (key) => {
    const data = await post("/auth/passkey", { credential: credentialJson(answer) });
    return session.unlockWith(data.account, data.prf_wrapped_keys, key);
  });
}

const MESSAGES = {
  NotAllowedError: "passkey.error.cancelled",
  InvalidStateError: "passkey.error.exists",
  passkey_exists: "passkey.error.exists",
  bad_passkey: "passkey.error.bad",
  passkey_cloned: "passkey.error.cloned",
  passkey_cannot_unlock: "passkey.error.cannotUnlock",
  too_many_passkeys: "passkey.error.tooMany",
  no_challenge: "passkey.error.bad",
};

/** The message for a refused or cancelled passkey step, else a factor step's. */
export function passkeyError(error) {
  const key = MESSAGES[error?.code] ?? MESSAGES[error?.name];
  return key ? t(key) : factorError(error);
}
