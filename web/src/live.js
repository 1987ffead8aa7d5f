/**
 * One live event stream (docs/protocol.md §9.9) per signed-in page, shared by every
 * screen. Screens register handlers instead of opening their own EventSource: the server
 * caps streams per process and only notices a closed one at its next heartbeat, so a
 * stream per screen visit soon ran into 503 `busy` and live delivery stopped.
 *
 * When the stream fails for good (an EventSource that got a non-200 answer is CLOSED and
 * never retries) or the server says `end`, it is opened again after a growing, jittered
 * delay, resuming from the last event id it saw. While it is not live, handlers with a
 * `poll` are called every `pollMs`, so the open conversation still fetches new messages.
 *
 * No browser globals here: the EventSource constructor and the timers are passed in, so
 * node tests can drive it.
 */

/** Server events passed on to handlers, with their parsed data. */
export const KINDS = ["message", "deleted", "conversation", "resync", "ready", "end"];

const CLOSED = 2; // EventSource.CLOSED

/**
 * Delay before retry number `attempt` (0, 1, 2 …): base·2^attempt, at most `cap`, less up
 * to `jitter` of it at random, so many pages do not come back at the same instant.
 */
export function backoffDelay(attempt, { base = 2000, cap = 60000, jitter = 0.2, random = Math.random } = {}) {
  const full = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.round(full * (1 - jitter * random()));
}

/**
 * A shared stream. Options: `url`; `open(url)` returns a new EventSource; `check()` (may
 * be async, may throw) runs before each reopening after a failure, e.g. to notice an ended
 * session; `pollMs`; `timers` ({setTimeout, clearTimeout, setInterval, clearInterval});
 * `random`; `backoff` (options of backoffDelay).
 *
 * Handlers: `message`, `deleted`, `conversation`, `resync`, `ready`, `end` get the event's
 * data; `live(isLive)` is called on registration and at every change; `poll()` is called
 * every `pollMs` while the stream is not live.
 */
export function createLiveStream({ url, open, check = null, pollMs = 10000, timers = globalThis, random = Math.random, backoff = {} }) {
  const handlers = new Set();
  let source = null;
  let live = false;
  let lastId = "";
  let attempt = 0;
  let retrying = false; // a reopening is scheduled or checking
  let retryTimer = null;
  let pollTimer = null;
  let wanted = false; // open until close()
  let generation = 0; // bumped by close(): late callbacks of an earlier session do nothing
  let opened = 0;

  const each = (name, ...args) => {
    for (const h of [...handlers]) {
      try {
        h[name]?.(...args);
      } catch {
        /* one screen's handler does not stop the others */
      }
    }
  };

  const syncPoll = () => {
    const needed = wanted && !live && [...handlers].some((h) => typeof h.poll === "function");
    if (needed && pollTimer === null) {
      pollTimer = timers.setInterval(() => each("poll"), pollMs);
    } else if (!needed && pollTimer !== null) {
      timers.clearInterval(pollTimer);
      pollTimer = null;
    }
  };

  const setLive = (up) => {
    if (up === live) return;
    live = up;
    syncPoll();
    each("live", up);
  };

  const retry = () => {
    if (!wanted || retrying || source) return;
    retrying = true;
    const gen = generation;
    const delay = backoffDelay(attempt, { ...backoff, random });
    attempt += 1;
    retryTimer = timers.setTimeout(async () => {
      retryTimer = null;
      if (gen !== generation) return;
      let ok = true;
      if (check) {
        try {
          await check();
        } catch {
          ok = false;
        }
      }
      if (gen !== generation) return;
      retrying = false;
      if (ok) connect();
      else retry();
    }, delay);
  };

  const connect = () => {
    if (!wanted || source) return;
    const target = lastId ? `${url}${url.includes("?") ? "&" : "?"}last_event_id=${encodeURIComponent(lastId)}` : url;
    const es = open(target);
    opened += 1;
    source = es;
    for (const kind of KINDS) {
      es.addEventListener(kind, (event) => {
        if (source !== es) return;
        if (event.lastEventId) lastId = event.lastEventId;
        let data = {};
        try {
          data = JSON.parse(event.data || "{}");
        } catch {
          data = {};
        }
        if (kind === "end") {
          // The session this stream was opened for ended: check and reopen (or be locked).
          es.close();
          source = null;
          setLive(false);
          each("end", data);
          retry();
          return;
        }
        if (kind === "ready" || kind === "resync") {
          attempt = 0;
          setLive(true);
        }
        each(kind, data);
      });
    }
    es.addEventListener("error", () => {
      if (source !== es) return;
      setLive(false);
      // CONNECTING: the browser reconnects by itself (with Last-Event-ID). CLOSED: it gave up.
      if (es.readyState === CLOSED) {
        es.close();
        source = null;
        retry();
      }
    });
  };

  return {
    /** Register handlers; opens the stream if it is not open. Returns the unregistering function. */
    on(h) {
      handlers.add(h);
      wanted = true;
      if (!source && !retrying) connect();
      syncPoll();
      try {
        h.live?.(live);
      } catch {
        /* as in each() */
      }
      return () => {
        handlers.delete(h);
        syncPoll();
      };
    },
    /** Open the stream now, without handlers (it is kept for the page session). */
    start() {
      wanted = true;
      if (!source && !retrying) connect();
    },
    /** Close the stream, stop retries and polling, forget handlers and the resume point. */
    close() {
      generation += 1;
      wanted = false;
      source?.close();
      source = null;
      if (retryTimer !== null) timers.clearTimeout(retryTimer);
      retryTimer = null;
      retrying = false;
      attempt = 0;
      lastId = "";
      live = false;
      handlers.clear();
      syncPoll();
    },
    /** Whether events are arriving (the stream said `ready` or `resync` and has not failed since). */
    get isLive() {
      return live;
    },
    /** How many EventSources this page opened. */
    get opened() {
      return opened;
    },
    /** Whether a stream exists or is about to be reopened. */
    get isOpen() {
      return source !== null || retrying;
    },
  };
}
