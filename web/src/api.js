/** The JSON API under /api/v1: same origin, session cookie, one error shape. */

export const API = "/api/v1";

/** The server answered with its error shape, or could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(`${status} ${code}: ${message}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    /** The Retry-After header as sent (retry.js reads it), or null. */
    this.retryAfter = retryAfter;
  }
}

/** Send a request; return the decoded JSON (null for 204); throw ApiError otherwise. */
export async function request(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    cache: "no-store",
    redirect: "error",
    headers: { Accept: "application/json" },
  };
  // Every state-changing request names its media type, body or not (protocol §5.1): the
  // server refuses a write without it, which no cross-site form can send.
  if (method !== "GET" && method !== "HEAD") init.headers["Content-Type"] = "application/json";
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(API + path, init);
  } catch {
    throw new ApiError(0, "network", "no connection");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = data?.error;
    throw new ApiError(response.status, err?.code ?? "http_error", err?.message ?? "", response.headers?.get?.("Retry-After") ?? null);
  }
  return data;
}

/** POST JSON. */
export const post = (path, body = {}) => request("POST", path, body);

/** GET JSON. */
export const get = (path) => request("GET", path);

/**
 * End every session of the account without waiting: survives the page being replaced
 * (keepalive), which sendBeacon cannot do with a JSON content type.
 */
export function logoutBeacon() {
  beacon("POST", "/auth/logout");
}

/** Send a write without waiting for its answer, surviving the page being replaced. */
export function beacon(method, path) {
  try {
    fetch(API + path, {
      method,
      keepalive: true,
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: method === "DELETE" ? undefined : "{}",
    }).catch(() => {});
  } catch {
    /* leaving anyway */
  }
}
