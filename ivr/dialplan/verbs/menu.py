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

An option may also be said: ``"1": {to: sales, words: ["sales", "sales department"]}``
makes key 1 and the words lead to the same branch (``speech_timeout``, ``language`` and
``min_confidence`` as for ``gather``).  A spoken word stops the prompt as a key does; words
that match no option (or below ``min_confidence``) count as a wrong choice.  ``{{input}}``
says how the caller chose (``dtmf`` or ``speech``), ``{{speech}}`` and ``{{confidence}}``
what was heard.

The prompt is replayed after each failure.  The chosen key is stored in ``variable``
(default ``menu``).  Options may be several keys long ("11"); an entry ends when it names
an option and no longer option starts with it, or after the inter-digit timeout.
"""
from __future__ import annotations

import re

from twisted.internet import defer

from yaml.nodes import MappingNode

from ivr.dialplan.schema import INVALID, TARGET_JSON, custom, integer, number, prompt, target, variable
from ivr.dialplan.verbs import speech_input
from ivr.dialplan.verbs.base import Verb, branch


def _options(p, node):
    items = p.mapping(node, "'options'")
    if items is None:
        return INVALID
    if not items:
        return p.error(node, "'options' needs at least one key")
    out = []
    said: dict[str, str] = {}
    for key, knode, vnode in items:
        if not re.fullmatch(r"[0-9*#A-D]{1,8}", key):
            p.error(knode, f"'{key}' is not a DTMF key sequence (0-9, *, #, A-D)")
            return INVALID
        words = ()
        if isinstance(vnode, MappingNode):
            args = p.fields(vnode, OPTION_FIELDS, f"option '{key}'")
            if args is None:
                return INVALID
            t, words = args.to, args.words or ()
            for word in words:
                if word in said:
                    p.error(vnode, f"'{word}' is said for options '{said[word]}' and '{key}'")
                    return INVALID
                said[word] = key
        else:
            t = target().read(p, vnode)
        if t is INVALID:
            return INVALID
        out.append(Option(key, t, tuple(words)))
    return tuple(out)


class Option(tuple):
    """(key, target) as before, with the words that choose it too."""

    def __new__(cls, key, target, words=()):
        self = super().__new__(cls, (key, target))
        self.words = words
        return self


OPTION_FIELDS = {"to": target(required=True), "words": speech_input.hints("words")}


class Menu(Verb):
    name = "menu"
    needs_media = True
    FIELDS = {"prompt": prompt(required=True), "options": custom(_options, required=True, json={
                  "type": "object", "minProperties": 1, "additionalProperties": False,
                  "patternProperties": {"^[0-9*#A-D]{1,8}$": {"anyOf": [TARGET_JSON, {
                      "type": "object", "required": ["to"], "additionalProperties": False,
                      "properties": {"to": TARGET_JSON,
                                     "words": speech_input.hints("words").json}}]}}}),
              "timeout": number(default=5, minimum=0.1, maximum=600),
              "inter_digit_timeout": number(default=2, minimum=0.1, maximum=600),
              "max_failures": integer(default=3, minimum=1, maximum=20),
              "max_timeouts": integer(default=3, minimum=1, maximum=20),
              "invalid_prompt": prompt(), "no_input_prompt": prompt(),
              "variable": variable(default="menu"), "on_failure": target(),
              **speech_input.SPEECH_FIELDS}

    @defer.inlineCallbacks
    def read_choice(self, call, keys, first=None):
        entry = ""
        timeout = self.args.timeout
        while True:
            if first is not None:
                digit, first = first, None
            else:
                digit = yield self.wait(call.next_digit(timeout))
            if digit is None:
                return entry
            entry += digit
            longer = any(k != entry and k.startswith(entry) for k in keys)
            if not longer:
                return entry
            timeout = self.args.inter_digit_timeout

    def execute(self, call):
        words = {w: option[0] for option in self.args.options
                 for w in getattr(option, "words", ())}
        listener = speech_input.open_listener(self, call, tuple(words), self.args) if words else None
        d = self._choose(call, words, listener)
        if listener is not None:
            d.addBoth(lambda outcome: (listener.close(), outcome)[1])
        return d

    @defer.inlineCallbacks
    def _choose(self, call, words, listener):
        a = self.args
        options = dict(a.options)
        failures = timeouts = 0
        while True:
            yield speech_input.play_prompts(self, a.prompt, True, listener)
            if words:
                kind, value = yield speech_input.wait_input(self, call, listener, a.timeout)
            else:
                kind, value = "dtmf", None
            if kind == "speech":
                entry = words.get(value.text, "") if value.confidence >= a.min_confidence else ""
                speech_input.record_speech(self, call, value, bool(entry))
                if entry:
                    call.variables.update(speech=value.text, input="speech",
                                          confidence=f"{value.confidence:.2f}")
                else:
                    entry = "?"  # said something that is no option: a wrong choice
            elif kind is None:
                entry = ""
            else:
                entry = yield self.read_choice(call, options, first=value)
                if words and entry in options:
                    call.variables.update(speech="", input="dtmf", confidence="")
            if entry in options:
                chosen = options[entry]
                call.variables[a.variable] = entry
                if kind == "speech":
                    self.log("menu_choice", key=entry, speech=value.text, to=chosen.describe())
                else:
                    self.log("menu_choice", digits=entry, to=chosen.describe())
                return branch(chosen)
            call.flush_digits()
            if listener is not None:
                listener.clear()
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
