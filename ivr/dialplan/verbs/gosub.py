"""``gosub: play_disclaimer``: run another flow, then come back to the next step."""
from __future__ import annotations

from ivr.dialplan.schema import flow_ref
from ivr.dialplan.verbs.base import Gosub as GosubOutcome, Verb


class Gosub(Verb):
    name = "gosub"
    MAIN = "flow"
    FIELDS = {"flow": flow_ref(required=True)}

    def execute(self, call):
        self.log("gosub", flow=self.args.flow)
        return GosubOutcome(self.args.flow)
