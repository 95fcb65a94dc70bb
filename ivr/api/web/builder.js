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
    node.append(el("div", { class: "badge" }, "dead end: the flow ends here"));
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
    node.append(el("div", { class: "error-message" }, err.join("\n")));
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
        title: "No route or extension reaches this flow: only a call the API places (POST /v1/calls with its name) can run it" },
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

function changed(file) { state.dirty.add(file); render(); }

// -- the step form, generated from the schema ----------------------------------------------------
function select(file, ptr) {
  state.selected = { file, ptr };
  document.querySelectorAll(".step.selected").forEach((n) => n.classList.remove("selected"));
  const node = document.querySelector(`.step[data-file="${file}"][data-ptr="${ptr}"]`);
  if (node) node.classList.add("selected");
  const form = document.getElementById("form");
  form.textContent = "";
  const doc = state.files[file].document;
  const step = getAt(doc, ptr);
  const [verb, args] = stepVerb(step);
  form.append(el("div", {}, el("b", {}, verb), ` (${node ? node.dataset.step : file})`));
  const obj = Object.assign({}, argsObject(verb, args));
  const schema = objectForm(verb);
  const inputs = {};
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
    form.append(el("label", {}, field + (required ? " *" : ""), input));
  }
  let optionRows = null;
  if (verb === "menu") {
    optionRows = el("div", { id: "menu-options" });
    const addRow = (key, target) => {
      const k = el("input", { value: key, placeholder: "key", "data-option-key": "1" });
      const t = el("select", { "data-option-flow": "1" }, ...Object.keys(collect().flows).sort().map((n) => el("option", { value: n }, n)));
      t.value = typeof target === "string" ? target : (target && typeof target.to === "string" ? target.to : "");
      const row = el("div", { class: "row" }, k, t, el("button", { onclick: () => row.remove() }, "✕"));
      optionRows.append(row);
    };
    for (const [k, t] of Object.entries(obj.options || {})) addRow(k, t);
    form.append(el("label", {}, "options (key → flow)"), optionRows,
      el("button", { id: "add-option", onclick: () => addRow("", "") }, "Add option"));
  }
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
    changed(file);
    select(file, ptr);
  };
  const [list, index] = parentOf(doc, ptr);
  const move = (delta) => {
    const i = Number(index), j = i + delta;
    if (j < 0 || j >= list.length) return;
    [list[i], list[j]] = [list[j], list[i]];
    changed(file);
    select(file, ptr.replace(/\/\d+$/, "/" + j));
  };
  const verbs = el("select", { id: "insert-verb" }, ...Object.keys(state.schema.$defs.verbs).map((v) => el("option", { value: v }, v)));
  form.append(el("div", {},
    el("button", { id: "apply-step", onclick: apply }, "Apply"),
    el("button", { id: "step-up", onclick: () => move(-1) }, "↑"),
    el("button", { id: "step-down", onclick: () => move(1) }, "↓"),
    el("button", { id: "delete-step", onclick: () => { list.splice(Number(index), 1); state.selected = null; changed(file); } }, "Delete")),
  el("div", {}, verbs, el("button", { id: "insert-after", onclick: () => {
    list.splice(Number(index) + 1, 0, newStep(verbs.value));
    changed(file);
    select(file, ptr.replace(/\/\d+$/, "/" + (Number(index) + 1)));
  } }, "Insert step after")));
}

// -- business hours: the time verb's when/holidays as rows of days and from-to times ----------------
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

function parseDays(spec) {
  // the checker's syntax (timecond.parse_days): "mon-fri", "sat,sun", "mon-wed,fri"
  const out = new Set();
  for (const part of String(spec || "").toLowerCase().replace(/ /g, "").split(",")) {
    const ends = part.split("-").map((e) => DAYS.indexOf(e.slice(0, 3)));
    if (!part || ends.some((i) => i < 0)) continue;
    const [a, b] = [ends[0], ends[ends.length - 1]];
    for (let i = a; ; i = (i + 1) % 7) { out.add(DAYS[i]); if (i === b) break; }
  }
  return out;
}

function daysSpec(set) {
  // the shortest spelling: runs of three or more days as ranges ("mon-fri,sun")
  const parts = [];
  for (let i = 0; i < 7; i++) {
    if (!set.has(DAYS[i])) continue;
    let j = i;
    while (j + 1 < 7 && set.has(DAYS[j + 1])) j++;
    if (j - i >= 2) parts.push(`${DAYS[i]}-${DAYS[j]}`);
    else for (let k = i; k <= j; k++) parts.push(DAYS[k]);
    i = j;
  }
  return parts.join(",");
}

function asList(v) { return v === undefined || v === null ? [] : (Array.isArray(v) ? v : [v]); }

