/**
 * A case's conversation: verified messages, live arrival over the page's shared
 * server-sent event stream (fetching every ~10 s while it is down), sending, the
 * disappearing-message timer. Nothing is shown before its signature and header binding
 * verified.
 */

import { caseConversation, getConversation, listConversations, markRead, messagesAfter, fetchMessage, sendText, setTimer, subscribe, TIMERS } from "../chat.js";
import { caseRecord, fetchDocument, listDocuments } from "../docs.js";
import { h, uid } from "../dom.js";
import { formatDateTime, t } from "../i18n.js";
import { joinIsolated, tIsolated } from "../bidi.js";
import { session } from "../session.js";
import { acknowledgeContact } from "../contacts.js";
import { button, errorMessage, heading, keyChangeNotice } from "../ui.js";

let unsubscribe = null;
let heldDocuments = null;

function wipeDocuments(docs) {
  for (const doc of docs?.values() ?? []) {
    if (doc?.fileKey instanceof Uint8Array) globalThis.sodium?.memzero?.(doc.fileKey);
  }
  docs?.clear();
}

/**
 * Stop listening to the page's live stream for the open conversation (the stream stays
 * open for the next screen) and forget the documents opened for attaching (screen
 * change, lock, exit).
 */
export function closeStreams() {
  unsubscribe?.();
  unsubscribe = null;
  wipeDocuments(heldDocuments);
  heldDocuments = null;
}

/** Unread counts per case id, from the conversation list. */
export async function unreadByCase() {
  const out = new Map();
  for (const c of await listConversations()) out.set(c.case_id, (out.get(c.case_id) ?? 0) + c.unread);
  return out;
}

function timeText(ms) {
  return formatDateTime(ms, "short");
}

function timerLabel(seconds) {
  return t(`timer.${seconds}`);
}

/**
 * Attaching documents: a disclosure with one checkbox per document of the case this
 * account can read. Returns {el, chosen(), clear(), fill(docs)}.
 */
function attachPicker() {
  const list = h("div", { class: "attach-list" }, h("p", { role: "status" }, t("common.loading")));
  const count = h("span", { class: "attach-count" });
  const el = h(
    "details",
    { class: "attach" },
    h("summary", {}, t("chat.attach"), " ", count),
    h("fieldset", {}, h("legend", {}, t("chat.attachLegend")), h("p", { class: "hint" }, t("chat.attachHint")), list),
  );
  let boxes = [];
  const update = () => {
    const n = boxes.filter((b) => b.box.checked).length;
    count.textContent = n ? t("chat.attachCount", { count: n }) : "";
  };
  return {
    el,
    chosen: () => boxes.filter((b) => b.box.checked).map((b) => b.doc),
    clear: () => {
      for (const b of boxes) b.box.checked = false;
      update();
    },
    fill: (docs) => {
      const keep = new Set(boxes.filter((b) => b.box.checked).map((b) => b.doc.id));
      boxes = docs.map((doc) => {
        const id = uid("attach");
        const box = h("input", { type: "checkbox", id, class: "check", value: doc.id, name: "attach", onChange: update });
        box.checked = keep.has(doc.id);
        return { doc, box, row: h("div", { class: "check-row" }, box, h("label", { for: id, dir: "auto" }, doc.info.name)) };
      });
      list.replaceChildren(...(boxes.length ? boxes.map((b) => b.row) : [h("p", { class: "empty" }, t("chat.attachNone"))]));
      update();
    },
    failed: (message) => list.replaceChildren(h("p", { class: "error-box" }, message)),
  };
}

