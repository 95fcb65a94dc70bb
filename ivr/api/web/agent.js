/*
 * ivr agent softphone: an extension registered from a browser tab with SIP.js over
 * WebSocket (digest auth, as any phone), taking the calls the server places to it (queues,
 * ring groups, click-to-call) with the microphone.  No build step: SIP.js is vendored from
 * npm by ./scripts/setup and served at /vendor/; the user agent, level meter, digits and
 * keypad are webphone.js's, shared with the WebRTC demo.
 *
 * window.agent = {
 *   state,                     "unregistered" | "registered" | "ringing" | "connected"
 *   caller,                    who is calling or connected ("" otherwise)
 *   lastError,                 why the last sign-in or call failed ("" if it did not)
 *   register(ext, password),   sign in (both optional: the form's fields); resolves to the state
 *   unregister(),              sign out
 *   answer(),                  take the ringing call
 *   decline(),                 refuse the ringing call (603)
 *   hangup(),                  end the call (decline while it rings)
 *   sendDigits(str),           RFC 4733 tones over the call (0-9 * # A-D)
 *   inboundLevel()             RMS of what the agent hears over the last second, in dBFS
 * }                              (-100 for silence or no call)
 */
import * as SIP from "/vendor/sip.js/lib/index.js";
import { SILENCE_DBFS, keypad, levelMeter, sendDtmf, userAgent } from "/webphone.js";

const EXTENSION = /^[A-Za-z0-9+._-]{1,32}$/;
const LABELS = { unregistered: "Signed out", registered: "Ready for calls",
                 ringing: "Incoming call", connected: "On a call" };

const $ = (id) => document.getElementById(id);
const ui = { form: $("agent-login"), ext: $("agent-ext"), password: $("agent-password"),
             register: $("agent-register"), status: $("agent-status"), caller: $("agent-caller"),
             answer: $("agent-answer"), decline: $("agent-decline"), hangup: $("agent-hangup"),
             autoanswer: $("agent-autoanswer"), keypad: $("agent-keypad"), audio: $("agent-audio") };

let ua = null;
let registerer = null;
let session = null;  // the one call: ringing (an Invitation) or connected
let meter = null;

const agent = {
  state: "unregistered",
  caller: "",
  lastError: "",
  register,
  unregister,
  answer,
  decline,
  hangup,
  sendDigits,
  inboundLevel: () => (meter ? meter.level() : SILENCE_DBFS),
};
window.agent = agent;

function setState(state, detail) {
  agent.state = state;
  ui.status.dataset.state = state;
  ui.status.textContent = detail ? `${LABELS[state]}: ${detail}` : LABELS[state];
  ui.caller.textContent = state === "ringing" || state === "connected" ? agent.caller : "";
  ui.answer.disabled = state !== "ringing";
  ui.decline.disabled = state !== "ringing";
  ui.hangup.disabled = state !== "connected";
  ui.register.textContent = state === "unregistered" ? "Sign in" : "Sign out";
  for (const key of ui.keypad.querySelectorAll("button")) key.disabled = state !== "connected";
}

/* The state once no call is up: registered or not. */
function idleState() {
  return registerer && registerer.state === SIP.RegistererState.Registered
    ? "registered" : "unregistered";
}

function describe(identity) {
  if (!identity) return "unknown caller";
  const user = identity.uri && identity.uri.user ? identity.uri.user : "";
  const name = identity.displayName || "";
  return name && name !== user ? `${name} (${user})` : (user || name || "unknown caller");
}

/* ---- calls ------------------------------------------------------------------------ */

function onInvite(invitation) {
  if (session) {  // one call at a time
    invitation.reject({ statusCode: 486 }).catch(() => {});
    return;
  }
  session = invitation;
  agent.caller = describe(invitation.remoteIdentity);
  invitation.stateChange.addListener((s) => {
    if (invitation !== session) return;
    if (s === SIP.SessionState.Established) established();
    else if (s === SIP.SessionState.Terminated) callEnded();
  });
  setState("ringing");
  if (ui.autoanswer.checked) answer();
}

function established() {
  const current = session;
  const stream = current.sessionDescriptionHandler.remoteMediaStream;
  setState("connected");
  // The server's INVITE has no offer: the tab offered in its 200 and the answer (and so
  // the remote track) comes with the ACK, which may be after this state change.
  const listen = () => {
    if (session !== current) return;
    if (!stream.getAudioTracks().length) { setTimeout(listen, 50); return; }
    ui.audio.srcObject = stream;  // Chrome feeds WebAudio from a remote track only while it plays
    ui.audio.play().catch(() => {});
    meter = levelMeter(stream);
  };
  listen();
}

