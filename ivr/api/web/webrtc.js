/*
 * ivr "Call from your browser": an anonymous WebRTC call with SIP.js over WebSocket.
 * No build step: SIP.js is vendored from npm by ./scripts/setup and served at /vendor/;
 * the user agent, level meter, digits and keypad are webphone.js's, shared with agent.js.
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
import { SILENCE_DBFS, keypad, levelMeter, sendDtmf, userAgent } from "/webphone.js";

const TARGET = /^[A-Za-z0-9+*#._-]{1,64}$/;

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
  const target = SIP.UserAgent.makeURI(`sip:${to}@${location.hostname}`);
  if (!target) { setState("ended", "not a number we can call"); return false; }
  setState("connecting");
  ua = userAgent();
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
  return ivr.state === "connected" && sendDtmf(session, digits);
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

keypad(ui.keypad, sendDigits);
ui.call.addEventListener("click", () => call(ui.to.value));
ui.hangup.addEventListener("click", hangup);
window.addEventListener("pagehide", hangup);

const params = new URLSearchParams(location.search);
if (params.get("to")) ui.to.value = params.get("to");
setState("idle");
if (params.get("autostart") === "1") call(ui.to.value);
