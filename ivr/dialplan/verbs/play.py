"""``play``: a prompt file from prompts/ (``welcome`` or ``menus/main.wav``), loop, barge-in."""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import boolean, integer, prompt_file
from ivr.dialplan.verbs.base import Verb


class Play(Verb):
    name = "play"
    MAIN = "file"
    needs_media = True
    FIELDS = {"file": prompt_file(required=True), "loop": integer(default=1, minimum=0, maximum=100),
              "barge_in": boolean(False)}

    @defer.inlineCallbacks
    def execute(self, call):
        self.log("play", file=self.args.file)
        n = 0
        while self.args.loop == 0 or n < self.args.loop:
            n += 1
            result = yield self.wait(call.play_file(self.args.file, barge_in=self.args.barge_in))
            if result is not None and result.digit is not None:
                self.log("barge_in", digit=result.digit)
                break
        return None
