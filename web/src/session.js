/**
 * The signed-in account and the account flows of docs/protocol.md §4, mirroring the
 * Python reference client (vault/client/api.py). Private keys live only in this module's
 * memory; lock() wipes them.
 */

import { ApiError, get, post } from "./api.js";
import { passphraseKeys } from "./crypto/argon2.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import { checkPassphraseStrength, newKdfParams, recoverySubkeys } from "./crypto/kdf.js";
import {
  formatRecoveryKey,
  generateKeyPairs,
  generateRecoveryKey,
  normalizeUsername,
  ProtocolError,
  parseRecoveryKey,
  publicRecord,
  recordMatchesKeys,
  unwrapBundle,
  verifyPublicRecord,
  wipeKeyPairs,
  wrapBundle,
} from "./crypto/keys.js";
import { fingerprint, safetyNumber } from "./crypto/safety.js";
import { attachAccount, forgetBook, inspectContact, loadBook } from "./contacts.js";
import { forgetVerified, monitorSelf, refreshHead, verifyLoggedKey } from "./directory.js";
import { sodiumReady } from "./sodium.js";

const INVITE_BYTES = 32;

/** Decode an invite token from a link fragment; null when it is not a canonical 32-byte token. */
export function parseInviteFragment(hash) {
  const match = /^#invite=([A-Za-z0-9_-]+)$/.exec(hash ?? "");
  if (!match) return null;
  try {
    return b64decode(match[1]).length === INVITE_BYTES ? match[1] : null;
  } catch {
    return null;
  }
}

function wipe(sodium, ...buffers) {
  for (const b of buffers) if (b instanceof Uint8Array) sodium.memzero(b);
}

/** The key log does not hold my own keys as they should be (§12 step 3, §14): signed out. */
export class OwnKeysRefused extends Error {
  constructor(reason) {
    super(`my own keys failed the key-log check: ${reason}`);
    this.name = "OwnKeysRefused";
    this.code = "own_keys";
  }
}

class Session {
  #pendingWrapKey = null;

  constructor() {
    this.account = null;
    this.pendingMethods = null;
    this.lockHooks = new Set();
    attachAccount(() => this.account);
  }

  /** Run `hook` whenever the keys are dropped (logout, lock, quick exit, failed checks). */
  onLock(hook) {
    this.lockHooks.add(hook);
  }

  /** Whether an account is signed in on this page. */
  get isSignedIn() {
    return this.account !== null;
  }

