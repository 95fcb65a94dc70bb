"""Anonymous browser callers (issue #16 item 4, ivr/call/visitors.py): only the configured
targets (403), a per-visitor rate (503 with Retry-After) and concurrency (486), never a
trunk; authenticated extensions over WebSocket and callers over UDP are not limited; the
CDR names them ``webrtc`` with their source address.  All on ``task.Clock`` with fakes."""
from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer
from twisted.internet.task import Clock

from ivr.call.control import CallControl
from ivr.call.interface import CallerId
from ivr.call.records import call_summary
from ivr.call.visitors import (VisitorGate, VisitorLimits, caller_kind, is_trunk_route,
                               may_use_trunks, source_address)
from ivr.config.extensions import parse_extensions
from ivr.config.webrtc import WebrtcVisitorSettings
from ivr.sip.authenticator import Caller, CallerKind
from ivr.sip.message import parse_datagram
from ivr.sip.transport import Destination, Source

from tests.call.test_refer_rights import Bridge, Leg

CONFIG = """
realm: ivr.local
algorithms: [MD5]
extensions:
  "2001": {ha1_md5: 87a565bc203f8cedf2e3139a4402bcff, trunks: [carrier], static_contacts: ["sip:a@10.0.0.5"]}
trunks:
  carrier: {address: "192.0.2.10:5080", transport: udp}
"""


