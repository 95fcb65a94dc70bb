"""The telephony core behind the HTTP API and the dial verb (``ivr.call.telephony.Telephony``).

Targets resolve in this order: a SIP URI is called as is; an extension is called at its
registered contacts (where it registered from, for phones behind NAT) or its static
contact; anything that parses as a phone number goes out through the configured trunk.
"""
from __future__ import annotations

import time
from typing import Callable, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from .telephony import LegFailed, LegInfo, UnknownTarget, leg_info
from ..sip.transport import Destination
from .bridge import Bridge
from .encryption import outbound_policy
from .interface import CallerId
from .outbound import OutboundCall
from .visitors import is_trunk_route, is_visitor_leg

log = Logger(namespace="ivr.call.control")


class FlowStarter(Protocol):
    """Runs a dialplan flow on a leg: the dialplan service, a layer above, provides it."""

    def run_flow(self, leg, flow: str) -> defer.Deferred: ...


class CallControl:
    """Places and transfers calls for the API, the dialplan verbs and queues.

    ``media``: the legs' shared media services; ``ua``: the SIP user agent that places
    them; ``calls``: the table that owns every leg; ``directory``: the extensions, ring
    groups and trunks (``ivr.config.extensions.ExtensionsConfig``); ``registrar``: where
    the extensions registered from; ``flows``: what runs a flow on a leg (a REFER to an
    IVR leg, ``POST /v1/calls`` with a flow).  ``flows`` is the one collaborator that
    lives above this layer, so the server binds it once the dialplan service exists
    (:meth:`serve_flows`)."""

    def __init__(self, *, media, ua, calls, directory=None, registrar=None,
                 flows: FlowStarter | None = None) -> None:
        self.media = media
        self.ua = ua
        self.calls = calls
        self.directory = directory
        self.registrar = registrar
        self.flows = flows
        self.outbound: dict[str, OutboundCall] = {}

    def serve_flows(self, flows: FlowStarter) -> None:
        self.flows = flows

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
        extensions = self.directory
        if extensions is not None and target in extensions.extensions:
            registrar = self.registrar
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

    def ring_groups(self) -> dict:
        """Ring group name -> its members and strategy (the dial verb expands them)."""
        return dict(self.directory.ring_groups) if self.directory is not None else {}

    def _route(self, target: str):
        return self.routes(target)[0]

    def _trunk(self, allowed: tuple[str, ...] | None = None):
        trunks = self.directory.trunks if self.directory is not None else {}
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
        leg = OutboundCall(self.media, uri, caller, {"target": target}, transfers=self,
                           media_encryption=outbound_policy(self.directory, target, dest))
        emit = on_event or (lambda name, data: None)
        ua = self.ua
        leg.call_id = ua.new_call_id()
        self.calls.add(leg)  # owned before anything can end it
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

    # -- transfers (REFER received, RFC 3515) -------------------------------------------
    def blind_transfer(self, referrer, target: str) -> int:
        """``referrer`` (any answered leg) sent REFER asking us to call ``target``; returns
        the status for the REFER.  We are the REFER's recipient, so we call ``target``,
        and once it answers it takes the referrer's place in the call and the referrer's
        leg is hung up ("transferred"):

        * in a bridged call, ``target`` is bridged with the other party;
        * in an IVR call (no bridge), ``target`` gets the IVR: the flow the referrer was
          routed to runs on the target's leg from its start, with the referrer's variables
          (a running verb cannot move to another leg mid-way).  Until the target answers
          the referrer's plan goes on; if the target fails, nothing changes for it.

        Progress goes back as NOTIFY (message/sipfrag): 100 after the 202, then the final
        status.  A target we cannot call gets the REFER refused at once: 404 (unknown or
        not allowed) or 403.  What a referrer may reach: any extension; a number through a
        trunk, or a SIP URI elsewhere, only when the referrer is one of our extensions (it
        authenticated, or we rang it) and, for a trunk, the extension lists that trunk --
        otherwise a caller from outside could have us call anywhere at our expense."""
        if referrer.ended or not referrer.answered:
            referrer.log_event("refer_refused", to=target, why="call not answered")
            return 403
        bridge = getattr(referrer, "bridge", None)
        flow = None if bridge is not None else referrer.variables.get("flow")
        if bridge is None and not flow:
            referrer.log_event("refer_refused", to=target, why="no bridge and no flow")
            return 403
        if is_visitor_leg(referrer):  # an anonymous browser caller (ivr/call/visitors.py)
            referrer.log_event("refer_refused", to=target, why="browser visitors may not "
                               "transfer")
            return 403
        extension = self._extension_of(referrer)
        if target.startswith(("sip:", "sips:")) and extension is None:
            referrer.log_event("refer_refused", to=target, why="only extensions may refer "
                               "to a SIP URI")
            return 403
        try:
            route = self.routes(target, extension.trunks if extension is not None else ())[0]
        except UnknownTarget as exc:
            referrer.log_event("refer_refused", to=target, why=str(exc))
            return 404
        other = bridge.other(referrer) if bridge is not None else None
        if other is not None and is_visitor_leg(other) and is_trunk_route(self.directory, route):
            referrer.log_event("refer_refused", to=target, why="a browser visitor never "
                               "leaves through a trunk")
            return 403
        caller = other.caller if other is not None else referrer.caller
        referrer.log_event("transfer", to=target,
                           party=other.call_id if other is not None else f"flow:{flow}")
        try:
            leg = self.originate_route(route, target, caller_id=caller.number,
                                       caller_name=caller.name)
        except Exception as exc:  # no free RTP port...: the leg is ended and recorded
            referrer.log_event("refer_refused", to=target, why=str(exc) or type(exc).__name__)
            return 503
        # The 202 goes out when this returns; the first NOTIFY follows it.
        referrer.clock.callLater(0, _notify, referrer, 100, "Trying", False)

        def answered(_):
            if bridge is not None:
                if other.ended:
                    leg.hangup("transfer-party-gone")
                    return
                bridge.replace(referrer, leg)
                other.variables["transferred_to"] = target
            else:
                for name, value in referrer.variables.items():
                    leg.variables.setdefault(name, value)
                leg.variables["transferred_from"] = referrer.caller.number or ""
            referrer.variables["transferred_to"] = target
            if not referrer.ended:
                _notify(referrer, 200, "OK", True)
                referrer.hangup("transferred")
            if bridge is None:
                leg.log_event("transferred_in", flow=flow, referrer=referrer.call_id)
                self.run_flow(leg, flow)

        def failed(failure):
            failure.trap(LegFailed)
            status = {"busy": 486, "no-answer": 480, "rejected": 603}.get(failure.value.reason, 503)
            referrer.log_event("transfer_failed", to=target, why=failure.value.reason)
            _notify(referrer, status, failure.value.reason, True)

        leg.when_answered().addCallbacks(answered, failed)
        return 202

    def _extension_of(self, leg):
        """The extension a leg is: the one its INVITE authenticated as, or the one we rang."""
        caller = getattr(getattr(leg, "session", None), "caller", None)
        extension = getattr(caller, "extension", None)
        if extension is not None:
            return extension
        if getattr(leg, "direction", "") == "outbound" and self.directory is not None:
            return self.directory.extensions.get(leg.variables.get("target"))
        return None

    def run_flow(self, leg, flow: str, variables: dict | None = None) -> defer.Deferred:
        leg.variables.update(variables or {})
        if self.flows is None:
            raise RuntimeError("no dialplan service bound (CallControl.serve_flows)")
        return self.flows.run_flow(leg, flow)

    def bridge(self, a, b) -> defer.Deferred:
        return Bridge(a, b).start()

    def legs(self) -> list[LegInfo]:
        return [leg_info(c) for c in self.calls.values()]

    def leg(self, leg_id: str):
        return self.calls.get(leg_id)


def _notify(referrer, status: int, reason: str, final: bool) -> None:
    if not referrer.ended:
        referrer.session.notify_refer(status, reason, final=final)


def _looks_like_number(text: str) -> bool:
    digits = text.lstrip("+")
    return digits.isdigit() and 3 <= len(digits) <= 16
