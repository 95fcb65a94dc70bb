/*
 * ivr click-to-call widget.  No build step, no dependencies.
 *
 * Embed:
 *   <div data-ivr-click-to-call data-endpoint="/demo/api/click-to-call"></div>
 *   <script src="/demo/click-to-call.js" defer></script>
 * or mount by hand:
 *   IvrClickToCall.mount(element, {endpoint: "...", sessions: "...", pollMs: 500});
 *
 * The endpoint is a server-side route of *your* site (or of the ivr server's demo API):
 * it holds the API key, so no key ever reaches the browser.
 */
(function (global) {
  "use strict";

  var LABELS = {
    initiated: "Ringing the agent\u2026",
    ringing_agent: "Ringing the agent\u2026",
    agent_answered: "Connecting you\u2026",
    whisper: "Connecting you\u2026",
    ringing_customer: "Connecting you\u2026",
    bridged: "Connected",
    completed: "Ended",
    failed: "Ended"
  };
  var FINAL = { completed: true, failed: true };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) { node.textContent = text; }
    return node;
  }

  function mount(root, options) {
    var opts = options || {};
    var endpoint = opts.endpoint || root.getAttribute("data-endpoint") || "/demo/api/click-to-call";
    var sessions = opts.sessions || root.getAttribute("data-sessions") || "/demo/api/sessions/";
    var pollMs = opts.pollMs || Number(root.getAttribute("data-poll-ms")) || 500;
    var history = [];
    var timer = null;

    var form = el("form", { "class": "ivr-c2c-form" });
    var label = el("label", { "for": "ivr-c2c-number-" + Math.random().toString(36).slice(2) },
                   opts.label || "Your phone number");
    var input = el("input", { type: "tel", name: "number", id: label.getAttribute("for"),
                              autocomplete: "tel", required: "required",
                              placeholder: opts.placeholder || "+1 555 123 4567",
                              "class": "ivr-c2c-number" });
    var button = el("button", { type: "submit", "class": "ivr-c2c-call" }, opts.buttonText || "Call");
    var status = el("div", { "class": "ivr-c2c-status", role: "status", "aria-live": "polite",
                             "data-state": "idle" });
    form.appendChild(label);
    form.appendChild(input);
    form.appendChild(button);
    root.innerHTML = "";
    root.appendChild(form);
    root.appendChild(status);

    function show(state, text) {
      status.setAttribute("data-state", state);
      status.textContent = text;
      if (history[history.length - 1] !== text) {
        history.push(text);
        root.setAttribute("data-history", history.join("|"));
      }
    }

    function finish() {
      if (timer) { clearTimeout(timer); timer = null; }
      button.disabled = false;
      input.disabled = false;
    }

    function render(session) {
      var text = session.status || LABELS[session.state] || session.state;
      if (session.state === "failed" && session.detail) {
        text = text + " (" + session.detail + ")";
      }
      show(session.state, text);
      if (FINAL[session.state]) { finish(); }
      return !!FINAL[session.state];
    }

    function poll(id) {
      fetch(sessions + encodeURIComponent(id), { headers: { Accept: "application/json" },
                                                 credentials: "same-origin" })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
        .then(function (res) {
          if (!res.ok) { show("error", (res.body.error && res.body.error.message) || "Error"); finish(); return; }
          if (!render(res.body)) { timer = setTimeout(function () { poll(id); }, pollMs); }
        })
        .catch(function () { timer = setTimeout(function () { poll(id); }, pollMs * 2); });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var number = input.value.trim();
      if (!number) { show("error", "Please enter your phone number"); return; }
      button.disabled = true;
      input.disabled = true;
      history = [];
      show("submitting", "Calling\u2026");
      fetch(endpoint, { method: "POST", credentials: "same-origin",
                        headers: { "Content-Type": "application/json", Accept: "application/json" },
                        body: JSON.stringify({ number: number }) })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
        .then(function (res) {
          if (!res.ok) {
            show("error", (res.body.error && res.body.error.message) || "Could not place the call");
            finish();
            return;
          }
          if (!render(res.body)) { timer = setTimeout(function () { poll(res.body.id); }, pollMs); }
        })
        .catch(function () { show("error", "Network error, please try again"); finish(); });
    });

    return { element: root, history: function () { return history.slice(); } };
  }

  function autoMount() {
    var nodes = document.querySelectorAll("[data-ivr-click-to-call]");
    Array.prototype.forEach.call(nodes, function (node) {
      if (!node.getAttribute("data-mounted")) {
        node.setAttribute("data-mounted", "1");
        mount(node);
      }
    });
  }

  global.IvrClickToCall = { mount: mount, labels: LABELS };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", autoMount);
  } else {
    autoMount();
  }
})(window);
