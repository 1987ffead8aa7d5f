/**
 * Documents of a case: upload (streamed, with progress and automatic resume), verified
 * list, view images and PDFs in the page from a blob: URL, download with signature and
 * SHA-256 checks, share and stop sharing, the visa checklist for counsel, and the access
 * history ("who opened my documents"). Decrypted bytes stay in memory (Blob) only.
 */

import { h, uid } from "../dom.js";
import { DOCUMENT_TYPES } from "../crypto/documents.js";
import {
  caseEvents,
  caseRecord,
  deleteDocument,
  downloadDocument,
  grantAccess,
  listDocuments,
  revokeAccess,
  uploadFile,
  visaChecklist,
} from "../docs.js";
import { dateInput, filePicker } from "../controls.js";
import { formatDate, formatDateTime, t } from "../i18n.js";
import { session } from "../session.js";
import { acknowledgeContact } from "../contacts.js";
import { memberRequests } from "../members.js";
import { listLinks } from "../links.js";
import { button, errorMessage, heading, keyChangeNotice } from "../ui.js";
import { focusNewDocument } from "../nav.js";
import { isolate, joinIsolated, tIsolated } from "../bidi.js";

const blobUrls = new Set();

/** Revoke every blob: URL this screen made (on every screen change, lock and exit). */
export function releaseBlobs() {
  for (const url of blobUrls) URL.revokeObjectURL(url);
  blobUrls.clear();
}

export function blobUrl(blob) {
  const url = URL.createObjectURL(blob);
  blobUrls.add(url);
  return url;
}

function formatBytes(n) {
  if (n < 1024) return t("docs.bytes", { n });
  if (n < 1024 * 1024) return t("docs.kb", { n: (n / 1024).toFixed(1) });
  return t("docs.mb", { n: (n / 1024 / 1024).toFixed(1) });
}

const viewable = (mime) => /^image\/(png|jpeg|gif|webp)$/.test(mime) || mime === "application/pdf";

function uploadForm(ctx, caseRec, onDone) {
  const typeId = uid("doctype");
  // File and date controls in the app's language, not the browser's (controls.js).
  const picker = filePicker({ label: t("docs.file"), hint: t("docs.fileHint") });
  const fileInput = picker.input;
  const typeSelect = h(
    "select",
    { id: typeId, name: "doctype" },
    DOCUMENT_TYPES.map((type) => h("option", { value: type }, t(`doctype.${type}`))),
  );
  const expires = dateInput({ legend: t("docs.expires"), hint: t("docs.expiresHint"), name: "expires" });
  const progress = h("progress", { max: "100", value: "0", hidden: true, id: uid("progress"), "aria-label": t("docs.progress") });
  const status = h("p", { role: "status", class: "busy" });
  const alert = h("div", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn primary" }, t("docs.upload"));
  const form = h(
    "form",
    { class: "upload", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, t("docs.uploadTitle")),
    alert,
    picker.el,
    h("div", { class: "field" }, h("label", { for: typeId }, t("docs.type")), typeSelect),
    expires.el,
    submit,
    progress,
    status,
  );
  form.noValidate = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const file = fileInput.files?.[0];
    if (!file) {
      alert.textContent = t("docs.chooseFile");
      picker.focus();
      return;
    }
    const expiry = expires.read();
    if (expiry.error) return;
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    try {
      const doc = await ctx.authenticated(() =>
        uploadFile(caseRec, file, {
          docType: typeSelect.value,
          expiresOn: expiry.value,
          onProgress: (fraction, phase) => {
            progress.value = Math.round(fraction * 100);
            status.textContent = t(phase === "hash" ? "docs.preparing" : "docs.sending", { percent: Math.round(fraction * 100) });
          },
          onRetry: (attempt, seconds) => {
            // A busy server names its wait; a dropped connection does not.
            status.textContent = seconds ? t("retry.uploading", { seconds }) : t("docs.retrying");
          },
        }),
      );
      picker.clear();
      expires.clear();
      status.replaceChildren(...tIsolated("docs.uploaded", { name: doc.info.name }));
      await onDone();
      // Focus on the new document's Share (or its row), then say so in the live region.
      const target = focusNewDocument(document, doc.id);
      if (target?.matches("button")) status.replaceChildren(...tIsolated("nav.uploadedShare", { name: doc.info.name }));
    } catch (error) {
      alert.textContent = errorMessage(error, "documents");
      status.textContent = "";
    } finally {
      submit.disabled = false;
      progress.hidden = true;
    }
  });
  return form;
}

