/**
 * The admin console (docs/protocol.md §4.3, §25): figures, accounts, open invites, server
 * keys with their re-encryption, the key log and the audit chain. States and counts only.
 * Every change asks first and, when the server wants it, for the passphrase (§25.1).
 */

import { h, uid } from "../dom.js";
import { formatDate, formatDateTime, t } from "../i18n.js";
import { changes, needsRecentSignIn, reads, reauth, reencryptAll } from "../admin.js";
import { session } from "../session.js";
import { addMember, removeMember, teamMembers } from "../inbox.js";
import { tIsolated } from "../bidi.js";
import { factorPolicy, maintenance } from "./admin-jobs.js";
import { figureReleases } from "./figures.js";
import { NO_SAVE, button, errorMessage, field, handleSubmit, heading, required, secret } from "../ui.js";

const PURPOSES = ["session", "data", "logsign", "factor"];
const FIGURES = ["accounts_survivor", "accounts_counsel", "accounts_admin", "accounts_disabled", "cases", "log_entries"];
const POLL_MS = 3000;
const DAY_MS = 86_400_000;

/** An admin change's refusal, in words: the admin-only codes first, then the shared ones. */
function adminError(error) {
  const own = { key_in_use: "admin.error.inUse", keyring_read_only: "admin.error.readOnly", budget_exhausted: "figures.exhausted" }[error?.code];
  return own ? t(own) : errorMessage(error, "admin");
}

/** The passphrase form shown when the server asks for a recent sign-in; then the change again. */
function passphraseForm(ctx, run, cancel) {
  const pass = secret(
    field({ label: t("field.passphrase"), hint: t("admin.reauth"), type: "password", name: "admin-passphrase", autocomplete: NO_SAVE, attrs: { spellcheck: "false" } }),
  );
  const submit = h("button", { type: "submit", class: "btn danger", "data-reauth": "submit" }, t("admin.reauthSubmit"));
  const form = h("form", { class: "stack admin-reauth" }, pass.el, h("div", { class: "actions" }, submit, button(t("common.cancel"), cancel, "secondary")));
  handleSubmit(form, {
    context: "login",
    validate: () => required(pass),
    action: async () => {
      await ctx.authenticated(() => reauth(pass.input.value));
      pass.input.value = "";
      await ctx.authenticated(run);
    },
  });
  return { form, focus: () => pass.input.focus() };
}

/** A change behind a button: ask once more, then run it (§25.1 when the sign-in is old). */
export function confirmed(ctx, { label, question, run, attrs = {} }) {
  const wrap = h("div", { class: "admin-change" });
  const alert = h("p", { class: "form-error", role: "alert" });
  const reset = () => {
    wrap.replaceChildren(ask);
    ask.focus();
  };
  const ask = button(
    label,
    () => {
      const yes = button(
        t("admin.yes"),
        async () => {
          yes.disabled = true;
          alert.textContent = "";
          try {
            await ctx.authenticated(run);
          } catch (error) {
            yes.disabled = false;
            if (!needsRecentSignIn(error)) {
              alert.textContent = adminError(error);
              return;
            }
            const again = passphraseForm(ctx, run, reset);
            wrap.replaceChildren(again.form);
            again.focus();
          }
        },
        "danger small",
        { "data-confirm": "yes" },
      );
      wrap.replaceChildren(
        h("div", { class: "warn-box", role: "alert" }, h("p", {}, question), h("div", { class: "actions" }, yes, button(t("common.cancel"), reset, "secondary small"))),
        alert,
      );
      yes.focus();
    },
    "secondary small",
    attrs,
  );
  wrap.append(ask);
  return wrap;
}

/** A section whose body loads on its own; a failure shows in it and spares the others. */
export function section(key, load, title = key.includes(".") ? key : `admin.${key}`) {
  const headingId = uid("admin");
  const body = h("div", { class: "admin-body", "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  load()
    .then((children) => body.replaceChildren(...[children].flat().filter(Boolean)))
    .catch((error) => body.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error))))
    .finally(() => body.removeAttribute("aria-busy"));
  return h("section", { class: "admin-section", "aria-labelledby": headingId, "data-admin": key }, h("h2", { id: headingId }, t(title)), body);
}

