"""The transaction layer on a fake clock: exact retransmission schedules, matching,
TU isolation, and an in-memory UAC/UAS pair over a lossy wire."""
from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import task

from ivr.sip.headers import Headers
from ivr.sip.message import Request, Response, make_response, parse_datagram, serialize
from ivr.sip.timers import TimerConfig, TimerName
from ivr.sip.transaction import State, make_branch, make_cancel
from ivr.sip.transaction_layer import TransactionLayer

from .test_transaction import request


@dataclass(frozen=True)
class Peer:
    transport: str = "UDP"
    host: str = "192.0.2.1"
    port: int = 5060


UDP, TCP = Peer(), Peer("TCP")


class FakeTransport:
    def __init__(self, clock, fail: bool = False) -> None:
        self.clock = clock
        self.sent: list[tuple[float, Request | Response]] = []
        self.fail = fail

    def send_request(self, req, dest):
        if self.fail:
            raise OSError("network unreachable")
        self.sent.append((self.clock.seconds(), req))

    def send_response(self, resp, source):
        self.sent.append((self.clock.seconds(), resp))

    def is_reliable(self, where) -> bool:
        return where.transport != "UDP"

    def times(self, predicate=lambda m: True) -> list[float]:
        return [t for t, m in self.sent if predicate(m)]


class FakeTU:
    def __init__(self, answer=None) -> None:
        self.requests: list = []
        self.acks: list = []
        self.strays: list = []
        self.timeouts: list = []
        self.answer = answer  # callable(layer, txn, request) run on each new request
        self.layer: TransactionLayer | None = None

    def request_received(self, txn, req, source):
        self.requests.append((txn, req))
        if self.answer is not None:
            self.answer(self.layer, txn, req)

    def ack_for_2xx(self, req, source):
        self.acks.append(req)

    def stray_response(self, resp, source):
        self.strays.append(resp)

    def server_timeout(self, txn):
        self.timeouts.append((txn, txn.machine.state))


def make_layer(answer=None, fail=False):
    clock = task.Clock()
    transport = FakeTransport(clock, fail)
    tu = FakeTU(answer)
    layer = TransactionLayer(clock, transport, tu)
    tu.layer = layer
    return clock, transport, tu, layer


def run_until(clock, end: float) -> None:
    """Run every delayed call due by ``end`` at exactly its scheduled time."""
    while True:
        due = [call.getTime() for call in clock.getDelayedCalls()]
        if not due or min(due) > end:
            break
        clock.rightNow = max(clock.rightNow, min(due))
        clock.advance(0)
    clock.rightNow = max(clock.rightNow, end)


def is_status(status):
    return lambda m: isinstance(m, Response) and m.status == status


# -- client schedules ---------------------------------------------------------------------


def test_invite_client_udp_no_response_schedule_and_timer_b():
    clock, transport, tu, layer = make_layer()
    outcome = []
    txn = layer.send_request(request(), UDP, outcome.append,
                             on_timeout=lambda: outcome.append(("timeout", clock.seconds())))
    assert set(txn.delayed) == {TimerName.A, TimerName.B}
    run_until(clock, 40)
    assert transport.times() == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert outcome == [("timeout", 32.0)]
    assert layer.clients == {} and txn.state is State.TERMINATED
    assert clock.getDelayedCalls() == []


def test_non_invite_client_schedule_capped_at_t2():
    clock, transport, tu, layer = make_layer()
    timeouts = []
    layer.send_request(request("OPTIONS"), UDP, print, on_timeout=lambda: timeouts.append(clock.seconds()))
    run_until(clock, 40)
    assert transport.times() == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeouts == [32.0]


def test_non_invite_client_after_1xx_retransmits_every_t2():
    clock, transport, tu, layer = make_layer()
    options = request("OPTIONS")
    got = []
    layer.send_request(options, UDP, lambda r: got.append((clock.seconds(), r.status)))
    clock.advance(0.25)
    layer.receive(make_response(options, 100), UDP)
    run_until(clock, 10)
    layer.receive(make_response(options, 200, to_tag="x"), UDP)
    layer.receive(make_response(options, 200, to_tag="x"), UDP)  # absorbed in Completed
    assert transport.times() == [0, 0.5, 4.5, 8.5]
    assert got == [(0.25, 100), (10.0, 200)]
    run_until(clock, 14.75)
    assert len(layer.clients) == 1  # Timer K (T4 = 5 s) still running
    run_until(clock, 15.25)
    assert layer.clients == {} and clock.getDelayedCalls() == []