function shareControls(ctx, doc, caseRec, reload) {
  const me = session.account;
  const others = caseRec.members.filter((m) => m.user_id !== me.id);
  if (others.length === 0) return null;
  const grants = new Map((doc.data.grants ?? []).map((g) => [g.user_id, g]));
  const alert = h("p", { class: "form-error", role: "alert" });
  const keyNotice = h("div", { class: "key-notice" });
  const rows = others.map((member) => {
    const grant = grants.get(member.user_id);
    const name = member.username;
    if (grant) {
      return h(
        "li",
        { class: "grant" },
        h("span", {}, grant.expires_at ? tIsolated("docs.sharedUntil", { name, date: formatDate(grant.expires_at) }) : tIsolated("docs.shared", { name })),
        button(t("docs.revoke"), async (e) => {
          e.currentTarget.disabled = true;
          try {
            await ctx.authenticated(() => revokeAccess(doc, member.user_id));
            reload();
          } catch (error) {
            alert.textContent = errorMessage(error, "documents");
          }
        }, "secondary small", { "aria-label": t("docs.revokeLabel", { name, doc: doc.info.name }) }),
      );
    }
    const until = dateInput({ legend: t("docs.shareUntil", { name }), name: "grant-expires", future: true, inline: true });
    return h(
      "li",
      { class: "grant" },
      until.el,
      button(t("docs.share"), async (e) => {
        const target = e.currentTarget;
        alert.textContent = "";
        keyNotice.replaceChildren();
        const day = until.read();
        if (day.error) return;
        target.disabled = true;
        try {
          const expiresAt = day.value ? new Date(`${day.value}T23:59:59`).toISOString() : null;
          await ctx.authenticated(() => grantAccess(doc, member, expiresAt));
          reload();
        } catch (error) {
          target.disabled = false;
          if (error?.code === "key_changed") {
            // "This person's keys changed", with the accept step, before sharing (§16).
            keyNotice.replaceChildren(
              keyChangeNotice(error, async (contacts) => {
                for (const c of contacts) await ctx.authenticated(() => acknowledgeContact(c.userId));
              }),
            );
            keyNotice.querySelector("button")?.focus();
          } else {
            alert.textContent = errorMessage(error, "documents");
          }
        }
      }, "secondary small", { "aria-label": t("docs.shareLabel", { name, doc: doc.info.name }) }),
    );
  });
  return h("div", { class: "sharing" }, h("ul", { class: "grants" }, rows), keyNotice, alert);
}

/** The owner's delete button and its confirm step ("Delete for everyone?"). */
function deleteControls(ctx, doc, reload) {
  const name = doc.info.name;
  const area = h("div", { class: "confirm-area" });
  const alert = h("p", { class: "form-error", role: "alert" });
  const ask = button(t("docs.delete"), () => {
    const questionId = uid("delete-q");
    const keep = button(t("docs.deleteKeep"), () => {
      area.replaceChildren();
      ask.hidden = false;
      ask.focus();
    }, "secondary small");
    const confirm = button(t("docs.deleteConfirm"), async () => {
      confirm.disabled = true;
      keep.disabled = true;
      alert.textContent = "";
      try {
        await ctx.authenticated(() => deleteDocument(doc));
        reload(t("docs.deleted", { name }));
      } catch (error) {
        confirm.disabled = false;
        keep.disabled = false;
        alert.textContent = errorMessage(error, "documents");
      }
    }, "danger small", { "aria-describedby": questionId, "data-confirm-delete": doc.id });
    ask.hidden = true;
    area.replaceChildren(
      h(
        "div",
        { class: "warn-box", role: "group", "aria-labelledby": questionId },
        h("p", { id: questionId }, tIsolated("docs.deleteQuestion", { name })),
        h("div", { class: "actions" }, confirm, keep),
        alert,
      ),
    );
    keep.focus();
  }, "secondary small", { "aria-label": t("docs.deleteLabel", { name }) });
  return { ask, area };
}

