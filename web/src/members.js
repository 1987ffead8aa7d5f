/**
 * Case membership by consent (protocol §17): a counsel asks to bring in a colleague, the
 * case's survivor approves or declines. Nothing of the case reaches the colleague before.
 */

import { get, post, request } from "./api.js";

const casePath = (caseId) => `/cases/${encodeURIComponent(caseId)}`;

/**
 * Ask the client to let another counsel in. The server answers the same whatever the
 * username is (an unknown name, a survivor, an admin or a real counsel), so there is
 * nothing to report but "recorded".
 */
export async function requestCounsel(caseId, username) {
  await post(`${casePath(caseId)}/members`, { username });
}

/** Counsel waiting for the survivor's approval, oldest first (the case's survivor only). */
export async function memberRequests(caseId) {
  return (await get(`${casePath(caseId)}/member-requests`)).requests;
}

/** Let a requested counsel into the case. */
export async function approveRequest(caseId, requestId) {
  return (await post(`${casePath(caseId)}/member-requests/${encodeURIComponent(requestId)}/approve`)).case;
}

/** Refuse a requested counsel; the request is deleted. */
export async function declineRequest(caseId, requestId) {
  await post(`${casePath(caseId)}/member-requests/${encodeURIComponent(requestId)}/decline`);
}

/** Take a counsel out of the case: they lose it and every grant in it (the survivor only). */
export async function removeCounsel(caseId, userId) {
  await request("DELETE", `${casePath(caseId)}/members/${encodeURIComponent(userId)}`);
}
