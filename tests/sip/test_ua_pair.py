"""Our UAC against our UAS, in memory, on a fake clock (STYLE rule 9).

Two :class:`UserAgent` objects share a ``task.Clock``; a fake transport serialises every
message, parses it back with ``parse_datagram`` and delivers it to the other side after
``delay`` seconds, optionally losing the first N messages of a kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from twisted.internet import task

from ivr.sip import session as session_module
from ivr.sip.auth import compute_ha1, format_challenge, parse_credentials, verify
from ivr.sip.headers import Headers
from ivr.sip.message import Request, Response, parse_datagram, serialize
from ivr.sip.session import InviteSession, OfferRejected, SessionError, SessionState
from ivr.sip.transport import Destination, Source, response_destination, stamp_via
from ivr.sip.ua import UserAgent, new_branch

HOST = "127.0.0.1"
UAC_PORT, UAS_PORT = 5061, 5062
OFFER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"
ANSWER = OFFER.replace(b"4000", b"5000")
HOLD = OFFER.replace(b"sendrecv", b"sendonly")
HELD = OFFER.replace(b"sendrecv", b"recvonly")


def kind(message) -> str:
    """"INVITE", "ACK", ... for requests; "200 INVITE", "100 INVITE", ... for responses."""
    if isinstance(message, Request):
        return message.method
    return f"{message.status} {message.cseq[1]}"


class Network:
    def __init__(self, clock, delay: float = 0.0) -> None:
        self.clock = clock
        self.delay = delay
        self.uas: dict[tuple[str, int], UserAgent] = {}
        self.log: list[tuple[float, int, object]] = []  # (time, from port, message) sent
        self.lose: dict[str, int] = {}  # kind -> how many more to lose

    def drop(self, what: str, count: int = 1) -> None:
        self.lose[what] = count

    def transmit(self, data: bytes, origin: tuple[str, int], to: tuple[str, int]) -> None:
        message = parse_datagram(data)
        self.log.append((self.clock.seconds(), origin[1], message))
        for what in (kind(message), kind(message).split(" ")[0]):
            if self.lose.get(what, 0) > 0:
                self.lose[what] -= 1
                return
        self.clock.callLater(self.delay, self._deliver, data, origin, to)

    def _deliver(self, data: bytes, origin, to) -> None:
        ua = self.uas.get(to)
        if ua is None:
            return
        message = parse_datagram(data)
        source = Source("UDP", origin[0], origin[1])
        if isinstance(message, Request):
            stamp_via(message, source)
        ua.receive(message, source)

    def sent(self, port: int, what: str) -> list[tuple[float, object]]:
        return [(t, m) for t, p, m in self.log if p == port and kind(m) == what]


class FakeTransport:
    def __init__(self, network: Network, port: int) -> None:
        self.network = network
        self.address = (HOST, port)

    def send_request(self, request, dest: Destination) -> None:
        self.network.transmit(serialize(request), self.address, (dest.host, dest.port))

    def send_response(self, response, source: Source) -> None:
        self.network.transmit(serialize(response), self.address, response_destination(response))

    def is_reliable(self, where) -> bool:
        return where.transport != "UDP"


@dataclass
class Listener:
    events: list = field(default_factory=list)
    offer_answer: bytes | None = ANSWER
    reject_offer: bool = False
    info_status: int = 200
    answer_sdp: bytes | None = None  # what on_answered returns (an ACK body)

    def on_progress(self, session, response):
        self.events.append(("progress", response.status))

    def on_answered(self, session, response):
        self.events.append(("answered", response.status, response.body))
        return self.answer_sdp

    def on_failed(self, session, status, reason):
        self.events.append(("failed", status))

    def on_confirmed(self, session, ack):
        self.events.append(("confirmed",))

    def on_offer(self, session, sdp):
        self.events.append(("offer", sdp))
        if self.reject_offer:
            raise OfferRejected()
        return self.offer_answer

    def on_answer(self, session, sdp):
        self.events.append(("answer", sdp))

    def on_info(self, session, request):
        self.events.append(("info", request.body))
        return self.info_status

    def on_terminated(self, session, reason):
        self.events.append(("terminated", reason))

    def names(self) -> list[str]:
        return [e[0] for e in self.events]


class App:
    """The UAS application: ``behaviour(session)`` runs on each incoming call."""

    def __init__(self, behaviour=None) -> None:
        self.sessions: list[InviteSession] = []
        self.listener = Listener()
        self.behaviour = behaviour or (lambda s: (s.ring(), s.accept(ANSWER)))

    def incoming_call(self, session: InviteSession) -> None:
        session.listener = self.listener
        self.sessions.append(session)
        self.behaviour(session)


class Pair:
    def __init__(self, behaviour=None, delay: float = 0.0) -> None:
        self.clock = task.Clock()
        self.net = Network(self.clock, delay)
        self.app = App(behaviour)
        self.uac_app = App()
        self.uac = UserAgent(self.clock, FakeTransport(self.net, UAC_PORT), self.uac_app, HOST, UAC_PORT)
        self.uas = UserAgent(self.clock, FakeTransport(self.net, UAS_PORT), self.app, HOST, UAS_PORT)
        self.net.uas = {(HOST, UAC_PORT): self.uac, (HOST, UAS_PORT): self.uas}
        self.caller = Listener()

    def call(self, **kwargs) -> InviteSession:
        return self.uac.invite(f"sip:ivr@{HOST}:{UAS_PORT}", self.caller, OFFER, **kwargs)

    def run(self, until: float | None = None) -> None:
        """Fire every delayed call up to ``until`` (default: now), at its exact time."""
        clock = self.clock
        end = clock.seconds() if until is None else until
        while clock.getDelayedCalls():
            nxt = min(c.getTime() for c in clock.getDelayedCalls())
            if nxt > end:
                break
            clock.advance(nxt - clock.seconds())
        if end > clock.seconds():
            clock.advance(end - clock.seconds())

    def send(self, ua: UserAgent, method: str, to_port: int, extra=(), body=b"",
             to_tag: str | None = None) -> list[Response]:
        """An out-of-dialog request through ``ua``'s transaction layer; the responses."""
        headers = Headers()
        headers.add("Via", ua.via())
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:test@{HOST}>;tag=ft1")
        headers.add("To", f"<sip:ivr@{HOST}:{to_port}>" + (f";tag={to_tag}" if to_tag else ""))
        headers.add("Call-ID", "out-of-dialog-" + new_branch())
        headers.add("CSeq", f"1 {method}")
        for name, value in extra:
            headers.add(name, value)
        got: list[Response] = []
        ua.layer.send_request(Request(method, f"sip:ivr@{HOST}:{to_port}", headers, body),
                              Destination("UDP", HOST, to_port), on_response=got.append)
        self.run()
        return got


