/*
 * What the browser phones share: the agent softphone (agent.js) and the WebRTC demo
 * (webrtc.js) both import this module.  No build step: served at /webphone.js beside them;
 * SIP.js is vendored from npm by ./scripts/setup and served at /vendor/.
 *
 *   userAgent(options, transport)   a SIP.js UserAgent over ws(s)://<this host>/sip
 *   levelMeter(stream)              RMS of a stream over the last second ({level(), stop()})
 *   sendDtmf(session, digits)       RFC 4733 tones over a call (0-9 * # A-D)
 *   keypad(container, press)        the twelve keys, each calling press(key)
 *   SILENCE_DBFS                    what levelMeter gives for silence (-100)
 */
import * as SIP from "/vendor/sip.js/lib/index.js";

export const SILENCE_DBFS = -100;
const DIGITS = /^[0-9*#A-Da-d]+$/;
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

/* A user agent over this host's /sip WebSocket; `options` add to the UserAgent's options
 * (uri, credentials, delegate), `transport` to its transport options (keepAliveInterval). */
export function userAgent(options = {}, transport = {}) {
  const wsScheme = location.protocol === "https:" ? "wss" : "ws";
  return new SIP.UserAgent({
    transportOptions: { server: `${wsScheme}://${location.host}/sip`, ...transport },
    sessionDescriptionHandlerFactoryOptions: { iceGatheringTimeout: 500 },
    logLevel: "error",
    ...options,
  });
}

/* RMS of the remote stream over the last second, from an AnalyserNode read every 100 ms. */
export function levelMeter(stream) {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const windows = [];  // [sum of squares, samples] per 100 ms
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    windows.push([sum, buf.length]);
    if (windows.length > 10) windows.shift();
  }, 100);
  // Without a user gesture yet (autostart, auto-answer) Chrome keeps the context
  // suspended: the first click or key on the page starts it.
  const wake = () => ctx.resume().catch(() => {});
  if (ctx.state === "suspended") {
    wake();
    document.addEventListener("pointerdown", wake, { once: true });
    document.addEventListener("keydown", wake, { once: true });
  }
  return {
    level() {
      let sum = 0, n = 0;
      for (const [s, k] of windows) { sum += s; n += k; }
      if (!n || sum <= 0) return SILENCE_DBFS;
      return Math.max(SILENCE_DBFS, 10 * Math.log10(sum / n));
    },
    stop() { clearInterval(timer); ctx.close().catch(() => {}); },
  };
}

/* RFC 4733 tones over `session`'s call; false (nothing sent) for anything but 0-9 * # A-D. */
export function sendDtmf(session, digits) {
  const str = String(digits || "");
  if (!session || !DIGITS.test(str)) return false;
  const sdh = session.sessionDescriptionHandler;
  // insertDTMF replaces tones still queued: keep them in front of the new ones.
  const sender = sdh.peerConnection && sdh.peerConnection.getSenders().find((s) => s.dtmf);
  const queued = sender ? sender.dtmf.toneBuffer : "";
  return sdh.sendDtmf(queued + str.toUpperCase(), { duration: 160, interToneGap: 80 });
}

/* The keypad's twelve buttons in `container`, each calling `press(key)`. */
export function keypad(container, press) {
  for (const key of KEYS) {
    const button = document.createElement("button");
    button.textContent = key;
    button.type = "button";
    button.addEventListener("click", () => press(key));
    container.appendChild(button);
  }
}
