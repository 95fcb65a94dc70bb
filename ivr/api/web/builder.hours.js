// The Flow Builder's business-hours form: the time verb's when/holidays as rows of day
// checkboxes and from-to times, written back in the checker's own syntax.  Loaded before
// builder.js (plain script, no build step); uses its el().
"use strict";

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
      el("div", { class: "row hours-times" },
        el("span", { class: "word" }, "open from"),
        el("input", { type: "time", "data-hours-from": "1", value: from || "", "aria-label": "open from" }),
        el("span", { class: "word" }, "to"),
        el("input", { type: "time", "data-hours-to": "1", value: to === "24:00" ? "00:00" : (to || ""), "aria-label": "until" }),
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
  form.append(el("label", {}, "Opening hours", el("div", { class: "help" },
    "Open when any row matches: tick the days, then the times. A row with no day ticked means every day.")), rows,
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
