/**
 * Key transparency in the page (docs/protocol.md §12), mirroring vault/client/directory.py:
 * pin the log key (first use) and the newest verified head (in memory, and in the
 * account's contact book, §16, so the pin outlives the page); check every new head's
 * signature and its consistency with the pinned one; refuse a key unless the log includes
 * exactly that key under a verified head, and unless the log's publish history for its
 * account is one entry per version in order, the current one holding that key.
 */

import { get } from "./api.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import * as CP from "./crypto/checkpoint.js";
import * as KT from "./crypto/transparency.js";
import { sodiumReady } from "./sodium.js";

const logKeys = new Map();
let read = get;

/**
 * Where the directory's reads go: the API (null), or a getter answering them from other
 * material, such as the intake team's bundle for a reporter without an account (§20.1).
 */
export function setReader(getter) {
  read = getter ?? get;
}
let pinned = null;
let headStore = { head: () => null, pin: async () => {} };

/** Where heads are pinned beyond this page's memory: {head() → {size, root}|null, pin(size, root)}. */
export function setHeadStore(store) {
  headStore = store;
}

async function trustLogKeys(sodium) {
  const { log_keys: chain } = await read("/directory/log-keys");
  let previous = null;
  for (const item of chain) {
    const publicKey = b64decode(item.public_key);
    if (previous) {
      if (!item.announcement) throw new KT.TransparencyError(`log key ${item.version} was not announced`);
      KT.verifyAnnouncement(sodium, b64decode(previous.public_key), previous.version, item.version, publicKey, b64decode(item.announcement));
    }
    const known = logKeys.get(item.version);
    if (known && b64decode(item.public_key).some((b, i) => b !== known[i])) {
      throw new KT.TransparencyError(`log key ${item.version} changed since it was pinned`);
    }
    if (logKeys.size === 0 && !previous) logKeys.set(item.version, publicKey);
    else if (previous && logKeys.has(previous.version)) logKeys.set(item.version, publicKey);
    previous = item;
  }
}

/**
 * The witness policy this page enforces (§15.6): {origin, quorum, witnesses: [vkey]},
 * from the page's `haven-witnesses` meta element. Quorum 0 means the operator configured
 * no witness: heads are then trusted on the log's signature alone.
 */
export function witnessPolicy() {
  const meta = globalThis.document?.querySelector('meta[name="haven-witnesses"]');
  if (!meta) return { origin: null, quorum: 0, witnesses: [] };
  const policy = JSON.parse(meta.getAttribute("content"));
  if (!Number.isInteger(policy.quorum) || policy.quorum < 0 || !Array.isArray(policy.witnesses)) {
    throw new KT.TransparencyError("the page's witness policy is malformed");
  }
  return policy;
}

/** The size and root of the newest checkpoint a quorum of the page's witnesses cosigned. */
async function witnessedSize(sodium, policy) {
  if (logKeys.size === 0) await trustLogKeys(sodium);
  const answer = await read("/directory/checkpoint");
  const witnessKeys = policy.witnesses.map((v) => CP.parseVerifierKey(sodium, v));
  const check = () =>
    CP.verifyCosigned(sodium, answer.checkpoint, [...logKeys.values()].map((pk) => CP.logVerifier(sodium, policy.origin, pk)), witnessKeys, policy.quorum);
  let checked;
  try {
    try {
      checked = check();
    } catch (error) {
      if (!(error instanceof CP.CheckpointError) || error.reason !== "log") throw error;
      await trustLogKeys(sodium); // a newer log key may have been announced
      checked = check();
    }
  } catch (error) {
    if (error instanceof CP.CheckpointError) throw new KT.TransparencyError(`witnessed checkpoint refused: ${error.message}`);
    throw error;
  }
  if (checked.origin !== policy.origin || checked.size !== answer.size) {
    throw new KT.TransparencyError("the checkpoint is not the one the witnesses were asked to cosign");
  }
  return checked;
}

/**
 * Fetch the newest head a quorum of witnesses cosigned (or, with no witness configured, the
 * newest head); verify it and its consistency with the pinned head; pin it.
 */
