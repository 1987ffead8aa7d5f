/** Strict parsing of a date typed as day, month and year boxes (controls.js); pure. */

// ASCII, Arabic-Indic and Extended Arabic-Indic (Persian, Urdu) digits are all accepted.
export const DIGIT_SETS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹"];

/** Digits of any of DIGIT_SETS as ASCII, or null when anything else is there. */
export function asciiDigits(text) {
  let out = "";
  for (const ch of text.trim()) {
    const set = DIGIT_SETS.find((s) => s.includes(ch));
    if (!set) return null;
    out += String(set.indexOf(ch));
  }
  return out;
}

/**
 * Day, month and year as typed, strictly: `{empty: true}` when all three are blank,
 * `{iso: "YYYY-MM-DD"}` for a real calendar date (year 1900–2199), else `{invalid: true}`.
 */
export function parseDateParts(day, month, year) {
  if (![day, month, year].some((v) => v.trim())) return { empty: true };
  const [d, m, y] = [day, month, year].map(asciiDigits);
  if (!d || !m || !y || d.length > 2 || m.length > 2 || y.length !== 4) return { invalid: true };
  const [dn, mn, yn] = [Number(d), Number(m), Number(y)];
  if (yn < 1900 || yn > 2199 || mn < 1 || mn > 12 || dn < 1) return { invalid: true };
  const last = new Date(Date.UTC(yn, mn, 0)).getUTCDate();
  if (dn > last) return { invalid: true };
  return { iso: `${y}-${String(mn).padStart(2, "0")}-${String(dn).padStart(2, "0")}` };
}
