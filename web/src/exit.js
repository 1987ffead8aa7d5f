/**
 * Leaving safely: quick exit (button, Shift pressed three times, or a two-finger double
 * tap on a touch screen) and the idle lock.
 */

export const NEUTRAL_URL = "https://www.wikipedia.org/";
export const IDLE_MS = 5 * 60 * 1000;
const SHIFT_WINDOW_MS = 1500;
export const TOUCH_WINDOW_MS = 700;

/**
 * Blank the page at once, forget everything (`forget`: forget.js's routine, which also ends
 * the sessions on the server without waiting), scrub this history entry, and replace it with
 * a neutral site so Back shows nothing of this page.
 */
export function quickExit(forget) {
  document.documentElement.classList.add("gone");
  document.body.replaceChildren();
  document.title = "";
  try {
    forget();
  } catch {
    /* leaving anyway */
  }
  history.replaceState(null, "", "/app/");
  location.replace(NEUTRAL_URL);
}

/** Quick exit on Shift pressed three times within 1.5 s, with no other key between. */
export function installShiftExit(onExit) {
  let presses = [];
  document.addEventListener(
    "keydown",
    (event) => {
      if (event.key !== "Shift") {
        presses = [];
        return;
      }
      if (event.repeat) return;
      const now = performance.now();
      presses = presses.filter((at) => now - at < SHIFT_WINDOW_MS);
      presses.push(now);
      if (presses.length >= 3) {
        presses = [];
        onExit();
      }
    },
    true,
  );
}

/**
 * Quick exit on a two-finger double tap: two fingers touch the screen twice within
 * TOUCH_WINDOW_MS. A pinch or a two-finger scroll puts two fingers down only once, and
 * browsers give the gesture no meaning of their own, so it neither fires by accident nor
 * fights the page's zoom. Screen readers keep their own gestures (VoiceOver and TalkBack
 * take two-finger taps for themselves); there the always-visible Quick exit button is the
 * way out.
 */
export function installTouchExit(onExit) {
  let downs = [];
  document.addEventListener(
    "touchstart",
    (event) => {
      // Count the moment the second finger lands, not every finger.
      const second = event.touches.length === 2;
      if (event.touches.length > 2) {
        downs = [];
        return;
      }
      if (!second) return;
      const now = performance.now();
      downs = downs.filter((at) => now - at < TOUCH_WINDOW_MS);
      downs.push(now);
      if (downs.length >= 2) {
        downs = [];
        onExit();
      }
    },
    { capture: true, passive: true },
  );
}

/**
 * Call `onLock` after IDLE_MS without input, or when the page comes back after being
 * hidden that long. `isActive()` tells whether there is anything to lock.
 */
export function installIdleLock({ onLock, isActive, idleMs = IDLE_MS }) {
  let last = Date.now();
  let hiddenAt = null;
  const touch = () => {
    last = Date.now();
  };
  for (const type of ["pointerdown", "keydown", "input", "wheel", "touchstart"]) {
    document.addEventListener(type, touch, { capture: true, passive: true });
  }
  const check = () => {
    if (!isActive()) {
      touch();
      return;
    }
    const now = Date.now();
    const idle = now - last >= idleMs;
    const away = hiddenAt !== null && now - hiddenAt >= idleMs;
    if (idle || away) {
      hiddenAt = document.hidden ? now : null;
      touch();
      onLock();
    }
  };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      hiddenAt = Date.now();
    } else {
      check();
      hiddenAt = null;
    }
  });
  setInterval(check, 5000);
}