export async function refreshHead() {
  const sodium = await sodiumReady();
  const policy = witnessPolicy();
  let data;
  if (policy.quorum > 0) {
    const checked = await witnessedSize(sodium, policy);
    ({ head: data } = await read(`/directory/heads/${checked.size}`));
    if (data.size !== checked.size || data.root !== b64encode(checked.root)) {
      throw new KT.TransparencyError("the signed head differs from the cosigned checkpoint");
    }
  } else {
    ({ head: data } = await read("/directory/head"));
  }
  const head = KT.headFromJson(data);
  if (!logKeys.has(head.keyVersion)) await trustLogKeys(sodium);
  if (!logKeys.has(head.keyVersion)) throw new KT.TransparencyError("tree head signed by a log key that does not chain to mine");
  KT.verifyHead(sodium, head, logKeys.get(head.keyVersion));
  // The head pinned in this page and the one pinned in the contact book (by this or
  // another session of the account): the new head must extend both.
  const stored = headStore.head();
  const olds = [pinned, stored && (!pinned || stored.size !== pinned.size) ? stored : null].filter(Boolean);
  for (const old of olds) {
    if (head.size < old.size) throw new KT.TransparencyError("the log shrank: the server rolled it back");
    const { proof } = await read(`/directory/proofs/consistency?from=${old.size}&to=${head.size}`);
    KT.verifyConsistency(sodium, old.size, head.size, proof.map(b64decode), old.root, head.root);
  }
  pinned = head;
  await headStore.pin(head.size, head.root);
  return head;
}

const verified = new Set();

/** Refuse a published key record unless the log holds exactly it (§12, step 2). */
export async function verifyLoggedKey(userId, record) {
  const cacheKey = [userId, record.version, record.x25519, record.ed25519, record.signature, record.log_index, record.logged_at_ms].join("|");
  if (verified.has(cacheKey)) return;
  const sodium = await sodiumReady();
  if (record.log_index == null || record.logged_at_ms == null) {
    throw new KT.TransparencyError(`key ${record.version} of ${userId} is not logged`);
  }
  const head = pinned && pinned.size > record.log_index ? pinned : await refreshHead();
  if (record.log_index >= head.size) {
    throw new KT.TransparencyError(`the key of ${userId} is not yet in a checkpoint the witnesses cosigned; try again later`);
  }
  const entry = KT.encodeEntry({
    kind: "publish",
    userId,
    version: Number(record.version),
    x25519: b64decode(record.x25519),
    ed25519: b64decode(record.ed25519),
    signature: b64decode(record.signature),
    timestampMs: Number(record.logged_at_ms),
  });
  // The answer is {proof} only: the entry is rebuilt from the record, so a proof that
  // leads to the root proves the log holds exactly this record at that index.
  const { proof } = await read(`/directory/proofs/inclusion?index=${record.log_index}&size=${head.size}`);
  if (!Array.isArray(proof)) throw new KT.TransparencyError(`key of ${userId} is not in the log`);
  try {
    KT.verifyInclusion(sodium, KT.leafHash(sodium, entry), record.log_index, head.size, proof.map(b64decode), head.root);
  } catch {
    throw new KT.TransparencyError(`the log does not hold this key for ${userId}`);
  }
  verified.add(cacheKey);
}

const histories = new Set();

/**
 * A contact's publish history (§12, §14): GET /users/{id}/keys lists every log entry whose
 * leaf names them; refuse unless it holds exactly one publish per version 1 … current in
 * log order and the current one is `record` ({version, x25519, ed25519, signature} bytes).
 * Returns null, or the newer published record the server names when the contact replaced
 * their keys after `record` was read (§12.5 step 4): the history must then hold both, each
 * as the one publish of its version, and the caller checks the newer record instead.
 */
export async function verifyContactHistory(userId, record) {
  const cacheKey = [userId, record.version, ...[record.x25519, record.ed25519, record.signature].map(b64encode)].join("|");
  if (histories.has(cacheKey)) return null;
  const answer = await read(`/users/${encodeURIComponent(userId)}/keys`);
  if (!Array.isArray(answer.entries)) {
    throw new KT.TransparencyError(`the server does not show the log's history of ${userId}`);
  }
  const current = answer.current_version;
  const newer = Number.isSafeInteger(current) && current > record.version ? (answer.keys ?? []).find((k) => k.version === current) : null;
  if (newer) {
    const held = { userId, version: current, x25519: b64decode(newer.x25519), ed25519: b64decode(newer.ed25519), signature: b64decode(newer.signature) };
    KT.checkPublishHistory(answer.entries, held);
    KT.checkPublishedAt(answer.entries, { userId, ...record });
    return newer;
  }
  KT.checkPublishHistory(answer.entries, { userId, ...record });
  histories.add(cacheKey);
  return null;
}

/**
 * Self-monitoring (§12 step 3, §14): refuse unless the log's `publish` entries in my name
 * are one per version 1 … current and the current one holds my keys (`record`, verified).
 */
export async function monitorSelf(userId, record) {
  const { entries } = await read("/directory/mine");
  KT.checkPublishHistory(entries, { userId, version: record.version, x25519: record.x25519, ed25519: record.ed25519 }, { mine: true });
}

/** Forget what was verified (lock, logout): the next account checks everything again. */
export function forgetVerified() {
  verified.clear();
  histories.clear();
}

/** The pinned head (for tests and diagnostics). */
export function pinnedHead() {
  return pinned ? { size: pinned.size } : null;
}
