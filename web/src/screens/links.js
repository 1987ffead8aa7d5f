/**
 * Outside links (docs/protocol.md §23): the owner's screen (make a link to her documents,
 * see its opens, approve counsel's, revoke) and the recipient's page, which needs no account.
 */

import { h, uid } from "../dom.js";
import { caseRecord, listDocuments } from "../docs.js";
import { formatDate, formatDateTime, t } from "../i18n.js";
import { approveLink, createLink, listLinks, lookUp, openLink, revokeLink } from "../links.js";
import { session } from "../session.js";
import { button, errorMessage, field, handleSubmit, heading, secret } from "../ui.js";
import { tIsolated } from "../bidi.js";

const DAY_MS = 24 * 3600 * 1000;

function linkItem(ctx, link, reload) {
  const alert = h("p", { class: "form-error", role: "alert" });
  const act = (call) => async () => {
    alert.textContent = "";
    try {
      await ctx.authenticated(call);
      await reload();
    } catch (error) {
      alert.textContent = errorMessage(error, "documents");
    }
  };
  const isSurvivor = session.account.role === "survivor";
  const live = link.state === "active" || link.state === "pending";
  return h(
    "li",
    { class: "link-item", "data-id": link.id, "data-state": link.state },
    h("h3", { dir: "auto", translate: "no" }, link.recipient ?? "?"),
    h(
      "p",
      { class: "hint" },
      t(`links.state.${link.state}`),
      " · ",
      tIsolated("links.item", { opens: String(link.opens), max: String(link.max_opens), date: formatDate(link.expires_at) }),
    ),
    h(
      "div",
      { class: "actions" },
      link.state === "pending" && isSurvivor ? button(t("links.approve"), act(() => approveLink(link.id)), "primary small") : null,
      live ? button(t("links.revoke"), act(() => revokeLink(link.id)), "danger small") : null,
    ),
    alert,
  );
}

function createForm(ctx, caseRec, docs, onMade) {
  const me = session.account;
  const mine = docs.filter((d) => d.ownerId === me.id || (me.role === "counsel" && caseRec.members.some((m) => m.user_id === d.ownerId && m.role === "survivor")));
  if (!mine.length) return h("p", { class: "empty" }, t("links.noDocs"));
  const legendId = uid("link-docs");
  const boxes = mine.map((d) => {
    const id = uid("link-doc");
    return h("div", { class: "check-row" }, h("input", { type: "checkbox", class: "check", id, name: "doc", value: d.id }), h("label", { for: id, dir: "auto", translate: "no" }, d.info.name));
  });
  const recipient = field({ label: t("links.recipient"), name: "recipient", attrs: { maxlength: "64", required: true } });
  const days = field({ label: t("links.days"), name: "days", type: "number", attrs: { min: "1", max: "90", value: "7", inputmode: "numeric" } });
  const opens = field({ label: t("links.opens"), name: "opens", type: "number", attrs: { min: "1", max: "100", value: "1", inputmode: "numeric" } });
  const passphrase = secret(field({ label: t("links.passphrase"), name: "link-passphrase", type: "password", autocomplete: "new-password" }));
  const form = h(
    "form",
    { class: "card links-form", "aria-labelledby": "link-new" },
    h("h2", { id: "link-new" }, t("links.new")),
    h("fieldset", { "aria-labelledby": legendId }, h("legend", { id: legendId }, t("links.documents")), boxes),
    recipient.el,
    days.el,
    opens.el,
    passphrase.el,
    h("button", { type: "submit", class: "btn primary" }, t("links.create")),
  );
  const number = (f, lo, hi) => {
    const n = Number(f.input.value);
    return Number.isInteger(n) && n >= lo && n <= hi ? n : null;
  };
  handleSubmit(form, {
    context: "documents",
    validate: () => {
      if (!form.querySelector('input[name="doc"]:checked')) return { message: t("links.pickOne") };
      if (!recipient.input.value.trim()) return { field: recipient, message: t("error.required") };
      if (number(days, 1, 90) === null) return { field: days, message: t("links.range", { min: "1", max: "90" }) };
      if (number(opens, 1, 100) === null) return { field: opens, message: t("links.range", { min: "1", max: "100" }) };
      const pass = passphrase.input.value;
      if (pass && [...pass.normalize("NFKC")].length < 12) return { field: passphrase, message: t("error.passphraseShort") };
      return null;
    },
    action: async () => {
      const chosen = new Set([...form.querySelectorAll('input[name="doc"]:checked')].map((b) => b.value));
      const made = await ctx.authenticated(() =>
        createLink(caseRec, mine.filter((d) => chosen.has(d.id)), {
          recipient: recipient.input.value.trim(),
          expiresAt: new Date(Date.now() + number(days, 1, 90) * DAY_MS).toISOString(),
          maxOpens: number(opens, 1, 100),
          passphrase: passphrase.input.value || null,
        }),
      );
      form.reset();
      onMade(made);
    },
  });
  return form;
}