function hoursEditor(form, when) {
  const rows = el("div", { id: "hours-rows" });
  const addRow = (days, hours, dates) => {
    const [from, to] = (hours || "").split("-").map((t) => (t || "").trim());
    const checks = DAYS.map((d) => {
      const c = el("input", { type: "checkbox", "data-day": d, title: d });
      c.checked = days.has(d);
      return el("label", { class: "day" }, c, d.slice(0, 2));
    });
    const row = el("div", { class: "hours-row" },
      el("div", { class: "days" }, ...checks),
      el("div", { class: "row" },
        el("input", { type: "time", "data-hours-from": "1", value: from || "", "aria-label": "from" }),
        el("input", { type: "time", "data-hours-to": "1", value: to === "24:00" ? "00:00" : (to || ""), "aria-label": "to" }),
        el("button", { class: "remove-hours", onclick: () => row.remove() }, "✕")),
      el("input", { "data-dates": "1", placeholder: "only on dates (YYYY-MM-DD or MM-DD, optional)", value: asList(dates).join(", ") }));
    rows.append(row);
  };
  for (const rule of asList(when)) {
    const days = parseDays(rule.days);
    const hours = asList(rule.hours);
    if (!hours.length) addRow(days, "", rule.dates);
    for (const h of hours) addRow(days, h, rule.dates);
  }
  form.append(el("label", {}, "Business hours (open when any row matches; no days: every day)"), rows,
    el("button", { id: "add-hours", onclick: () => addRow(new Set(["mon", "tue", "wed", "thu", "fri"]), "09:00-17:00") }, "Add hours"));
  return {
    compute() {
      const rules = [];
      for (const row of rows.querySelectorAll(".hours-row")) {
        const days = daysSpec(new Set(Array.from(row.querySelectorAll("[data-day]")).filter((c) => c.checked).map((c) => c.dataset.day)));
        const from = row.querySelector("[data-hours-from]").value;
        let to = row.querySelector("[data-hours-to]").value;
        if (from && to === "00:00") to = "24:00";
        const hours = from || to ? `${from}-${to}` : null;
        const dates = row.querySelector("[data-dates]").value.split(/[\s,]+/).filter(Boolean);
        const key = JSON.stringify([days, dates]);
        const last = rules[rules.length - 1];
        if (last && last.key === key && hours && last.hours.length) { last.hours.push(hours); continue; }
        rules.push({ key, days, dates, hours: hours ? [hours] : [] });
      }
      const out = rules.map((r) => {
        const rule = {};
        if (r.days) rule.days = r.days;
        if (r.hours.length) rule.hours = r.hours.length === 1 ? r.hours[0] : r.hours;
        if (r.dates.length) rule.dates = r.dates;
        return rule;
      }).filter((r) => Object.keys(r).length);
      if (!out.length) return undefined;
      return out.length === 1 ? out[0] : out;
    },
  };
}

function holidaysEditor(form, holidays) {
  const input = el("input", { id: "holidays", placeholder: "12-25, 2026-01-01", value: asList(holidays).join(", ") });
  form.append(el("label", {}, "Holidays: closed all day (MM-DD every year, or YYYY-MM-DD)", input));
  return {
    compute() {
      const days = input.value.split(/[\s,]+/).filter(Boolean);
      return days.length ? days : undefined;
    },
  };
}

function timezoneList() {
  let list = document.getElementById("timezones");
  if (!list) {
    list = el("datalist", { id: "timezones" });
    const zones = (Intl.supportedValuesOf && Intl.supportedValuesOf("timeZone")) || [];
    zones.forEach((z) => list.append(el("option", { value: z })));
    document.body.append(list);
  }
  return list;
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
  state.errors = {};
  const messages = [];
  for (const file of Array.from(state.dirty)) {
    const f = state.files[file];
    const headers = f.etag ? { "If-Match": f.etag } : { "If-None-Match": "*" };
    const r = await api("PUT", `/v1/dialplans/${encodeURIComponent(file)}`, { document: f.document }, headers);
    if (r.status === 200) {
      state.dirty.delete(file);
      messages.push(`${file}: saved (backup ${r.data.backup ?? "-"})`);
      await loadFile(file);
    } else if (r.status === 412) {
      render();
      setStatus(`Conflict: ${file} was changed by someone else since you opened it. Reload and make your change again.`, "conflict");
      return;
    } else if (r.status === 422) {
      errorsOnNodes(file, r.data.error.errors, r.data.error.lines);
      render();
      setStatus(`Not saved: ${r.data.error.errors.map((e) => e.text).join("\n")}`, "failed");
      return;
    } else {
      setStatus(`Not saved: ${(r.data && r.data.error && r.data.error.message) || r.status}`, "failed");
      return;
    }
  }
  render();
  setStatus(messages.join("\n") || "Nothing to save.", "saved");
}

async function loadFile(file) {
  const r = await api("GET", `/v1/dialplans/${encodeURIComponent(file)}`);
  if (r.status === 200) state.files[file] = r.data;
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
    state.files[f.file] = f;
    if (f.errors && f.errors.length) errorsOnNodes(f.file, f.errors);
  }
  state.dirty.clear();
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
  if (!verbSel.options.length) Object.keys(state.schema.$defs.verbs).forEach((v) => verbSel.append(el("option", { value: v }, v)));
  const kindSel = document.getElementById("new-route-kind");
  if (!kindSel.options.length) state.schema.$defs.route.oneOf.forEach((f) => kindSel.append(el("option", { value: f.required[0] }, f.required[0])));
}

function addFlow() {
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
