// The Flow Builder's plain words: what each verb does and what each field means, for people
// who have never seen the YAML.  A field's own "title"/"description" in the JSON Schema
// (GET /v1/dialplans/schema) wins over these; the YAML key is kept as the input's name.
"use strict";

const VERB_WORDS = {
  answer: "Answer the call",
  ring: "Let it ring",
  say: "Say a sentence",
  play: "Play a recording",
  pause: "Wait a moment",
  gather: "Collect digits",
  menu: "Menu: the caller presses a key",
  say_digits: "Read out digits",
  say_number: "Read out a number",
  set: "Remember a value",
  if: "Check a condition",
  switch: "Choose by a value",
  goto: "Go to another flow",
  gosub: "Run another flow, then come back",
  return: "Go back",
  time: "Opening hours: open or closed",
  record: "Record a message",
  webhook: "Ask a web service",
  dial: "Connect to a person or number",
  enqueue: "Wait in a queue for an agent",
  transfer: "Transfer the call",
  reject: "Refuse the call",
  hangup: "Hang up",
  echo: "Echo test",
  log: "Write to the log",
};

// [label, help]; keys "verb.field" first, then "field"
const FIELD_WORDS = {
  "menu.prompt": ["What the caller hears", "The question read to the caller, e.g. \"For sales, press 1\"."],
  "gather.prompt": ["What the caller hears", "Read to the caller before the digits are collected."],
  "say.text": ["Sentence to say", "Read aloud by the text-to-speech voice."],
  text: ["Text", ""],
  timeout: ["Seconds to wait for a key", "How long to wait for the caller to press something."],
  inter_digit_timeout: ["Seconds between keys", "For choices of more than one key: how long to wait for the next one."],
  max_failures: ["Wrong keys allowed", "After this many wrong keys the caller goes to the failure flow."],
  max_timeouts: ["Silences allowed", "After this many times without a key the caller goes to the failure flow."],
  invalid_prompt: ["Said after a wrong key", ""],
  no_input_prompt: ["Said when nothing is pressed", ""],
  variable: ["Remember the choice as", "A name to keep the pressed key under (optional)."],
  on_failure: ["If the caller never chooses, go to", "The flow taken after too many wrong keys or silences."],
  speech_timeout: ["Seconds of silence ending a spoken answer", "Only for menus that also listen to words."],
  language: ["Language", "A voice language such as en-us (optional)."],
  min_confidence: ["Minimum speech confidence", "0 to 1: how sure the recogniser must be of a spoken word."],
  voice: ["Voice", "A text-to-speech voice name (optional)."],
  rate: ["Speaking speed (words per minute)", ""],
  loop: ["How many times", ""],
  barge_in: ["Caller may interrupt", "Stop speaking as soon as the caller presses a key."],
  timezone: ["Time zone", "The opening hours are in this time zone, e.g. America/New_York."],
  then: ["When open, go to", "The flow callers hear during opening hours."],
  else: ["When closed, go to", "The flow callers hear outside opening hours and on holidays."],
  "if.then": ["If true, go to", ""],
  "if.else": ["Otherwise, go to", ""],
  to: ["Call", "An extension, ring group, SIP address or phone number."],
  flow: ["Flow", ""],
  queue: ["Queue", "The queue's name from the queues configuration."],
  url: ["Web address", ""],
  file: ["File", ""],
  seconds: ["Seconds", ""],
  on_busy: ["If busy, go to", ""],
  on_no_answer: ["If nobody answers, go to", ""],
  on_failed: ["If the call fails, go to", ""],
  on_timeout: ["If the wait is too long, go to", ""],
  on_no_agents: ["If no agent is signed in, go to", ""],
  max_length: ["Longest message (seconds)", ""],
  finish_on_key: ["Key that ends the recording", ""],
  beep: ["Beep before recording", ""],
};

function verbWords(verb) { return VERB_WORDS[verb] ? `${VERB_WORDS[verb]} (${verb})` : verb; }

function fieldWords(verb, field, schema) {
  const own = FIELD_WORDS[`${verb}.${field}`] || FIELD_WORDS[field];
  const label = (schema && schema.title) || (own && own[0]) ||
    field.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
  const help = (schema && schema.description) || (own && own[1]) || "";
  return [label, help];
}

// A checker message in plain words: without "file:line:col:" (the node shows where), and
// with the YAML keys it names said as the form says them.
function plainMessage(text) {
  let out = String(text).replace(/^[^:\s]+\.ya?ml:\d+(?::\d+)?:\s*/, "");
  out = out.replace(/'([a-z_]+)'/g, (m, key) => (FIELD_WORDS[key] ? `"${FIELD_WORDS[key][0]}"` : m));
  return out;
}

const LEGEND = {
  unreachable: "Unreachable: no phone number, route or extension leads to this flow, so callers never hear it (a call placed through the API by the flow's name still can). Point a menu option or a route at it.",
  deadEnd: "Dead end: the flow stops after this step without \"Hang up\" or \"Go to\", so the call is simply cut off there. That is fine after the call was connected to someone; otherwise add a goodbye and \"Hang up\".",
};