/** The owner's links of a case: make one, see opens, approve (survivor), revoke. */
export function links(ctx, params) {
  const { caseId } = params;
  const listRegion = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  const formRegion = h("div");
  const madeRegion = h("div", { "aria-live": "polite" });
  const load = async () => {
    try {
      const all = await ctx.authenticated(() => listLinks(caseId));
      listRegion.replaceChildren(
        h("h2", { id: "link-list" }, t("links.listTitle")),
        all.length ? h("ul", { class: "links", "aria-labelledby": "link-list" }, all.map((l) => linkItem(ctx, l, load))) : h("p", { class: "empty" }, t("links.none")),
      );
    } catch (error) {
      listRegion.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error, "documents")));
    }
    listRegion.removeAttribute("aria-busy");
  };
  const onMade = ({ link, url }) => {
    const urlId = uid("link-url");
    madeRegion.replaceChildren(
      h(
        "div",
        { class: "card", "data-made": link.id },
        h("label", { for: urlId }, t(link.state === "pending" ? "links.madePending" : "links.made")),
        h("input", { id: urlId, class: "link-url", readonly: true, value: url, dir: "ltr", translate: "no" }),
      ),
    );
    madeRegion.querySelector("input").select();
    load();
  };
  (async () => {
    try {
      const caseRec = await ctx.authenticated(() => caseRecord(caseId));
      const { documents } = await ctx.authenticated(() => listDocuments(caseId, caseRec.members));
      formRegion.replaceChildren(createForm(ctx, caseRec, documents, onMade));
    } catch (error) {
      formRegion.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error, "documents")));
    }
  })();
  load();
  return [
    heading(t("links.title")),
    h("p", {}, t("links.intro")),
    madeRegion,
    formRegion,
    listRegion,
    h("p", {}, button(t("common.back"), () => ctx.go("documents", { caseId }), "link")),
  ];
}

function savedFile(file) {
  const save = button(t("links.save"), () => {
    const url = URL.createObjectURL(file.blob);
    const a = h("a", { href: url, download: file.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  }, "primary small", { "aria-label": t("links.saveLabel", { name: file.name }) });
  return h(
    "li",
    { class: "document link-file", "data-verified": "true" },
    h("h3", { dir: "auto", translate: "no" }, file.name),
    h("p", {}, h("span", { class: "badge ok" }, t("links.verified")), " ", tIsolated("links.checks", { name: file.uploader, date: formatDateTime(file.uploadedAt) })),
    h("p", { class: "hint sha", dir: "ltr", translate: "no" }, `SHA-256 ${file.sha256}`),
    h("div", { class: "actions" }, save),
  );
}

/** The recipient's page: no account; the secret came in the fragment and is in memory only. */
export function linkOpen(ctx, params) {
  const region = h("div", { "aria-live": "polite" });
  const gone = () => region.replaceChildren(h("p", { class: "error-box", role: "alert", "data-gone": "" }, t("links.gone")));
  (async () => {
    let found;
    try {
      found = await lookUp(params.secret);
    } catch {
      gone();
      return;
    }
    const passphrase = found.kdf ? secret(field({ label: t("links.askPassphrase"), name: "link-passphrase", type: "password", autocomplete: "off" })) : null;
    const form = h("form", { class: "card" }, h("p", {}, t("links.openIntro")), passphrase?.el, h("button", { type: "submit", class: "btn primary" }, t("links.open")));
    const status = h("p", { role: "status", class: "busy" });
    handleSubmit(form, {
      context: "documents",
      validate: () => (passphrase && !passphrase.input.value ? { field: passphrase, message: t("error.required") } : null),
      action: async () => {
        let opened;
        try {
          opened = await openLink(params.secret, found, passphrase?.input.value ?? null, (f) => {
            status.textContent = t("docs.receiving", { percent: Math.round(f * 100) });
          });
        } catch (error) {
          if (error?.status === 404) {
            gone();
            return;
          }
          throw error;
        }
        region.replaceChildren(h("p", { class: "notice", role: "status", "data-verified": "" }, t("links.allVerified")), h("ul", { class: "documents" }, opened.files.map(savedFile)));
      },
    });
    region.replaceChildren(form, status);
  })();
  return [heading(t("links.openTitle")), region];
}
