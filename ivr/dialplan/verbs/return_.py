"""``return``: leave the flow entered by ``gosub`` (in a top-level flow: end the flow)."""
from __future__ import annotations

from ivr.dialplan.verbs.base import Return as ReturnOutcome, Verb


class Return(Verb):
    name = "return"
    FIELDS = {}

    def execute(self, call):
        self.log("return")
        return ReturnOutcome()
