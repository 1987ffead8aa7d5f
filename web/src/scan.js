/**
 * A QR scanner over the browser's camera (getUserMedia), for comparing safety numbers
 * (docs/protocol.md §7.1). Frames are drawn into a canvas in this page and decoded in a
 * worker (scan-worker.js, checked with Subresource Integrity before it starts, as the
 * Argon2id worker is). Nothing leaves the page: no frame is stored or sent anywhere. The
 * camera stops when a code is read, when asked, or as soon as the video leaves the page.
 */

import { verifyWorker } from "./workers.js";

/* global SCAN_WORKER_URL, SCAN_WORKER_SRI */

const FRAME_MS = 200;
const MAX_SIDE = 640;

/** Whether this browser and this page may ask for a camera at all. */
export function cameraPossible() {
  if (!navigator.mediaDevices?.getUserMedia) return false;
  const policy = document.featurePolicy ?? document.permissionsPolicy;
  return policy?.allowsFeature ? policy.allowsFeature("camera") : true;
}

/**
 * Start the camera into `video` and call `onText(text)` for each code read; scanning
 * stops when `onText` returns true. Returns `{stop()}`; throws if no camera can be used.
 */
export async function startScanner(video, onText) {
  await verifyWorker(SCAN_WORKER_URL, SCAN_WORKER_SRI);
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  const worker = new Worker(SCAN_WORKER_URL, { name: "scan" });
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let stopped = false;
  let busy = false;
  let timer = null;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    worker.terminate();
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
  worker.onmessage = (event) => {
    busy = false;
    if (stopped || !event.data.text) return;
    if (onText(event.data.text)) stop();
  };
  worker.onerror = () => {
    busy = false;
  };
  video.srcObject = stream;
  video.muted = true;
  video.setAttribute("playsinline", "");
  await video.play();
  timer = setInterval(() => {
    if (!video.isConnected) return stop(); // the screen changed, the page locked or exited
    if (busy || stopped || video.readyState < 2 || !video.videoWidth) return;
    const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const frame = context.getImageData(0, 0, canvas.width, canvas.height);
    busy = true;
    worker.postMessage({ width: frame.width, height: frame.height, data: frame.data.buffer }, [frame.data.buffer]);
  }, FRAME_MS);
  return { stop };
}
