"""Speech beside DTMF for ``gather`` and ``menu``: the schema fields they share, opening a
listener on the call, prompts that a spoken word interrupts, and waiting for whichever
comes first -- a key or a finished utterance.

A recogniser that fails (worker died, model missing) leaves a log line and the step goes
on with keys alone; a call without a recogniser (``Call.listen`` gives None) is DTMF only.
"""
from __future__ import annotations

import re

from twisted.internet import defer

from ivr.dialplan.schema import INVALID, custom, number, string
from ivr.media.recognizer import RecognizerError, WORD_RE

INPUTS = ("dtmf", "speech")
LANGUAGES = ("en-us",)


def _hint(p, node):
    from ivr.dialplan.schema import _scalar
    text = _scalar(p, node, "a word or phrase")
    if text is INVALID:
        return text
    words = WORD_RE.findall(text.lower())
    if not words or " ".join(words) != re.sub(r"\s+", " ", text.strip().lower()):
        return p.error(node, f"hint '{text}' must be words of letters (a-z, apostrophes)")
    unknown = [w for w in words if not known_word(w)]
    if unknown:
        return p.error(node, f"the recogniser's dictionary has no word '{unknown[0]}' in hint "
                             f"'{text}'{suggest_word(unknown[0])}")
    return " ".join(words)


def hints(what: str = "hints"):
    def read(p, node):
        from ivr.dialplan.schema import ScalarNode
        nodes = [node] if isinstance(node, ScalarNode) else p.sequence(node, f"'{what}'")
        if nodes is None:
            return INVALID
        if not nodes:
            return p.error(node, f"'{what}' needs at least one word or phrase")
        values = [_hint(p, n) for n in nodes]
        return INVALID if INVALID in values else tuple(values)
    return custom(read, json={"anyOf": [{"type": "string"},
                                        {"type": "array", "items": {"type": "string"},
                                         "minItems": 1}]})


def inputs():
    def read(p, node):
        from ivr.dialplan.schema import ScalarNode, _scalar, suggest
        nodes = [node] if isinstance(node, ScalarNode) else p.sequence(node, "'input'")
        if nodes is None:
            return INVALID
        out = []
        for n in nodes:
            v = _scalar(p, n, "dtmf or speech")
            if v is INVALID:
                return v
            if v not in INPUTS:
                return p.error(n, f"'{v}' is not an input (dtmf, speech){suggest(v, INPUTS)}")
            out.append(v)
        if not out:
            return p.error(node, "'input' needs dtmf, speech or both")
        return tuple(dict.fromkeys(out))
    return custom(read, default=("dtmf",), json={"anyOf": [
        {"enum": list(INPUTS)}, {"type": "array", "items": {"enum": list(INPUTS)}}]})


SPEECH_FIELDS = {
    "speech_timeout": number(default=0.8, minimum=0.2, maximum=10),
    "language": string(default="en-us", choices=LANGUAGES),
    "min_confidence": number(default=0.0, minimum=0.0, maximum=1.0),
}

# -- the recogniser's dictionary, for `ivr check` -----------------------------------------
_WORDS: set[str] | None = None


def _dictionary() -> set[str]:
    global _WORDS
    if _WORDS is None:
        try:
            import os
            import pocketsphinx
            path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
            with open(path, encoding="utf-8") as f:
                _WORDS = {line.split(" ", 1)[0] for line in f if line.strip()}
        except (ImportError, OSError):
            _WORDS = set()  # no dictionary here: words are checked by the recogniser
    return _WORDS


def known_word(word: str) -> bool:
    words = _dictionary()
    return not words or word in words


def suggest_word(word: str) -> str:
    import difflib
    words = _dictionary()
    close = difflib.get_close_matches(word, [w for w in words if w[:1] == word[:1]], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# -- at run time ------------------------------------------------------------------------
def open_listener(verb, call, words, args):
    """A listener for ``words`` when the step takes speech and the call can listen."""
    listen = getattr(call, "listen", None)
    if listen is None or not words:
        return None
    listener = listen(words, args.language, args.speech_timeout)
    if listener is None:
        verb.log("speech_unavailable", reason="no recogniser")
    return listener


@defer.inlineCallbacks
def play_prompts(verb, prompts, barge_in, listener):
    """Play ``prompts``; a key (barge_in) or the start of speech stops them."""
    if listener is None or listener.failed is not None:
        result = yield verb.play_prompts(prompts, barge_in=barge_in)
        return result
    if barge_in:
        listener.on_start = verb.call.stop_playback
    try:
        for prompt in prompts or ():
            result = yield verb.play_prompts((prompt,), barge_in=barge_in)
            if result.digit is not None or listener.busy:
                return result
    finally:
        listener.on_start = None
    return None


def wait_input(verb, call, listener, timeout: float) -> defer.Deferred:
    """("dtmf", digit), ("speech", SpeechResult) or (None, None) after ``timeout`` seconds
    with neither (an utterance under way when it expires is waited for)."""
    if listener is None or listener.failed is not None:
        d = call.next_digit(timeout)
        d.addCallback(lambda digit: ("dtmf", digit) if digit is not None else (None, None))
        return verb.wait(d)
    state = {"timed_out": False}
    digit_d = call.next_digit(timeout)
    speech_d = listener.next_result()

    def cancel(_):
        for d in (digit_d, speech_d):
            if not d.called:
                d.cancel()

    out = defer.Deferred(cancel)

    def settle(value):
        if not out.called:
            for d in (digit_d, speech_d):
                if not d.called:
                    d.cancel()
            out.callback(value)

    def on_digit(digit):
        if digit is not None:
            settle(("dtmf", digit))
        elif listener.busy:
            state["timed_out"] = True  # speech under way: its result decides
        else:
            settle((None, None))

    def on_speech(result):
        settle(("speech", result))

    def on_speech_failed(failure):
        if failure.check(defer.CancelledError):
            return None
        failure.trap(RecognizerError)
        verb.log("speech_fallback", to="dtmf", error=str(failure.value))
        if state["timed_out"]:
            settle((None, None))
        return None

    def on_digit_failed(failure):
        if failure.check(defer.CancelledError):
            return None
        if not out.called:
            if not speech_d.called:
                speech_d.cancel()
            out.errback(failure)
        return None

    digit_d.addCallbacks(on_digit, on_digit_failed)
    speech_d.addCallbacks(on_speech, on_speech_failed)
    return verb.wait(out)


def record_speech(verb, call, result, accepted: bool) -> None:
    """What was heard, in the call's path log (and from there its trace and CDR)."""
    fields = result.describe()
    verb.log("speech", accepted=accepted, **fields)
    heard = getattr(call, "speech_heard", None)
    if isinstance(heard, list):
        heard.append(dict(fields, accepted=accepted, verb=verb.name))
