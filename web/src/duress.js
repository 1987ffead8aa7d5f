/**
 * The duress passphrase (docs/protocol.md §18), mirroring the Python reference client: a
 * second passphrase, derived with this account's own salt and parameters, that opens a
 * hidden decoy account with key pairs of its own. Signing in needs nothing here: the server
 * decides which account a subkey opens, and the page runs the same steps for both.
 */

import { get, post } from "./api.js";
import { passphraseKeys } from "./crypto/argon2.js";
import { b64encode } from "./crypto/encoding.js";
import { checkPassphraseStrength } from "./crypto/kdf.js";
import { generateKeyPairs, publicRecord, wipeKeyPairs, wrapBundle } from "./crypto/keys.js";
import { caseEvents } from "./docs.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { session, withAuthKey } from "./session.js";
import { sodiumReady } from "./sodium.js";

function wipe(sodium, ...buffers) {
  for (const b of buffers) if (b instanceof Uint8Array) sodium.memzero(b);
}

/** `{alert_counsel, created_at}` when a duress passphrase is set, else null. */
export async function duressSetting() {
  return (await get("/account/duress")).duress;
}

/**
 * Set a duress passphrase: fresh decoy key pairs, wrapped under the duress passphrase's
 * wrap subkey (same salt as the passphrase, so pre-login answers alike), signed in my name.
 */
export async function setDuress(current, duressPassphrase, alertCounsel) {
  const sodium = await sodiumReady();
  const { username } = session.account;
  checkPassphraseStrength(duressPassphrase);
  const { kdf } = await post("/auth/prelogin", { username });
  const proof = await passphraseKeys(current, kdf);
  const derived = await passphraseKeys(duressPassphrase, kdf);
  const decoy = generateKeyPairs(sodium, 1);
  try {
    const body = {
      current_auth_key: b64encode(proof.authKey),
      auth_key: b64encode(derived.authKey),
      wrapped_keys: b64encode(wrapBundle(sodium, decoy, username, derived.wrapKey)),
      public_keys: publicRecord(sodium, decoy, username),
      alert_counsel: alertCounsel,
    };
    return (await post("/account/duress", body)).duress;
  } finally {
    wipeKeyPairs(sodium, decoy);
    wipe(sodium, proof.authKey, proof.wrapKey, derived.authKey, derived.wrapKey);
  }
}

/** Turn the silent alert to counsel on or off. */
export async function setDuressAlert(on) {
  return (await post("/account/duress/alert", { alert_counsel: on })).duress;
}

/** Turn the duress passphrase off (the decoy and what it holds are deleted). */
export async function removeDuress(current) {
  await withAuthKey(current, (authKey) => post("/account/duress/remove", { current_auth_key: authKey }));
}

/** Counsel: put a warning on each case whose client signed in with her duress passphrase. */
export async function showDuressAlerts(ctx, region, cases) {
  if (session.account?.role !== "counsel") return;
  await Promise.all(
    cases.map(async (c) => {
      const events = await ctx.authenticated(() => caseEvents(c.id));
      const latest = events.find((e) => e.kind === "duress_alert");
      const target = region.querySelector(`[data-requests="${CSS.escape(c.id)}"]`);
      if (!latest || !target) return;
      const when = new Intl.DateTimeFormat(document.documentElement.lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(latest.created_at));
      target.prepend(
        h(
          "div",
          { class: "warn-box", role: "alert", "data-duress-alert": c.id },
          h("p", {}, t("duress.alertTitle")),
          h("p", {}, t("duress.alertBody", { time: when })),
        ),
      );
    }),
  );
}

/** A warning for screens that give the account a new salt: the duress passphrase stops (§18.6). */
export function duressWarning(ctx) {
  const box = h("div", { "data-duress-warning": "" });
  ctx
    .authenticated(() => duressSetting())
    .then((setting) => {
      if (setting) box.replaceChildren(h("p", { class: "warn-box", id: "duress-warning" }, t("duress.turnsOff")));
    })
    .catch(() => {});
  return box;
}