def no_pending_state(pair: Pair) -> None:
    assert pair.uac.sessions == {} and pair.uas.sessions == {}
    assert pair.uas.pending_uas == {}


# -- basic call ----------------------------------------------------------------------------


@pytest.mark.parametrize("hangup_by", ["uac", "uas"])
def test_call_answered_and_hung_up(hangup_by):
    pair = Pair()
    caller = pair.call()
    pair.run()
    callee = pair.app.sessions[0]
    assert pair.caller.events == [("progress", 180), ("answered", 200, ANSWER)]
    assert pair.app.listener.events == [("confirmed",)]
    assert caller.state is SessionState.CONFIRMED and callee.state is SessionState.CONFIRMED
    assert callee.remote_sdp == OFFER
    assert [kind(m) for _, _, m in pair.net.log] == [
        "INVITE", "100 INVITE", "180 INVITE", "200 INVITE", "ACK"]
    ack = pair.net.sent(UAC_PORT, "ACK")[0][1]
    invite = pair.net.sent(UAC_PORT, "INVITE")[0][1]
    assert ack.cseq == (1, "ACK") and ack.top_via.branch != invite.top_via.branch
    assert ack.uri == f"sip:ivr@{HOST}:{UAS_PORT}"  # the UAS's Contact

    (caller if hangup_by == "uac" else callee).bye()
    pair.run()
    bye_from = UAC_PORT if hangup_by == "uac" else UAS_PORT
    assert len(pair.net.sent(bye_from, "BYE")) == 1
    other = UAS_PORT if hangup_by == "uac" else UAC_PORT
    assert len(pair.net.sent(other, "200 BYE")) == 1
    reasons = {"uac": ("local-bye", "remote-bye"), "uas": ("remote-bye", "local-bye")}[hangup_by]
    assert pair.caller.events[-1] == ("terminated", reasons[0])
    assert pair.app.listener.events[-1] == ("terminated", reasons[1])
    assert caller.state is SessionState.TERMINATED and callee.state is SessionState.TERMINATED
    assert caller.end_reason == reasons[0] and callee.end_reason == reasons[1]
    no_pending_state(pair)
    # Everything ends: no timers left once the transactions have run out.
    pair.run(until=100)
    assert pair.clock.getDelayedCalls() == []
    assert pair.uac.layer.clients == {} and pair.uas.layer.servers == {}


