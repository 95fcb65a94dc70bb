"""``pause: 2``: silence for a number of seconds (bare ``pause``: one second)."""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import number
from ivr.dialplan.verbs.base import Verb


class Pause(Verb):
    name = "pause"
    MAIN = "seconds"
    FIELDS = {"seconds": number(default=1, minimum=0, maximum=3600)}

    @defer.inlineCallbacks
    def execute(self, call):
        self.log("pause", seconds=self.args.seconds)
        yield self.sleep(self.args.seconds)
        return None
