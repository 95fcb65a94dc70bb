"""``goto: sales``: continue in another flow (no return)."""
from __future__ import annotations

from ivr.dialplan.schema import flow_ref
from ivr.dialplan.verbs.base import Goto as GotoOutcome, Verb


class Goto(Verb):
    name = "goto"
    MAIN = "flow"
    FIELDS = {"flow": flow_ref(required=True)}

    def execute(self, call):
        self.log("goto", flow=self.args.flow)
        return GotoOutcome(self.args.flow)
