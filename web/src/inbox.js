/**
 * The intake team's inbox (docs/protocol.md §20.6, §20.12): reports sealed to me, their
 * threads verified and decrypted with my keys, signed replies, assignment and "handled".
 * Mirrors Inbox in vault/client/intake.py. The team list comes from GET /intake/team.
 */

import { get, post, request } from "./api.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import { ProtocolError, verifyPublicRecord } from "./crypto/keys.js";
import { REPORTER, ID_BYTES, entrySigned, messagePlaintext, openEntry, openReportKey, sealEntry, sealReportKey } from "./crypto/intake.js";
import { verifyLoggedKey } from "./directory.js";
import { session } from "./session.js";
import { sodiumReady } from "./sodium.js";
import { downloadAttachment } from "./intake.js";

const path = (id) => encodeURIComponent(id);

/** The intake team: [{user_id, username, public_keys, history}]. */
export async function teamMembers() {
  return (await get("/intake/team")).members;
}

/** Whether the signed-in counsel is on the intake team. */
export async function onTeam() {
  const me = session.account;
  if (me?.role !== "counsel") return false;
  return (await teamMembers()).some((m) => m.user_id === me.id);
}

/** Every report I can read, newest activity first (no entries). */
export async function reports() {
  return (await get("/intake/reports")).reports;
}

function reportKey(sodium, report) {
  const me = session.account;
  if (report.sealed_key == null) throw new ProtocolError("this report was not sealed to you");
  return openReportKey(sodium, b64decode(report.sealed_key), b64decode(report.id), me.keys.version, me.keys.x25519Public, me.keys.x25519Secret);
}

/** A team author's Ed25519 key of one version: self-signed and in the key log (§12). */
async function authorKey(sodium, team, userId, version) {
  const me = session.account;
  if (userId === me.id && version === me.record.version) return me.record.ed25519;
  const member = team.find((m) => m.user_id === userId);
  const record = member?.history.keys.find((k) => Number(k.version) === version);
  if (!record) throw new ProtocolError("the author's key is not in the team's answer");
  const checked = verifyPublicRecord(sodium, record, member.username);
  await verifyLoggedKey(userId, record);
  return checked.ed25519;
}

/**
 * Open a report (an audit event) and its thread: {report, team, names, entries}, entries null
 * when the report is not sealed to me, else each entry
 * {seq, authorId, content} or {seq, authorId, refused: true} when its signature or
 * decryption fails. Nothing unverified is returned as content.
 */
export async function openReport(reportId) {
  const sodium = await sodiumReady();
  const { report } = await get(`/intake/reports/${path(reportId)}`);
  const team = await teamMembers();
  const names = Object.fromEntries(team.map((m) => [m.user_id, m.username]));
  // Sealed before I joined the team: a member holding the key shares it (§20.6).
  if (report.sealed_key == null) return { report, team, names, entries: null };
  const key = reportKey(sodium, report);
  const rid = b64decode(report.id);
  const entries = [];
  for (const item of report.entries) {
    const author = item.author_id ?? REPORTER;
    const base = { seq: item.seq, authorId: item.author_id, createdAt: item.created_at };
    try {
      const blob = b64decode(item.ciphertext);
      const eid = b64decode(item.id);
      const version = Number(item.key_version);
      const signer = item.author_id === null ? b64decode(report.sign_public_key) : await authorKey(sodium, team, author, version);
      const signed = entrySigned(rid, eid, author, version, blob);
      if (!sodium.crypto_sign_verify_detached(b64decode(item.signature), signed, signer)) throw new ProtocolError("bad signature");
      const content = openEntry(sodium, key, rid, eid, author, blob);
      if ((item.seq === 1) !== ("report" in content)) throw new ProtocolError("only the first entry is the report");
      entries.push({ ...base, content });
    } catch {
      entries.push({ ...base, refused: true });
    }
  }
  sodium.memzero(key);
  return { report, team, names, entries };
}

/** Send a reply the reporter reads with her receipt: sealed with the report key, signed. */
export async function reply(report, text) {
  const sodium = await sodiumReady();
  const me = session.account;
  const rid = b64decode(report.id);
  const key = reportKey(sodium, report);
  const entryId = sodium.randombytes_buf(ID_BYTES);
  const blob = sealEntry(sodium, key, rid, entryId, me.id, messagePlaintext(text));
  sodium.memzero(key);
  const signature = sodium.crypto_sign_detached(entrySigned(rid, entryId, me.id, me.keys.version, blob), me.keys.ed25519Secret);
  const body = { id: b64encode(entryId), key_version: me.keys.version, ciphertext: b64encode(blob), signature: b64encode(signature) };
  return (await post(`/intake/reports/${path(report.id)}/entries`, body)).entry;
}

/** Seal the report key to a member who joined after it arrived: their current, logged key. */
export async function share(report, member) {
  const sodium = await sodiumReady();
  const record = verifyPublicRecord(sodium, member.public_keys, member.username);
  await verifyLoggedKey(member.user_id, member.public_keys);
  const key = reportKey(sodium, report);
  const sealed = sealReportKey(sodium, b64decode(report.id), key, record.version, record.x25519);
  sodium.memzero(key);
  return post(`/intake/reports/${path(report.id)}/keys`, { user_id: member.user_id, sealed_key: b64encode(sealed) });
}

/** Give the report to me. */
export const assignToMe = (reportId) => post(`/intake/reports/${path(reportId)}/assign`, { user_id: session.account.id });

/** Mark the report handled. */
export const markHandled = (reportId) => post(`/intake/reports/${path(reportId)}/handled`);

/** The admin's changes to the team (each an audit event on the server). */
export const addMember = (userId) => post("/intake/team/members", { user_id: userId });
export const removeMember = (userId) => request("DELETE", `/intake/team/members/${path(userId)}`);

/** Download an attachment of a report: decrypted and checked against its entry (§20.11). */
export const fetchAttachment = (reportId, att) => downloadAttachment(`/intake/reports/${path(reportId)}/attachments/${b64encode(att.id)}/content`, att);

/** Invite the reporter into an account and case (§20.10): a survivor invite sent as a reply. */
export async function inviteReporter(report, text) {
  const { link } = await session.createInvite("survivor");
  return reply(report, text(link));
}
