/** A QR code as an SVG built with DOM calls (no markup strings, no inline styles). */

import qrcode from "qrcode-generator";
import { svg } from "./dom.js";

const QUIET = 4;

/** An <svg> QR code of `text` (alphanumeric mode, error correction M), labelled. */
export function qrSvg(text, label) {
  const qr = qrcode(0, "M");
  qr.addData(text, /^[0-9A-Z $%*+\-./:]*$/.test(text) ? "Alphanumeric" : "Byte");
  qr.make();
  const n = qr.getModuleCount();
  const size = n + 2 * QUIET;
  let d = "";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d += `M${c + QUIET} ${r + QUIET}h1v1h-1z`;
    }
  }
  return svg(
    "svg",
    {
      class: "qr",
      viewBox: `0 0 ${size} ${size}`,
      role: "img",
      "aria-label": label,
      "shape-rendering": "crispEdges",
      "data-modules": n,
    },
    svg("title", {}, label),
    svg("rect", { width: size, height: size, fill: "#fff" }),
    svg("path", { d, fill: "#000" }),
  );
}