def test_bye_cseq_and_headers():
    pair = Pair()
    caller = pair.call()
    pair.run()
    caller.bye()
    pair.run()
    bye = pair.net.sent(UAC_PORT, "BYE")[0][1]
    assert bye.cseq == (2, "BYE")
    assert bye.to.tag == pair.app.sessions[0].dialog.local_tag
    assert bye.from_.tag == caller.dialog.local_tag


# -- CANCEL --------------------------------------------------------------------------------


def test_cancel_before_answer():
    pair = Pair(behaviour=lambda s: s.ring())
    caller = pair.call()
    pair.run()
    assert pair.caller.events == [("progress", 180)]
    caller.cancel()
    pair.run()
    assert len(pair.net.sent(UAC_PORT, "CANCEL")) == 1
    ok = pair.net.sent(UAS_PORT, "200 CANCEL")
    terminated = pair.net.sent(UAS_PORT, "487 INVITE")
    assert len(ok) == 1 and len(terminated) == 1
    # The 200 for CANCEL carries the same To tag as the responses to the INVITE (9.2).
    assert ok[0][1].to.tag == terminated[0][1].to.tag == pair.app.sessions[0].dialog.local_tag
    acks = pair.net.sent(UAC_PORT, "ACK")
    invite = pair.net.sent(UAC_PORT, "INVITE")[0][1]
    assert len(acks) == 1 and acks[0][1].top_via.branch == invite.top_via.branch  # txn's ACK
    assert pair.caller.events[-1] == ("failed", 487)
    assert pair.app.listener.events == [("terminated", "cancelled")]
    assert caller.state is SessionState.TERMINATED
    no_pending_state(pair)


def test_cancel_before_any_provisional_waits_for_the_180():
    pair = Pair(behaviour=lambda s: pair.clock.callLater(1.0, s.ring))
    # Every 100 Trying is lost (the one re-sent for the INVITE retransmission at 0.5 s too).
    pair.net.drop("100", 10)
    caller = pair.call()
    pair.run()
    caller.cancel()
    pair.run(until=0.9)
    assert pair.net.sent(UAC_PORT, "CANCEL") == []  # 9.1: not before a provisional
    pair.run(until=1.0)
    cancels = pair.net.sent(UAC_PORT, "CANCEL")
    assert [t for t, _ in cancels] == [1.0]
    assert pair.caller.events == [("progress", 180), ("failed", 487)]
    assert pair.app.listener.events == [("terminated", "cancelled")]


def test_cancel_after_answer_does_nothing_but_the_call_is_hung_up_by_the_caller():
    pair = Pair()
    caller = pair.call()
    pair.run()
    caller.cancel()  # too late: no-op
    pair.run()
    assert pair.net.sent(UAC_PORT, "CANCEL") == []
    assert caller.state is SessionState.CONFIRMED


def test_bye_before_answer_from_caller_cancels():
    pair = Pair(behaviour=lambda s: s.ring())
    caller = pair.call()
    pair.run()
    caller.bye()
    pair.run()
    assert len(pair.net.sent(UAC_PORT, "CANCEL")) == 1
    assert pair.caller.events[-1] == ("failed", 487)


def test_uas_hangs_up_before_answering_rejects_480():
    pair = Pair(behaviour=lambda s: s.ring())
    pair.call()
    pair.run()
    pair.app.sessions[0].bye()
    pair.run()
    assert len(pair.net.sent(UAS_PORT, "480 INVITE")) == 1
    assert pair.caller.events[-1] == ("failed", 480)
    assert pair.app.listener.events == [("terminated", "local-bye")]
    no_pending_state(pair)


# -- 2xx retransmission ---------------------------------------------------------------------


