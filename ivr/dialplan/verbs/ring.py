"""``ring``: 180 Ringing (or 183 with early media) and optionally wait a few seconds."""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import boolean, number
from ivr.dialplan.verbs.base import Verb


class Ring(Verb):
    name = "ring"
    MAIN = "seconds"
    FIELDS = {"seconds": number(default=0, minimum=0, maximum=300),
              "early_media": boolean(False)}

    @defer.inlineCallbacks
    def execute(self, call):
        early = self.args.early_media
        if not call.answered:
            call.ring(early_media=early)
            if early:
                self.env.state.early_media = True
        self.log("ring", seconds=self.args.seconds, early_media=early)
        if self.args.seconds:
            yield self.sleep(self.args.seconds)
        return None
