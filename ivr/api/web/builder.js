// The Flow Builder: the dialplan files as a graph, edited without YAML.
// Data: GET /v1/dialplans (JSON documents + line of every entry), GET /v1/dialplans/schema
// (the checker's verb schema); saves: PUT /v1/dialplans/FILE with If-Match.  No build step.
"use strict";

const TERMINAL = new Set(["hangup", "reject", "goto", "return", "transfer"]);
const state = { schema: null, files: {}, dirty: new Set(), selected: null, errors: {} };
window.builder = state;

// The admin key travels in the HttpOnly sign-in cookie (or a header a proxy adds): this
// script never sees it.  Same-origin fetches send the cookie and their Origin.
async function api(method, path, body, headers) {
  const h = Object.assign({}, headers || {});
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { status: r.status, data };
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function setStatus(text, kind) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = kind || "";
}

// -- the model -----------------------------------------------------------------------------
function stepVerb(step) {
  if (typeof step === "string") return [step, null];
  if (step && typeof step === "object" && !Array.isArray(step)) {
    const keys = Object.keys(step);
    if (keys.length === 1) return [keys[0], step[keys[0]]];
  }
  return ["?", step];
}

function verbSchema(verb) {
  return (state.schema && state.schema.$defs.verbs[verb]) || {};
}

function objectForm(verb) {
  const s = verbSchema(verb);
  if (s.type === "object") return s;
  return (s.anyOf || []).find((f) => f.type === "object") || null;
}

function isTarget(schema) {
  return !!(schema && schema.anyOf && schema.anyOf.some((f) => f.$ref === "#/$defs/steps"));
}

function argsObject(verb, args) {
  // the arguments as a mapping (a bare value fills the verb's main field)
  const main = verbSchema(verb)["x-main"];
  if (args === null || args === undefined) return {};
  if (typeof args !== "object" || Array.isArray(args)) return main ? { [main]: args } : {};
  return args;
}

// [label, target, pointer-suffix] for every branch a step can take
function branches(verb, args) {
  const out = [];
  const form = objectForm(verb);
  if (verb === "goto" || verb === "gosub") {
    const flow = typeof args === "string" ? args : (args || {}).flow;
    if (flow) out.push([verb, flow, null]);
    return out;
  }
  if (!form) return out;
  const obj = argsObject(verb, args);
  for (const [field, fs] of Object.entries(form.properties || {})) {
    const v = obj[field];
    if (v === undefined || v === null) continue;
    if (isTarget(fs)) out.push([field, v, "/" + field]);
    else if (fs.type === "object" && (fs.patternProperties || isTarget(fs.additionalProperties))) {
      for (const [k, t] of Object.entries(v)) {
        if (t && typeof t === "object" && !Array.isArray(t) && "to" in t) out.push([k, t.to, "/" + field + "/" + k + "/to"]);
        else out.push([k, t, "/" + field + "/" + k]);
      }
    }
  }
  if (verb === "webhook") out.push(["reply goto", null, null]);
  return out;
}

function allBranchesLeave(verb, args) {
  // a last step whose every outcome jumps elsewhere (both branches, or a failure branch)
  const a = argsObject(verb, args);
  if (verb === "if" || verb === "time") return a.then !== undefined && a.else !== undefined;
  if (verb === "switch") return a.default !== undefined;
  if (verb === "menu" || verb === "gather") return a.on_failure !== undefined;
  return false;
}

function linesOf(file, ptr) {
  const f = state.files[file];
  const l = f && f.lines[ptr];
  return l ? l[0] : null;
}

function collect() {
  const flows = {}, routes = [];
  for (const [file, f] of Object.entries(state.files)) {
    const doc = f.document || {};
    for (const [name, steps] of Object.entries(doc.flows || {})) flows[name] = { name, file, steps: steps || [], ptr: "/flows/" + name };
    (doc.routes || []).forEach((r, i) => routes.push({ route: r, file, ptr: "/routes/" + i }));
  }
  return { flows, routes, entries: state.entries || {} };
}

