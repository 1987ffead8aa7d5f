/**
 * Conversations as the signed-in account sees them (docs/protocol.md §9), mirroring
 * vault/client/messages.py: compose and send signed envelopes, verify and open every
 * message before it is shown, live delivery over one shared server-sent event stream
 * (ids only). Decrypted text lives in this page's memory only.
 */

import { API, get, post, request } from "./api.js";
import { b64encode } from "./crypto/encoding.js";
import { sealFileKey } from "./crypto/documents.js";
import { ProtocolError, verifyPublicRecord } from "./crypto/keys.js";
import * as M from "./crypto/messages.js";
import { session } from "./session.js";
import { checkPinned, trustContacts } from "./contacts.js";
import { verifyLoggedKey } from "./directory.js";
import { sodiumReady } from "./sodium.js";
import { createLiveStream } from "./live.js";
import { withAdvisedRetry } from "./retry.js";

export const TIMERS = M.TIMERS;

/** My conversations with unread counts. */
export async function listConversations() {
  return (await get("/conversations")).conversations;
}

/** One conversation with its members' current public keys. */
export async function getConversation(id) {
  return (await get(`/conversations/${encodeURIComponent(id)}`)).conversation;
}

/** The conversation of a case with every member of the case; opened if there is none. */
export async function caseConversation(caseId, memberIds) {
  const mine = (await listConversations()).filter((c) => c.case_id === caseId);
  const all = new Set(memberIds);
  const match = mine.find((c) => c.members.length === all.size && c.members.every((m) => all.has(m))) ?? mine[0];
  if (match) return getConversation(match.id);
  const others = memberIds.filter((id) => id !== session.account.id);
  const made = (await post(`/cases/${encodeURIComponent(caseId)}/conversations`, { members: others })).conversation;
  return getConversation(made.id);
}

const senderKeys = new Map();

/** Forget cached sender keys (logout, lock). */
export function forgetSenders() {
  senderKeys.clear();
}

async function senderEd25519(sodium, conv, userId, version) {
  const me = session.account;
  if (userId === me.id && version === me.record.version) return me.record.ed25519;
  const cacheKey = `${me.id}:${userId}:${version}`;
  if (senderKeys.has(cacheKey)) return senderKeys.get(cacheKey);
  const member = conv.members.find((m) => m.user_id === userId);
  if (!member) throw new ProtocolError("the sender is not a member of the conversation");
  let key = member.public_keys?.version === version ? member.public_keys : null;
  if (!key) {
    const { keys } = await get(`/users/${encodeURIComponent(userId)}/keys`);
    key = keys.find((k) => k.version === version);
  }
  if (!key) throw new ProtocolError("the sender has no such key version");
  const record = verifyPublicRecord(sodium, key, member.username);
  await verifyLoggedKey(userId, key);
  if (userId !== me.id) await checkPinned(userId, version, record.x25519, record.ed25519);
  senderKeys.set(cacheKey, record.ed25519);
  return record.ed25519;
}

/**
 * Verify and open one stored message: {id, seq, senderId, text, attachments, sentAt,
 * receivedAt, expiresAt, ttl, deleted} or {refused: true, reason}. Nothing unverified is
 * returned as text. A message whose key I re-sealed in a key rotation opens from its
 * `reseal` with my keys of that version (§14); its signature is still the sender's.
 */
export async function openMessage(conv, message) {
  const base = {
    id: message.id,
    seq: message.seq,
    senderId: message.sender_id,
    sentAt: message.sent_at,
    receivedAt: message.received_at,
    expiresAt: message.expires_at,
    ttl: message.ttl,
  };
  if (message.deleted) return { ...base, deleted: true };
  const sodium = await sodiumReady();
  try {
    const ed = await senderEd25519(sodium, conv, message.sender_id, message.sender_key_version);
    const text = M.openEnvelope(sodium, message, {
      conversationId: conv.id,
      userId: session.account.id,
      keys: session.account.keys,
      senderEd25519: ed,
    });
    return { ...base, text, attachments: [...(message.attachments ?? [])] };
  } catch (error) {
    if (error instanceof ProtocolError) return { ...base, refused: true, reason: error.code };
    throw error;
  }
}

/** Messages after `after` (exclusive), oldest first, verified and opened. */
export async function messagesAfter(conv, after = 0) {
  const out = [];
  let before = null;
  for (;;) {
    const query = new URLSearchParams({ limit: "200" });
    if (after) query.set("after", String(after));
    if (before) query.set("before", String(before));
    const page = await get(`/conversations/${encodeURIComponent(conv.id)}/messages?${query}`);
    out.push(...page.messages);
    if (!page.next_before || page.messages.length === 0) break;
    before = page.next_before;
  }
  out.sort((a, b) => a.seq - b.seq);
  const now = Date.now();
  const live = out.filter((m) => !m.expires_at || Date.parse(m.expires_at) > now);
  return Promise.all(live.map((m) => openMessage(conv, m)));
}