function figures(ctx) {
  return section("figures", async () => {
    const counts = await ctx.authenticated(reads.figures);
    return h("dl", { class: "admin-figures" }, FIGURES.map((name) => [h("dt", {}, t(`admin.fig.${name}`)), h("dd", { "data-figure": name }, String(counts[name]))]));
  });
}

function accountRow(ctx, account) {
  const nameId = uid("account");
  const isMe = account.id === session.account.id;
  const reload = (notice) => ctx.go("admin", { notice, accounts: true });
  const describe = { "aria-describedby": nameId };
  const name = { name: account.username };
  return h(
    "li",
    { class: "member admin-row", "data-account": account.id },
    h("span", { class: "member-name", id: nameId, dir: "auto", translate: "no" }, account.username),
    h("span", { class: "role" }, isMe ? `${t(`role.${account.role}`)} · ${t("home.you")}` : t(`role.${account.role}`)),
    h("span", { class: account.is_disabled ? "badge danger" : "badge ok" }, t(account.is_disabled ? "admin.state.disabled" : "admin.state.active")),
    account.key_status === "compromised" ? h("span", { class: "badge warn" }, t("admin.key.compromised")) : null,
    isMe
      ? null
      : confirmed(ctx, {
          label: t(account.is_disabled ? "admin.enable" : "admin.disable"),
          question: tIsolated(account.is_disabled ? "admin.confirm.enable" : "admin.confirm.disable", name),
          run: async () => {
            await changes.disable(account.id, !account.is_disabled);
            reload("admin.done");
          },
          attrs: { ...describe, "data-disable": account.id },
        }),
    isMe || account.key_status === "compromised"
      ? null
      : confirmed(ctx, {
          label: t("admin.compromise"),
          question: tIsolated("admin.confirm.compromise", name),
          run: async () => {
            await changes.compromised(account.id);
            reload("admin.done");
          },
          attrs: { ...describe, "data-compromise": account.id },
        }),
  );
}

function accounts(ctx, params) {
  return section("accounts", async () => {
    const rows = await ctx.authenticated(reads.accounts);
    // Folded: on a phone, hundreds of accounts would push everything else far down.
    return h(
      "details",
      { class: "admin-accounts", open: params.accounts === true },
      h("summary", {}, t("admin.accounts.show", { count: rows.length })),
      h("ul", { class: "admin-list" }, rows.map((a) => accountRow(ctx, a))),
    );
  });
}

function invites(ctx) {
  return section("invites", async () => {
    const rows = await ctx.authenticated(reads.invites);
    if (!rows.length) return h("p", {}, t("admin.invites.none"));
    return h(
      "ul",
      { class: "admin-list" },
      rows.map((invite) => {
        const labelId = uid("invite");
        return h(
          "li",
          { class: "member admin-row", "data-invite": invite.id },
          h("span", { id: labelId }, t("admin.invites.row", { role: t(`role.${invite.role}`), date: formatDate(invite.expires_at) })),
          confirmed(ctx, {
            label: t("admin.revoke"),
            question: t("admin.confirm.revoke"),
            run: async () => {
              await changes.revoke(invite.id);
              ctx.go("admin", { notice: "admin.done" });
            },
            attrs: { "aria-describedby": labelId, "data-revoke": invite.id },
          }),
        );
      }),
    );
  });
}