def test_lost_acks_2xx_retransmitted_until_one_gets_through():
    pair = Pair()
    pair.net.drop("ACK", 2)  # the first ACK and the re-ACK of the first retransmission
    caller = pair.call()
    pair.run(until=10)
    callee = pair.app.sessions[0]
    assert [t for t, _ in pair.net.sent(UAS_PORT, "200 INVITE")] == [0.0, 0.5, 1.5]
    assert [t for t, _ in pair.net.sent(UAC_PORT, "ACK")] == [0.0, 0.5, 1.5]
    # Each re-ACK is the same ACK (13.2.2.4).
    acks = [m for _, m in pair.net.sent(UAC_PORT, "ACK")]
    assert len({a.top_via.branch for a in acks}) == 1
    assert pair.app.listener.events == [("confirmed",)]
    assert callee.state is SessionState.CONFIRMED
    assert pair.caller.events == [("progress", 180), ("answered", 200, ANSWER)]  # once
    assert caller.state is SessionState.CONFIRMED


def test_no_ack_at_all_bye_after_64_t1():
    pair = Pair()
    pair.net.drop("ACK", 1000)
    pair.call()
    pair.run(until=40)
    times = [t for t, _ in pair.net.sent(UAS_PORT, "200 INVITE")]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    byes = pair.net.sent(UAS_PORT, "BYE")
    assert [t for t, _ in byes] == [32.0]
    assert pair.app.listener.events == [("terminated", "no-ack")]
    assert pair.caller.events[-1] == ("terminated", "remote-bye")
    no_pending_state(pair)


def test_retransmitted_2xx_after_ack_is_re_acked():
    pair = Pair()
    caller = pair.call()
    pair.run()
    ok = pair.net.sent(UAS_PORT, "200 INVITE")[0][1]
    pair.uac.receive(parse_datagram(serialize(ok)), Source("UDP", HOST, UAS_PORT))
    pair.run()
    acks = [m for _, m in pair.net.sent(UAC_PORT, "ACK")]
    assert len(acks) == 2 and serialize(acks[0]) == serialize(acks[1])
    assert pair.caller.events.count(("answered", 200, ANSWER)) == 1
    assert caller.state is SessionState.CONFIRMED


def test_uas_bye_before_ack_waits_for_the_ack():
    """15: the callee must not send BYE before the ACK (or its timeout)."""
    pair = Pair(behaviour=lambda s: (s.accept(ANSWER), s.bye()), delay=0.01)
    caller = pair.call()
    pair.run(until=1)
    byes = pair.net.sent(UAS_PORT, "BYE")
    acks = pair.net.sent(UAC_PORT, "ACK")
    assert len(byes) == 1 and len(acks) == 1
    assert byes[0][0] > acks[0][0]
    assert pair.app.listener.events[-1] == ("terminated", "local-bye")
    assert caller.state is SessionState.TERMINATED


# -- re-INVITE, UPDATE, INFO ---------------------------------------------------------------


def test_reinvite_for_hold_answered_via_on_offer():
    pair = Pair()
    pair.app.listener.offer_answer = HELD
    caller = pair.call()
    pair.run()
    done = []
    assert caller.reinvite(HOLD, on_done=done.append) is True
    pair.run()
    assert pair.app.listener.events == [("confirmed",), ("offer", HOLD)]
    assert pair.caller.events[-1] == ("answer", HELD)
    assert [r.status for r in done] == [200]
    reinvites = pair.net.sent(UAC_PORT, "INVITE")
    assert len(reinvites) == 2 and reinvites[1][1].cseq == (2, "INVITE")
    assert reinvites[1][1].to.tag == pair.app.sessions[0].dialog.local_tag
    acks = pair.net.sent(UAC_PORT, "ACK")
    assert [a.cseq for _, a in acks] == [(1, "ACK"), (2, "ACK")]
    # The callee's 2xx to the re-INVITE is not retransmitted after the ACK.
    pair.run(until=10)
    assert len(pair.net.sent(UAS_PORT, "200 INVITE")) == 2
    assert pair.app.sessions[0].retransmission is None


