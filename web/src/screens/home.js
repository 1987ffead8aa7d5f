/** Screens after signing in: cases and members, invites, safety numbers. */

import { h } from "../dom.js";
import { formatSafetyNumber, qrPayload } from "../crypto/safety.js";
import { formatDate, t } from "../i18n.js";
import { qrSvg } from "../qr.js";
import { cameraPossible, startScanner } from "../scan.js";
import { acknowledgeContact, markContactVerified } from "../contacts.js";
import { session } from "../session.js";
import { showDuressAlerts } from "../duress.js";
import { shareRecoveryWarning } from "./shares.js";
import { approveRequest, declineRequest, memberRequests, removeCounsel, requestCounsel } from "../members.js";
import { button, errorMessage, field, heading } from "../ui.js";
import { unreadByCase } from "./messages.js";
import { onTeam } from "../inbox.js";
import { safetyPlanButton } from "./safety-plan.js";
import { moveOffer } from "./intake-move.js";
import { tIsolated } from "../bidi.js";

const INVITES = { counsel: "survivor", admin: "counsel" };

function memberItem(ctx, member, caseId) {
  const role = t(`role.${member.role}`);
  const name = h("span", { class: "member-name", dir: "auto", translate: "no" }, member.username);
  if (member.isMe) {
    return h("li", { class: "member" }, name, h("span", { class: "role" }, `${role} · ${t("home.you")}`));
  }
  const badge = member.keysInvalid
    ? h("span", { class: "badge danger", "data-badge": member.equivocation ? "refused" : "invalid" }, t(member.equivocation ? "home.keysRefused" : "home.keysInvalid"))
    : member.keyChanged
      ? h("span", { class: "badge warn", "data-badge": "key-changed" }, t("home.keyChanged"))
      : member.mustRotate
        ? h("span", { class: "badge warn" }, t("home.keysBeingReplaced"))
        : null;
  // Verified only while the safety number was compared for their current keys (§16).
  const verified = !member.keysInvalid && member.verified ? h("span", { class: "badge ok", "data-badge": "verified" }, t("home.verified")) : null;
  return h(
    "li",
    { class: "member", "data-user": member.userId },
    name,
    h("span", { class: "role" }, role),
    badge,
    verified,
    button(t("home.safety"), () => ctx.go("safety", { member }), "secondary small", {
      "aria-label": t("home.safetyLabel", { name: member.username }),
    }),
    caseId && member.role === "counsel" && session.account.role === "survivor" ? removeButton(ctx, caseId, member) : null,
  );
}

/** The survivor's "Remove" for a counsel, asking once more before it acts. */
function removeButton(ctx, caseId, member) {
  const wrap = h("div", { class: "remove-member" });
  const alert = h("p", { class: "form-error", role: "alert" });
  const ask = button(t("members.remove"), () => {
    const yes = button(t("members.removeYes"), async () => {
      yes.disabled = true;
      alert.textContent = "";
      try {
        await ctx.authenticated(() => removeCounsel(caseId, member.userId));
        ctx.go("home", { notice: "members.removed" });
      } catch (error) {
        yes.disabled = false;
        alert.textContent = errorMessage(error, "documents");
      }
    }, "danger small", { "data-remove-confirm": member.userId });
    const cancel = button(t("common.cancel"), () => {
      wrap.replaceChildren(ask);
      ask.focus();
    }, "secondary small");
    wrap.replaceChildren(h("p", { class: "warn-box", role: "alert" }, tIsolated("members.removeConfirm", { name: member.username })), yes, cancel, alert);
    yes.focus();
  }, "secondary small", { "aria-label": t("members.removeLabel", { name: member.username }), "data-remove": member.userId });
  wrap.append(ask);
  return wrap;
}

