"""``echo``: the caller's audio and digits straight back (the classic line test)."""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import number
from ivr.dialplan.verbs.base import Verb


class Echo(Verb):
    name = "echo"
    MAIN = "seconds"
    needs_media = True
    FIELDS = {"seconds": number(default=600, minimum=1, maximum=86400)}

    @defer.inlineCallbacks
    def execute(self, call):
        self.log("echo", seconds=self.args.seconds)
        yield self.wait(call.echo(self.args.seconds))
        return None
