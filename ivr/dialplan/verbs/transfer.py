"""``transfer``: blind-transfer the caller with SIP REFER (RFC 3515).

    - transfer:
        to: "+15550000002"     # a number or name this server routes, or a full SIP URI
        timeout: 30            # how long to wait for the phone to report the outcome
        on_failed: sorry       # the phone refused the REFER or the new call failed
        variable: transfer_status   # the final SIP status the phone reported (200 = done)

A number or name becomes ``sip:<to>@<this server>``: the caller's phone (or carrier) places
a new call to us for it, which the dialplan routes like any other call.  Once the phone
reports success the original call is hung up (its CDR says ``transferred``).  Phones that
do not support REFER answer it with an error and the plan carries on with ``on_failed``.
"""
from __future__ import annotations

from twisted.internet import defer

from ivr.dialplan.schema import number, target, template, variable
from ivr.dialplan.verbs.base import Finish, Verb, branch


class Transfer(Verb):
    name = "transfer"
    MAIN = "to"
    needs_media = True
    FIELDS = {"to": template(required=True), "timeout": number(default=30, minimum=1, maximum=300),
              "on_failed": target(), "variable": variable(default="transfer_status")}

    def execute(self, call):
        return self._run(call)

    @defer.inlineCallbacks
    def _run(self, call):
        to = self.render(self.args.to).strip()
        uri = to if to.startswith(("sip:", "sips:")) else self._local_uri(call, to)
        self.log("transfer", to=to, uri=uri)
        status = yield self.wait(call.refer(uri, self.args.timeout))
        call.variables[self.args.variable] = str(status)
        if 200 <= status < 300:
            call.variables["transferred_to"] = to
            self.log("transferred", to=to, status=status)
            call.hangup("transferred")
            return Finish("hangup")
        self.log("transfer_failed", to=to, status=status)
        return branch(self.args.on_failed)

    @staticmethod
    def _local_uri(call, to: str) -> str:
        ua = getattr(getattr(call, "session", None), "ua", None)
        if ua is None:
            return f"sip:{to}@localhost"
        host = f"[{ua.host}]" if ":" in ua.host else ua.host
        return f"sip:{to}@{host}:{ua.port}"