/** The survivor's pending membership requests of one case, with Approve and Decline. */
function pendingRequests(ctx, caseRec, requests) {
  const headingId = `requests-${caseRec.id}`;
  const alert = h("p", { class: "form-error", role: "alert" });
  const names = new Map(caseRec.members.map((m) => [m.userId, m.username]));
  const answer = (request, approve) => async (event) => {
    const row = event.currentTarget.closest("li");
    for (const b of row.querySelectorAll("button")) b.disabled = true;
    alert.textContent = "";
    try {
      await ctx.authenticated(() => (approve ? approveRequest : declineRequest)(caseRec.id, request.id));
      ctx.go("home", { notice: approve ? "members.approved" : "members.declined" });
    } catch (error) {
      for (const b of row.querySelectorAll("button")) b.disabled = false;
      alert.textContent = errorMessage(error, "documents");
    }
  };
  return h(
    "section",
    { class: "warn-box member-requests", "aria-labelledby": headingId },
    h("h3", { id: headingId }, t("members.requests")),
    h("p", {}, t("members.requestsIntro")),
    h(
      "ul",
      { class: "requests" },
      requests.map((r) =>
        h(
          "li",
          { class: "member-request", "data-request": r.id },
          h("span", {}, tIsolated("members.requestedBy", {
            name: r.username,
            by: names.get(r.requested_by) ?? t("history.someone"),
            date: formatDate(r.requested_at),
          })),
          button(t("members.approve"), answer(r, true), "primary small", {
            "aria-label": t("members.approveLabel", { name: r.username }),
            "data-approve": r.id,
          }),
          button(t("members.decline"), answer(r, false), "secondary small", {
            "aria-label": t("members.declineLabel", { name: r.username }),
            "data-decline": r.id,
          }),
        ),
      ),
    ),
    alert,
  );
}

/** A counsel's form to ask the client to let a colleague into the case. */
function addColleague(ctx, caseRec) {
  const f = field({ label: t("members.addField"), name: `colleague-${caseRec.id}`, attrs: { spellcheck: "false", autocapitalize: "none", maxlength: "64" } });
  const status = h("p", { role: "status", class: "notice", hidden: true });
  const submit = h("button", { type: "submit", class: "btn secondary" }, t("members.addSubmit"));
  const form = h(
    "form",
    { class: "add-colleague", "data-add-colleague": caseRec.id, novalidate: true },
    h("h3", {}, t("members.addTitle")),
    f.el,
    submit,
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = f.input.value.trim();
    if (!username) {
      f.setError(t("members.addEmpty"));
      f.input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await ctx.authenticated(() => requestCounsel(caseRec.id, username));
      status.textContent = t("members.addSent", { name: username });
      status.hidden = false;
      f.input.value = "";
    } catch (error) {
      f.setError(errorMessage(error, "documents"));
    }
    submit.disabled = false;
  });
  return form;
}

function caseList(ctx, cases) {
  if (cases.length === 0) return h("p", { class: "empty" }, t("home.noCases"));
  return h(
    "ul",
    { class: "cases" },
    cases.map((c, i) => {
      const id = `case-${i}`;
      return h(
        "li",
        { class: "case" },
        h("h2", { id }, t("home.case", { date: formatDate(c.createdAt) })),
        h("ul", { class: "members", "aria-labelledby": id }, c.members.map((m) => memberItem(ctx, m, c.id))),
        h("div", { class: "requests-region", "data-requests": c.id }),
        h(
          "p",
          { class: "case-actions" },
          button(t("home.documents"), () => ctx.go("documents", { caseId: c.id }), "primary", {
            "aria-label": t("home.documentsLabel", { date: formatDate(c.createdAt) }),
            "data-case": c.id,
          }),
          button(t("home.messages"), () => ctx.go("conversation", { caseId: c.id, memberIds: c.members.map((m) => m.userId) }), "secondary", {
            "aria-describedby": id,
            "data-messages": c.id,
          }),
        ),
        session.account.role === "counsel"
          ? h("p", {}, button(t("figures.report"), () => ctx.go("outcomes", { caseId: c.id }), "secondary", { "aria-describedby": id, "data-outcomes": c.id }))
          : null,
        session.account.role === "counsel" ? addColleague(ctx, c) : null,
      );
    }),
  );
}