function reachable(model) {
  const seen = new Set();
  // roots: the routes, and the flows extensions' own calls run in (their `context`)
  const todo = model.routes.map((r) => r.route.flow).concat(Object.keys(model.entries));
  const visitSteps = (steps) => {
    for (const s of steps || []) {
      const [verb, args] = stepVerb(s);
      for (const [, t] of branches(verb, args)) {
        if (typeof t === "string") todo.push(t);
        else if (Array.isArray(t)) visitSteps(t);
      }
    }
  };
  while (todo.length) {
    const name = todo.pop();
    if (seen.has(name) || !model.flows[name]) continue;
    seen.add(name);
    visitSteps(model.flows[name].steps);
  }
  return seen;
}

// -- layout: routes, then flows in layers by distance from a route (own layered layout) -----
function layers(model) {
  const depth = {};
  let frontier = [...new Set(model.routes.map((r) => r.route.flow).concat(Object.keys(model.entries)))]
    .filter((n) => model.flows[n]);
  frontier.forEach((n) => { depth[n] = 0; });
  let d = 0;
  while (frontier.length) {
    const next = [];
    for (const name of frontier) {
      const walk = (steps) => {
        for (const s of steps || []) {
          const [verb, args] = stepVerb(s);
          for (const [, t] of branches(verb, args)) {
            if (typeof t === "string" && model.flows[t] && depth[t] === undefined) { depth[t] = d + 1; next.push(t); }
            else if (Array.isArray(t)) walk(t);
          }
        }
      };
      walk(model.flows[name].steps);
    }
    frontier = next;
    d += 1;
  }
  const maxDepth = Math.max(0, ...Object.values(depth));
  for (const n of Object.keys(model.flows)) if (depth[n] === undefined) depth[n] = maxDepth + 1;
  return depth;
}

function summary(verb, args) {
  if (args === null || args === undefined) return verb;
  if (typeof args !== "object") return `${verb}: ${args}`;
  const main = verbSchema(verb)["x-main"];
  const a = argsObject(verb, args);
  const first = a.prompt || a.text || a.url || a.to || a.queue || a.var || (main ? a[main] : null);
  const txt = typeof first === "string" ? first : (first ? JSON.stringify(first) : "");
  return txt ? `${verb}: ${txt.length > 70 ? txt.slice(0, 67) + "…" : txt}` : verb;
}

function stepNode(file, ptr, step, isLast) {
  const [verb, args] = stepVerb(step);
  const line = linesOf(file, ptr);
  const node = el("div", { class: "step", "data-step": line ? `${file}:${line}` : `${file}:new`,
    "data-ptr": ptr, "data-file": file, "data-verb": verb });
  node.append(el("div", { class: "label" }, summary(verb, args)));
  if (isLast && !TERMINAL.has(verb) && !allBranchesLeave(verb, args) && /^\/flows\/[^/]+\/\d+$/.test(ptr)) {
    node.classList.add("dead-end");
    node.append(el("div", { class: "badge", title: LEGEND.deadEnd }, "dead end: the call is cut off after this step"));
  }
  node.addEventListener("click", (ev) => { ev.stopPropagation(); select(file, ptr); });
  for (const [label, target, suffix] of branches(verb, args)) {
    if (Array.isArray(target) && suffix) {
      const box = el("div", { class: "inline" }, el("div", { class: "badge" }, `${label}:`));
      target.forEach((s, j) => box.append(stepNode(file, `${ptr}/${verb}${suffix}/${j}`, s, j === target.length - 1)));
      node.append(box);
    }
  }
  const err = state.errors[`${file}|${ptr}`];
  if (err) {
    node.classList.add("error");
    node.append(el("div", { class: "error-message" }, err.map(plainMessage).join("\n")));
  }
  return node;
}

