"""``reject``: refuse an unanswered call: ``busy`` (486), ``decline`` (603), or any 4xx-6xx."""
from __future__ import annotations

from ivr.dialplan.schema import ScalarNode, custom, string
from ivr.dialplan.verbs.base import Finish, Verb

NAMED = {"busy": (486, "Busy Here"), "decline": (603, "Decline"), "unavailable": (480, "Temporarily Unavailable"),
         "not_found": (404, "Not Found"), "forbidden": (403, "Forbidden"), "congestion": (503, "Service Unavailable")}


def _status(p, node):
    if isinstance(node, ScalarNode):
        if node.value in NAMED:
            return NAMED[node.value][0]
        if node.value.isdigit() and 400 <= int(node.value) <= 699:
            return int(node.value)
    return p.error(node, f"reject status must be 400-699 or one of {', '.join(NAMED)}")


class Reject(Verb):
    name = "reject"
    MAIN = "status"
    FIELDS = {"status": custom(_status, default=486, json={"anyOf": [
                  {"enum": list(NAMED)}, {"type": "integer", "minimum": 400, "maximum": 699}]}), "reason": string()}

    def execute(self, call):
        status = self.args.status
        reason = self.args.reason or next((r for s, r in NAMED.values() if s == status), None)
        if call.answered:
            self.log("reject", status=status, note="already answered: hanging up instead")
            call.hangup("rejected")
        elif not call.ended:
            self.log("reject", status=status)
            call.reject(status, reason)
        return Finish("reject")