/** Fill each of the survivor's cases with the requests waiting for an answer. */
async function showRequests(ctx, region, cases) {
  if (session.account.role !== "survivor") return;
  await Promise.all(
    cases.map(async (c) => {
      const requests = await ctx.authenticated(() => memberRequests(c.id));
      const target = region.querySelector(`[data-requests="${CSS.escape(c.id)}"]`);
      if (target && requests.length) target.replaceChildren(pendingRequests(ctx, c, requests));
    }),
  );
}

/** "Intake inbox", shown once GET /intake/team lists me (counsel on the intake team). */
function inboxButton(ctx) {
  const slot = h("p", { hidden: "" });
  onTeam()
    .then((yes) => {
      if (!yes) return;
      slot.append(button(t("inbox.title"), () => ctx.go("inbox"), "secondary", { id: "open-inbox" }));
      slot.hidden = false;
    })
    .catch(() => {});
  return slot;
}

/** The home screen: who I am, my cases and their members, account actions. */
export function home(ctx, params) {
  const account = session.account;
  const isMember = account.role === "survivor" || account.role === "counsel";
  const region = h("div", { class: "cases-region", "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  if (isMember) {
    ctx
      .authenticated(() => session.cases())
      .then((cases) => {
        region.replaceChildren(caseList(ctx, cases));
        region.removeAttribute("aria-busy");
        return Promise.all([showRequests(ctx, region, cases), unreadByCase(), showDuressAlerts(ctx, region, cases)]).then(([, unread]) => {
          for (const [caseId, count] of unread) {
            const target = count > 0 ? region.querySelector(`[data-messages="${CSS.escape(caseId)}"]`) : null;
            if (!target) continue;
            target.append(" ", h("span", { class: "badge unread", "data-unread": String(count) }, t("home.unread", { count })));
          }
        });
      })
      .catch((error) => {
        region.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error)));
        region.removeAttribute("aria-busy");
      });
  }
  const inviteRole = INVITES[account.role];
  return [
    heading(t(isMember ? "home.title" : "home.adminTitle")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    h("p", { class: "whoami" }, tIsolated("home.signedInAs", { name: account.username })),
    // Known when the screen is drawn, so first: a forced key replacement is never below the fold.
    account.mustRotate
      ? h(
          "div",
          { class: "warn-box", id: "must-rotate" },
          h("p", {}, t("home.mustRotate")),
          button(t("home.replaceNow"), () => ctx.go("rotate", { forced: true }), "primary"),
        )
      : null,
    // Above everything that arrives later (the case list, warnings, the inbox button), so
    // these buttons never move under a finger on a slow connection.
    h(
      "div",
      { class: "actions" },
      button(t("home.changePassphrase"), () => ctx.go("change")),
      account.role === "survivor" ? button(t("duress.open"), () => ctx.go("duress"), "secondary", { id: "open-duress" }) : null,
      account.role !== "admin" ? button(t("shares.open"), () => ctx.go("shares"), "secondary", { id: "open-shares" }) : null,
      button(t("factor.title"), () => ctx.go("factors"), "secondary", { id: "open-factors" }),
      button(t("home.replaceKeys"), () => ctx.go("rotate", { forced: false }), "secondary", { id: "replace-keys" }),
      button(t("home.logout"), () => ctx.logout(), "secondary", { id: "logout" }),
    ),
    shareRecoveryWarning(ctx),
    moveOffer(ctx),
    inviteRole
      ? h("p", {}, button(t(inviteRole === "survivor" ? "home.inviteSurvivor" : "home.inviteCounsel"), () => ctx.go("invite", { role: inviteRole }), "primary"))
      : null,
    isMember ? region : h("p", {}, button(t("admin.open"), () => ctx.go("admin"), "primary", { id: "open-admin" })),
    account.role === "counsel" ? inboxButton(ctx) : null,
    h("div", { class: "more" }, safetyPlanButton(ctx, { name: "home", params: {} })),
  ];
}

