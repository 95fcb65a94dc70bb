"""Server transactions that only wait out Timer J / L are parked as compact records
(TransactionLayer._park): they behave as RFC 3261 / RFC 6026 say, and hold no objects the
cyclic garbage collector has to walk."""
from __future__ import annotations

import gc
import weakref

from twisted.internet import task

from ivr.sip.message import make_response, serialize
from ivr.sip.transaction import State, make_cancel, server_key
from ivr.sip.transaction_layer import TransactionLayer
from ivr.sip.transport import Source, SipTransport, response_destination

from .test_transaction import request
from .test_transaction_layer import UDP, FakeTU, FakeTransport, TCP, run_until


class PreparingTransport(FakeTransport):
    """The fake transport, plus what parking a non-INVITE transaction needs."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.prepared: list = []

    def prepare_response(self, response, source):
        if source.transport != "UDP":
            return None
        return serialize(response), ("192.0.2.1", 5060)

    def send_prepared(self, data, addr):
        self.prepared.append((self.clock.seconds(), data, addr))


def make():
    clock = task.Clock()
    transport = PreparingTransport(clock)
    tu = FakeTU()
    layer = TransactionLayer(clock, transport, tu)
    tu.layer = layer
    return clock, transport, tu, layer


def test_completed_non_invite_is_parked_and_resends_its_final_response_until_timer_j():
    clock, transport, tu, layer = make()
    bye = request("BYE", branch="z9hG4bKbye1", to_tag="t")
    layer.receive(bye, UDP)
    txn = tu.requests[0][0]
    ok = make_response(bye, 200)
    layer.respond(txn, ok)
    key = server_key(bye)
    assert layer.parked == 1 and isinstance(layer.servers[key], tuple)
    clock.advance(10)
    layer.receive(request("BYE", branch="z9hG4bKbye1", to_tag="t"), UDP)  # retransmitted
    assert transport.prepared == [(10, serialize(ok), ("192.0.2.1", 5060))]
    assert len(tu.requests) == 1  # absorbed: the TU never sees it
    run_until(clock, 31.9)
    assert key in layer.servers
    run_until(clock, 32.0)  # Timer J (64*T1): gone
    assert layer.servers == {} and layer.parked == 0 and clock.getDelayedCalls() == []
    layer.receive(request("BYE", branch="z9hG4bKbye1", to_tag="t"), UDP)
    assert len(tu.requests) == 2  # now a new transaction, as after Timer J


def test_accepted_invite_is_parked_absorbs_invites_and_passes_a_matching_ack_up():
    clock, transport, tu, layer = make()
    invite = request()
    layer.receive(invite, UDP)
    txn = tu.requests[0][0]
    retransmission = layer.retransmit_2xx(txn, make_response(invite, 200, to_tag="uas"))
    assert layer.parked == 1 and txn.state is State.ACCEPTED
    layer.receive(request(), UDP)  # a retransmitted INVITE: absorbed, not a new call
    assert len(tu.requests) == 1
    ack = request("ACK", to_tag="uas")  # an RFC 2543 peer reuses the INVITE's branch
    layer.receive(ack, UDP)
    assert tu.acks == [ack]
    retransmission.ack_received()
    cancel = make_cancel(invite)  # a late CANCEL matches (200, no effect), not 481
    assert layer.cancel_matching(cancel) is not None
    run_until(clock, 32.0)  # Timer L
    assert layer.servers == {} and layer.parked == 0 and clock.getDelayedCalls() == []
    assert layer.cancel_matching(cancel) is None


def test_2xx_retransmissions_still_go_out_through_a_parked_invite():
    clock, transport, tu, layer = make()
    layer.receive(request(), UDP)
    txn = tu.requests[0][0]
    layer.retransmit_2xx(txn, make_response(txn.request, 200, to_tag="uas"))
    run_until(clock, 4)
    assert [t for t, m in transport.sent if getattr(m, "status", 0) == 200] == [0, 0.5, 1.5, 3.5]


def test_an_invite_rejected_with_non_2xx_is_not_parked_it_still_retransmits_on_timer_g():
    clock, transport, tu, layer = make()
    invite = request()
    layer.receive(invite, UDP)
    layer.respond(tu.requests[0][0], make_response(invite, 486, to_tag="uas"))
    assert layer.parked == 0
    run_until(clock, 2)
    assert [t for t, m in transport.sent if getattr(m, "status", 0) == 486] == [0, 0.5, 1.5]


def test_nothing_is_parked_over_tcp():
    clock, transport, tu, layer = make()
    options = request("OPTIONS", branch="z9hG4bKtcp")
    layer.receive(options, TCP)
    layer.respond(tu.requests[0][0], make_response(options, 200))
    assert layer.parked == 0 and layer.servers == {}  # Timer J is zero on TCP


def test_a_parked_transaction_keeps_no_objects_alive_for_the_garbage_collector():
    clock, transport, tu, layer = make()
    bye = request("BYE", branch="z9hG4bKbye2", to_tag="t")
    layer.receive(bye, UDP)
    txn = tu.requests[0][0]
    layer.respond(txn, make_response(bye, 200))
    gone = weakref.ref(txn)
    tu.requests.clear()
    del txn
    gc.collect()
    assert gone() is None  # the machine, both messages and the source were let go
    record = layer.servers[server_key(bye)]
    assert not gc.is_tracked(record)  # a tuple of bytes and strings: never walked


def test_sip_transport_prepares_udp_responses_only():
    invite = request()
    ok = make_response(invite, 200, to_tag="uas")
    transport = SipTransport.__new__(SipTransport)  # prepare_response uses no state
    assert transport.prepare_response(ok, Source("UDP", "192.0.2.1", 5060)) == (
        serialize(ok), response_destination(ok))
    assert transport.prepare_response(ok, Source("TCP", "192.0.2.1", 5060)) is None
