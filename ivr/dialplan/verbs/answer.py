"""``answer``: answer the call (200 OK).  Media verbs answer on their own if needed."""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.verbs.base import Verb


class Answer(Verb):
    name = "answer"
    FIELDS = {}

    @defer.inlineCallbacks
    def execute(self, call):
        if call.answered:
            self.log("answer", already=True)
            return None
        yield self.wait(call.answer())
        self.log("answer")
        return None