function render() {
  const model = collect();
  const live = reachable(model);
  const depth = layers(model);
  const graph = document.getElementById("graph");
  graph.textContent = "";
  const colX = (d) => 250 + d * 270;
  const colY = {};
  const boxes = {};
  model.routes.forEach((r, i) => {
    const kind = Object.keys(r.route).find((k) => k !== "flow" && k !== "description");
    const line = linesOf(r.file, r.ptr);
    const n = el("div", { class: "route", style: `left:10px;top:${10 + i * 50}px`,
      "data-route": `${kind}:${r.route[kind]}`, "data-step": line ? `${r.file}:${line}` : `${r.file}:new` },
    `${kind} ${r.route[kind]} → ${r.route.flow}`);
    graph.append(n);
    boxes["route:" + i] = n;
  });
  const names = Object.keys(model.flows).sort((a, b) => depth[a] - depth[b]);
  for (const name of names) {
    const f = model.flows[name];
    const d = depth[name];
    const y = colY[d] || 10;
    const box = el("div", { class: "flow" + (live.has(name) ? "" : " unreachable"), "data-flow": name,
      style: `left:${colX(d)}px;top:${y}px` },
    el("h3", {}, name, " ", el("span", { class: "file" }, f.file),
      live.has(name) ? null : el("span", { class: "badge",
        title: LEGEND.unreachable },
      " unreachable"),
      model.entries[name] ? el("span", { class: "entry", title: model.entries[name] }, " extensions' calls") : null));
    f.steps.forEach((s, i) => box.append(stepNode(f.file, `${f.ptr}/${i}`, s, i === f.steps.length - 1)));
    graph.append(box);
    boxes["flow:" + name] = box;
    colY[d] = y + box.offsetHeight + 30;
  }
  drawEdges(model, boxes, graph);
  fillPickers(model);
  if (state.trace) highlight(state.trace);
}

function drawEdges(model, boxes, graph) {
  const ns = "http://www.w3.org/2000/svg";
  const w = graph.scrollWidth + 300, h = graph.scrollHeight + 100;
  graph.style.width = w + "px"; graph.style.height = h + "px";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "edges"); svg.setAttribute("width", w); svg.setAttribute("height", h);
  const base = graph.getBoundingClientRect();
  const line = (from, to, label, cls) => {
    if (!from || !to) return;
    const a = from.getBoundingClientRect(), b = to.getBoundingClientRect();
    const x1 = a.right - base.left, y1 = a.top + a.height / 2 - base.top;
    const x2 = b.left - base.left, y2 = b.top + 12 - base.top;
    const p = document.createElementNS(ns, "path");
    const mx = (x1 + x2) / 2;
    p.setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
    p.setAttribute("fill", "none"); p.setAttribute("stroke", cls === "route" ? "#4a4" : "#678");
    p.setAttribute("data-edge", label);
    svg.append(p);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", mx); t.setAttribute("y", (y1 + y2) / 2 - 3); t.setAttribute("font-size", "10");
    t.textContent = label;
    svg.append(t);
  };
  model.routes.forEach((r, i) => line(boxes["route:" + i], boxes["flow:" + r.route.flow], "", "route"));
  for (const node of graph.querySelectorAll(".step")) {
    const ptr = node.dataset.ptr, file = node.dataset.file;
    const step = getAt(state.files[file].document, ptr);
    const [verb, args] = stepVerb(step);
    for (const [label, target] of branches(verb, args)) {
      if (typeof target === "string") line(node, boxes["flow:" + target], label);
    }
  }
  graph.prepend(svg);
}