/** Create a one-time invite and show its link once (kept only in this screen's state). */
export function invite(ctx, params) {
  const title = t(params.role === "survivor" ? "invite.title" : "invite.counselTitle");
  const out = h("div", { class: "invite-result" });
  const alert = h("div", { class: "form-error", role: "alert" });
  const status = h("p", { role: "status", class: "busy" });
  const show = (made) => {
    const input = h("textarea", { id: "invite-link", readonly: true, rows: "3", dir: "ltr", class: "mono link-box", spellcheck: "false" });
    input.value = made.link;
    // The code alone, typed into "I have an invite code", stays out of her browser's history.
    const code = h("textarea", { id: "invite-code", readonly: true, rows: "2", dir: "ltr", class: "mono link-box", spellcheck: "false", "aria-describedby": "invite-code-hint" });
    code.value = made.token;
    const address = made.link.slice(0, made.link.indexOf("#"));
    const copy = button(t("invite.copy"), async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(made.link);
        status.textContent = t("invite.copied");
      } catch {
        /* the field is selected for copying by hand */
      }
    });
    const copyCode = button(t("traces.copyCode"), async () => {
      code.select();
      try {
        await navigator.clipboard.writeText(code.value);
        status.textContent = t("traces.codeCopied");
      } catch {
        /* the field is selected for copying by hand */
      }
    }, "secondary", { id: "copy-invite-code" });
    out.replaceChildren(
      h(
        "div",
        { class: "field" },
        h("label", { for: "invite-code" }, t("traces.inviteCode")),
        h("p", { class: "hint", id: "invite-code-hint" }, t("traces.inviteCodeHint", { address })),
        code,
        copyCode,
      ),
      h("div", { class: "field" }, h("label", { for: "invite-link" }, t("invite.link")), input),
      h("p", {}, t("invite.expires", { date: formatDate(made.expires_at) })),
      h("div", { class: "actions" }, copy, button(t("invite.done"), () => ctx.go("home"), "primary")),
    );
    return code;
  };
  const create = button(
    t("invite.create"),
    async () => {
      create.disabled = true;
      alert.textContent = "";
      try {
        // Kept in the screen's parameters so a change of language does not lose it.
        params.made = await ctx.authenticated(() => session.createInvite(params.role));
        create.remove();
        const input = show(params.made);
        input.focus();
        input.select();
      } catch (error) {
        create.disabled = false;
        alert.textContent = errorMessage(error);
      }
    },
    "primary",
  );
  if (params.made) show(params.made);
  return [
    heading(title),
    h("p", {}, t("invite.intro")),
    alert,
    params.made ? null : create,
    out,
    status,
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}

/**
 * "Scan their code": the camera reads the other person's safety-number QR code; a match
 * marks them verified in the contact book (§7.1, §16), a mismatch says not to.
 */
function safetyScanner(ctx, member) {
  if (!cameraPossible()) return null;
  const name = member.username;
  const video = h("video", { class: "scan-video", "aria-label": t("scan.video"), playsinline: true, muted: true, hidden: true });
  const status = h("p", { role: "status", id: "scan-status" });
  const alert = h("p", { class: "form-error", role: "alert", id: "scan-alert" });
  let scanner = null;
  const stop = () => {
    scanner?.stop();
    scanner = null;
    video.hidden = true;
    stopButton.hidden = true;
    start.hidden = false;
  };
  const stopButton = button(t("scan.stop"), () => {
    stop();
    status.textContent = "";
    start.focus();
  }, "scan", { hidden: true, id: "scan-stop" });
  const expected = qrPayload(member.safetyNumber);
  const onText = (text) => {
    if (!text.startsWith(qrPayload(""))) return false; // some other code: keep looking
    if (text !== expected) {
      stop();
      status.textContent = "";
      alert.textContent = t("scan.mismatch", { name });
      return true;
    }
    stop();
    status.textContent = "";
    ctx.authenticated(() => markContactVerified(member.userId, member.keyVersion)).then(
      () => {
        member.verified = true;
        member.keyChanged = false;
        ctx.go("safety", { member, scanned: true });
      },
      (error) => {
        alert.textContent = errorMessage(error);
      },
    );
    return true;
  };
  const start = button(t("scan.start"), async () => {
    alert.textContent = "";
    start.hidden = true;
    video.hidden = false;
    stopButton.hidden = false;
    status.textContent = t("scan.looking", { name });
    try {
      scanner = await startScanner(video, onText);
    } catch {
      stop();
      status.textContent = "";
      alert.textContent = t("scan.noCamera");
      start.focus();
      return;
    }
    stopButton.focus();
  }, "scan", { id: "scan-start" });
  return h("div", { class: "scanner" }, h("p", {}, start, stopButton), video, status, alert);
}

