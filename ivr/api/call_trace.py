"""A call's path through the dialplans, from its per-call event log (pure: no I/O).

Every leg keeps a path log (``Call.path``, written to the CDR as ``extra.path``): one line per
event, ``EVENT key=value ...`` with Python-literal values, e.g.::

    step flow='main_menu' verb='menu' at='dialplans/tollfree.yaml:13:7'
    menu_choice verb='menu' line=13 digits='2' to='support'

:func:`trace_steps` turns it into the steps the call ran, in order, each as ``FILE:LINE``
(the file relative to the dialplan directory: the Flow Builder's ``data-step``), with the
digits, branches and webhook results of that step as notes.  :func:`format_trace` is the
terminal rendering ``ivr trace`` prints.
"""
from __future__ import annotations

import ast
import re
from typing import Callable, Iterable

_FIELD = re.compile(r"""([A-Za-z_][\w.]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")
MAX_ENTRIES = 20_000  # a path log longer than this is cut (a loop guard stops at far fewer)


def parse_entry(text) -> tuple[str, dict[str, str]]:
    """``"menu_choice verb='menu' digits='2'"`` -> ``("menu_choice", {"verb": "menu", ...})``.
    Anything unparsable gives what could be read; never raises."""
    if not isinstance(text, str):
        return "", {}
    event, _, rest = text.strip().partition(" ")
    fields: dict[str, str] = {}
    for name, raw in _FIELD.findall(rest):
        if raw[:1] in ("'", '"') and len(raw) >= 2:
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = raw[1:-1]
        else:
            value = raw
        fields[name] = str(value)
    return event, fields


def _where(at: str) -> tuple[str, int, int] | None:
    parts = at.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def _note(event: str, f: dict[str, str]) -> str | None:
    """The words shown on a step for one of its events (None: not worth a note)."""
    to = f" → {f['to']}" if f.get("to") else ""
    if event == "menu_choice":
        if "speech" in f:
            return f"said {f['speech']!r} (option {f.get('key', '?')}){to}"
        return f"pressed {f.get('digits', '?')}{to}"
    if event == "menu_invalid":
        return f"invalid choice {f.get('digits', '')}".rstrip()
    if event == "menu_timeout":
        return "no choice (timeout)"
    if event == "gathered":
        got = f.get("digits") or (f"said {f['speech']!r}" if "speech" in f else "")
        return f"gathered {got}".rstrip()
    if event == "barge_in":
        return f"barged in with {f.get('digit', '?')}"
    if event == "branch":
        if f.get("test") == "time":
            state = "open" if f.get("open") == "True" else "closed"
            return f"{state} at {f.get('now', '?')} {f.get('timezone', '')}".rstrip() + to
        if "var" in f:
            return f"{f['var']}={f.get('value', '')!r}" + (f" is {f['result']}" if "result" in f
                                                          else "") + to
        return f"{f.get('test', 'branch')}: {f.get('result', '')}{to}"
    if event == "webhook_reply":
        parts = []
        if f.get("goto"):
            parts.append(f"goto {f['goto']}")
        if f.get("variables"):
            parts.append(f"set {f['variables']}")
        return "webhook replied" + (": " + ", ".join(parts) if parts else "")
    if event == "webhook_failed":
        return f"webhook failed: {f.get('reason', '?')}"
    if event in ("dial_failed", "transfer_failed", "enqueue_failed"):
        return f"{event.replace('_', ' ')}: {f.get('why') or f.get('status') or '?'}"
    if event == "queue_outcome":
        return f"queue: {f.get('kind', '?')}"
    if event == "error":
        return f"error: {f.get('detail', '')}"
    return None


def trace_steps(path: Iterable, display: Callable[[str], str] = lambda f: f) -> list[dict]:
    """The steps a call ran, in order: ``{"step": "FILE:LINE", "at": "FILE:LINE:COL",
    "flow", "verb", "notes": [...]}``.  ``display`` maps the loader's file name to the one
    the builder shows (relative to the dialplan directory)."""
    steps: list[dict] = []
    for n, text in enumerate(path or ()):
        if n >= MAX_ENTRIES:
            break
        event, f = parse_entry(text)
        if event == "step":
            where = _where(f.get("at", ""))
            if where is None:
                continue
            file, line, col = where
            shown = display(file)
            steps.append({"step": f"{shown}:{line}", "at": f"{shown}:{line}:{col}",
                          "flow": f.get("flow", ""), "verb": f.get("verb", ""), "notes": []})
            continue
        note = _note(event, f)
        if note is None or not steps:
            continue
        owner = steps[-1]
        line = f.get("line")
        if line and line.isdigit():  # the most recent step on that line logged it
            owner = next((s for s in reversed(steps)
                          if s["step"].rsplit(":", 1)[1] == line), owner)
        owner["notes"].append(note)
    return steps


def trace_of_cdr(cdr: dict, display) -> dict:
    """A finished call's trace from its CDR (a dict as ``CdrStore`` gives it)."""
    extra = cdr.get("extra") if isinstance(cdr.get("extra"), dict) else {}
    path = extra.get("path") if isinstance(extra.get("path"), list) else []
    return {"id": cdr.get("leg_id"), "source": "cdr", "active": False, "state": "ended",
            "outcome": cdr.get("outcome"), "flow": cdr.get("flow"), "route": cdr.get("route"),
            "from": cdr.get("from_number"), "to": cdr.get("to_number"),
            "setup_at": cdr.get("setup_at"), "end_reason": cdr.get("end_reason"),
            "digits": list(cdr.get("digits") or ()),
            "steps": trace_steps(path, display), "path": path}


def format_trace(trace: dict) -> str:
    """The trace as ``ivr trace`` prints it."""
    head = [f"call {trace.get('id')}"]
    for key in ("state", "outcome", "from", "to", "route", "flow"):
        if trace.get(key):
            head.append(f"{key} {trace[key]}")
    if trace.get("digits"):
        head.append("digits " + ",".join(trace["digits"]))
    lines = ["  ".join(head)]
    steps = trace.get("steps") or []
    if not steps:
        lines.append("  (no dialplan steps ran)")
    width = max((len(s["step"]) for s in steps), default=0)
    for i, s in enumerate(steps, 1):
        text = f"{i:3}. {s['step']:<{width}}  {s['flow']}: {s['verb']}"
        if s["notes"]:
            text += "  — " + "; ".join(s["notes"])
        lines.append(text)
    return "\n".join(lines)
