/**
 * Second factors (docs/protocol.md §21): the account's TOTP state, set-up and removal.
 * Signing in with a factor is in session.js (`completeFactor`), which holds the wrap subkey.
 */

import { get, post } from "./api.js";
import { t } from "./i18n.js";
import { errorMessage } from "./ui.js";

/** `{totp: {enrolled_at} | null, recovery_codes_left, required}`. */
export function factorState() {
  return get("/account/factors");
}

/** A new TOTP secret: `{secret, uri, digits, period, algorithm}`, shown once. */
export function beginTotp() {
  return post("/account/factors/totp");
}

/** Turn TOTP on with a code from the app; the one-time recovery codes. */
export async function confirmTotp(code) {
  return (await post("/account/factors/totp/confirm", { code: code.trim() })).recovery_codes;
}

/** Turn TOTP off. */
export function removeTotp() {
  return post("/account/factors/totp/remove");
}

const MESSAGES = {
  bad_factor: "factor.error.bad",
  code_used: "factor.error.used",
  recent_sign_in_required: "factor.error.recent",
  factor_required: "factor.error.required",
  no_pending_sign_in: "factor.error.pending",
};

/** The message for a refused factor step, else the usual one. */
export function factorError(error) {
  const key = MESSAGES[error?.code];
  return key ? t(key) : errorMessage(error);
}