def invite(uri="sip:echo@127.0.0.1"):
    return parse_datagram((
        f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bKv1\r\n"
        "From: <sip:visitor@x.invalid>;tag=1\r\nTo: <sip:echo@127.0.0.1>\r\n"
        "Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode())


class Session:
    def __init__(self, transport="WS", host="198.51.100.7", port=40001, caller=None,
                 uri="sip:echo@127.0.0.1"):
        self.source = Source(transport, host, port)
        self.caller = caller
        self.invite = invite(uri)
        self.rejected = None

    def reject(self, status, reason=None, extra=None):
        self.rejected = (status, reason, extra or [])


class FakeCall:
    direction = "inbound"

    def __init__(self, session):
        self.session = session
        self.ended = False
        self.events = []
        self._ended = defer.Deferred()

    def when_ended(self):
        return self._ended

    def log_event(self, event, **fields):
        self.events.append((event, fields))

    def end(self):
        self.ended = True
        self._ended.callback("normal")


class App:
    def __init__(self):
        self.calls = []

    def incoming_call(self, session):
        call = FakeCall(session)
        self.calls.append(call)
        return call


def gate(clock=None, **settings):
    clock = clock or Clock()
    limits = VisitorLimits(WebrtcVisitorSettings(**settings), clock)
    app = App()
    return VisitorGate(app, limits), app, limits, clock


ANONYMOUS = Caller(CallerKind.ANONYMOUS)


# -- targets -----------------------------------------------------------------------------

def test_by_default_only_the_bundled_demo_lines_may_be_called():
    g, app, limits, _ = gate(calls_per_minute=100, max_concurrent_per_visitor=100)
    for uri in ("sip:echo@127.0.0.1", "sip:+18005550100@h", "sip:18005550100@h",
                "sip:8005550100@h;transport=ws", "sip:1-800-555-0100@h", "sip:+15550000001@h"):
        s = Session(caller=ANONYMOUS, uri=uri)
        assert g.incoming_call(s) is not None and s.rejected is None, uri
    for uri in ("sip:2001@127.0.0.1", "sip:+12125551234@h", "sip:18005550199@h",
                "sip:voicemail@h", "sip:127.0.0.1"):
        s = Session(caller=ANONYMOUS, uri=uri)
        assert g.incoming_call(s) is None, uri
        assert s.rejected == (403, "Forbidden", []), uri
    assert len(app.calls) == 6  # a refused INVITE never becomes a leg


def test_configured_targets_replace_the_defaults():
    g, app, _, _ = gate(targets=("+15550000002",))
    ok, no = Session(uri="sip:5550000002@h"), Session(uri="sip:echo@h")
    g.incoming_call(ok)
    g.incoming_call(no)
    assert ok.rejected is None and no.rejected[0] == 403


# -- rate and concurrency --------------------------------------------------------------

def test_a_visitor_over_the_rate_gets_503_with_retry_after_until_a_token_is_back():
    g, app, limits, clock = gate(calls_per_minute=3, max_concurrent_per_visitor=100)
    sessions = [Session() for _ in range(4)]
    for s in sessions:
        g.incoming_call(s)
    assert [s.rejected for s in sessions[:3]] == [None] * 3
    # one token every 20 s; none left: the next one is 20 s away
    assert sessions[3].rejected == (503, "Service Unavailable", [("Retry-After", "20")])
    clock.advance(15)
    late = Session()
    g.incoming_call(late)
    assert late.rejected == (503, "Service Unavailable", [("Retry-After", "5")])
    clock.advance(5)
    s = Session()
    g.incoming_call(s)
    assert s.rejected is None
    # another visitor has a bucket of its own
    other = Session(host="203.0.113.9")
    g.incoming_call(other)
    assert other.rejected is None
    # refused INVITEs count too: a forbidden target takes a token
    g2, _, _, _ = gate(calls_per_minute=1)
    first, second = Session(uri="sip:2001@h"), Session()
    g2.incoming_call(first)
    g2.incoming_call(second)
    assert first.rejected[0] == 403 and second.rejected[0] == 503


def test_calls_up_at_once_per_visitor_are_limited_until_one_ends():
    g, app, limits, _ = gate(calls_per_minute=100, max_concurrent_per_visitor=2)
    g.incoming_call(Session())
    g.incoming_call(Session())
    third = Session()
    assert g.incoming_call(third) is None
    assert third.rejected == (486, "Busy Here", [])
    assert limits.calls_up("198.51.100.7") == 2
    app.calls[0].end()
    assert limits.calls_up("198.51.100.7") == 1
    again = Session()
    assert g.incoming_call(again) is not None and again.rejected is None
    for call in app.calls[1:]:
        call.end()
    assert limits._up == {}  # nothing kept for a visitor with no call up


def test_a_call_the_plan_ends_at_once_does_not_hold_a_slot():
    class Rejecting(App):
        def incoming_call(self, session):
            call = super().incoming_call(session)
            call.end()
            return call
    limits = VisitorLimits(WebrtcVisitorSettings(max_concurrent_per_visitor=1), Clock())
    g = VisitorGate(Rejecting(), limits)
    for _ in range(3):
        s = Session()
        g.incoming_call(s)
        assert s.rejected is None
    assert limits.calls_up("198.51.100.7") == 0


def test_full_buckets_are_forgotten_when_many_visitors_were_seen():
    clock = Clock()
    limits = VisitorLimits(WebrtcVisitorSettings(calls_per_minute=6), clock, max_visitors=10)
    for i in range(10):
        assert limits.refusal(f"10.0.0.{i}", "sip:echo@h") is None
    clock.advance(60)  # every bucket full again
    assert limits.refusal("10.0.1.1", "sip:echo@h") is None
    assert len(limits._buckets) == 1


# -- who is limited ----------------------------------------------------------------------

def test_extensions_over_websocket_and_callers_over_udp_are_not_limited():
    g, app, limits, _ = gate(calls_per_minute=1, max_concurrent_per_visitor=1)
    extension = Caller(CallerKind.EXTENSION, extension=SimpleNamespace(number="2001"))
    for session in (Session(caller=extension, uri="sip:+12125551234@h"),
                    Session(caller=extension, uri="sip:+12125551234@h"),
                    Session("UDP", caller=ANONYMOUS, uri="sip:+12125551234@h"),
                    Session("TLS", caller=ANONYMOUS, uri="sip:2001@h"),
                    Session("UDP", caller=ANONYMOUS, uri="sip:2001@h")):
        assert g.incoming_call(session) is not None and session.rejected is None
    assert limits._buckets == {} and limits._up == {}
    # anonymous over WSS is limited like WS; no authenticator at all counts as anonymous
    wss = Session("WSS", caller=None, uri="sip:2001@h")
    assert g.incoming_call(wss) is None and wss.rejected[0] == 403


def test_the_visitor_leg_is_logged_with_its_source():
    g, app, _, _ = gate()
    g.incoming_call(Session(host="2001:db8::7", port=5555))
    assert app.calls[0].events == [("webrtc_visitor", {"source": "[2001:db8::7]:5555",
                                                       "transport": "ws"})]


# -- the CDR -------------------------------------------------------------------------------

def leg(session, direction="inbound"):
    return SimpleNamespace(
        call_id="leg-1", id="leg-1", session=session, direction=direction,
        caller=CallerId(None, None, ""), called="echo", started_at=10.0, answered_at=11.0,
        ended_at=20.0, end_reason="normal", hangup_side="caller", variables={},
        gathered=[], digits_by_mode={}, path=[], rtp_stats={})


def test_the_cdr_names_browser_visitors_webrtc_with_their_source_address():
    row = call_summary(leg(Session("WSS", "198.51.100.7", 40001, ANONYMOUS)))
    assert (row["caller_kind"], row["source_address"]) == ("webrtc", "198.51.100.7:40001")
    extension = Caller(CallerKind.EXTENSION, extension=SimpleNamespace(number="2001"))
    assert caller_kind(leg(Session("WS", caller=extension))) == "extension"
    assert caller_kind(leg(Session("UDP", caller=ANONYMOUS))) == "anonymous"
    assert caller_kind(leg(Session("UDP", caller=Caller(CallerKind.TRUNK)))) == "trunk"
    assert caller_kind(leg(Session("UDP", caller=None))) == "anonymous"
    outbound = leg(SimpleNamespace(source=None, caller=None), "outbound")
    assert (caller_kind(outbound), source_address(outbound)) == (None, None)
    assert source_address(leg(Session("UDP", "192.0.2.1", 5060))) == "192.0.2.1:5060"


# -- never a trunk -------------------------------------------------------------------------

def visitor_leg(clock):
    referrer = Leg(clock, variables={"flow": "main"})
    referrer.session = Session(caller=ANONYMOUS)
    return referrer


def control():
    config, errors = parse_extensions(CONFIG)
    assert errors == []
    ctl = CallControl(media=None, ua=None, calls={}, directory=config)
    dialled = []
    ctl.originate_route = lambda route, target, **kw: dialled.append(route) or Leg(Clock())
    return ctl, config, dialled


def test_a_browser_visitor_may_not_transfer_at_all():
    ctl, config, dialled = control()
    visitor = visitor_leg(Clock())
    assert ctl.blind_transfer(visitor, "2001") == 403
    assert ctl.blind_transfer(visitor, "+12125551234") == 403
    assert dialled == [] and "refer_refused" in visitor.events


def test_an_agent_may_not_send_a_browser_visitor_out_through_a_trunk():
    ctl, config, dialled = control()
    clock = Clock()
    agent = Leg(clock, "outbound", {"target": "2001"})  # the agent we rang: lists the trunk
    Bridge(agent, visitor_leg(clock))
    assert ctl.blind_transfer(agent, "+12125551234") == 403
    assert ctl.blind_transfer(agent, "sip:x@192.0.2.10:5080") == 403
    assert dialled == []
    assert ctl.blind_transfer(agent, "2001") == 202       # an extension is fine
    # ... and the same agent with an ordinary caller still may (test_refer_rights)
    agent2 = Leg(clock, "outbound", {"target": "2001"})
    Bridge(agent2, Leg(clock))
    assert ctl.blind_transfer(agent2, "+12125551234") == 202


def test_trunk_routes_are_recognised_by_destination_or_uri():
    config, _ = parse_extensions(CONFIG)
    assert is_trunk_route(config, ("sip:1@x", Destination("UDP", "192.0.2.10", 5080), None))
    assert is_trunk_route(config, ("sip:1@192.0.2.10:5080", None, None))
    assert not is_trunk_route(config, ("sip:1@192.0.2.10", None, None))  # port 5060
    assert not is_trunk_route(config, ("sip:1@10.0.0.5", None, None))
    assert not is_trunk_route(config, ("not a uri", None, None))


def test_a_dial_step_never_gets_a_trunk_for_a_visitor_even_with_allow_trunk():
    clock = Clock()
    assert may_use_trunks(Leg(clock))
    assert not may_use_trunks(visitor_leg(clock))
