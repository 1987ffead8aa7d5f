/**
 * libsodium in the page. The content-hashed libsodium file is its own script in
 * index.html (async, with Subresource Integrity), so the first screen never waits for it
 * and it is fetched once and cached as immutable. This waits until it is ready.
 */

let ready = null;

/** Resolve with the initialised libsodium object. */
export function sodiumReady() {
  ready ??= new Promise((resolve, reject) => {
    const start = () => globalThis.sodium.ready.then(() => resolve(globalThis.sodium), reject);
    if (globalThis.sodium?.ready) {
      start();
      return;
    }
    const script = document.getElementById("sodium");
    if (!script) {
      reject(Object.assign(new Error("libsodium missing"), { code: "asset_integrity" }));
      return;
    }
    script.addEventListener("load", start, { once: true });
    script.addEventListener(
      "error",
      () => {
        ready = null;
        reject(Object.assign(new Error("libsodium did not load"), { code: "asset_integrity" }));
      },
      { once: true },
    );
  });
  return ready;
}
