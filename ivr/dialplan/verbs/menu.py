"""``menu``: an IVR menu in the style of FreeSWITCH's: keys to branches, with failure limits.

    - menu:
        prompt: "Press 1 for sales, 2 for support, 0 for an operator."
        options: {"1": sales, "2": support, "0": [ {say: "Connecting"}, {goto: operator} ]}
        timeout: 5               # first key; inter_digit_timeout for multi-key options
        max_failures: 3          # wrong keys before giving up
        max_timeouts: 3          # silences before giving up
        invalid_prompt: "Sorry, that is not a valid choice."
        no_input_prompt: "Sorry, I did not hear a choice."
        on_failure: goodbye      # after too many failures or timeouts (default: next step)

The prompt is replayed after each failure.  The chosen key is stored in ``variable``
(default ``menu``).  Options may be several keys long ("11"); an entry ends when it names
an option and no longer option starts with it, or after the inter-digit timeout.
"""
from __future__ import annotations

import re

from twisted.internet import defer

from ivr.dialplan.schema import INVALID, TARGET_JSON, custom, integer, number, prompt, target, variable
from ivr.dialplan.verbs.base import Verb, branch


def _options(p, node):
    items = p.mapping(node, "'options'")
    if items is None:
        return INVALID
    if not items:
        return p.error(node, "'options' needs at least one key")
    out = []
    for key, knode, vnode in items:
        if not re.fullmatch(r"[0-9*#A-D]{1,8}", key):
            p.error(knode, f"'{key}' is not a DTMF key sequence (0-9, *, #, A-D)")
            return INVALID
        t = target().read(p, vnode)
        if t is INVALID:
            return INVALID
        out.append((key, t))
    return tuple(out)


class Menu(Verb):
    name = "menu"
    needs_media = True
    FIELDS = {"prompt": prompt(required=True), "options": custom(_options, required=True, json={
                  "type": "object", "minProperties": 1, "additionalProperties": False,
                  "patternProperties": {"^[0-9*#A-D]{1,8}$": TARGET_JSON}}),
              "timeout": number(default=5, minimum=0.1, maximum=600),
              "inter_digit_timeout": number(default=2, minimum=0.1, maximum=600),
              "max_failures": integer(default=3, minimum=1, maximum=20),
              "max_timeouts": integer(default=3, minimum=1, maximum=20),
              "invalid_prompt": prompt(), "no_input_prompt": prompt(),
              "variable": variable(default="menu"), "on_failure": target()}

    @defer.inlineCallbacks
    def read_choice(self, call, keys):
        entry = ""
        timeout = self.args.timeout
        while True:
            digit = yield self.wait(call.next_digit(timeout))
            if digit is None:
                return entry
            entry += digit
            longer = any(k != entry and k.startswith(entry) for k in keys)
            if not longer:
                return entry
            timeout = self.args.inter_digit_timeout

    @defer.inlineCallbacks
    def execute(self, call):
        a = self.args
        options = dict(a.options)
        failures = timeouts = 0
        while True:
            yield self.play_prompts(a.prompt, barge_in=True)
            entry = yield self.read_choice(call, options)
            if entry in options:
                chosen = options[entry]
                call.variables[a.variable] = entry
                self.log("menu_choice", digits=entry, to=chosen.describe())
                return branch(chosen)
            call.flush_digits()
            if entry:
                failures += 1
                self.log("menu_invalid", digits=entry, failures=failures)
                if a.invalid_prompt:
                    yield self.play_prompts(a.invalid_prompt)
            else:
                timeouts += 1
                self.log("menu_timeout", timeouts=timeouts)
                if a.no_input_prompt:
                    yield self.play_prompts(a.no_input_prompt)
            if failures >= a.max_failures or timeouts >= a.max_timeouts:
                call.variables[a.variable] = ""
                self.log("branch", test="menu", result="failed",
                         to=a.on_failure.describe() if a.on_failure else "next")
                return branch(a.on_failure)
