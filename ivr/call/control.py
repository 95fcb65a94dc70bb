"""The telephony core behind the HTTP API and the dial verb (``ivr.api.telephony.Telephony``).

Targets resolve in this order: a SIP URI is called as is; an extension is called at its
registered contacts (where it registered from, for phones behind NAT) or its static
contact; anything that parses as a phone number goes out through the configured trunk.
"""
from __future__ import annotations

import time
from typing import Callable

from twisted.internet import defer
from twisted.logger import Logger

from ..api.telephony import LegFailed, LegInfo, UnknownTarget
from ..sip.transport import Destination
from .bridge import Bridge
from .interface import CallerId
from .outbound import OutboundCall

log = Logger(namespace="ivr.call.control")


class CallControl:
    def __init__(self, server) -> None:
        self.server = server
        self.outbound: dict[str, OutboundCall] = {}
        self.queues = None  # ivr.queue.QueueEngine, set by the server when queues exist

    # -- targets -----------------------------------------------------------------------
    def resolve(self, target: str) -> str:
        return self.routes(target)[0][0]

    def routes(self, target: str, trunks: tuple[str, ...] | None = None
               ) -> list[tuple[str, Destination | None, tuple | None]]:
        """Every (request URI, destination override, credentials) that ``target`` rings:
        all registered contacts of an extension, else its static contacts.  A number goes
        out through a trunk; ``trunks`` limits which ones may be used (None: any, for the
        API, whose callers hold an API key)."""
        target = target.strip()
        if target.startswith(("sip:", "sips:")):
            return [(target, None, None)]
        extensions = getattr(self.server, "extensions", None)
        if extensions is not None and target in extensions.extensions:
            registrar = getattr(self.server, "registrar", None)
            bindings = registrar.lookup(target) if registrar is not None else []
            found = []
            for binding in bindings:
                where = binding.target()
                dest = Destination(where[0].upper(), where[1], where[2]) if where else None
                found.append((str(binding.uri), dest, None))
            if not found:
                found = [(uri, None, None) for uri in extensions.extensions[target].static_contacts]
            if not found:
                raise UnknownTarget(f"extension {target} is not registered")
            return found
        trunk = self._trunk(trunks)
        if trunk is None and trunks is not None and _looks_like_number(target) and self._trunk():
            raise UnknownTarget(f"{target}: calling out through a trunk is not allowed here")
        if trunk is not None and _looks_like_number(target):
            creds = (trunk.username, trunk.password) if trunk.username and trunk.password else None
            return [(f"sip:{target}@{trunk.host}:{trunk.port}",
                     Destination(trunk.transport.upper(), trunk.host, trunk.port), creds)]
        raise UnknownTarget(f"cannot reach {target!r}: not a SIP URI, a known extension, "
                            "or a number with a trunk configured")

    def _route(self, target: str):
        return self.routes(target)[0]

    def _trunk(self, allowed: tuple[str, ...] | None = None):
        extensions = getattr(self.server, "extensions", None)
        trunks = getattr(extensions, "trunks", None) or {}
        return next((t for name, t in trunks.items() if allowed is None or name in allowed), None)

    # -- legs --------------------------------------------------------------------------
    def originate(self, target: str, *, caller_id: str | None = None, timeout: float = 30.0,
                  on_event: Callable[[str, dict], None] | None = None) -> OutboundCall:
        return self.originate_route(self._route(target), target, caller_id=caller_id,
                                    timeout=timeout, on_event=on_event)

    def originate_route(self, route, target: str, *, caller_id: str | None = None,
                        caller_name: str | None = None, timeout: float = 30.0,
                        on_event=None) -> OutboundCall:
        uri, dest, creds = route
        caller = CallerId(caller_id, caller_name, caller_id or "")
        leg = OutboundCall(self.server.media, uri, caller, {"target": target})
        emit = on_event or (lambda name, data: None)
        ua = self.server.ua
        leg.call_id = ua.new_call_id()
        self.server.calls.add(leg)  # owned before anything can end it
        try:
            leg.dial(ua, timeout=timeout, from_user=caller_id or "ivr",
                     from_display=caller_name, dest=dest, credentials=creds)
        except Exception as exc:  # no free RTP port, an unusable target: ended and recorded
            leg.could_not_dial(str(exc) or type(exc).__name__)
            raise
        self.outbound[leg.call_id] = leg
        emit("initiated", {"call_id": leg.call_id, "to": target})

        leg.on_ringing.append(lambda: emit("ringing", {"call_id": leg.call_id}))
        leg.when_answered().addCallbacks(
            lambda _: emit("answered", {"call_id": leg.call_id}),
            lambda f: emit("failed", {"call_id": leg.call_id,
                                      "reason": getattr(f.value, "reason", "failed")}))
        leg.when_ended().addCallback(
            lambda reason: (self.outbound.pop(leg.call_id, None),
                            emit("completed", {"call_id": leg.call_id, "reason": reason})))
        return leg

    def blind_transfer(self, bridge, referrer, target: str) -> None:
        """``referrer`` (a leg in ``bridge``) sent REFER: call ``target`` and, once it
        answers, bridge it with the other party and let the referrer go.  Progress goes
        back to the referrer as NOTIFY (100, then the final status)."""
        other = bridge.other(referrer)
        referrer.log_event("transfer", to=target, party=other.call_id)
        referrer.session.notify_refer(100, "Trying", final=False)
        try:
            leg = self.originate(target, caller_id=other.caller.number)
        except UnknownTarget as exc:
            referrer.log_event("transfer_failed", to=target, why=str(exc))
            referrer.session.notify_refer(404, "Not Found", final=True)
            return

        def answered(_):
            if other.ended:
                leg.hangup("transfer-party-gone")
                return
            bridge.replace(referrer, leg)
            referrer.session.notify_refer(200, "OK", final=True)
            for each in (referrer, other):
                each.variables["transferred_to"] = target
            referrer.hangup("transferred")

        def failed(failure):
            failure.trap(LegFailed)
            status = {"busy": 486, "no-answer": 480, "rejected": 603}.get(failure.value.reason, 503)
            referrer.log_event("transfer_failed", to=target, why=failure.value.reason)
            referrer.session.notify_refer(status, failure.value.reason, final=True)

        leg.when_answered().addCallbacks(answered, failed)

    def run_flow(self, leg, flow: str, variables: dict | None = None) -> defer.Deferred:
        leg.variables.update(variables or {})
        return self.server.dialplan.run_flow(leg, flow)

    def bridge(self, a, b) -> defer.Deferred:
        return Bridge(a, b).start()

    def legs(self) -> list[LegInfo]:
        return [leg_info(c) for c in self.server.calls.values()]

    def leg(self, leg_id: str):
        return self.server.calls.get(leg_id)


def leg_info(call) -> LegInfo:
    if call.ended:
        state = "ended"
    elif call.answered:
        state = "answered"
    else:
        state = "ringing"
    return LegInfo(id=call.id, direction=getattr(call, "direction", "inbound"),
                   remote=call.called if getattr(call, "direction", "") == "outbound"
                   else (call.caller.number or ""),
                   state=state, started_at=call.started_at, answered_at=call.answered_at,
                   ended_at=call.ended_at, end_reason=call.end_reason,
                   flow=call.variables.get("flow"), variables=dict(call.variables))


def _looks_like_number(text: str) -> bool:
    digits = text.lstrip("+")
    return digits.isdigit() and 3 <= len(digits) <= 16