// -- JSON pointer helpers -------------------------------------------------------------------------
function parts(ptr) { return ptr.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~")); }
function getAt(doc, ptr) {
  let v = doc;
  for (const p of parts(ptr)) { if (v === null || v === undefined) return undefined; v = v[p]; }
  return v;
}
function parentOf(doc, ptr) {
  const ps = parts(ptr);
  const last = ps.pop();
  let v = doc;
  for (const p of ps) v = v[p];
  return [v, last];
}
function setAt(doc, ptr, value) { const [p, k] = parentOf(doc, ptr); p[k] = value; }

const STEP_BUTTONS = new Set(["apply-step", "step-up", "step-down", "delete-step", "insert-after"]);

function closeForm() {
  state.formDirty = false;
  state.applyForm = null;
  document.getElementById("form").textContent = "Click a step to edit it.";
}

function changed(file) {
  state.dirty.add(file);
  render();
  setStatus(`Not saved yet: changes in ${Array.from(state.dirty).sort().join(", ")}. Press "Save changes" to put them live.`, "unsaved");
}

// -- the step form, generated from the schema ----------------------------------------------------
// the open form's edits are applied before anything else happens (another step clicked, a
// step inserted or moved, a flow or route added, Save): a typed change is never lost
function flushForm() {
  if (!state.formDirty || !state.applyForm) return true;
  return !!state.applyForm();
}

function select(file, ptr) {
  if (!flushForm()) return;
  state.selected = { file, ptr };
  document.querySelectorAll(".step.selected").forEach((n) => n.classList.remove("selected"));
  const node = document.querySelector(`.step[data-file="${file}"][data-ptr="${ptr}"]`);
  if (node) node.classList.add("selected");
  const form = document.getElementById("form");
  form.textContent = "";
  const doc = state.files[file].document;
  const step = getAt(doc, ptr);
  const [verb, args] = stepVerb(step);
  form.append(el("div", {}, el("b", {}, verbWords(verb)), el("span", { class: "where" }, ` ${node ? node.dataset.step : file}`)));
  state.formDirty = false;
  form.oninput = form.onchange = () => { state.formDirty = true; };
  form.onclick = (e) => {  // adding or removing hours rows is a change too
    if (e.target.tagName === "BUTTON" && !STEP_BUTTONS.has(e.target.id)) state.formDirty = true;
  };
  const obj = Object.assign({}, argsObject(verb, args));
  const schema = objectForm(verb);
  const inputs = {};
  const more = el("details", { class: "more" }, el("summary", {}, "More settings"));
  for (const [field, fs] of Object.entries((schema && schema.properties) || {})) {
    if (field === "options" && verb === "menu") continue;
    const value = obj[field];
    if (verb === "time" && (field === "when" || field === "holidays")) {
      inputs[field] = field === "when" ? hoursEditor(form, value) : holidaysEditor(form, value);
      continue;
    }
    let input;
    const required = (schema.required || []).includes(field);
    if (fs.type === "boolean") {
      input = el("select", {}, el("option", { value: "" }, "(default)"), el("option", { value: "true" }, "yes"), el("option", { value: "false" }, "no"));
      input.value = value === undefined ? "" : String(value);
    } else if (fs.enum) {
      input = el("select", {}, el("option", { value: "" }, "(default)"), ...fs.enum.map((v) => el("option", { value: v }, v)));
      input.value = value === undefined ? "" : value;
    } else if (value !== undefined && typeof value === "object") {
      input = el("textarea", {}, JSON.stringify(value));
      input.dataset.json = "1";
    } else {
      input = el("input", { placeholder: fs.default !== undefined ? String(fs.default) : (required ? "required" : "") });
      input.value = value === undefined || value === null ? "" : String(value);
      if (fs.type === "number" || fs.type === "integer") input.dataset.number = "1";
    }
    input.name = field;
    if (fs.format === "timezone") input.setAttribute("list", timezoneList().id);
    inputs[field] = input;
    const [label, help] = fieldWords(verb, field, fs);
    const main = required || isTarget(fs) || fs.format === "flow" || verb === "time";
    (main ? form : more).append(el("label", { "data-field": field }, label + (required ? " (required)" : ""), input,
      help ? el("div", { class: "help" }, help) : null));
  }
  let optionRows = null;
  if (verb === "menu") {
    optionRows = el("div", { id: "menu-options" });
    const addRow = (key, target) => {
      const k = el("input", { value: key, placeholder: "key", "data-option-key": "1", "aria-label": "key the caller presses" });
      const t = el("select", { "data-option-flow": "1" }, ...Object.keys(collect().flows).sort().map((n) => el("option", { value: n }, n)));
      t.value = typeof target === "string" ? target : (target && typeof target.to === "string" ? target.to : "");
      const row = el("div", { class: "row option-row" }, k, el("span", { class: "arrow" }, "→ go to"), t,
        el("button", { class: "remove", title: "Remove this option", onclick: () => { row.remove(); state.formDirty = true; } }, "✕"));
      optionRows.append(row);
    };
    for (const [k, t] of Object.entries(obj.options || {})) addRow(k, t);
    form.append(el("label", {}, "Choices: the key the caller presses → the flow it goes to"), optionRows,
      el("button", { id: "add-option", onclick: () => { addRow("", ""); state.formDirty = true; } }, "Add option"));
  }
  if (more.children.length > 1) form.append(more);
  const apply = () => {
    const out = {};
    for (const [field, input] of Object.entries(inputs)) {
      if (input.compute) {  // a widget of its own (business hours, holidays)
        const v = input.compute();
        if (v !== undefined) out[field] = v;
        continue;
      }
      const raw = input.value;
      if (raw === "" && input.tagName === "SELECT") continue;
      if (input.dataset.json) {
        try { out[field] = JSON.parse(raw); } catch (e) { setStatus(`${field}: not valid`, "failed"); return; }
      } else if (input.dataset.number && raw !== "" && !isNaN(Number(raw))) out[field] = Number(raw);
      else if (input.tagName === "SELECT" && (raw === "true" || raw === "false")) out[field] = raw === "true";
      else if (raw !== "" || (schema.required || []).includes(field)) out[field] = raw;
    }
    if (optionRows) {
      const opts = {};
      for (const row of optionRows.children) {
        const key = row.querySelector("[data-option-key]").value.trim();
        const flow = row.querySelector("[data-option-flow]").value;
        if (key) {
          const old = (obj.options || {})[key];
          opts[key] = old && typeof old === "object" && !Array.isArray(old) && "to" in old ? Object.assign({}, old, { to: flow }) : flow;
        }
      }
      out.options = opts;
    }
    const fields = Object.keys((schema && schema.properties) || {});
    const keepBare = args !== null && typeof args !== "object" && Object.keys(out).length === 1 && out[verbSchema(verb)["x-main"]] !== undefined;
    const value = keepBare ? out[verbSchema(verb)["x-main"]] : (fields.length ? out : null);
    setAt(doc, ptr, value === null || (typeof value === "object" && !Object.keys(value).length && !(schema && schema.required)) ? verb : { [verb]: value });
    state.formDirty = false;
    changed(file);
    select(file, ptr);
    return true;
  };
  state.applyForm = apply;
  const [list, index] = parentOf(doc, ptr);
  const move = (delta) => {
    if (!flushForm()) return;
    const i = Number(index), j = i + delta;
    if (j < 0 || j >= list.length) return;
    [list[i], list[j]] = [list[j], list[i]];
    changed(file);
    select(file, ptr.replace(/\/\d+$/, "/" + j));
  };
  const verbs = el("select", { id: "insert-verb", "aria-label": "kind of step to insert" }, ...Object.keys(state.schema.$defs.verbs).map((v) => el("option", { value: v }, verbWords(v))));
  form.append(el("div", {},
    el("button", { id: "apply-step", title: "Put these settings on the step (Save changes writes them)", onclick: apply }, "Apply"),
    el("button", { id: "step-up", onclick: () => move(-1) }, "↑"),
    el("button", { id: "step-down", onclick: () => move(1) }, "↓"),
    el("button", { id: "delete-step", onclick: () => { list.splice(Number(index), 1); state.selected = null; closeForm(); changed(file); } }, "Delete")),
  el("div", {}, verbs, el("button", { id: "insert-after", onclick: () => {
    if (!flushForm()) return;
    list.splice(Number(index) + 1, 0, newStep(verbs.value));
    changed(file);
    select(file, ptr.replace(/\/\d+$/, "/" + (Number(index) + 1)));
  } }, "Insert step after")));
}

function newStep(verb) {
  const form = objectForm(verb);
  const required = (form && form.required) || [];
  if (!required.length) return verb;
  const args = {};
  for (const f of required) {
    const fs = form.properties[f];
    if (f === "options") args[f] = { "1": firstFlow() };
    else if (isTarget(fs) || (fs && fs.format === "flow")) args[f] = firstFlow();
    else args[f] = "";
  }
  return { [verb]: args };
}

function firstFlow() { return Object.keys(collect().flows).sort()[0] || "main"; }

// -- saving ---------------------------------------------------------------------------------
function errorsOnNodes(file, errors, lines) {
  // each checker error on the step it belongs to: the last step starting at or before its line
  const stepPtrs = Object.entries(lines || state.files[file].lines)
    .filter(([p]) => /^\/flows\/[^/]+\/\d+$/.test(p) || /\/\d+$/.test(p) && p.startsWith("/flows/"))
    .filter(([p]) => isStepPointer(state.files[file].document, p));
  for (const e of errors) {
    let best = null;
    for (const [p, [line]] of stepPtrs) if (line <= e.line && (!best || line >= best[1])) best = [p, line];
    const key = best ? `${file}|${best[0]}` : `${file}|`;
    (state.errors[key] = state.errors[key] || []).push(e.text);
  }
}

function isStepPointer(doc, ptr) {
  const ps = parts(ptr);
  if (ps[0] !== "flows") return false;
  const v = getAt(doc, ptr);
  return typeof v === "string" || (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && state.schema.$defs.verbs[Object.keys(v)[0]] !== undefined);
}

async function save() {
  if (!flushForm()) return;  // the open form's edits first
  state.errors = {};
  const messages = [];
  for (const file of Array.from(state.dirty)) {
    const f = state.files[file];
    const headers = f.etag ? { "If-Match": f.etag } : { "If-None-Match": "*" };
    const r = await api("PUT", `/v1/dialplans/${encodeURIComponent(file)}`, { document: f.document }, headers);
    if (r.status === 200) {
      state.dirty.delete(file);
      const before = f.original, after = f.document;
      await loadFile(file);
      messages.push(`Saved ${file}: ${whatChanged(before, after).join("; ") || "no visible change"}.`);
    } else if (r.status === 412) {
      render();
      setStatus(`Conflict: ${file} was changed by someone else since you opened it. Reload and make your change again.`, "conflict");
      return;
    } else if (r.status === 422) {
      errorsOnNodes(file, r.data.error.errors, r.data.error.lines);
      render();
      setStatus(`Not saved: please fix what is marked in red.\n${r.data.error.errors.map((e) => plainMessage(e.text)).join("\n")}`, "failed");
      return;
    } else {
      setStatus(`Not saved: ${(r.data && r.data.error && r.data.error.message) || r.status}`, "failed");
      return;
    }
  }
  render();
  if (!messages.length) { setStatus("Nothing to save: no changes.", "saved"); return; }
  messages.push(`The next call uses it (${new Date().toLocaleTimeString()}).`);
  setStatus(messages.join("\n"), "saved");
}

async function loadFile(file) {
  const r = await api("GET", `/v1/dialplans/${encodeURIComponent(file)}`);
  if (r.status === 200) state.files[file] = withOriginal(r.data);
}

function withOriginal(f) { f.original = JSON.parse(JSON.stringify(f.document || {})); return f; }

// what a save changed, in words: "new flow x", "flow main_menu changed", "new route ..."
function whatChanged(before, after) {
  const out = [];
  const bf = (before && before.flows) || {}, af = (after && after.flows) || {};
  for (const name of Object.keys(af)) {
    if (!(name in bf)) out.push(`new flow ${name}`);
    else if (JSON.stringify(bf[name]) !== JSON.stringify(af[name])) out.push(`flow ${name} changed`);
  }
  for (const name of Object.keys(bf)) if (!(name in af)) out.push(`flow ${name} removed`);
  const key = (r) => JSON.stringify(r);
  const br = ((before && before.routes) || []).map(key), ar = ((after && after.routes) || []).map(key);
  for (const r of ar) if (!br.includes(r)) { const o = JSON.parse(r); const k = Object.keys(o).find((x) => x !== "flow"); out.push(`new route ${k} ${o[k]} → ${o.flow}`); }
  for (const r of br) if (!ar.includes(r)) out.push("a route removed");
  for (const k of Object.keys(after || {})) if (k !== "flows" && k !== "routes" && key((before || {})[k]) !== key(after[k])) out.push(`${k} changed`);
  return out;
}

async function load() {
  const s = await api("GET", "/v1/dialplans/schema");
  if (s.status !== 200) { setStatus(`Cannot load the schema (${s.status})`, "failed"); return; }
  state.schema = s.data;
  const r = await api("GET", "/v1/dialplans");
  if (r.status !== 200) { setStatus(`Cannot load the dialplans (${r.status})`, "failed"); return; }
  state.files = {};
  state.entries = r.data.entries || {};
  for (const f of r.data.files) {
    state.files[f.file] = withOriginal(f);
    if (f.errors && f.errors.length) errorsOnNodes(f.file, f.errors);
  }
  state.dirty.clear();
  closeForm();
  render();
  setStatus("Loaded " + Object.keys(state.files).length + " files.", "loaded");
  state.ready = true;
  document.body.dataset.ready = "1";
}

// -- new flows and routes -----------------------------------------------------------------
function fillPickers(model) {
  const files = Object.keys(state.files).sort();
  for (const id of ["new-flow-file", "new-route-file"]) {
    const sel = document.getElementById(id);
    const keep = sel.value;
    sel.textContent = "";
    files.forEach((f) => sel.append(el("option", { value: f }, f)));
    if (keep) sel.value = keep;
  }
  const flowSel = document.getElementById("new-route-flow");
  const keep = flowSel.value;
  flowSel.textContent = "";
  Object.keys(model.flows).sort().forEach((n) => flowSel.append(el("option", { value: n }, n)));
  if (keep) flowSel.value = keep;
  const verbSel = document.getElementById("new-flow-verb");
  if (!verbSel.options.length) Object.keys(state.schema.$defs.verbs).forEach((v) => verbSel.append(el("option", { value: v }, verbWords(v))));
  const kindSel = document.getElementById("new-route-kind");
  if (!kindSel.options.length) state.schema.$defs.route.oneOf.forEach((f) => kindSel.append(el("option", { value: f.required[0] }, f.required[0])));
}

function addFlow() {
  if (!flushForm()) return;
  const file = document.getElementById("new-flow-file").value;
  const name = document.getElementById("new-flow-name").value.trim();
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) { setStatus("A flow name is letters, digits, _ and -", "failed"); return; }
  if (collect().flows[name]) { setStatus(`There is already a flow ${name}`, "failed"); return; }
  const doc = state.files[file].document || (state.files[file].document = {});
  doc.flows = doc.flows || {};
  doc.flows[name] = [newStep(document.getElementById("new-flow-verb").value)];
  changed(file);
  select(file, `/flows/${name}/0`);
}