  async #newPassphrase(sodium, passphrase, keys, username) {
    checkPassphraseStrength(passphrase);
    const params = newKdfParams(sodium);
    const kdf = { alg: params.alg, salt: b64encode(params.salt), opslimit: params.opslimit, memlimit: params.memlimit };
    const derived = await passphraseKeys(passphrase, kdf);
    const body = {
      kdf,
      auth_key: b64encode(derived.authKey),
      wrapped_keys: b64encode(wrapBundle(sodium, keys, username, derived.wrapKey)),
    };
    return { body, derived };
  }

  #setAccount(sodium, acct, keys) {
    let record;
    try {
      record = verifyPublicRecord(sodium, acct.public_keys, acct.username);
    } catch (error) {
      wipeKeyPairs(sodium, keys);
      throw error;
    }
    if (!recordMatchesKeys(record, keys)) {
      wipeKeyPairs(sodium, keys);
      throw new ProtocolError("server copy of my public keys does not match", "keys_mismatch");
    }
    const sameAccount = this.account?.id === acct.id;
    if (this.account) wipeKeyPairs(sodium, this.account.keys);
    if (!sameAccount) {
      // Another account (or the first one): nothing of the previous one carries over.
      forgetBook();
      this.#runLockHooks();
    }
    this.account = {
      id: acct.id,
      role: acct.role,
      username: acct.username,
      keys,
      record,
      published: acct.public_keys,
      wrappedKeys: acct.wrapped_keys,
      mustRotate: acct.must_rotate_keys === true,
      mustEnrolFactor: acct.must_enrol_factor === true,
    };
    return this.account;
  }

  /**
   * Check my own keys in the key log (§12 steps 2–3, §14): the current key is included
   * under a verified head, and the log's `publish` entries in my name are exactly one per
   * version up to the current one, the current one holding my keys. Otherwise sign out.
   */
  async verifyOwnKeys() {
    const me = this.account;
    try {
      await verifyLoggedKey(me.id, me.published);
      await monitorSelf(me.id, me.record);
    } catch (error) {
      await this.#signOutQuietly();
      throw error instanceof ApiError ? error : new OwnKeysRefused(error.message);
    }
    // Then the contact book (§16), opened with my current keys; the head pinned in it
    // must be extended by the log as it is now.
    try {
      await loadBook();
      await refreshHead();
    } catch (error) {
      await this.#signOutQuietly();
      throw error;
    }
    return me;
  }

  async #signOutQuietly() {
    try {
      await this.logout();
    } catch {
      /* the keys are gone either way */
    }
  }

  /**
   * Take the keys of a completed key rotation (§14 step 4's answer): the old private keys
   * are wiped, the new ones are checked against the server's copy of their public record.
   */
  installRotatedKeys(sodium, acct, keys) {
    if (!this.account || this.account.id !== acct.id) {
      wipeKeyPairs(sodium, keys);
      throw new ApiError(401, "unauthorized", "signed out during the key rotation");
    }
    return this.#setAccount(sodium, acct, keys);
  }

  /** Create an account from an invite; return the formatted recovery key to show once. */
  async register(invite, username, passphrase) {
    const sodium = await sodiumReady();
    const name = normalizeUsername(username);
    checkPassphraseStrength(passphrase);
    const keys = generateKeyPairs(sodium, 1);
    const recovery = generateRecoveryKey(sodium);
    const rkeys = recoverySubkeys(sodium, recovery);
    const { body: pass, derived } = await this.#newPassphrase(sodium, passphrase, keys, name);
    const body = {
      invite,
      username: name,
      passphrase: pass,
      recovery_auth_key: b64encode(rkeys.authKey),
      recovery_wrapped_keys: b64encode(wrapBundle(sodium, keys, name, rkeys.wrapKey)),
      public_keys: publicRecord(sodium, keys, name),
    };
    wipe(sodium, rkeys.authKey, rkeys.wrapKey, derived.authKey, derived.wrapKey);
    try {
      const data = await post("/auth/register", body);
      this.#setAccount(sodium, data.account, keys);
      return formatRecoveryKey(recovery);
    } finally {
      wipe(sodium, recovery);
    }
  }

  /** Sign in from any device with username and passphrase. */
  async login(username, passphrase) {
    const sodium = await sodiumReady();
    const name = normalizeUsername(username);
    const { kdf } = await post("/auth/prelogin", { username: name });
    const derived = await passphraseKeys(passphrase, kdf);
    try {
      const data = await post("/auth/login", { username: name, auth_key: b64encode(derived.authKey) });
      if (data.factor) return this.#hold(sodium, derived.wrapKey, data.factor.methods);
      this.#unlock(sodium, data.account, derived.wrapKey);
    } finally {
      wipe(sodium, derived.authKey, derived.wrapKey);
    }
    return this.verifyOwnKeys();
  }

  /** A sign-in waiting for its second factor (§21.1): keep a copy of the wrap subkey till then. */
  #hold(sodium, wrapKey, methods) {
    this.#forgetPending(sodium);
    this.#pendingWrapKey = wrapKey.slice();
    this.pendingMethods = methods;
    return { factor: methods };
  }

  #forgetPending(sodium) {
    if (this.#pendingWrapKey) wipe(sodium, this.#pendingWrapKey);
    this.#pendingWrapKey = null;
    this.pendingMethods = null;
  }

  /** Whether a sign-in waits for its second factor. */
  get isPending() {
    return this.#pendingWrapKey !== null;
  }

  /** Complete a held sign-in with a TOTP code (six digits) or a recovery code. */
  completeFactor(value) {
    const text = value.trim();
    return this.completeFactorWith("/auth/factor", /^[0-9]{6}$/.test(text) ? { code: text } : { recovery_code: text });
  }

  /** Complete a held sign-in with `body` sent to `path` (a code, or a passkey's assertion). */
  async completeFactorWith(path, body) {
    const sodium = await sodiumReady();
    if (!this.#pendingWrapKey) throw new ApiError(401, "no_pending_sign_in", "sign in again");
    const data = await post(path, body);
    try {
      this.#unlock(sodium, data.account, this.#pendingWrapKey);
    } finally {
      this.#forgetPending(sodium);
    }
    return this.verifyOwnKeys();
  }

  /** Sign in with another copy of the key bundle (the PRF way in, §21.9): unwrap it here. */
  async unlockWith(acct, wrapped, wrapKey) {
    const sodium = await sodiumReady();
    this.#forgetPending(sodium);
    const keys = unwrapBundle(sodium, b64decode(wrapped), acct.username, acct.key_version, wrapKey);
    this.#setAccount(sodium, acct, keys);
    return this.verifyOwnKeys();
  }

  /** My key bundle wrapped under `wrapKey` (a copy for another way in, §21.9). */
  async wrapMyKeys(wrapKey) {
    const sodium = await sodiumReady();
    return wrapBundle(sodium, this.account.keys, this.account.username, wrapKey);
  }

  #unlock(sodium, acct, wrapKey) {
    const keys = unwrapBundle(sodium, b64decode(acct.wrapped_keys), acct.username, acct.key_version, wrapKey);
    return this.#setAccount(sodium, acct, keys);
  }

  /** Unlock with the recovery key and set a new passphrase; other sessions end. */
  async recover(username, recoveryText, newPassphrase) {
    const sodium = await sodiumReady();
    const name = normalizeUsername(username);
    const recovery = parseRecoveryKey(recoveryText);
    checkPassphraseStrength(newPassphrase);
    const rkeys = recoverySubkeys(sodium, recovery);
    wipe(sodium, recovery);
    try {
      const proof = { username: name, recovery_auth_key: b64encode(rkeys.authKey) };
      const data = await post("/auth/recovery/start", proof);
      const keys = unwrapBundle(sodium, b64decode(data.recovery_wrapped_keys), name, data.key_version, rkeys.wrapKey);
      const { body: pass, derived } = await this.#newPassphrase(sodium, newPassphrase, keys, name);
      wipe(sodium, derived.authKey);
      try {
        const done = await post("/auth/recovery/complete", { ...proof, passphrase: pass });
        if (done.factor) {
          wipeKeyPairs(sodium, keys);
          return this.#hold(sodium, derived.wrapKey, done.factor.methods);
        }
        this.#setAccount(sodium, done.account, keys);
      } finally {
        wipe(sodium, derived.wrapKey);
      }
    } finally {
      wipe(sodium, rkeys.authKey, rkeys.wrapKey);
    }
    return this.verifyOwnKeys();
  }

  /**
   * Re-wrap the same key pairs under a new passphrase. The server ends every session,
   * this one included, so sign in again with the new subkey (no second Argon2id run).
   */
  async changePassphrase(current, next) {
    const sodium = await sodiumReady();
    if (!this.account) throw new ApiError(401, "unauthorized", "sign in first");
    const { username, keys } = this.account;
    checkPassphraseStrength(next);
    const { kdf } = await post("/auth/prelogin", { username });
    const old = await passphraseKeys(current, kdf);
    const { body: pass, derived } = await this.#newPassphrase(sodium, next, keys, username);
    try {
      await post("/account/passphrase", { current_auth_key: b64encode(old.authKey), passphrase: pass });
      const data = await post("/auth/login", { username, auth_key: b64encode(derived.authKey) });
      if (data.factor) {
        this.lock();
        return this.#hold(sodium, derived.wrapKey, data.factor.methods);
      }
      return this.#unlock(sodium, data.account, derived.wrapKey);
    } finally {
      wipe(sodium, old.authKey, old.wrapKey, derived.authKey, derived.wrapKey);
    }
  }

  /** End every session of the account on the server and forget the keys here. */
  async logout() {
    try {
      await post("/auth/logout");
    } finally {
      this.lock();
    }
  }

  /** Drop the keys and everything learnt about contacts (the contact book) from memory. */
  lock() {
    const sodium = globalThis.sodium;
    if (this.account && sodium?.memzero) wipeKeyPairs(sodium, this.account.keys);
    if (sodium?.memzero) this.#forgetPending(sodium);
    this.#pendingWrapKey = null;
    this.pendingMethods = null;
    this.account = null;
    forgetBook();
    forgetVerified();
    this.#runLockHooks();
  }

  #runLockHooks() {
    for (const hook of this.lockHooks) {
      try {
        hook();
      } catch {
        /* the keys are gone either way */
      }
    }
  }

  /**
   * My cases. Every other member's current keys are checked (self-signature, key log,
   * publish history) and pinned in the contact book (§16), with their safety number,
   * whether their keys changed since I accepted them, whether I verified them, and
   * whether they were refused (`equivocation`: shown before with other keys).
   */
  async cases() {
    const sodium = await sodiumReady();
    const me = this.account;
    const { cases } = await get("/cases");
    const mine = fingerprint(sodium, me.id, me.record.version, me.record.x25519, me.record.ed25519);
    const out = [];
    for (const c of cases) {
      const members = [];
      for (const m of c.members) {
        const member = { userId: m.user_id, role: m.role, username: m.username, isMe: m.user_id === me.id };
        members.push(member);
        if (member.isMe) continue;
        try {
          const seen = await inspectContact(m.user_id, m.username, m.public_keys);
          const { record } = seen;
          const theirs = fingerprint(sodium, m.user_id, record.version, record.x25519, record.ed25519);
          member.keyVersion = record.version;
          member.safetyNumber = safetyNumber(mine, theirs);
          member.keyChanged = seen.changed;
          member.verified = seen.verified;
          member.mustRotate = m.public_keys.status === "compromised";
        } catch (error) {
          // The server or the book failing is not about this member: say so for the page.
          if (error instanceof ApiError || String(error?.code).startsWith("contact_book")) throw error;
          if (error?.code === "equivocation") member.equivocation = error.message;
          member.keysInvalid = true;
        }
      }
      out.push({ id: c.id, createdAt: c.created_at, members });
    }
    return out;
  }

  /** Create a one-time invite link (counsel: survivors; admins: counsel). */
  async createInvite(role) {
    const { invite } = await post("/invites", { role });
    return invite;
  }
}

export const session = new Session();

/**
 * Prove the signed-in account's passphrase: derive its auth_key as at login (§2.3), hand
 * it (b64) to `send`, and wipe the derived keys whatever happens.
 */
export async function withAuthKey(passphrase, send) {
  const sodium = await sodiumReady();
  const { kdf } = await post("/auth/prelogin", { username: session.account.username });
  const proof = await passphraseKeys(passphrase, kdf);
  try {
    return await send(b64encode(proof.authKey));
  } finally {
    wipe(sodium, proof.authKey, proof.wrapKey);
  }
}