function documentItem(ctx, doc, caseRec, viewer, reload, openers) {
  const info = doc.info;
  const isOwner = doc.ownerId === session.account.id;
  const owner = caseRec.members.find((m) => m.user_id === doc.ownerId);
  const alert = h("p", { class: "form-error", role: "alert" });
  const status = h("p", { role: "status", class: "busy" });
  const fetchBlob = async (purpose) => {
    status.textContent = t("docs.opening");
    try {
      return await ctx.authenticated(() => downloadDocument(doc, (f) => {
        status.textContent = t("docs.receiving", { percent: Math.round(f * 100) });
      }, purpose));
    } finally {
      status.textContent = "";
    }
  };
  const openViewer = async () => {
        alert.textContent = "";
        try {
          const blob = await fetchBlob("view");
          releaseBlobs();
          const url = blobUrl(blob);
          const title = t("docs.viewing", { name: info.name });
          const content = info.mimeType === "application/pdf"
            ? h("iframe", { src: url, title, class: "pdf" })
            : h("img", { src: url, alt: title, class: "preview" });
          viewer.replaceChildren(
            h("h2", { id: "viewer-title", tabindex: "-1", dir: "auto" }, title),
            content,
            button(t("docs.close"), () => {
              releaseBlobs();
              viewer.replaceChildren();
            }),
          );
          viewer.querySelector("h2").focus();
        } catch (error) {
          alert.textContent = errorMessage(error, "documents");
        }
      };
  const view = viewable(info.mimeType)
    ? button(t("docs.view"), openViewer, "secondary small", { "aria-label": t("docs.viewLabel", { name: info.name }) })
    : null;
  openers?.set(doc.id, view ? openViewer : null);
  const download = button(t("docs.download"), async () => {
    alert.textContent = "";
    try {
      const blob = await fetchBlob("save");
      const url = blobUrl(blob);
      const a = h("a", { href: url, download: info.name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => {
        URL.revokeObjectURL(url);
        blobUrls.delete(url);
      }, 30000);
      status.textContent = t("docs.verified", { name: info.name });
    } catch (error) {
      alert.textContent = errorMessage(error, "documents");
    }
  }, "secondary small", { "aria-label": t("docs.downloadLabel", { name: info.name }) });
  const remove = isOwner ? deleteControls(ctx, doc, reload) : null;
  return h(
    "li",
    { class: "document", "data-id": doc.id, tabindex: "-1" },
    h("h3", { dir: "auto", translate: "no" }, info.name),
    h(
      "p",
      { class: "doc-meta" },
      joinIsolated([
        t(`doctype.${info.docType}`),
        formatBytes(info.size),
        info.expiresOn ? tIsolated("docs.expiresOn", { date: formatDate(`${info.expiresOn}T12:00:00Z`) }) : null,
        isOwner ? t("docs.mine") : tIsolated("docs.from", { name: owner?.username ?? "?" }),
      ]),
    ),
    h("div", { class: "actions" }, view, download, remove?.ask),
    remove?.area,
    isOwner ? shareControls(ctx, doc, caseRec, reload) : null,
    alert,
    status,
  );
}

function checklist(documents) {
  const items = visaChecklist(documents);
  return h(
    "section",
    { class: "checklist", "aria-labelledby": "checklist-title" },
    h("h2", { id: "checklist-title" }, t("visa.title")),
    h(
      "ul",
      {},
      items.map((item) => {
        const state = !item.present
          ? "missing"
          : item.expired.length === item.documents.length
            ? "expired"
            : item.expiring.length
              ? "expiring"
              : "present";
        const names = item.expiring.flatMap((d, i) => [i ? ", " : null, isolate(d.info.name), " (", isolate(formatDate(`${d.info.expiresOn}T12:00:00Z`)), ")"]);
        const detail = item.expiring.length ? tIsolated("visa.expiring", { names: h("span", {}, names) }) : null;
        return h(
          "li",
          { class: `visa-item ${state}`, "data-item": item.key, "data-state": state },
          h("span", { class: "visa-name" }, t(`visa.${item.key}`)),
          h("span", { class: `badge ${state === "present" ? "ok" : state === "missing" || state === "expired" ? "danger" : "warn"}` }, t(state === "expiring" ? "visa.soon" : `visa.${state}`)),
          detail ? h("span", { class: "hint" }, detail) : null,
        );
      }),
    ),
  );
}

/**
 * The documents of one case. `params.open` names a document to open at once (a message's
 * attachment); `params.from` is the conversation to go back to.
 */
export function documents(ctx, params) {
  const { caseId } = params;
  const listRegion = h("div", { class: "doc-list", "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  const viewer = h("section", { class: "viewer", "aria-live": "polite" });
  const checklistRegion = h("div");
  const uploadRegion = h("div");
  const done = h("p", { role: "status", class: "busy", id: "docs-status" });
  const openers = new Map();
  let pending = params.open ?? null;
  let caseRec = null;
  const load = async (message = null) => {
    done.textContent = typeof message === "string" ? message : "";
    try {
      caseRec = await ctx.authenticated(() => caseRecord(caseId));
      if (!uploadRegion.firstChild) uploadRegion.append(uploadForm(ctx, caseRec, load));
      const { documents: docs, refused } = await ctx.authenticated(() => listDocuments(caseId, caseRec.members));
      if (session.account?.role === "counsel") checklistRegion.replaceChildren(checklist(docs));
      const locked = refused.filter((r) => r.reason === "other_key_version").length;
      const failed = refused.length - locked;
      openers.clear();
      listRegion.replaceChildren(
        ...[
        h("h2", { id: "doc-list-title" }, t("docs.listTitle")),
        docs.length
          ? h("ul", { class: "documents", "aria-labelledby": "doc-list-title" }, docs.map((d) => documentItem(ctx, d, caseRec, viewer, load, openers)))
          : h("p", { class: "empty" }, t("docs.none")),
        failed ? h("p", { class: "error-box", role: "alert" }, t("docs.refused", { count: failed })) : null,
        locked ? h("p", { class: "error-box", role: "alert", "data-locked": String(locked) }, t("docs.otherKeyVersion", { count: locked })) : null,
        ].filter(Boolean),
      );
      if (pending) {
        const id = pending;
        pending = null;
        const item = listRegion.querySelector(`.document[data-id="${CSS.escape(id)}"]`);
        if (!item) {
          done.textContent = t("chat.attachmentGone");
        } else if (openers.get(id)) {
          await openers.get(id)();
        } else {
          item.scrollIntoView({ block: "center" });
          item.focus();
        }
      }
    } catch (error) {
      listRegion.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error, "documents")));
    }
    listRegion.removeAttribute("aria-busy");
  };
  load();
  return [
    heading(t("docs.title")),
    checklistRegion,
    uploadRegion,
    listRegion,
    viewer,
    done,
    h(
      "div",
      { class: "actions" },
      session.account?.role === "survivor" ? button(t("history.open"), () => ctx.go("history", { caseId })) : null,
      button(t("links.share"), () => ctx.go("links", { caseId }), "secondary", { id: "open-links" }),
      params.from ? button(t("docs.backToMessages"), () => ctx.go("conversation", params.from), "secondary") : null,
      button(t("common.back"), () => ctx.go("home"), "link"),
    ),
  ];
}

