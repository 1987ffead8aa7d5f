/**
 * Matching the browser's language tags (BCP 47, as in `navigator.languages`) to the codes
 * of the catalogs we have. Pure, so the node tests can check it without a build.
 */

/**
 * Tags whose primary subtag differs from our catalog code for the same written language:
 * Filipino is standardised Tagalog; Mandarin and Cantonese are written in Chinese (readers
 * of Traditional characters, zh-TW or zh-Hant, get the Simplified catalog until there is a
 * Traditional one: closer than English); and the three-letter ISO 639-2/3 forms some
 * systems send.
 */
const ALIASES = {
  fil: "tl",
  tgl: "tl",
  cmn: "zh",
  yue: "zh",
  zho: "zh",
  chi: "zh",
  vie: "vi",
  tha: "th",
  rus: "ru",
  por: "pt",
  fra: "fr",
  fre: "fr",
  hat: "ht",
  spa: "es",
  ara: "ar",
  eng: "en",
};

/** The catalog code for one language tag, or null: `pt-BR` → `pt`, `zh-Hans-CN` → `zh`, `fil-PH` → `tl`. */
export function catalogFor(tag, codes) {
  const primary = String(tag).trim().toLowerCase().replace(/_/g, "-").split("-")[0];
  if (!primary) return null;
  const code = ALIASES[primary] ?? primary;
  return codes.includes(code) ? code : null;
}

/** The first of `preferences` that has a catalog among `codes`, else `fallback`. */
export function bestLanguage(preferences, codes, fallback) {
  for (const tag of preferences ?? []) {
    const code = catalogFor(tag, codes);
    if (code) return code;
  }
  return fallback;
}
