"""Who a REFER may send us to (CallControl.blind_transfer), with fakes: any extension; a
number through a trunk or a foreign SIP URI only for one of our extensions (authenticated,
or rung by us) that lists the trunk.  NOTIFY 100 goes out after the 202, not before."""
from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer
from twisted.internet.task import Clock

from ivr.call.control import CallControl
from ivr.call.interface import CallerId
from ivr.config.extensions import parse_extensions

CONFIG = """
realm: ivr.local
algorithms: [MD5]
extensions:
  "2001": {ha1_md5: 87a565bc203f8cedf2e3139a4402bcff, trunks: [carrier], static_contacts: ["sip:a@10.0.0.5"]}
  "2002": {ha1_md5: 45f510763d8d21f7a0b550d7d493a274, static_contacts: ["sip:b@10.0.0.6"]}
trunks:
  carrier: {address: "192.0.2.10:5080", transport: udp}
"""


class Leg:
    def __init__(self, clock, direction="inbound", variables=None, caller_ext=None):
        self.clock = clock
        self.direction = direction
        self.variables = dict(variables or {})
        self.caller = CallerId("+12125550001", None, "")
        self.call_id = f"leg-{id(self)}"
        self.ended = False
        self.answered = True
        self.bridge = None
        self.notified: list[tuple[int, bool]] = []
        self.events: list[str] = []
        self.session = SimpleNamespace(
            caller=SimpleNamespace(extension=caller_ext),
            notify_refer=lambda status, reason, final: self.notified.append((status, final)))
        self.answer_d = defer.Deferred()

    def log_event(self, event, **fields):
        self.events.append(event)

    def hangup(self, reason):
        self.ended = True

    def when_answered(self):
        return self.answer_d


class Bridge:
    def __init__(self, a, b):
        self.a, self.b = a, b
        a.bridge = b.bridge = self
        self.replaced = []

    def other(self, leg):
        return self.b if leg is self.a else self.a

    def replace(self, old, new):
        self.replaced.append((old, new))


def setup():
    config, errors = parse_extensions(CONFIG)
    assert errors == []
    control = CallControl(media=None, ua=None, calls={}, directory=config)
    clock = Clock()
    dialled = []

    def originate_route(route, target, **kwargs):
        leg = Leg(clock, "outbound", {"target": target})
        dialled.append((route[0], leg))
        return leg

    control.originate_route = originate_route
    return control, config, clock, dialled


def bridged(clock, referrer):
    Bridge(referrer, Leg(clock))
    return referrer


def test_an_agent_we_rang_may_send_the_caller_out_through_its_trunk():
    control, config, clock, dialled = setup()
    agent = bridged(clock, Leg(clock, "outbound", {"target": "2001"}))
    assert control.blind_transfer(agent, "+12125551234") == 202
    assert dialled[0][0] == "sip:+12125551234@192.0.2.10:5080"
    assert agent.notified == []          # not before the 202 is sent ...
    clock.advance(0)
    assert agent.notified == [(100, False)]
    dialled[0][1].answer_d.callback(None)
    assert agent.notified[-1] == (200, True) and agent.ended
    assert agent.bridge.replaced == [(agent, dialled[0][1])]


def test_an_extension_without_the_trunk_or_an_outside_party_may_not():
    control, config, clock, dialled = setup()
    bob = bridged(clock, Leg(clock, caller_ext=config.extensions["2002"]))
    assert control.blind_transfer(bob, "+12125551234") == 404
    outsider = bridged(clock, Leg(clock))
    assert control.blind_transfer(outsider, "+12125551234") == 404
    assert control.blind_transfer(outsider, "sip:x@elsewhere.example") == 403
    assert dialled == [] and not outsider.ended
    # ... but an extension is fine, and an extension may name any SIP URI.
    assert control.blind_transfer(outsider, "2002") == 202
    assert control.blind_transfer(bob, "sip:x@elsewhere.example") == 202


def test_an_unanswered_or_planless_call_is_refused():
    control, config, clock, dialled = setup()
    ringing = Leg(clock, variables={"flow": "main"})
    ringing.answered = False
    assert control.blind_transfer(ringing, "2002") == 403
    no_flow = Leg(clock)
    assert control.blind_transfer(no_flow, "2002") == 403
    assert dialled == []


def test_a_failed_target_is_reported_and_the_referrer_stays():
    from ivr.call.telephony import LegFailed
    control, config, clock, dialled = setup()
    caller = Leg(clock, variables={"flow": "main"})
    assert control.blind_transfer(caller, "2002") == 202
    clock.advance(0)
    dialled[0][1].answer_d.errback(LegFailed("busy"))
    assert caller.notified == [(100, False), (486, True)] and not caller.ended