def test_reliable_client_sends_once():
    clock, transport, tu, layer = make_layer()
    timeouts = []
    layer.send_request(request(), TCP, print, on_timeout=lambda: timeouts.append(clock.seconds()))
    layer.send_request(request("OPTIONS"), TCP, print,
                       on_timeout=lambda: timeouts.append(clock.seconds()))
    run_until(clock, 40)
    assert transport.times() == [0, 0]
    assert timeouts == [32.0, 32.0]


def test_invite_client_486_acked_and_retransmit_reacked():
    clock, transport, tu, layer = make_layer()
    invite = request()
    got = []
    layer.send_request(invite, UDP, got.append)
    clock.advance(0.1)
    layer.receive(make_response(invite, 180, to_tag="t"), UDP)
    busy = make_response(invite, 486, to_tag="t")
    layer.receive(busy, UDP)
    clock.advance(1)
    layer.receive(make_response(invite, 486, to_tag="t"), UDP)
    acks = [(t, m) for t, m in transport.sent if m.method == "ACK"]
    assert [t for t, _ in acks] == [0.1, 1.1]
    assert acks[0][1].headers.get("To").endswith(";tag=t")
    assert acks[0][1].cseq == (314159, "ACK")
    assert [r.status for r in got] == [180, 486]
    assert transport.times(lambda m: m.method == "INVITE") == [0]  # 1xx stopped Timer A
    run_until(clock, 33.2)
    assert layer.clients == {}  # Timer D at 32 s after the 486


def test_stray_2xx_goes_to_tu_other_strays_dropped():
    clock, transport, tu, layer = make_layer()
    invite = request()
    got = []
    layer.send_request(invite, UDP, got.append)
    ok = make_response(invite, 200, to_tag="t")
    layer.receive(ok, UDP)
    assert got == [ok] and layer.clients == {}
    again = make_response(invite, 200, to_tag="t")
    layer.receive(again, UDP)
    layer.receive(make_response(invite, 486, to_tag="t"), UDP)
    assert tu.strays == [again] and got == [ok]


def test_transport_error_reported_and_transaction_removed():
    clock, transport, tu, layer = make_layer(fail=True)
    errors = []
    layer.send_request(request("OPTIONS"), UDP, print,
                       on_transport_error=lambda: errors.append(clock.seconds()))
    clock.advance(0)
    assert errors == [0] and layer.clients == {} and clock.getDelayedCalls() == []


# -- server schedules ---------------------------------------------------------------------


def busy_here(layer, txn, req):
    if req.method == "INVITE":
        layer.respond(txn, make_response(req, 486, to_tag="uas"))


def test_invite_server_486_schedule_until_ack():
    clock, transport, tu, layer = make_layer(busy_here)
    invite = request()
    layer.receive(invite, UDP)
    assert transport.times(is_status(100)) == [0]
    run_until(clock, 12)
    layer.receive(request("ACK", to_tag="uas"), UDP)
    run_until(clock, 40)
    assert transport.times(is_status(486)) == [0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert [r.method for _, r in tu.requests] == ["INVITE"] and tu.acks == []
    assert tu.timeouts == [] and layer.servers == {}  # Timer I (5 s) ended it


def test_invite_server_timer_h_tells_tu():
    clock, transport, tu, layer = make_layer(busy_here)
    layer.receive(request(), UDP)
    run_until(clock, 31.9)
    assert len(layer.servers) == 1
    run_until(clock, 40)
    assert transport.times(is_status(486)) == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5,
                                               23.5, 27.5, 31.5]
    assert len(tu.timeouts) == 1 and tu.timeouts[0][1] is State.TERMINATED
    assert layer.servers == {} and clock.getDelayedCalls() == []


def test_invite_server_reliable_no_retransmissions():
    clock, transport, tu, layer = make_layer(busy_here)
    layer.receive(request(), TCP)
    run_until(clock, 40)
    assert transport.times(is_status(486)) == [0]
    assert len(tu.timeouts) == 1


def test_retransmitted_requests_absorbed_tu_sees_once():
    clock, transport, tu, layer = make_layer()
    invite, options = request(), request("OPTIONS", branch="z9hG4bKopt")
    for _ in range(3):
        layer.receive(request(), UDP)
        layer.receive(request("OPTIONS", branch="z9hG4bKopt"), UDP)
    assert [r.method for _, r in tu.requests] == ["INVITE", "OPTIONS"]
    assert transport.times(is_status(100)) == [0, 0, 0]  # INVITE retransmits re-send 100
    invite_txn, options_txn = (txn for txn, _ in tu.requests)
    layer.respond(options_txn, make_response(options, 200, to_tag="o"))
    layer.receive(request("OPTIONS", branch="z9hG4bKopt"), UDP)
    assert transport.times(is_status(200)) == [0, 0]  # Completed re-sends the 200
    ringing = make_response(invite, 180, to_tag="i")
    layer.respond(invite_txn, ringing)
    layer.receive(request(), UDP)
    assert [m for _, m in transport.sent][-1] is ringing
    assert len(tu.requests) == 2