def test_reinvite_from_the_callee_and_its_re_ack():
    pair = Pair()
    pair.caller.offer_answer = HELD
    caller = pair.call()
    pair.run()
    callee = pair.app.sessions[0]
    assert callee.reinvite(HOLD) is True
    pair.run()
    assert pair.caller.events[-1] == ("offer", HOLD)
    assert pair.app.listener.events[-1] == ("answer", HELD)
    acks = pair.net.sent(UAS_PORT, "ACK")
    assert len(acks) == 1 and acks[0][1].cseq == (1, "ACK")
    # A retransmission of the caller's 2xx to that re-INVITE is re-ACKed with the same ACK.
    ok = pair.net.sent(UAC_PORT, "200 INVITE")[-1][1]
    pair.uas.receive(parse_datagram(serialize(ok)), Source("UDP", HOST, UAC_PORT))
    pair.run()
    acks = pair.net.sent(UAS_PORT, "ACK")
    assert len(acks) == 2 and serialize(acks[0][1]) == serialize(acks[1][1])
    # ... and the caller stopped retransmitting its 2xx.
    pair.run(until=10)
    assert len(pair.net.sent(UAC_PORT, "200 INVITE")) == 1
    assert caller.state is SessionState.CONFIRMED


def test_reinvite_offer_rejected_488_and_call_continues():
    pair = Pair()
    pair.app.listener.reject_offer = True
    caller = pair.call()
    pair.run()
    done = []
    caller.reinvite(HOLD, on_done=done.append)
    pair.run()
    assert [r.status for r in done] == [488]
    assert caller.state is SessionState.CONFIRMED
    assert caller.reinvite(HOLD) is True  # a new one may be sent


def test_retransmitted_2xx_of_initial_invite_does_not_re_ack_with_reinvite_ack():
    pair = Pair()
    caller = pair.call()
    pair.run()
    first_ok = pair.net.sent(UAS_PORT, "200 INVITE")[0][1]
    caller.reinvite(HOLD)
    pair.run()
    pair.uac.receive(parse_datagram(serialize(first_ok)), Source("UDP", HOST, UAS_PORT))
    pair.run()
    acks = [a for _, a in pair.net.sent(UAC_PORT, "ACK")]
    assert [a.cseq[0] for a in acks] == [1, 2, 1]


def test_glare_both_get_491_and_retry_after_randomised_delays(monkeypatch):
    delays = {}

    def fake_uniform(a, b):
        delays[(a, b)] = value = {(2.1, 4.0): 3.0, (0, 2): 1.0}[(a, b)]
        return value

    monkeypatch.setattr(session_module.random, "uniform", fake_uniform)
    pair = Pair(delay=0.01)
    pair.caller.offer_answer = HELD
    pair.app.listener.offer_answer = HELD
    caller = pair.call()
    pair.run(until=1)
    callee = pair.app.sessions[0]
    done_caller, done_callee = [], []
    start = pair.clock.seconds()
    assert caller.reinvite(HOLD, on_done=done_caller.append)
    assert callee.reinvite(HOLD, on_done=done_callee.append)
    pair.run(until=start + 0.5)
    assert len(pair.net.sent(UAS_PORT, "491 INVITE")) == 1
    assert len(pair.net.sent(UAC_PORT, "491 INVITE")) == 1
    assert done_caller == [] and done_callee == []
    assert delays == {(2.1, 4.0): 3.0, (0, 2): 1.0}
    pair.run(until=start + 10)
    # The callee (not the Call-ID owner) retries first, 1.0 s after its 491.
    callee_invites = [t for t, _ in pair.net.sent(UAS_PORT, "INVITE")]
    caller_invites = [t for t, _ in pair.net.sent(UAC_PORT, "INVITE")][1:]
    assert len(callee_invites) == 2 and len(caller_invites) == 2
    assert callee_invites[1] == pytest.approx(start + 0.02 + 1.0)
    assert caller_invites[1] == pytest.approx(start + 0.02 + 3.0)
    assert [r.status for r in done_callee] == [200]
    assert [r.status for r in done_caller] == [200]
    assert pair.app.listener.events.count(("answer", HELD)) == 1
    assert pair.caller.events.count(("answer", HELD)) == 1
    assert caller.state is SessionState.CONFIRMED and callee.state is SessionState.CONFIRMED


