"""``hangup``: end the call (BYE, or CANCEL/480 before answer: the call layer decides)."""
from __future__ import annotations

from ivr.dialplan.verbs.base import Finish, Verb


class Hangup(Verb):
    name = "hangup"
    FIELDS = {}

    def execute(self, call):
        self.log("hangup")
        if not call.ended:
            call.hangup("normal")
        return Finish("hangup")