def test_2xx_retransmission_schedule_and_no_ack():
    clock, transport, tu, layer = make_layer()
    layer.receive(request(), UDP)
    txn = tu.requests[0][0]
    no_ack = []
    ok = make_response(txn.request, 200, to_tag="uas")
    layer.retransmit_2xx(txn, ok, on_no_ack=lambda: no_ack.append(clock.seconds()))
    assert txn.state is State.ACCEPTED
    layer.receive(request(), UDP)  # a retransmitted INVITE is absorbed in Accepted
    run_until(clock, 40)
    assert transport.times(is_status(200)) == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5,
                                               23.5, 27.5, 31.5]
    assert no_ack == [32.0] and len(tu.requests) == 1
    assert layer.servers == {} and clock.getDelayedCalls() == []


def test_2xx_retransmission_stops_on_ack():
    clock, transport, tu, layer = make_layer()
    layer.receive(request(), UDP)
    txn = tu.requests[0][0]
    retransmission = layer.retransmit_2xx(txn, make_response(txn.request, 200, to_tag="uas"))
    run_until(clock, 2)
    ack = request("ACK", branch="z9hG4bKack2xx", to_tag="uas")  # new branch for 2xx ACK
    layer.receive(ack, UDP)
    assert tu.acks == [ack]
    retransmission.ack_received()
    assert retransmission.done
    run_until(clock, 40)
    assert transport.times(is_status(200)) == [0, 0.5, 1.5]


def test_cancel_matching():
    clock, transport, tu, layer = make_layer()
    invite = request()
    layer.receive(invite, UDP)
    cancel = make_cancel(invite)
    layer.receive(cancel, UDP)
    (invite_txn, _), (cancel_txn, got_cancel) = tu.requests
    assert got_cancel.method == "CANCEL" and cancel_txn is not invite_txn
    assert layer.cancel_matching(got_cancel) is invite_txn
    other = make_cancel(request(branch="z9hG4bKunknown"))
    assert layer.cancel_matching(other) is None
    layer.respond(cancel_txn, make_response(cancel, 200, to_tag="uas"))
    layer.respond(invite_txn, make_response(invite, 487, to_tag="uas"))
    layer.receive(request("ACK", to_tag="uas"), UDP)
    assert invite_txn.state is State.CONFIRMED
    assert [m.status for _, m in transport.sent] == [100, 200, 487]
    run_until(clock, 40)
    assert layer.cancel_matching(got_cancel) is None and layer.servers == {}


def test_rfc2543_ack_matches_through_response_to_tag():
    clock, transport, tu, layer = make_layer(busy_here)
    layer.receive(request(branch=None), UDP)
    layer.receive(request(branch=None), UDP)
    txn = tu.requests[0][0]
    assert len(tu.requests) == 1
    layer.receive(request("ACK", branch=None, to_tag="uas"), UDP)
    assert txn.state is State.CONFIRMED and tu.acks == []
    run_until(clock, 6)
    assert layer.servers == {}


def test_tu_exceptions_and_garbage_never_escape():
    def explode(layer, txn, req):
        raise RuntimeError("TU bug")

    clock, transport, tu, layer = make_layer(explode)
    layer.receive(request(), UDP)  # must not raise
    assert len(tu.requests) == 1
    bad = Request("INVITE", "sip:x@y", Headers([("Via", "garbage")]))
    layer.receive(bad, UDP)
    layer.receive(Response(200, headers=Headers([("CSeq", "nonsense")])), UDP)
    got = []

    def bad_callback(resp):
        got.append(resp)
        raise ValueError("callback bug")

    invite = request(branch="z9hG4bKcb")
    layer.send_request(invite, UDP, bad_callback)
    layer.receive(make_response(invite, 486, to_tag="t"), UDP)
    assert len(got) == 1 and len(layer.clients) == 1  # still in Completed, ACK sent
    assert transport.sent[-1][1].method == "ACK"


# -- an in-memory UAC/UAS pair over a lossy wire -------------------------------------------