def test_reinvite_timeout_frees_the_dialog_and_hangs_up():
    pair = Pair()
    caller = pair.call()
    pair.run()
    pair.net.drop("INVITE", 1000)
    done = []
    caller.reinvite(HOLD, on_done=done.append)
    pair.run(until=40)
    assert done == [None]
    assert caller.dialog.outgoing_invite_pending is False
    assert caller.state is SessionState.TERMINATED
    assert len(pair.net.sent(UAC_PORT, "BYE")) == 1


def test_reinvite_while_our_own_initial_invite_is_unanswered_gets_500():
    """14.2: a second INVITE before our final response to the first gets 500."""
    pair = Pair(behaviour=lambda s: s.ring())
    pair.call()
    pair.run()
    callee = pair.app.sessions[0]
    # The caller sends a re-INVITE in the early dialog (a misbehaving peer).
    request = callee.invite
    headers = request.headers.copy()
    headers.set("To", f"{request.headers.get('To')};tag={callee.dialog.local_tag}")
    headers.set("CSeq", "2 INVITE")
    headers.set("Via", pair.uac.via())
    got = []
    pair.uac.layer.send_request(Request("INVITE", request.uri, headers, OFFER),
                                Destination("UDP", HOST, UAS_PORT), on_response=got.append)
    pair.run()
    assert [r.status for r in got if r.status >= 200] == [500]
    assert got[-1].headers.get("Retry-After") is not None
    assert ("offer", OFFER) not in pair.app.listener.events
    assert callee.state is SessionState.EARLY


def test_update_answered():
    pair = Pair()
    pair.app.listener.offer_answer = HELD
    caller = pair.call()
    pair.run()
    got = []
    caller.send_in_dialog("UPDATE", body=HOLD, content_type="application/sdp",
                          on_response=got.append)
    pair.run()
    assert [(r.status, r.body, r.content_type) for r in got] == [(200, HELD, "application/sdp")]
    assert pair.app.listener.events[-1] == ("offer", HOLD)
    # An UPDATE without an offer (a session refresh) is answered 200 without a body.
    got.clear()
    caller.send_in_dialog("UPDATE", on_response=got.append)
    pair.run()
    assert [(r.status, r.body, r.content_type) for r in got] == [(200, b"", None)]


def test_info_passes_to_on_info():
    pair = Pair()
    pair.app.listener.info_status = 202
    caller = pair.call()
    pair.run()
    got = []
    body = b"Signal=5\r\nDuration=160\r\n"
    caller.send_in_dialog("INFO", body=body, content_type="application/dtmf-relay",
                          on_response=got.append)
    pair.run()
    assert pair.app.listener.events[-1] == ("info", body)
    assert [r.status for r in got] == [202]


def test_out_of_order_cseq_gets_500():
    pair = Pair()
    caller = pair.call()
    pair.run()
    caller.dialog.local_seq = 10
    caller.send_in_dialog("INFO", body=b"x", content_type="text/plain")
    pair.run()
    caller.dialog.local_seq = 4
    got = []
    caller.send_in_dialog("INFO", body=b"y", content_type="text/plain", on_response=got.append)
    pair.run()
    assert [r.status for r in got] == [500]


# -- out-of-dialog requests ------------------------------------------------------------------


def test_options_answered_200_with_allow_and_accept():
    pair = Pair()
    got = pair.send(pair.uac, "OPTIONS", UAS_PORT)
    assert [r.status for r in got] == [200]
    allow = got[0].headers.get_all("Allow")
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE"} <= set(allow)
    assert "application/sdp" in got[0].headers.get_all("Accept")
    assert got[0].to.tag


def test_unknown_method_gets_501():
    pair = Pair()
    got = pair.send(pair.uac, "FOO", UAS_PORT)
    assert [r.status for r in got] == [501]
    assert got[0].to.tag  # 8.2.6.2: a UAS adds a To tag


def test_unsupported_known_method_gets_405_with_allow():
    pair = Pair()
    got = pair.send(pair.uac, "REGISTER", UAS_PORT,
                    extra=[("Contact", f"<sip:test@{HOST}:{UAC_PORT}>")])
    assert [r.status for r in got] == [405]
    assert "INVITE" in got[0].headers.get_all("Allow")


def test_bye_for_unknown_dialog_gets_481():
    pair = Pair()
    got = pair.send(pair.uac, "BYE", UAS_PORT, to_tag="nosuchtag")
    assert [r.status for r in got] == [481]