/** Progress of the data-key re-encryption: drives the batches when asked, else polls (§25.3). */
function reencryption(ctx, initial, start, onFinished) {
  const bar = h("progress", { max: "1", value: "0", "aria-labelledby": "reencrypt-status" });
  const status = h("p", { role: "status", id: "reencrypt-status" });
  const box = h("div", { class: "admin-reencrypt", "data-reencrypt": "running" }, bar, status);
  const stopped = () => !box.isConnected;
  let finished = false;
  const show = ({ done, total }) => {
    bar.max = String(Math.max(total, 1));
    bar.value = String(done);
    status.textContent = t("admin.reencrypt.progress", { done, total });
  };
  const finish = () => {
    if (finished) return;
    finished = true;
    box.dataset.reencrypt = "done";
    status.textContent = t("admin.reencrypt.done");
    onFinished();
  };
  const poll = () => {
    if (stopped()) return;
    ctx
      .authenticated(reads.progress)
      .then((p) => (p.done >= p.total ? finish() : (show(p), setTimeout(poll, POLL_MS))))
      .catch(() => setTimeout(poll, POLL_MS));
  };
  const drive = () =>
    ctx
      .authenticated(() => reencryptAll(show, stopped))
      .then(() => stopped() || finish())
      .catch((error) => {
        box.dataset.reencrypt = "failed";
        status.textContent = adminError(error);
      });
  show(initial);
  if (start) queueMicrotask(drive);
  else setTimeout(poll, POLL_MS);
  return box;
}

function keyRow(ctx, key) {
  const labelId = uid("key");
  const made = key.created_at * 1000;
  const days = Math.max(0, Math.floor((Date.now() - made) / DAY_MS));
  return h(
    "li",
    { class: "member admin-row", "data-key": `${key.purpose}:${key.version}` },
    h("span", { id: labelId, class: "member-name" }, t("admin.key.version", { version: key.version })),
    key.is_current ? h("span", { class: "badge ok" }, t("admin.key.current")) : null,
    h("span", {}, t("admin.key.made", { date: formatDate(made), days })),
    key.uses === null ? null : h("span", { "data-uses": String(key.uses) }, t("admin.key.uses", { count: key.uses })),
    key.is_current
      ? null
      : confirmed(ctx, {
          label: t("admin.retire"),
          question: t("admin.confirm.retire", { version: key.version }),
          run: async () => {
            await changes.retire(key.purpose, key.version);
            ctx.go("admin", { notice: "admin.done" });
          },
          attrs: { "aria-describedby": labelId, "data-retire": `${key.purpose}:${key.version}` },
        }),
  );
}

function serverKeys(ctx, params) {
  const render = async () => {
    const [keys, progress] = await Promise.all([ctx.authenticated(reads.keys), ctx.authenticated(reads.progress)]);
    const running = params.reencrypt === true || progress.done < progress.total;
    const finished = params.reencrypt === "finished" ? h("p", { class: "notice", role: "status", "data-reencrypt": "done" }, t("admin.reencrypt.done")) : null;
    const again = () => render().then((children) => body.replaceChildren(...children));
    const body = h("div", {});
    const children = PURPOSES.map((purpose) => {
      const headingId = uid("purpose");
      return h(
        "div",
        { class: "admin-purpose", "data-purpose": purpose },
        h("h3", { id: headingId }, t(purpose === "factor" ? "adminJobs.purpose.factor" : `admin.purpose.${purpose}`)),
        h("ul", { class: "admin-list", "aria-labelledby": headingId }, keys.filter((k) => k.purpose === purpose).map((k) => keyRow(ctx, k))),
        purpose === "data" && running ? reencryption(ctx, progress, params.reencrypt === true, () => {
          params.reencrypt = "finished";
          again();
        }) : null,
        purpose === "data" ? finished : null,
        confirmed(ctx, {
          label: t("admin.rotate"),
          question: t("admin.confirm.rotate"),
          run: async () => {
            await changes.rotate(purpose);
            ctx.go("admin", { notice: "admin.done", reencrypt: purpose === "data" });
          },
          attrs: { "aria-describedby": headingId, "data-rotate": purpose },
        }),
      );
    });
    body.replaceChildren(...children);
    return [body];
  };
  return section("keys", render);
}

