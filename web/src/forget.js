/**
 * The one forget-everything routine of the page (quick exit, idle lock, an ended session,
 * another account's invite). Every module that holds keys, decrypted data, streams or work
 * under way registers what it drops; the routine ends this browser's sessions on the server
 * without waiting (keepalive beacons survive the page leaving), then runs every forgetter.
 */

import { beacon, logoutBeacon } from "./api.js";

const forgetters = [];

/** Register something to drop whenever the page forgets everything. */
export function onForget(forget) {
  forgetters.push(forget);
}

/**
 * Forget everything. `signOut` also ends the account's sessions (quick exit, lock, another
 * account); an intake reporter's session always ends, so whoever picks the phone up next
 * cannot reopen her report from this browser, even after a reload lost its keys.
 */
export function forgetEverything({ signOut = false } = {}) {
  if (signOut) logoutBeacon();
  beacon("DELETE", "/intake/session");
  for (const forget of forgetters) {
    try {
      forget();
    } catch {
      /* the rest is still forgotten */
    }
  }
}
