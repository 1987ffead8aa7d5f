/**
 * Workers cannot carry an integrity attribute, so a worker's file is first fetched with
 * Subresource Integrity; the worker then starts from the same URL. Checked once per page
 * (again after a failure).
 */

const checked = new Map();

/** Resolve once `url` matches `sri`; reject with code `asset_integrity` otherwise. */
export function verifyWorker(url, sri) {
  if (!checked.has(url)) {
    const check = fetch(url, { integrity: sri, credentials: "omit" })
      .then((response) => {
        if (!response.ok) throw new Error("worker unavailable");
        return response.arrayBuffer().then(() => true);
      })
      .catch((error) => {
        checked.delete(url);
        throw Object.assign(error, { code: "asset_integrity" });
      });
    checked.set(url, check);
  }
  return checked.get(url);
}
