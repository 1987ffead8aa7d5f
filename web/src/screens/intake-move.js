/**
 * From intake into a case (docs/protocol.md §20.10) in the reporter's page: an invite the
 * team sent as a reply opens registration, and after it home asks her consent to move the
 * thread into her case. The receipt's keys stay in intake.js's memory in between.
 */

import { h } from "../dom.js";
import { t } from "../i18n.js";
import { caseConversation, sendText } from "../chat.js";
import { caseRecord, uploadFile } from "../docs.js";
import { holdsReport, moveReport } from "../intake.js";
import { parseInviteFragment, session } from "../session.js";
import { button, errorMessage } from "../ui.js";

/** The invite token in a team reply's text (a link's `#invite=…`), or null. */
export function inviteIn(entry) {
  if (entry.mine || typeof entry.text !== "string") return null;
  const found = /#invite=([A-Za-z0-9_-]+)/.exec(entry.text);
  return found ? parseInviteFragment(`#invite=${found[1]}`) : null;
}

/** "Open an account with this invite", under a team reply that holds one. */
export function joinButton(ctx, entry) {
  const invite = inviteIn(entry);
  return invite ? h("p", {}, button(t("intake2.join"), () => ctx.go("register", { invite }), "primary", { "data-intake-join": "" })) : null;
}

/** Home's consent step while this page still holds her report: move it, or leave it. */
export function moveOffer(ctx) {
  if (!holdsReport() || session.account?.role !== "survivor") return null;
  const alert = h("p", { class: "form-error", role: "alert" });
  const status = h("p", { role: "status", class: "busy" });
  const move = button(
    t("intake2.move"),
    async () => {
      move.disabled = true;
      alert.textContent = "";
      status.textContent = t("intake2.moving");
      try {
        const [c] = await ctx.authenticated(() => session.cases());
        const memberIds = c.members.map((m) => m.userId);
        const conv = await caseConversation(c.id, memberIds);
        let caseRec = null;
        await ctx.authenticated(() =>
          moveReport(async (text, file) => {
            caseRec ??= file ? await caseRecord(c.id) : null;
            const documents = file ? [await uploadFile(caseRec, file, { docType: "other" })] : [];
            await sendText(conv, text, documents);
          }),
        );
        ctx.go("conversation", { caseId: c.id, memberIds });
      } catch (error) {
        status.textContent = "";
        alert.textContent = errorMessage(error);
        move.disabled = false;
      }
    },
    "primary",
    { id: "intake-move" },
  );
  return h("div", { class: "notice", id: "intake-move-offer" }, h("p", {}, t("intake2.moveAsk")), status, alert, h("div", { class: "actions" }, move));
}