/** The conversation of a case. */
export function conversation(ctx, params) {
  const { caseId, memberIds } = params;
  const list = h("ol", { class: "messages", "aria-live": "polite", "aria-relevant": "additions", "aria-labelledby": "screen-title" });
  const status = h("p", { role: "status", class: "busy" }, t("common.loading"));
  const alert = h("p", { class: "form-error", role: "alert" });
  // "This person's keys changed", with the accept step, before anything is sent (§16).
  const keyNotice = h("div", { class: "key-notice" });
  const timerId = uid("timer");
  const timer = h("select", { id: timerId, name: "timer", "aria-describedby": `${timerId}-default` }, TIMERS.map((s) => h("option", { value: String(s) }, timerLabel(s))));
  const timerDefault = h("p", { class: "hint", id: `${timerId}-default`, "data-timer-default": "true", hidden: true }, t("polish.timer.default"));
  const textId = uid("text");
  const text = h("textarea", { id: textId, name: "text", rows: "3", dir: "auto", maxlength: "20000" });
  const send = h("button", { type: "submit", class: "btn primary" }, t("chat.send"));
  const picker = attachPicker();
  const form = h(
    "form",
    { class: "compose" },
    h("div", { class: "field" }, h("label", { for: textId }, t("chat.message")), text),
    picker.el,
    keyNotice,
    send,
  );
  form.noValidate = true;
  const shown = new Set();
  let conv = null;
  let lastSeq = 0;
  let names = new Map();

  // The case's documents I can read: for the picker and for naming attachments.
  const docs = new Map();
  heldDocuments = docs;
  let caseRec = null;
  const loadDocuments = async () => {
    caseRec = await ctx.authenticated(() => caseRecord(caseId));
    const listing = await ctx.authenticated(() => listDocuments(caseId, caseRec.members));
    if (heldDocuments !== docs) return;
    wipeDocuments(docs);
    for (const doc of listing.documents) docs.set(doc.id, doc);
    picker.fill(listing.documents);
  };
  let docsReady = loadDocuments().catch((error) => picker.failed(errorMessage(error, "documents")));
  const attachmentOf = async (id) => {
    await docsReady;
    if (docs.has(id)) return docs.get(id);
    if (!caseRec || heldDocuments !== docs) return null;
    try {
      const doc = await ctx.authenticated(() => fetchDocument(id, caseRec.members));
      if (heldDocuments === docs) docs.set(id, doc);
      return doc;
    } catch {
      return null;
    }
  };
  const attachmentList = (ids) => {
    if (!ids?.length) return null;
    return h(
      "ul",
      { class: "attachments", "aria-label": t("chat.attachments") },
      ids.map((id) => {
        const li = h("li", { "data-attachment": id }, h("span", { class: "hint" }, t("common.loading")));
        attachmentOf(id).then((doc) => {
          li.replaceChildren(
            doc
              ? button(h("span", { class: "attachment-label" }, tIsolated("chat.openAttachment", { name: doc.info.name })), () => ctx.go("documents", { caseId, open: id, from: { caseId, memberIds } }), "link small")
              : h("span", { class: "hint" }, t("chat.attachmentGone")),
          );
        });
        return li;
      }),
    );
  };

  const render = (m) => {
    if (shown.has(m.id)) return;
    shown.add(m.id);
    lastSeq = Math.max(lastSeq, m.seq);
    const mine = m.senderId === session.account.id;
    const who = mine ? t("chat.you") : names.get(m.senderId) ?? "?";
    const body = m.deleted
      ? h("p", { class: "hint" }, t("chat.deleted"))
      : m.refused
        ? h("p", { class: "error-box" }, t(m.reason === "other_key_version" ? "chat.otherKeyVersion" : "chat.refused"))
        : [m.text ? h("p", { class: "text", dir: "auto", translate: "no" }, m.text) : null, attachmentList(m.attachments)];
    const item = h(
      "li",
      { class: `message ${mine ? "mine" : "theirs"}`, "data-id": m.id, "data-seq": String(m.seq) },
      h("p", { class: "meta" }, joinIsolated([who, timeText(m.sentAt), m.ttl ? t("chat.disappears", { after: timerLabel(m.ttl) }) : null])),
      body,
    );
    const after = [...list.children].find((li) => Number(li.dataset.seq) > m.seq);
    list.insertBefore(item, after ?? null);
    if (m.expiresAt) {
      const left = Date.parse(m.expiresAt) - Date.now();
      if (left < 2 ** 31) setTimeout(() => item.remove(), Math.max(0, left));
    }
  };

  // New messages since the last one shown; one fetch at a time, again if asked meanwhile.
  let catching = null;
  let again = false;
  const catchUp = () => {
    if (catching) {
      again = true;
      return catching;
    }
    catching = (async () => {
      do {
        again = false;
        const fresh = await ctx.authenticated(() => messagesAfter(conv, lastSeq));
        fresh.forEach(render);
      } while (again);
      if (lastSeq) markRead(conv.id, lastSeq).catch(() => {});
    })().finally(() => {
      catching = null;
    });
    return catching;
  };

  // Live delivery on the page's shared stream: registered before the first fetch, so
  // nothing sent meanwhile is missed (render skips what is already shown).
  let loaded = false;
  let streamUp = false;
  let registering = false;
  const showLive = () => {
    list.dataset.live = String(loaded && streamUp);
  };
  const handlers = {
    live: (up) => {
      const back = up && !streamUp;
      streamUp = up;
      showLive();
      // (Back) live: fetch what came before the stream's starting point.
      if (back && !registering) catchUp().catch(() => {});
    },
    // The stream is down (server busy, connection lost): fetch instead, every ~10 s.
    poll: () => catchUp().catch(() => {}),
    message: async (e) => {
      if (e.conversation_id !== conv.id) return;
      try {
        render(await fetchMessage(conv, e.message_id));
        markRead(conv.id, lastSeq).catch(() => {});
      } catch {
        /* expired or removed meanwhile */
      }
    },
    deleted: (e) => {
      if (e.conversation_id !== conv.id) return;
      const li = list.querySelector(`[data-id="${CSS.escape(e.message_id)}"]`);
      if (li) li.replaceChildren(li.firstChild, h("p", { class: "hint" }, t("chat.deleted")));
    },
    conversation: async (e) => {
      if (e.conversation_id !== conv.id) return;
      conv = await getFresh();
      timer.value = String(conv.ttl);
      status.textContent = t("chat.timerNow", { timer: timerLabel(conv.ttl) });
    },
    resync: () => catchUp().catch(() => {}),
  };

  (async () => {
    try {
      conv = await ctx.authenticated(() => caseConversation(caseId, memberIds));
      names = new Map(conv.members.map((m) => [m.user_id, m.username]));
      timer.value = String(conv.ttl);
      // Nobody chose a timer yet: say that the one-week default applies (§9.12).
      timerDefault.hidden = !(conv.ttl_set_by == null && conv.ttl > 0);
      if (heldDocuments !== docs) return; // the screen was left (or the page locked) meanwhile
      unsubscribe?.();
      registering = true;
      try {
        unsubscribe = subscribe(handlers);
      } finally {
        registering = false;
      }
      await catchUp();
      loaded = true;
      showLive();
      status.textContent = "";
    } catch (error) {
      status.textContent = "";
      alert.textContent = errorMessage(error, "chat");
    }
  })();

  const getFresh = () => getConversation(conv.id);

  timer.addEventListener("change", async () => {
    if (!conv) return;
    try {
      conv = { ...conv, ...(await ctx.authenticated(() => setTimer(conv.id, Number(timer.value)))), members: conv.members };
      timerDefault.hidden = true;
      status.textContent = t("chat.timerNow", { timer: timerLabel(conv.ttl) });
    } catch (error) {
      alert.textContent = errorMessage(error, "chat");
      timer.value = String(conv.ttl);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    keyNotice.replaceChildren();
    const value = text.value;
    const attached = picker.chosen();
    if ((!value.trim() && attached.length === 0) || !conv) return;
    send.disabled = true;
    // A busy server asked for a wait: say so, and that the message is still being sent.
    const retrying = { onRetry: (seconds) => (status.textContent = t("retry.sending", { seconds })) };
    try {
      let sent;
      try {
        sent = await ctx.authenticated(() => sendText(conv, value, attached, retrying));
      } catch (error) {
        if (!["stale_key_version", "timer_changed", "recipients_mismatch"].includes(error?.code)) throw error;
        conv = await ctx.authenticated(() => getFresh());
        timer.value = String(conv.ttl);
        sent = await ctx.authenticated(() => sendText(conv, value, attached, retrying));
      }
      status.textContent = "";
      text.value = "";
      picker.clear();
      render({ id: sent.id, seq: sent.seq, senderId: session.account.id, sentAt: sent.sent_at, ttl: sent.ttl, expiresAt: sent.expires_at, text: value, attachments: sent.attachments ?? [] });
      // Attaching shared the documents: list them again so their grants are current.
      if (attached.length) docsReady = loadDocuments().catch(() => {});
      text.focus();
    } catch (error) {
      if (error?.code === "key_changed") {
        keyNotice.replaceChildren(
          keyChangeNotice(error, async (contacts) => {
            for (const c of contacts) await ctx.authenticated(() => acknowledgeContact(c.userId));
          }),
        );
        keyNotice.querySelector("button")?.focus();
      } else {
        status.textContent = "";
        alert.textContent = errorMessage(error, "chat");
      }
    } finally {
      send.disabled = false;
    }
  });

  return [
    heading(t("chat.title")),
    h("div", { class: "field inline" }, h("label", { for: timerId }, t("chat.timer")), timer),
    timerDefault,
    status,
    alert,
    list,
    form,
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}