const EVENT_KINDS = new Set(["upload", "download", "grant", "revoke", "expiry", "delete", "member_add", "member_request", "member_decline", "member_remove", "link_open"]);

/** "Who opened my documents": the case's access history. */
export function history(ctx, params) {
  const { caseId } = params;
  const region = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  (async () => {
    try {
      const caseRec = await ctx.authenticated(() => caseRecord(caseId));
      const [events, listing, requests, links] = await Promise.all([
        ctx.authenticated(() => caseEvents(caseId)),
        ctx.authenticated(() => listDocuments(caseId, caseRec.members)),
        session.account.role === "survivor" ? ctx.authenticated(() => memberRequests(caseId)) : [],
        ctx.authenticated(() => listLinks(caseId)),
      ]);
      // Counsel waiting for approval are named from their request (they are not members yet).
      const names = new Map(requests.map((r) => [r.counsel_id, r.username]));
      for (const m of caseRec.members) names.set(m.user_id, m.user_id === session.account.id ? t("history.you") : m.username);
      const docNames = new Map(listing.documents.map((d) => [d.id, d.info.name]));
      // An open by an outside link names the link's recipient (§23.7).
      for (const l of links) names.set(l.id, l.recipient ?? t("history.someone"));
      const items = events
        .filter((e) => EVENT_KINDS.has(e.kind))
        .map((e) =>
          h(
            "li",
            { class: `event ${e.kind}`, "data-kind": e.kind, "data-purpose": e.purpose ?? null },
            h("span", {}, tIsolated(e.kind === "download" && e.purpose ? `polish.history.${e.purpose}` : e.kind === "link_open" ? "links.historyOpen" : `history.${e.kind}`, {
              actor: names.get(e.actor_id) ?? t("history.someone"),
              subject: names.get(e.subject_id) ?? t("history.someone"),
              doc: docNames.get(e.document_id) ?? t("history.aDocument"),
            })),
            h("time", { datetime: e.created_at, class: "hint" }, formatDateTime(e.created_at)),
          ),
        );
      region.replaceChildren(items.length ? h("ul", { class: "events" }, items) : h("p", { class: "empty" }, t("history.none")));
    } catch (error) {
      region.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error, "documents")));
    }
    region.removeAttribute("aria-busy");
  })();
  return [
    heading(t("history.title")),
    h("p", {}, t("history.intro")),
    region,
    h("p", {}, button(t("common.back"), () => ctx.go("documents", { caseId }), "link")),
  ];
}