/** One message by id, verified and opened. */
export async function fetchMessage(conv, id) {
  const { message } = await get(`/conversations/${encodeURIComponent(conv.id)}/messages/${encodeURIComponent(id)}`);
  return openMessage(conv, message);
}

/**
 * File keys of attached documents for the members who cannot read them yet (§9.8): only
 * the owner can add them, sealed to each member's checked current key like a grant.
 */
export function attachmentKeys(sodium, conv, documents, checked) {
  const me = session.account;
  const keys = [];
  for (const doc of documents) {
    if (doc.ownerId !== me.id) continue;
    const readers = new Set((doc.data?.grants ?? []).map((g) => g.user_id));
    for (const m of conv.members) {
      if (m.user_id === me.id || readers.has(m.user_id)) continue;
      const record = checked[m.user_id];
      keys.push({
        document_id: doc.id,
        user_id: m.user_id,
        sealed_key: b64encode(sealFileKey(sodium, doc.fileKey, doc.rawId, record.x25519, record.version)),
      });
    }
  }
  return keys;
}

/**
 * Encrypt, seal to every member's checked current key, sign and send a text, with
 * `documents` (opened documents of the case) attached; a busy server's advised wait is
 * waited out (retry.js), `onRetry(seconds)` told first.
 */
export async function sendText(conv, text, documents = [], { onRetry } = {}) {
  const { sodium, envelope, checked } = await sealText(conv, text, documents.map((d) => d.id));
  const keys = attachmentKeys(sodium, conv, documents, checked);
  const body = keys.length ? { ...envelope, attachment_keys: keys } : envelope;
  // The same bytes each time: the server stores the message once (its id is in the envelope).
  const path = `/conversations/${encodeURIComponent(conv.id)}/messages`;
  return (await withAdvisedRetry(() => post(path, body), { onRetry })).message;
}

/**
 * A signed envelope of `text` for `conv` ({id, ttl, members with public_keys and
 * key_version}), sealed to every member's checked current key; also the checked records.
 */
export async function sealText(conv, text, attachmentIds = []) {
  const sodium = await sodiumReady();
  const me = session.account;
  const x25519 = {};
  const checked = {};
  const recipients = [];
  // Every other member's keys checked and pinned (§16): a key change not yet accepted
  // stops the send (KeyChangedError), equivocation refuses it (EquivocationError).
  await trustContacts(conv.members.filter((m) => m.user_id !== me.id));
  for (const m of conv.members) {
    const record = verifyPublicRecord(sodium, m.public_keys, m.username);
    checked[m.user_id] = record;
    if (record.version !== m.key_version) throw new ProtocolError("member key version mismatch", "bad_public_keys");
    if (m.user_id === me.id && record.version !== me.keys.version) throw new ProtocolError("my keys changed", "keys_mismatch");
    x25519[m.user_id] = record.x25519;
    recipients.push({ userId: m.user_id, keyVersion: record.version });
  }
  const sorted = M.sortByBytes(recipients.map((r) => r.userId)).map((id) => recipients.find((r) => r.userId === id));
  const header = {
    conversationId: conv.id,
    messageId: sodium.randombytes_buf(M.MESSAGE_ID_BYTES),
    senderId: me.id,
    senderKeyVersion: me.keys.version,
    sentAt: Date.now(),
    ttl: conv.ttl,
    recipients: sorted,
    attachments: M.sortByBytes([...new Set(attachmentIds)]),
  };
  return { sodium, envelope: M.compose(sodium, header, text, me.keys, x25519), checked };
}

/** Move my read marker forward. */
export async function markRead(convId, seq) {
  return post(`/conversations/${encodeURIComponent(convId)}/read`, { seq });
}

/** Set the conversation's disappearing-message timer. */
export async function setTimer(convId, seconds) {
  return (await request("PUT", `/conversations/${encodeURIComponent(convId)}/timer`, { seconds })).conversation;
}

/**
 * The page's one live stream (§9.9), shared by every screen and closed when the keys are
 * dropped (logout, lock, quick exit, ended session). Opened on first use.
 */
let checkSession = () => get("/account");
const live = createLiveStream({
  url: `${API}/events`,
  open: (url) => new EventSource(url, { withCredentials: true }),
  check: () => checkSession(),
});
session.onLock(() => live.close());

/**
 * What runs before the stream is reopened after a failure or an `end`: the app passes a
 * call that locks the page when the session is gone.
 */
export function setSessionCheck(check) {
  checkSession = check;
}

/**
 * Live events (ids only) on the shared stream: `handlers.message({conversation_id,
 * message_id, seq})`, `deleted`, `conversation`, `resync`, `ready`, `end`, plus
 * `live(isLive)` and `poll()` (called about every 10 s while the stream is down). Returns
 * the function that unregisters them; the stream itself stays open for other screens.
 */
export function subscribe(handlers) {
  if (!session.isSignedIn) return () => {};
  return live.on(handlers);
}

export { b64encode };