function addRoute() {
  if (!flushForm()) return;
  const file = document.getElementById("new-route-file").value;
  const kind = document.getElementById("new-route-kind").value;
  const value = document.getElementById("new-route-value").value.trim();
  const flow = document.getElementById("new-route-flow").value;
  if (!value || !flow) { setStatus("A route needs a value and a flow", "failed"); return; }
  const doc = state.files[file].document || (state.files[file].document = {});
  doc.routes = doc.routes || [];
  doc.routes.push({ [kind]: value, flow });
  changed(file);
}

// -- live view: a call's path from its trace ----------------------------------------------------------
async function refreshTraces() {
  const sel = document.getElementById("trace-pick");
  sel.textContent = "";
  const calls = await api("GET", "/v1/builder/calls");
  if (calls.status !== 200) return;
  for (const c of calls.data.calls) sel.append(el("option", { value: c.id }, `${c.active ? "● " : ""}${c.id} ${c.to || ""} ${c.flow || ""}`));
}

function highlight(trace) {
  document.querySelectorAll(".step.visited").forEach((n) => { n.classList.remove("visited"); n.querySelectorAll(".trace-note").forEach((x) => x.remove()); });
  for (const s of trace.steps) {
    const node = document.querySelector(`.step[data-step="${s.step}"]`);
    if (!node) continue;
    node.classList.add("visited");
    if (s.notes && s.notes.length) node.append(el("div", { class: "trace-note" }, s.notes.join("; ")));
  }
}

async function showTrace() {
  const id = document.getElementById("trace-pick").value;
  if (!id) return;
  const r = await api("GET", `/v1/builder/trace/${encodeURIComponent(id)}`);
  const out = document.getElementById("trace-out");
  if (r.status !== 200) { out.textContent = (r.data && r.data.error && r.data.error.message) || String(r.status); return; }
  state.trace = r.data;
  out.textContent = r.data.steps.map((s) => `${s.step} ${s.verb}${s.notes.length ? " — " + s.notes.join("; ") : ""}`).join("\n");
  highlight(r.data);
}

document.getElementById("save").addEventListener("click", save);
document.getElementById("reload").addEventListener("click", load);
document.getElementById("add-flow").addEventListener("click", addFlow);
document.getElementById("add-route").addEventListener("click", addRoute);
document.getElementById("trace-refresh").addEventListener("click", refreshTraces);
document.getElementById("trace-show").addEventListener("click", showTrace);
load().then(refreshTraces);
