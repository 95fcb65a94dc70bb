/*
 * ivr "Call from your browser": an anonymous WebRTC call with SIP.js over WebSocket.
 * No build step: SIP.js is vendored from npm by ./scripts/setup and served at /vendor/.
 *
 * The browser registers nothing: it calls sip:NUMBER@<this host> over ws(s)://<this host>/sip
 * and the server's dialplans route NUMBER as for any caller.
 *
 * window.ivr = {
 *   state,                 "idle" | "connecting" | "connected" | "ended"
 *   call(number),          start a call (what the button does)
 *   sendDigits(str),       RFC 4733 tones over the call (0-9 * # A-D)
 *   hangup(),              end the call
 *   inboundLevel()         RMS of what the browser hears over the last second, in dBFS
 * }                          (-100 for silence or no call)
 */
import * as SIP from "/vendor/sip.js/lib/index.js";

const SILENCE_DBFS = -100;
const DIGITS = /^[0-9*#A-Da-d]+$/;
const TARGET = /^[A-Za-z0-9+*#._-]{1,64}$/;
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

const $ = (id) => document.getElementById(id);
const ui = { to: $("ivr-to"), call: $("ivr-call"), hangup: $("ivr-hangup"),
             status: $("ivr-status"), keypad: $("ivr-keypad"), audio: $("ivr-audio") };
const LABELS = { idle: "Ready", connecting: "Connecting\u2026", connected: "Connected",
                 ended: "Call ended" };

let ua = null;
let session = null;
let meter = null;

const ivr = {
  state: "idle",
  call,
  sendDigits,
  hangup,
  inboundLevel: () => (meter ? meter.level() : SILENCE_DBFS),
};
window.ivr = ivr;

function setState(state, detail) {
  ivr.state = state;
  ui.status.dataset.state = state;
  ui.status.textContent = detail ? `${LABELS[state]}: ${detail}` : LABELS[state];
  const busy = state === "connecting" || state === "connected";
  ui.call.disabled = busy;
  ui.hangup.disabled = !busy;
  for (const key of ui.keypad.querySelectorAll("button")) key.disabled = state !== "connected";
}

/* RMS of the remote stream over the last second, from an AnalyserNode read every 100 ms. */
function levelMeter(stream) {
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
  // Without a user gesture yet (autostart) Chrome keeps the context suspended: the first
  // click or key on the page starts it.
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

function ended(detail, after) {
  if (meter) { meter.stop(); meter = null; }
  ui.audio.srcObject = null;
  session = null;
  if (ua) {
    const old = ua;
    ua = null;
    Promise.resolve(after).catch(() => {}).then(() => old.stop()).catch(() => {});
  }
  setState("ended", detail);
}

function onEstablished() {
  const sdh = session.sessionDescriptionHandler;
  const stream = sdh.remoteMediaStream;
  ui.audio.srcObject = stream;  // Chrome feeds WebAudio from a remote track only while it plays
  ui.audio.play().catch(() => {});
  meter = levelMeter(stream);
  setState("connected");
}

async function call(number) {
  if (ivr.state === "connecting" || ivr.state === "connected") return false;
  const to = String(number || "").trim();
  if (!TARGET.test(to)) { setState("ended", "not a number we can call"); return false; }
  const wsScheme = location.protocol === "https:" ? "wss" : "ws";
  const target = SIP.UserAgent.makeURI(`sip:${to}@${location.hostname}`);
  if (!target) { setState("ended", "not a number we can call"); return false; }
  setState("connecting");
  ua = new SIP.UserAgent({
    transportOptions: { server: `${wsScheme}://${location.host}/sip` },
    logLevel: "error",
    sessionDescriptionHandlerFactoryOptions: { iceGatheringTimeout: 500 },
  });
  try {
    await ua.start();
  } catch (e) {
    ended("could not reach the server");
    return false;
  }
  const inviter = new SIP.Inviter(ua, target, {
    sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
  });
  session = inviter;
  inviter.stateChange.addListener((s) => {
    if (inviter !== session) return;
    if (s === SIP.SessionState.Established) onEstablished();
    else if (s === SIP.SessionState.Terminated) ended();
  });
  try {
    await inviter.invite({
      requestDelegate: {
        onReject: (r) => ended(`${r.message.statusCode} ${r.message.reasonPhrase}`),
      },
    });
  } catch (e) {
    if (inviter === session) ended("the call could not be made");
    return false;
  }
  return true;
}

function sendDigits(digits) {
  const str = String(digits || "");
  if (ivr.state !== "connected" || !session || !DIGITS.test(str)) return false;
  const sdh = session.sessionDescriptionHandler;
  // insertDTMF replaces tones still queued: keep them in front of the new ones.
  const sender = sdh.peerConnection && sdh.peerConnection.getSenders().find((s) => s.dtmf);
  const queued = sender ? sender.dtmf.toneBuffer : "";
  return sdh.sendDtmf(queued + str.toUpperCase(), { duration: 160, interToneGap: 80 });
}

function hangup() {
  if (!session) return false;
  const s = session;
  let sent = null;  // the UA stops once the BYE or CANCEL has gone
  if (s.state === SIP.SessionState.Established) sent = s.bye();
  else if (s.state === SIP.SessionState.Initial || s.state === SIP.SessionState.Establishing) {
    sent = s.cancel();
  }
  ended(undefined, sent);
  return true;
}

for (const key of KEYS) {
  const button = document.createElement("button");
  button.textContent = key;
  button.addEventListener("click", () => sendDigits(key));
  ui.keypad.appendChild(button);
}
ui.call.addEventListener("click", () => call(ui.to.value));
ui.hangup.addEventListener("click", hangup);
window.addEventListener("pagehide", hangup);

const params = new URLSearchParams(location.search);
if (params.get("to")) ui.to.value = params.get("to");
setState("idle");
if (params.get("autostart") === "1") call(ui.to.value);
