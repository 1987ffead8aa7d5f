/**
 * A case's conversation: verified messages, live arrival over server-sent events,
 * sending, the disappearing-message timer. Nothing is shown before its signature and
 * header binding verified.
 */

import { caseConversation, getConversation, listConversations, markRead, messagesAfter, fetchMessage, sendText, setTimer, subscribe, TIMERS } from "../chat.js";
import { h, uid } from "../dom.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import { button, errorMessage, heading } from "../ui.js";

let closeStream = null;

/** Close the live stream of the open conversation (screen change, lock, exit). */
export function closeStreams() {
  closeStream?.();
  closeStream = null;
}

/** Unread counts per case id, from the conversation list. */
export async function unreadByCase() {
  const out = new Map();
  for (const c of await listConversations()) out.set(c.case_id, (out.get(c.case_id) ?? 0) + c.unread);
  return out;
}

function timeText(ms) {
  return new Intl.DateTimeFormat(document.documentElement.lang, { dateStyle: "short", timeStyle: "short" }).format(new Date(ms));
}

function timerLabel(seconds) {
  return t(`timer.${seconds}`);
}

/** The conversation of a case. */
export function conversation(ctx, params) {
  const { caseId, memberIds } = params;
  const list = h("ol", { class: "messages", "aria-live": "polite", "aria-relevant": "additions", "aria-labelledby": "screen-title" });
  const status = h("p", { role: "status", class: "busy" }, t("common.loading"));
  const alert = h("p", { class: "form-error", role: "alert" });
  const timerId = uid("timer");
  const timer = h("select", { id: timerId, name: "timer" }, TIMERS.map((s) => h("option", { value: String(s) }, timerLabel(s))));
  const textId = uid("text");
  const text = h("textarea", { id: textId, name: "text", rows: "3", dir: "auto", maxlength: "20000" });
  const send = h("button", { type: "submit", class: "btn primary" }, t("chat.send"));
  const form = h(
    "form",
    { class: "compose" },
    h("div", { class: "field" }, h("label", { for: textId }, t("chat.message")), text),
    send,
  );
  form.noValidate = true;
  const shown = new Set();
  let conv = null;
  let lastSeq = 0;
  let names = new Map();

  const render = (m) => {
    if (shown.has(m.id)) return;
    shown.add(m.id);
    lastSeq = Math.max(lastSeq, m.seq);
    const mine = m.senderId === session.account.id;
    const who = mine ? t("chat.you") : names.get(m.senderId) ?? "?";
    const body = m.deleted
      ? h("p", { class: "hint" }, t("chat.deleted"))
      : m.refused
        ? h("p", { class: "error-box" }, t("chat.refused"))
        : h("p", { class: "text", dir: "auto" }, m.text);
    const item = h(
      "li",
      { class: `message ${mine ? "mine" : "theirs"}`, "data-id": m.id, "data-seq": String(m.seq) },
      h("p", { class: "meta" }, `${who} · ${timeText(m.sentAt)}${m.ttl ? ` · ${t("chat.disappears", { after: timerLabel(m.ttl) })}` : ""}`),
      body,
    );
    const after = [...list.children].find((li) => Number(li.dataset.seq) > m.seq);
    list.insertBefore(item, after ?? null);
    if (m.expiresAt) {
      const left = Date.parse(m.expiresAt) - Date.now();
      if (left < 2 ** 31) setTimeout(() => item.remove(), Math.max(0, left));
    }
  };

  const catchUp = async () => {
    const fresh = await ctx.authenticated(() => messagesAfter(conv, lastSeq));
    fresh.forEach(render);
    if (lastSeq) markRead(conv.id, lastSeq).catch(() => {});
  };

  (async () => {
    try {
      conv = await ctx.authenticated(() => caseConversation(caseId, memberIds));
      names = new Map(conv.members.map((m) => [m.user_id, m.username]));
      timer.value = String(conv.ttl);
      await catchUp();
      status.textContent = "";
      closeStreams();
      closeStream = subscribe({
        ready: () => {
          list.dataset.live = "true";
        },
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
        end: () => ctx.go("login", { notice: "login.sessionEnded" }),
      });
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
      status.textContent = t("chat.timerNow", { timer: timerLabel(conv.ttl) });
    } catch (error) {
      alert.textContent = errorMessage(error, "chat");
      timer.value = String(conv.ttl);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const value = text.value;
    if (!value.trim() || !conv) return;
    send.disabled = true;
    try {
      let sent;
      try {
        sent = await ctx.authenticated(() => sendText(conv, value));
      } catch (error) {
        if (!["stale_key_version", "timer_changed", "recipients_mismatch"].includes(error?.code)) throw error;
        conv = await ctx.authenticated(() => getFresh());
        timer.value = String(conv.ttl);
        sent = await ctx.authenticated(() => sendText(conv, value));
      }
      text.value = "";
      render({ id: sent.id, seq: sent.seq, senderId: session.account.id, sentAt: sent.sent_at, ttl: sent.ttl, expiresAt: sent.expires_at, text: value });
      text.focus();
    } catch (error) {
      alert.textContent = errorMessage(error, "chat");
    } finally {
      send.disabled = false;
    }
  });

  return [
    heading(t("chat.title")),
    h("div", { class: "field inline" }, h("label", { for: timerId }, t("chat.timer")), timer),
    status,
    alert,
    list,
    form,
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}
