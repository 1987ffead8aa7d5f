/**
 * Worker that looks for a QR code in one camera frame at a time (jsQR, bundled from npm:
 * no third-party origin). Loaded only when a scanner starts, so the first screen does not
 * carry the decoder. Message in: {width, height, data: ArrayBuffer of RGBA}; out: {text}
 * (null when no code was found in that frame).
 */

import jsQR from "jsqr";

self.onmessage = (event) => {
  const { width, height, data } = event.data;
  let text = null;
  try {
    const found = jsQR(new Uint8ClampedArray(data), width, height, { inversionAttempts: "dontInvert" });
    text = found ? found.data : null;
  } catch {
    text = null;
  }
  self.postMessage({ text });
};
