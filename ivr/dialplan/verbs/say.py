"""``say``: speak text (TTS) with an optional voice/language/rate, loop and barge-in.

With ``barge_in`` a digit stops the speech and stays buffered for the next gather/menu.
``loop: 0`` repeats until a digit (with barge_in) or the caller hangs up.
"""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import boolean, integer, string, template
from ivr.dialplan.verbs.base import Verb

VOICE_FIELDS = {"voice": string(), "language": string(), "rate": integer(minimum=50, maximum=500)}


class Say(Verb):
    name = "say"
    MAIN = "text"
    needs_media = True
    FIELDS = {"text": template(required=True, blank="an empty 'say' says nothing: write "
                                                    "the words to speak"), **VOICE_FIELDS,
              "loop": integer(default=1, minimum=0, maximum=100), "barge_in": boolean(False)}

    @defer.inlineCallbacks
    def execute(self, call):
        text = self.render(self.args.text)
        loops = self.args.loop
        self.log("say", text=text)
        n = 0
        while loops == 0 or n < loops:
            n += 1
            result = yield self.speak(text, self.args.barge_in, self.args)
            if result is not None and result.digit is not None:
                self.log("barge_in", digit=result.digit)
                break
        return None
