"""``say_digits: "{{digits}}"``: read a value digit by digit ("one, two, three")."""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import boolean, template
from ivr.dialplan.verbs.say import VOICE_FIELDS
from ivr.dialplan.verbs.base import Verb
from ivr.media.speech_text import say_digits


class SayDigits(Verb):
    name = "say_digits"
    MAIN = "value"
    needs_media = True
    FIELDS = {"value": template(required=True), **VOICE_FIELDS, "barge_in": boolean(False)}

    def words(self, value: str) -> str:
        return say_digits(value)

    @defer.inlineCallbacks
    def execute(self, call):
        value = self.render(self.args.value)
        text = self.words(value)
        self.log(self.name, value=value)
        if text:
            yield self.speak(text, self.args.barge_in, self.args)
        return None