class Wire:
    """Delivers serialised bytes through parse_datagram after 10 ms, dropping the first
    ``drop`` packets it is given (or, given a set, the packets with those indexes)."""

    def __init__(self, clock, drop: int | set[int] = 0) -> None:
        self.clock = clock
        self.lose = set(range(drop)) if isinstance(drop, int) else set(drop)
        self.peer: TransactionLayer | None = None
        self.log: list[tuple[float, str, bool]] = []

    def _deliver(self, message):
        data = serialize(message)
        dropped = len(self.log) in self.lose
        first = data.split(b"\r\n", 1)[0].decode()
        self.log.append((round(self.clock.seconds(), 2), first, dropped))
        if not dropped:
            self.clock.callLater(0.01, lambda: self.peer.receive(parse_datagram(data), UDP))

    send_request = send_response = lambda self, message, where: self._deliver(message)

    def is_reliable(self, where) -> bool:
        return False


def make_pair(uac_drop, uas_drop, answer):
    clock = task.Clock()
    uac_wire, uas_wire = Wire(clock, uac_drop), Wire(clock, uas_drop)
    uac_tu, uas_tu = FakeTU(), FakeTU(answer)
    uac = TransactionLayer(clock, uac_wire, uac_tu, TimerConfig())
    uas = TransactionLayer(clock, uas_wire, uas_tu, TimerConfig())
    uas_tu.layer = uas
    uac_wire.peer, uas_wire.peer = uas, uac
    return clock, uac, uas, uac_wire, uas_wire, uas_tu


def ring_then_busy(layer, txn, req):
    if req.method == "INVITE":
        layer.respond(txn, make_response(req, 180, to_tag="uas"))
        layer.clock.callLater(2.2, layer.respond, txn, make_response(req, 486, to_tag="uas"))
    else:
        layer.respond(txn, make_response(req, 200, to_tag="uas"))


def test_pair_invite_180_486_ack_under_loss():
    # Drop the first 2 INVITEs, and on the UAS side the 100, the 180 and the first 486.
    clock, uac, uas, uac_wire, uas_wire, uas_tu = make_pair(2, {0, 1, 3}, ring_then_busy)
    invite = request(branch=make_branch())
    statuses = []
    uac.send_request(invite, UDP, lambda r: statuses.append((round(clock.seconds(), 2), r.status)))
    run_until(clock, 60)
    # INVITE at 0 and 0.5 lost, 1.5 arrives (1.51): 100 and 180 lost; the UAC's Timer A
    # at 3.5 makes the UAS re-send the 180; the 486 (3.71) is lost, Timer G re-sends it
    # at 4.21; the ACK stops Timer G.
    assert [(t, line, d) for t, line, d in uac_wire.log if "INVITE" in line] == [
        (0, "INVITE sip:bob@biloxi.example.com SIP/2.0", True),
        (0.5, "INVITE sip:bob@biloxi.example.com SIP/2.0", True),
        (1.5, "INVITE sip:bob@biloxi.example.com SIP/2.0", False),
        (3.5, "INVITE sip:bob@biloxi.example.com SIP/2.0", False),
    ]
    assert statuses == [(3.52, 180), (4.22, 486)]
    assert [(t, line.split(" ")[1], d) for t, line, d in uas_wire.log] == [
        (1.51, "100", True), (1.51, "180", True), (3.51, "180", False),
        (3.71, "486", True), (4.21, "486", False)]
    assert [r.method for _, r in uas_tu.requests] == ["INVITE"]
    acks = [entry for entry in uac_wire.log if entry[1].startswith("ACK")]
    assert len(acks) == 1 and not acks[0][2]
    assert uas.servers == {} and uac.clients == {} and clock.getDelayedCalls() == []


def test_pair_options_200_under_loss():
    clock, uac, uas, uac_wire, uas_wire, uas_tu = make_pair(1, 1, ring_then_busy)
    options = request("OPTIONS", branch=make_branch())
    statuses = []
    uac.send_request(options, UDP, lambda r: statuses.append((round(clock.seconds(), 2), r.status)))
    run_until(clock, 60)
    # OPTIONS at 0 lost, at 0.5 delivered; its 200 lost; the retransmit at 1.5 makes the
    # UAS re-send the 200 from Completed.
    assert [t for t, line, _ in uac_wire.log] == [0, 0.5, 1.5]
    assert [d for _, _, d in uas_wire.log] == [True, False]
    assert statuses == [(1.52, 200)]
    assert [r.method for _, r in uas_tu.requests] == ["OPTIONS"]
    assert uas.servers == {} and uac.clients == {}
