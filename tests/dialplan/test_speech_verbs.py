"""gather and menu with speech input, on an in-memory call whose listener the test drives;
and `ivr check` on the new keys."""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.runner import FlowRunner
from ivr.dialplan.loader import load_dialplans
from ivr.media.recognizer import RecognizerError, SpeechResult
from tests.dialplan.fakes import FakeCall
from tests.dialplan.helpers import load_text, plan_of


class FakeListener:
    def __init__(self, call, hints):
        self.call, self.hints = call, hints
        self.on_start = None
        self.failed = None
        self.closed = False
        self.in_speech = False
        self._waiter = None
        self._results = []

    @property
    def busy(self):
        return self.in_speech

    def next_result(self):
        if self._results:
            return defer.succeed(self._results.pop(0))
        if self.failed:
            return defer.fail(self.failed)
        self._waiter = defer.Deferred()
        return self._waiter

    def clear(self):
        self._results.clear()

    def close(self):
        self.closed = True

    # driving it
    def start_speaking(self):
        self.in_speech = True
        if self.on_start:
            self.on_start()

    def say(self, text, confidence=0.8):
        if not self.in_speech:
            self.start_speaking()
        self.in_speech = False
        result = SpeechResult(text if text in self.hints else "", confidence, text, 1.0, 1.5, 40)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(result)
        else:
            self._results.append(result)

    def die(self):
        self.failed = RecognizerError("speech worker died")
        self.in_speech = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.errback(self.failed)


class SpeechCall(FakeCall):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.listeners = []
        self.speech_heard = []

    def listen(self, hints, language="en-us", speech_timeout=0.8):
        listener = FakeListener(self, hints)
        self.listeners.append((listener, language, speech_timeout))
        return listener

    @property
    def listener(self):
        return self.listeners[-1][0]


GATHER = """
flows:
  main:
    - gather:
        prompt: "Say sales or support, or press a key."
        input: [dtmf, speech]
        hints: [sales, support, "talk to an agent"]
        speech_timeout: 1.5
        min_confidence: 0.4
        num_digits: 1
        timeout: 4
        retries: 1
        invalid_prompt: "Sorry."
        no_input_prompt: "Nothing heard."
        on_success: [{say: "You chose {{speech}}{{digits}} by {{input}}"}]
        on_failure: [{say: "Goodbye"}]
"""


def run(tmp_path, text, call=None):
    call = call or SpeechCall()
    result = []
    FlowRunner(plan_of(tmp_path, text), call).run("main").addCallback(result.append)
    return call, result


def test_gather_hears_a_hint_and_sets_speech_confidence_input(tmp_path):
    call, result = run(tmp_path, GATHER)
    listener, language, speech_timeout = call.listeners[0]
    assert (listener.hints, language, speech_timeout) == (("sales", "support", "talk to an agent"), "en-us", 1.5)
    call.clock.advance(1)
    listener.say("support", 0.8)  # barge-in: the prompt stops at the start of speech
    assert ("stop_playback",) in call.actions
    call.clock.advance(3)
    assert call.variables["speech"] == "support"
    assert call.variables["input"] == "speech"
    assert call.variables["confidence"] == "0.80"
    assert call.said()[-1] == "You chose support by speech"
    assert listener.closed
    assert ("speech", {"accepted": True, "text": "support", "heard": "support",
                       "confidence": 0.8, "start": 1.0, "end": 1.5, "latency_ms": 40,
                       "verb": "gather", "line": 4}) in call.events
    assert call.speech_heard[0]["text"] == "support"


def test_gather_digit_still_works_and_says_dtmf(tmp_path):
    call, result = run(tmp_path, GATHER)
    call.clock.advance(2.5)
    call.press("7")
    call.clock.advance(3)
    assert call.variables["input"] == "dtmf" and call.variables["digits"] == "7"
    assert call.said()[-1] == "You chose 7 by dtmf"


def test_gather_no_match_and_low_confidence_retry_then_fail(tmp_path):
    call, result = run(tmp_path, GATHER)
    call.clock.advance(2.5)
    call.listener.say("cough")              # no hint: no match
    call.clock.advance(2.5)                 # "Sorry." then the prompt again
    call.listener.say("sales", 0.2)         # below min_confidence
    call.clock.advance(5)
    said = call.said()
    assert said.count("Sorry.") == 2 and said[-1] == "Goodbye"
    reasons = [f["reason"] for e, f in call.events if e == "gather_failed"]
    assert reasons == ["no_match", "no_match"]
    assert call.variables["speech"] == "" and call.variables["input"] == ""


def test_gather_waits_for_speech_under_way_at_the_timeout(tmp_path):
    call, result = run(tmp_path, GATHER)
    call.clock.advance(2.5)   # prompt over, waiting 4 s
    call.listener.start_speaking()
    call.clock.advance(6)     # past the timeout: the utterance is still under way
    assert [e for e, _ in call.events if e == "gather_failed"] == []
    call.listener.say("sales")
    call.clock.advance(3)
    assert call.variables["speech"] == "sales"


def test_gather_no_input_is_no_input(tmp_path):
    call, result = run(tmp_path, GATHER)
    for _ in range(10):
        call.clock.advance(2)
    assert [f["reason"] for e, f in call.events if e == "gather_failed"] == ["no_input"] * 2
    assert call.said().count("Nothing heard.") == 2