/** "Verify now" and where its result appears. */
function verifier(ctx, which, call) {
  const result = h("p", { role: "status", class: "admin-verified" });
  const run = button(
    t("admin.verify"),
    async () => {
      run.disabled = true;
      result.textContent = t("common.working");
      delete result.dataset.verified;
      try {
        const outcome = await ctx.authenticated(call);
        result.dataset.verified = outcome.intact ? "intact" : "broken";
        result.className = outcome.intact ? "notice admin-verified" : "error-box admin-verified";
        result.replaceChildren(
          outcome.intact
            ? t("admin.verify.ok", { count: outcome.entries })
            : h("span", {}, t("admin.verify.bad"), " ", h("code", { dir: "ltr", translate: "no" }, outcome.problem)),
        );
      } catch (error) {
        result.textContent = errorMessage(error);
      } finally {
        run.disabled = false;
      }
    },
    "secondary small",
    { "data-verify": which },
  );
  return h("div", { class: "admin-verify" }, run, result);
}

function keyLog(ctx) {
  return section("log", async () => {
    const { head, witnesses } = await ctx.authenticated(reads.log);
    return [
      h("p", { "data-log-size": head ? String(head.size) : "0" }, head ? t("admin.log.head", { size: head.size, date: formatDateTime(head.timestamp_ms) }) : t("admin.log.empty")),
      head ? h("p", { class: "mono admin-root", dir: "ltr", translate: "no" }, head.root) : null,
      witnesses.length
        ? h(
            "ul",
            { class: "admin-list" },
            witnesses.map((w) =>
              h(
                "li",
                { class: "member admin-row", "data-witness": w.name },
                w.cosigned_size === null
                  ? tIsolated("admin.log.notCosigned", { name: w.name })
                  : tIsolated("admin.log.witness", { name: w.name, size: w.cosigned_size, date: formatDateTime(w.cosigned_at * 1000) }),
              ),
            ),
          )
        : h("p", {}, t("admin.log.noWitnesses")),
      verifier(ctx, "log", reads.verifyLog),
    ];
  });
}

function auditChain(ctx) {
  return section("audit", async () => verifier(ctx, "audit", reads.verifyAudit));
}

/** The intake team (§20.1): its members, and every other active counsel to add. */
function intakeTeam(ctx) {
  return section("inbox.team", async () => {
    const [team, accounts] = await Promise.all([ctx.authenticated(teamMembers), ctx.authenticated(reads.accounts)]);
    const ids = new Set(team.map((m) => m.user_id));
    const row = (id, name, change, call) =>
      h(
        "li",
        { class: "member admin-row", "data-intake": id },
        h("span", { class: "member-name", dir: "auto", translate: "no" }, name),
        confirmed(ctx, {
          label: t(`inbox.admin.${change}`),
          question: tIsolated(change === "add" ? "inbox.admin.confirmAdd" : "inbox.admin.confirmRemove", { name }),
          run: async () => {
            await call(id);
            ctx.go("admin", { notice: "admin.done" });
          },
          attrs: { [`data-intake-${change}`]: id },
        }),
      );
    const candidates = accounts.filter((a) => a.role === "counsel" && !a.is_disabled && !ids.has(a.id));
    // The counsel who could be added are folded, like the accounts: there may be hundreds.
    return [
      team.length ? null : h("p", {}, t("inbox.admin.none")),
      h("ul", { class: "admin-list" }, team.map((m) => row(m.user_id, m.username, "remove", removeMember))),
      candidates.length
        ? h(
            "details",
            { class: "admin-candidates" },
            h("summary", {}, t("inbox.admin.candidates", { count: candidates.length })),
            h("ul", { class: "admin-list" }, candidates.map((a) => row(a.id, a.username, "add", addMember))),
          )
        : null,
    ];
  });
}

/** The console: one screen of sections, each loading on its own. */
export function admin(ctx, params) {
  return [
    heading(t("admin.title")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    figures(ctx),
    figureReleases(ctx),
    accounts(ctx, params),
    invites(ctx),
    intakeTeam(ctx),
    serverKeys(ctx, params),
    keyLog(ctx),
    auditChain(ctx),
    maintenance(ctx),
    factorPolicy(ctx),
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}
