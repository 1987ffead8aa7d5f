/** Shared test helpers: libsodium under node, and the committed protocol vectors. */

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import sodiumModule from "libsodium-wrappers-sumo";

const HERE = dirname(fileURLToPath(import.meta.url));
export const VECTORS_DIR = join(HERE, "..", "..", "tests", "vectors");

/** libsodium, initialised. */
export async function loadSodium() {
  await sodiumModule.ready;
  return sodiumModule;
}

/** One vectors file from tests/vectors, parsed. */
export function vectors(name) {
  return JSON.parse(readFileSync(join(VECTORS_DIR, `${name}.json`), "utf8"));
}