def test_recogniser_failure_falls_back_to_dtmf(tmp_path):
    call, result = run(tmp_path, GATHER)
    call.clock.advance(2.5)
    call.listener.start_speaking()
    call.listener.die()
    assert ("speech_fallback" in call.event_names())
    call.press("5")
    call.clock.advance(3)
    assert call.variables["digits"] == "5" and call.variables["input"] == "dtmf"


def test_recogniser_failure_after_the_timeout_is_no_input_not_a_stuck_call(tmp_path):
    call, result = run(tmp_path, GATHER)
    call.clock.advance(2.5)
    call.listener.start_speaking()
    call.clock.advance(6)
    call.listener.die()
    for _ in range(10):
        call.clock.advance(2)
    assert [f["reason"] for e, f in call.events if e == "gather_failed"] == ["no_input"] * 2
    assert call.said()[-1] == "Goodbye" and result == ["completed"]


MENU = """
flows:
  main:
    - menu:
        prompt: "For sales press 1 or say sales."
        options:
          "1": {to: sales, words: [sales, "sales department"]}
          "2": support
          "0": {to: [{say: "Operator"}], words: [operator]}
        timeout: 3
        invalid_prompt: "Not an option."
  sales:
    - say: "Sales here"
  support:
    - say: "Support here"
"""


def test_menu_word_and_key_lead_to_the_same_branch(tmp_path):
    call, _ = run(tmp_path, MENU)
    assert call.listener.hints == ("sales", "sales department", "operator")
    call.clock.advance(1)
    call.listener.say("sales department")
    call.clock.advance(3)
    assert call.said()[-1] == "Sales here"
    assert call.variables["menu"] == "1" and call.variables["input"] == "speech"
    call2, _ = run(tmp_path, MENU)
    call2.clock.advance(1)
    call2.press("1")
    call2.clock.advance(3)
    assert call2.said()[-1] == "Sales here" and call2.variables["input"] == "dtmf"


def test_menu_unknown_word_is_a_wrong_choice(tmp_path):
    call, _ = run(tmp_path, MENU)
    call.clock.advance(2.5)
    call.listener.say("billing")
    call.clock.advance(1)
    assert "Not an option." in call.said()
    call.clock.advance(2)
    call.listener.say("operator")
    call.clock.advance(3)
    assert call.said()[-1] == "Operator"


def test_menu_without_words_does_not_listen(tmp_path):
    call, _ = run(tmp_path, MENU.replace('{to: sales, words: [sales, "sales department"]}',
                                         "sales").replace('{to: [{say: "Operator"}], words: [operator]}', "support"))
    call.clock.advance(1)
    call.press("2")
    call.clock.advance(3)
    assert call.listeners == [] and call.said()[-1] == "Support here"


def test_bundled_toll_free_menu_by_voice():
    from tests.dialplan.test_check import bundled
    call = SpeechCall()
    FlowRunner(bundled(), call).run("main_menu")
    call.clock.advance(2)
    assert call.listener.hints == ("sales", "support", "operator")
    call.listener.say("support")
    for _ in range(3):
        call.clock.advance(2)
    assert "Please hold for the next available support agent." in call.said()


def errors_of(tmp_path, text):
    _, errors = load_text(tmp_path, text)
    return [str(e) for e in errors]


def test_check_reports_speech_mistakes_with_positions(tmp_path):
    errors = errors_of(tmp_path, """
flows:
  main:
    - gather: {input: [dtmf, speach], hints: [sales]}
    - gather: {input: [speech]}
    - gather: {hints: [sales]}
    - gather: {input: speech, hints: [salez, "talk 2 me"]}
    - gather: {input: speech, hints: [sales], language: fr-fr, speech_timeout: 0}
    - menu:
        prompt: x
        options:
          "1": {to: main, word: [sales]}
          "2": {to: main, words: [sales]}
          "3": {to: main, words: [sales]}
""")
    text = "\n".join(errors)
    assert "plan.yaml:4:30: 'speach' is not an input (dtmf, speech) (did you mean 'speech'?)" in text
    assert "plan.yaml:5:15: input: speech needs 'hints'" in text
    assert "plan.yaml:6:15: 'hints' are only heard with input: [dtmf, speech]" in text
    assert "plan.yaml:7:39: the recogniser's dictionary has no word 'salez' in hint 'salez' (did you mean" in text
    assert "plan.yaml:7:46: hint 'talk 2 me' must be words of letters" in text
    assert "plan.yaml:8:57: 'fr-fr' is not one of en-us" in text
    assert "plan.yaml:8:80: must be at least 0.2, got 0" in text
    assert "plan.yaml:12:27: unknown key 'word' in option '1' (did you mean 'words'?)" in text


def test_check_a_word_for_two_options(tmp_path):
    errors = errors_of(tmp_path, """
flows:
  main:
    - menu:
        prompt: x
        options:
          "2": {to: main, words: [sales]}
          "3": {to: main, words: [sales]}
""")
    assert any(e.endswith("plan.yaml:8:16: 'sales' is said for options '2' and '3'") for e in errors), errors
