/**
 * The admin console's calls (docs/protocol.md §4.3, §25): states and counts, never content.
 * Every change needs a recent sign-in; `withRecentSignIn` asks for the passphrase when the
 * server says it is needed, proves it, and repeats the change once.
 */

import { ApiError, get, post } from "./api.js";
import { withAuthKey } from "./session.js";

const path = (id) => encodeURIComponent(id);

/** What the console reads. */
export const reads = {
  figures: () => get("/admin/figures").then((r) => r.figures),
  accounts: () => get("/admin/accounts").then((r) => r.accounts),
  invites: () => get("/admin/invites").then((r) => r.invites),
  keys: () => get("/admin/keys").then((r) => r.keys),
  progress: () => get("/admin/keys/reencrypt"),
  log: () => get("/admin/log"),
  verifyLog: () => post("/admin/log/verify"),
  verifyAudit: () => post("/admin/audit/verify"),
  jobs: () => get("/admin/jobs?limit=1"),
  factorPolicy: () => get("/admin/factor-policy").then((r) => r.required_for_staff),
};

/** What the console changes; each is an audit event and needs a recent sign-in (§25.1). */
export const changes = {
  rotate: (purpose) => post("/admin/keys/rotate", { purpose }),
  retire: (purpose, version) => post("/admin/keys/retire", { purpose, version }),
  disable: (id, isDisabled) => post(`/admin/accounts/${path(id)}/disabled`, { is_disabled: isDisabled }),
  compromised: (id) => post(`/admin/accounts/${path(id)}/compromised`),
  revoke: (id) => post(`/admin/invites/${path(id)}/revoke`),
  factorPolicy: (required) => post("/admin/factor-policy", { required_for_staff: required }),
};

/** Whether the server wants the passphrase again before this change. */
export function needsRecentSignIn(error) {
  return error instanceof ApiError && error.code === "recent_sign_in_required";
}

/** Prove the passphrase again (§25.1): the login's auth_key, derived here and wiped. */
export function reauth(passphrase) {
  return withAuthKey(passphrase, (authKey) => post("/admin/reauth", { auth_key: authKey }));
}

/**
 * Re-seal batches until one re-seals nothing (§25.3), reporting `{version, done, total}`
 * after each; stops early when `isStopped()` (the screen was left).
 */
export async function reencryptAll(onProgress, isStopped) {
  for (;;) {
    const { reencrypted } = await post("/admin/keys/reencrypt");
    const progress = await reads.progress();
    onProgress(progress);
    if (reencrypted === 0 || isStopped()) return progress;
  }
}
