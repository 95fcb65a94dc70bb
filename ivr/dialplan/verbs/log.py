"""``log: "caller chose {{choice}}"``: a line in the call's path log."""
from __future__ import annotations

from ivr.dialplan.schema import template
from ivr.dialplan.verbs.base import Verb


class Log(Verb):
    name = "log"
    MAIN = "message"
    FIELDS = {"message": template(required=True)}

    def execute(self, call):
        self.log("log", message=self.render(self.args.message))
        return None
