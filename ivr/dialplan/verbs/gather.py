"""``gather``: collect digits into a variable, with retries.

    - gather:
        prompt: "Enter your 4 digit PIN, then press pound."
        num_digits: 4            # or min_digits / max_digits (default 1..20)
        finish_on_key: "#"       # "" for none
        timeout: 5               # seconds to wait for the first digit
        inter_digit_timeout: 3   # seconds between digits
        valid: "[0-9]{4}"        # the whole entry must match
        retries: 2               # extra attempts after the first
        invalid_prompt: "That is not a valid PIN."
        no_input_prompt: "I did not hear anything."
        variable: pin            # default: digits
        on_failure: goodbye      # a flow or inline steps, after the last failed attempt
        input: [dtmf, speech]    # default [dtmf]; speech needs hints
        hints: ["sales", "support", "talk to an agent"]  # what can be said
        speech_timeout: 0.8      # silence (s) that ends an utterance
        language: en-us
        min_confidence: 0.2      # below it an utterance is no match

Digits typed during the prompt (barge-in, on by default) count.  After each failed attempt
the matching failure prompt plays.  On success the variable holds the digits (without the
finish key); after the last failure it is empty and ``on_failure`` (if any) follows.

With speech, a spoken hint is an answer too: ``{{speech}}`` holds the hint heard,
``{{confidence}}`` its confidence and ``{{input}}`` says which came (``dtmf`` or ``speech``).
Speech during the prompt stops it (barge-in, as a key does); an utterance that matches no
hint, or is below ``min_confidence``, is a failed attempt (no match) like invalid digits.
When the recogniser fails the gather goes on with keys alone.
"""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import boolean, digits_key, integer, number, prompt, regex, target, variable
from ivr.dialplan.verbs import speech_input
from ivr.dialplan.verbs.base import Verb, branch


class Gather(Verb):
    name = "gather"
    MAIN = "prompt"
    needs_media = True
    FIELDS = {"prompt": prompt(), "num_digits": integer(minimum=1, maximum=64),
              "min_digits": integer(minimum=1, maximum=64), "max_digits": integer(minimum=1, maximum=64),
              "finish_on_key": digits_key(default="#", allow_empty=True),
              "timeout": number(default=5, minimum=0.1, maximum=600),
              "inter_digit_timeout": number(default=3, minimum=0.1, maximum=600),
              "valid": regex(), "retries": integer(default=2, minimum=0, maximum=20),
              "invalid_prompt": prompt(), "no_input_prompt": prompt(),
              "variable": variable(default="digits"), "barge_in": boolean(True),
              "on_success": target(), "on_failure": target(),
              "input": speech_input.inputs(), "hints": speech_input.hints(),
              **speech_input.SPEECH_FIELDS}

    @staticmethod
    def check(p, node, args):
        if args.num_digits is not None and (args.min_digits or args.max_digits):
            return p.error(node, "use either num_digits or min_digits/max_digits, not both")
        lo, hi = Gather.bounds(args)
        if lo > hi:
            return p.error(node, f"min_digits ({lo}) is more than max_digits ({hi})")
        if len(args.finish_on_key) > 1:
            return p.error(node, "finish_on_key is a single key")
        if "speech" in args.input and not args.hints:
            return p.error(node, "input: speech needs 'hints' (the words a caller can say)")
        if args.hints and "speech" not in args.input:
            return p.error(node, "'hints' are only heard with input: [dtmf, speech]")
        return None

    @staticmethod
    def bounds(args) -> tuple[int, int]:
        if args.num_digits is not None:
            return args.num_digits, args.num_digits
        return args.min_digits or 1, args.max_digits or 20

    @defer.inlineCallbacks
    def collect(self, call, first_timeout, inter_timeout, max_digits, finish_key, first=None):
        """Digits until max_digits, the finish key or a timeout: (digits, ended_by)."""
        digits = ""
        timeout = first_timeout
        while len(digits) < max_digits:
            if first is not None:
                digit, first = first, None
            else:
                digit = yield self.wait(call.next_digit(timeout))
            if digit is None:
                return digits, "timeout"
            if finish_key and digit == finish_key:
                return digits, "finish_key"
            digits += digit
            timeout = inter_timeout
        return digits, "max_digits"

    def valid(self, digits: str, lo: int, hi: int) -> bool:
        if not lo <= len(digits) <= hi:
            return False
        return self.args.valid is None or self.args.valid.fullmatch(digits) is not None

    def execute(self, call):
        a = self.args
        listener = None
        if "speech" in a.input:
            listener = speech_input.open_listener(self, call, a.hints, a)
        d = self._attempts(call, listener)
        if listener is not None:
            d.addBoth(lambda outcome: (listener.close(), outcome)[1])
        return d

    @defer.inlineCallbacks
    def _attempts(self, call, listener):
        a = self.args
        lo, hi = self.bounds(a)
        attempts = a.retries + 1
        speech = "speech" in a.input
        for attempt in range(1, attempts + 1):
            if a.prompt:
                yield speech_input.play_prompts(self, a.prompt, a.barge_in, listener)
            if speech:
                kind, value = yield speech_input.wait_input(self, call, listener, a.timeout)
            else:
                kind, value = "dtmf", None
            if kind == "speech":
                accepted = bool(value.text) and value.confidence >= a.min_confidence
                speech_input.record_speech(self, call, value, accepted)
                if accepted:
                    call.variables.update(speech=value.text, input="speech",
                                          confidence=f"{value.confidence:.2f}")
                    call.variables[a.variable] = ""
                    self.log("gathered", speech=value.text, attempt=attempt,
                             variable="speech")
                    return branch(a.on_success)
                digits, failure = "", "no_match"
            elif kind is None:
                digits, failure = "", "no_input"
            else:
                digits, ended_by = yield self.collect(call, a.timeout, a.inter_digit_timeout, hi,
                                                      a.finish_on_key, first=value)
                if digits and self.valid(digits, lo, hi):
                    call.variables[a.variable] = digits
                    if speech:
                        call.variables.update(speech="", input="dtmf", confidence="")
                    self.log("gathered", digits=digits, attempt=attempt, ended_by=ended_by,
                             variable=a.variable)
                    return branch(a.on_success)
                failure = "no_input" if not digits else "invalid"
            self.log("gather_failed", reason=failure, digits=digits, attempt=attempt)
            call.flush_digits()
            if listener is not None:
                listener.clear()
            failure_prompt = a.no_input_prompt if failure == "no_input" else a.invalid_prompt
            if failure_prompt:
                yield self.play_prompts(failure_prompt)
        call.variables[a.variable] = ""
        if speech:
            call.variables.update(speech="", input="", confidence="")
        self.log("branch", test="gather", result="failed",
                 to=a.on_failure.describe() if a.on_failure else "next")
        return branch(a.on_failure)