/**
 * A contact's safety number as 12 groups of digits and a QR code; the key-change warning
 * with its accept step; "Mark as verified" once the numbers matched (§7, §16).
 */
export function safety(ctx, params) {
  const { member } = params;
  const name = member.username;
  const parts = [heading(t("safety.title", { name }))];
  if (member.keysInvalid) {
    parts.push(h("p", { class: "error-box", role: "alert", "data-equivocation": member.equivocation ? "true" : null }, t(member.equivocation ? "safety.equivocation" : "safety.invalid", { name })));
  } else {
    const alert = h("p", { class: "form-error", role: "alert" });
    if (member.keyChanged) {
      const ack = button(
        t("safety.acknowledge"),
        async () => {
          ack.disabled = true;
          try {
            await ctx.authenticated(() => acknowledgeContact(member.userId));
            member.keyChanged = false;
            warning.remove();
            ctx.focusTitle();
          } catch (error) {
            ack.disabled = false;
            alert.textContent = errorMessage(error);
          }
        },
        "primary",
        { "data-accept-keys": "true" },
      );
      const warning = h("div", { class: "warn-box", role: "alert", "data-key-changed": member.userId }, h("p", {}, t("safety.changed", { name })), ack);
      parts.push(warning);
    }
    const groups = formatSafetyNumber(member.safetyNumber).split(" ");
    parts.push(
      h("p", {}, t("safety.intro", { name })),
      h("p", { class: "digits", dir: "ltr", lang: "en", translate: "no", id: "safety-number", "data-number": member.safetyNumber },
        groups.map((g) => h("span", {}, g))),
      h("div", { class: "qr-wrap" }, qrSvg(qrPayload(member.safetyNumber), t("safety.qr"))),
    );
    if (params.scanned) parts.push(h("p", { class: "notice", role: "status", id: "scan-match" }, t("scan.match", { name })));
    if (member.verified) {
      parts.push(h("p", { class: "notice", id: "safety-verified" }, h("span", { class: "badge ok", "data-badge": "verified" }, t("home.verified")), " ", t("safety.verified", { name })));
    } else {
      const mark = button(
        t("safety.markVerified"),
        async () => {
          mark.disabled = true;
          try {
            await ctx.authenticated(() => markContactVerified(member.userId, member.keyVersion));
            member.verified = true;
            member.keyChanged = false;
            ctx.go("safety", { member });
          } catch (error) {
            mark.disabled = false;
            alert.textContent = errorMessage(error);
          }
        },
        "primary",
        { id: "mark-verified", "aria-describedby": "mark-verified-hint" },
      );
      parts.push(
        h("p", { id: "safety-not-verified" }, t("safety.notVerified")),
        h("p", { class: "hint", id: "mark-verified-hint" }, t("safety.markVerifiedHint")),
        h("p", {}, mark),
        safetyScanner(ctx, member),
      );
    }
    parts.push(alert);
  }
  parts.push(h("p", {}, button(t("common.back"), () => ctx.go("home"), "secondary")));
  return parts;
}