function callEnded(detail) {
  if (meter) { meter.stop(); meter = null; }
  ui.audio.srcObject = null;
  session = null;
  agent.caller = "";
  setState(idleState(), detail);
}

function answer() {
  if (agent.state !== "ringing" || !session) return false;
  const invitation = session;
  invitation.accept({
    sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
  }).catch((e) => {
    agent.lastError = `could not answer: ${e && e.message ? e.message : e}`;
    if (invitation === session) callEnded("could not answer");
  });
  return true;
}

function decline() {
  if (agent.state !== "ringing" || !session) return false;
  const invitation = session;
  invitation.reject({ statusCode: 603 }).catch(() => {});
  if (invitation === session) callEnded();
  return true;
}

function hangup() {
  if (!session) return false;
  if (agent.state === "ringing") return decline();
  const s = session;
  if (s.state === SIP.SessionState.Established) s.bye().catch(() => {});
  callEnded();
  return true;
}

function sendDigits(digits) {
  return agent.state === "connected" && sendDtmf(session, digits);
}

/* ---- registration ------------------------------------------------------------------ */

async function register(ext, password) {
  if (ext !== undefined) ui.ext.value = String(ext);
  if (password !== undefined) ui.password.value = String(password);
  const user = ui.ext.value.trim();
  const secret = ui.password.value;
  if (!EXTENSION.test(user) || !secret) {
    agent.lastError = "enter your extension and password";
    setState("unregistered", agent.lastError);
    return agent.state;
  }
  await unregister();
  agent.lastError = "";
  ui.status.textContent = "Signing in\u2026";
  const domain = params.get("domain") || location.hostname;
  const uri = SIP.UserAgent.makeURI(`sip:${user}@${domain}`);
  if (!uri) {
    agent.lastError = "not an extension we can sign in as";
    setState("unregistered", agent.lastError);
    return agent.state;
  }
  const mine = userAgent({
    uri,
    authorizationUsername: user,
    authorizationPassword: secret,
    delegate: {
      onInvite,
      onDisconnect: () => {
        if (ua !== mine) return;
        agent.lastError = "the connection to the server was lost";
        if (session) callEnded();
        setState("unregistered", agent.lastError);
      },
    },
  }, { keepAliveInterval: 25 });
  ua = mine;
  try {
    await mine.start();
  } catch (e) {
    agent.lastError = "could not reach the server";
    if (ua === mine) { ua = null; setState("unregistered", agent.lastError); }
    return agent.state;
  }
  const reg = new SIP.Registerer(mine, { expires: 600 });
  registerer = reg;
  const outcome = new Promise((resolve) => {
    reg.stateChange.addListener((s) => {
      if (registerer !== reg) return;
      if (s === SIP.RegistererState.Registered) {
        if (!session) setState("registered");
        resolve();
      } else if (s === SIP.RegistererState.Unregistered || s === SIP.RegistererState.Terminated) {
        if (!session) setState("unregistered", agent.lastError);
        resolve();
      }
    });
  });
  try {
    await reg.register({
      requestDelegate: {
        onReject: (r) => {
          const m = r.message;
          agent.lastError = m.statusCode === 401 || m.statusCode === 403
            ? "wrong extension or password" : `${m.statusCode} ${m.reasonPhrase}`;
          if (registerer === reg) setState("unregistered", agent.lastError);
        },
      },
    });
  } catch (e) {
    agent.lastError = "could not sign in";
    if (registerer === reg) setState("unregistered", agent.lastError);
    return agent.state;
  }
  await Promise.race([outcome, new Promise((r) => setTimeout(r, 10000))]);
  return agent.state;
}

async function unregister() {
  if (session) hangup();
  const oldUa = ua, oldReg = registerer;
  ua = null;
  registerer = null;
  if (oldReg && oldReg.state === SIP.RegistererState.Registered) {
    await oldReg.unregister().catch(() => {});
  }
  if (oldUa) await oldUa.stop().catch(() => {});
  setState("unregistered");
  return true;
}

/* ---- the page ---------------------------------------------------------------------- */

keypad(ui.keypad, sendDigits);
ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  if (agent.state === "unregistered") register();
  else unregister();
});
ui.answer.addEventListener("click", answer);
ui.decline.addEventListener("click", decline);
ui.hangup.addEventListener("click", hangup);
// Closing the tab closes the WebSocket, and the server drops the registrations made
// over it at once; a call still up gets its BYE here.
window.addEventListener("pagehide", () => { if (session) hangup(); });

const params = new URLSearchParams(location.search);
if (params.get("autoanswer") === "1") ui.autoanswer.checked = true;
if (params.get("ext")) ui.ext.value = params.get("ext");
if (params.get("password")) ui.password.value = params.get("password");
setState("unregistered");
if (params.get("ext") && params.get("password")) register();