def test_draining_ua_answers_invite_503_with_retry_after():
    pair = Pair()
    pair.uas.draining = True
    pair.uas.retry_after = 120
    caller = pair.call()
    pair.run()
    failures = pair.net.sent(UAS_PORT, "503 INVITE")
    assert len(failures) == 1
    assert failures[0][1].headers.get("Retry-After") == "120"
    assert failures[0][1].to.tag
    assert pair.caller.events == [("failed", 503)]
    assert pair.app.sessions == []
    assert caller.state is SessionState.TERMINATED
    assert len(pair.net.sent(UAC_PORT, "ACK")) == 1  # the transaction's ACK


def test_application_error_on_incoming_call_answers_500():
    def boom(session):
        raise RuntimeError("app bug")

    pair = Pair(behaviour=boom)
    pair.call()
    pair.run()
    assert pair.caller.events == [("failed", 500)]
    no_pending_state(pair)


# -- UAC failures and digest ---------------------------------------------------------------


def test_busy_486_on_failed_and_ack_from_transaction():
    pair = Pair(behaviour=lambda s: s.reject(486))
    caller = pair.call()
    pair.run()
    assert pair.caller.events == [("failed", 486)]
    acks = pair.net.sent(UAC_PORT, "ACK")
    invite = pair.net.sent(UAC_PORT, "INVITE")[0][1]
    assert len(acks) == 1
    assert acks[0][1].top_via.branch == invite.top_via.branch
    assert acks[0][1].to.tag == pair.app.sessions[0].dialog.local_tag
    assert caller.state is SessionState.TERMINATED
    no_pending_state(pair)
    pair.run(until=40)
    assert len(pair.net.sent(UAS_PORT, "486 INVITE")) == 1  # the ACK stopped Timer G


def test_digest_challenge_answered():
    realm, nonce, password = "ivr.test", "n0nce", "secret"
    seen = []

    def authenticate(session: InviteSession):
        value = session.invite.headers.get("Authorization")
        seen.append(session.invite)
        if value is None:
            session.reject(401, extra=[("WWW-Authenticate", format_challenge(realm, nonce))])
            return
        credentials = parse_credentials(value)
        ha1 = compute_ha1("alice", realm, password)
        if verify(credentials, "INVITE", ha1) and credentials.username == "alice":
            session.accept(ANSWER)
        else:
            session.reject(403)

    pair = Pair(behaviour=authenticate)
    caller = pair.call(credentials=("alice", password))
    pair.run()
    assert pair.caller.events == [("answered", 200, ANSWER)]
    first, second = seen
    assert first.cseq == (1, "INVITE") and second.cseq == (2, "INVITE")
    assert first.top_via.branch != second.top_via.branch
    assert first.call_id == second.call_id and first.from_.tag == second.from_.tag
    assert second.body == OFFER
    assert caller.state is SessionState.CONFIRMED
    # The ACK carries the same credentials as the INVITE (13.2.2.4) and the INVITE's CSeq.
    ack = pair.net.sent(UAC_PORT, "ACK")[-1][1]
    assert ack.cseq == (2, "ACK")
    assert ack.headers.get("Authorization") == second.headers.get("Authorization")


def test_digest_wrong_password_fails_once():
    def authenticate(session: InviteSession):
        if session.invite.headers.get("Authorization") is None:
            session.reject(401, extra=[("WWW-Authenticate", format_challenge("r", "n"))])
        else:
            session.reject(401, extra=[("WWW-Authenticate", format_challenge("r", "n2"))])

    pair = Pair(behaviour=authenticate)
    pair.call(credentials=("alice", "wrong"))
    pair.run()
    assert pair.caller.events == [("failed", 401)]
    assert len(pair.net.sent(UAC_PORT, "INVITE")) == 2


def test_challenge_without_credentials_fails():
    pair = Pair(behaviour=lambda s: s.reject(
        407, extra=[("Proxy-Authenticate", format_challenge("r", "n"))]))
    pair.call()
    pair.run()
    assert pair.caller.events == [("failed", 407)]


def test_invite_timeout_408():
    pair = Pair()
    pair.net.drop("INVITE", 1000)
    pair.call()
    pair.run(until=40)
    assert pair.caller.events == [("failed", 408)]
    times = [t for t, _ in pair.net.sent(UAC_PORT, "INVITE")]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]


def test_invite_rejects_non_sip_targets():
    pair = Pair()
    with pytest.raises(ValueError):
        pair.uac.invite("tel:+15551234567", pair.caller, OFFER)


# -- fixes: early BYE, listener failures, misuse ---------------------------------------------


def test_bye_on_the_early_dialog_answers_the_invite_487():
    """15.1.2: the pending INVITE gets 487 when a BYE ends the early dialog."""
    pair = Pair(behaviour=lambda s: s.ring())
    caller = pair.call()
    pair.run()
    bye = caller.dialog.create_request("BYE")
    bye.headers.prepend("Via", pair.uac.via())
    got = []
    pair.uac.layer.send_request(bye, Destination("UDP", HOST, UAS_PORT), on_response=got.append)
    pair.run()
    assert [r.status for r in got] == [200]
    assert len(pair.net.sent(UAS_PORT, "487 INVITE")) == 1
    assert pair.caller.events[-1] == ("failed", 487)
    assert pair.app.listener.events == [("terminated", "remote-bye")]
    no_pending_state(pair)
    pair.run(until=100)
    assert pair.uas.layer.servers == {}


def test_listener_failure_on_offer_answers_500():
    pair = Pair()
    caller = pair.call()
    pair.run()

    def broken(session, sdp):
        raise KeyError("listener bug")

    pair.app.listener.on_offer = broken
    done = []
    caller.reinvite(HOLD, on_done=done.append)
    pair.run()
    assert [r.status for r in done] == [500]
    pair.run(until=100)
    assert pair.uas.layer.servers == {}  # the INVITE server transaction ended
    assert caller.state is SessionState.CONFIRMED


def test_reinvite_481_ends_the_session():
    pair = Pair()
    caller = pair.call()
    pair.run()
    callee = pair.app.sessions[0]
    pair.uas.forget_session(callee)  # the callee lost the dialog
    done = []
    caller.reinvite(HOLD, on_done=done.append)
    pair.run()
    assert [r.status for r in done] == [481]
    assert caller.state is SessionState.TERMINATED
    assert pair.caller.events[-1] == ("terminated", "remote-gone")


def test_send_in_dialog_misuse_raises():
    pair = Pair()
    caller = pair.call()
    with pytest.raises(SessionError):
        caller.send_in_dialog("INFO")  # no dialog yet
    pair.run()
    with pytest.raises(SessionError):
        caller.send_in_dialog("BYE")
    caller.bye()
    with pytest.raises(SessionError):
        caller.send_in_dialog("INFO")


def test_no_reinvite_while_the_peers_reinvite_awaits_our_ack():
    """14.1: no new INVITE while another is in progress in either direction."""
    pair = Pair()
    caller = pair.call()
    pair.run()
    callee = pair.app.sessions[0]
    pair.net.drop("ACK", 1)  # the ACK for the callee's 2xx to the re-INVITE is lost
    caller.reinvite(HOLD)
    pair.run()
    assert callee.state is SessionState.CONFIRMED and callee.retransmission is not None
    assert callee.reinvite(HOLD) is False
    pair.run(until=1)  # the 2xx retransmitted at 0.5 s is re-ACKed
    assert callee.retransmission is None
    assert callee.reinvite(HOLD) is True


def test_our_invites_name_our_port_in_from():
    """A UA sharing a host with a server (ivr phone next to ivr serve on 5060) must not look
    like it claims to be one of the server's users: its From carries its own port."""
    from twisted.internet.task import Clock

    from ivr.sip.transport import Destination
    from ivr.sip.ua import UserAgent

    class Capture:
        def __init__(self):
            self.sent = []

        def send_request(self, request, dest):
            self.sent.append(request)

        def send_response(self, response, source):
            pass

        def is_reliable(self, where):
            return False

    transport = Capture()
    ua = UserAgent(Clock(), transport, app=None, host="127.0.0.1", port=40123)
    ua.invite("sip:echo@127.0.0.1:5060", listener=None, sdp=None, from_user="phone",
              dest=Destination("UDP", "127.0.0.1", 5060))
    from_uri = transport.sent[0].from_.uri
    assert (from_uri.host, from_uri.port, from_uri.user) == ("127.0.0.1", 40123, "phone")
